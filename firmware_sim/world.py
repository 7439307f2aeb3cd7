"""The simulated car park: EVSE controllers, their meters, the vehicles and the RFID reader.

``SimWorld`` builds one :class:`~firmware_sim.controller.SimController` per connector on a real
transport — a pty pair (the station opens the slave path like ``/dev/ttyS1``) or python-can's
in-process ``virtual`` bus — one :class:`~firmware_sim.meters.SimMeter` per connector, all
served by one Modbus TCP server on 127.0.0.1, and an RFID reader on a pty that writes
``<UID>\\r\\n`` lines like a real serial reader. The methods ``plug``, ``charge``, ``suspend``,
``unplug``, ``present_card``, ``set_fault`` and ``set_meter_online`` are what a person in the
car park does; ``state()`` is what the control API's ``GET /state`` shows (DESIGN.md §5.2).

Meter energy lives in ``state_dir`` (``meter-connector-<id>.json``), so a restarted world
continues counting; a controller's installed firmware version lives there too
(``controller-<id>.json``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import re
import time
import tty
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from stationd.hw.evse_protocol import (
    FAULT_BY_NAME,
    PP_RATINGS_A,
    CanLink,
    ConnectorType,
    LinkClosed,
    LinkDown,
    LockState,
    open_pty_pair,
)

from .controller import CONTROLLER_FAULT_CODES, SimController
from .meters import SimMeter, SimMeterServer, serve_tcp
from .vehicle import Vehicle

__all__ = ["CABLE_RATINGS_A", "CONNECTOR_TYPES", "FAULT_CODES", "SimConnectorSpec", "SimWorld"]

log = logging.getLogger("firmware_sim.world")

#: Station config connector types → what the controller reports in Hello. The protocol has
#: no Type 3 value; a Type 3 socket behaves like a Type 2 socket (PP rating, cable lock).
CONNECTOR_TYPES: dict[str, ConnectorType] = {
    "Type2Socket": ConnectorType.TYPE2_SOCKET,
    "Type2Cable": ConnectorType.TYPE2_TETHERED,
    "Type3Socket": ConnectorType.TYPE2_SOCKET,
}
TRANSPORTS = ("serial", "can")
#: Proximity pilot ratings a plugged cable can have (A).
CABLE_RATINGS_A: tuple[int, ...] = tuple(r for r in PP_RATINGS_A if r)  # 0 = no cable
#: Fault codes (SPEC.md §7) some simulated part can produce: the controller's plus the meter's.
FAULT_CODES: tuple[str, ...] = (*CONTROLLER_FAULT_CODES, "PowerMeterFailure")
UID_RE = re.compile(r"[0-9A-Fa-f]{8}|[0-9A-Fa-f]{14}|[0-9A-Fa-f]{20}")
HOST = "127.0.0.1"


@dataclass(frozen=True)
class SimConnectorSpec:
    id: int
    max_current_a: float = 32
    phases: int = 3
    connector_type: str = "Type2Socket"  # | Type2Cable | Type3Socket
    transport: str = "serial"  # "serial" (pty pair) | "can" (python-can virtual bus)
    can_channel: str = "stationd-sim"
    node_id: int | None = None  # defaults to the connector id
    meter_model: str = "SDM630"
    meter_device_id: int | None = None  # defaults to the connector id

    def __post_init__(self) -> None:
        if not _is_int(self.id) or not 1 <= self.id <= 247:
            raise ValueError(f"connector id must be an integer 1-247, got {self.id!r}")
        if not _is_number(self.max_current_a) or not 6 <= self.max_current_a <= 80:
            raise ValueError(f"connector {self.id}: max_current_a must be 6-80 A, got {self.max_current_a!r}")
        if self.phases not in (1, 3) or not _is_int(self.phases):
            raise ValueError(f"connector {self.id}: phases must be 1 or 3, got {self.phases!r}")
        if self.connector_type not in CONNECTOR_TYPES:
            raise ValueError(f"connector {self.id}: connector_type must be one of {', '.join(CONNECTOR_TYPES)}, "
                             f"got {self.connector_type!r}")
        if self.transport not in TRANSPORTS:
            raise ValueError(f"connector {self.id}: transport must be 'serial' or 'can', got {self.transport!r}")
        if not _is_int(self.node) or not 1 <= self.node <= 63:
            raise ValueError(f"connector {self.id}: CAN node_id must be 1-63, got {self.node!r}")
        if not _is_int(self.device_id) or not 1 <= self.device_id <= 247:
            raise ValueError(f"connector {self.id}: meter_device_id must be 1-247, got {self.device_id!r}")

    @property
    def node(self) -> int:
        return self.id if self.node_id is None else self.node_id

    @property
    def device_id(self) -> int:
        return self.id if self.meter_device_id is None else self.meter_device_id


class SimWorld:
    def __init__(self, connectors: list[SimConnectorSpec], state_dir: Path, *,
                 clock: Callable[[], float] = time.monotonic, vehicle_reaction_s: float = 1.0,
                 hardware_id_prefix: str = "SIM") -> None:
        if not connectors:
            raise ValueError("give at least one connector")
        self.specs: dict[int, SimConnectorSpec] = {}
        for spec in connectors:
            if spec.id in self.specs:
                raise ValueError(f"connector id {spec.id} given twice")
            self.specs[spec.id] = spec
        _unique([s.device_id for s in connectors], "meter_device_id")
        _unique([(s.can_channel, s.node) for s in connectors if s.transport == "can"], "CAN (channel, node_id)")
        if not vehicle_reaction_s >= 0:
            raise ValueError("vehicle_reaction_s must be >= 0")
        self.state_dir = Path(state_dir)
        self.clock = clock
        self.vehicle_reaction_s = vehicle_reaction_s
        self.meters: dict[int, SimMeter] = {}
        self.controllers: dict[int, SimController] = {}
        for spec in connectors:
            meter = SimMeter(spec.meter_model, state_dir=self.state_dir, name=f"connector-{spec.id}",
                             serial=str(20240000 + spec.id), clock=clock)
            self.meters[spec.id] = meter
            self.controllers[spec.id] = SimController(
                hardware_id=f"{hardware_id_prefix}-EVSE-{spec.id}",
                connector_type=CONNECTOR_TYPES[spec.connector_type], max_current_a=spec.max_current_a,
                phases=spec.phases, meter=meter, clock=clock,
                state_path=self.state_dir / f"controller-{spec.id}.json")
        self._links: dict[int, Any] = {}
        self._ports: dict[int, str] = {}
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._buses: dict[str, Any] = {}
        self._meter_server: SimMeterServer | None = None
        self._rfid_fds: tuple[int, int] | None = None
        self._rfid_path: str | None = None
        self._cut: dict[int, _CutLine] = {}  # controllers whose line to the station is cut
        self._started = False

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Open the transports, start the controllers, the meter server and the RFID reader."""
        if self._started:
            raise RuntimeError("the world is already started")
        self._started = True
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            self._meter_server = await serve_tcp(
                {self.specs[cid].device_id: meter for cid, meter in self.meters.items()}, HOST, 0)
            for cid in self.specs:
                await self._connect(cid)
            master, slave = os.openpty()
            tty.setraw(slave)
            os.set_blocking(master, False)
            self._rfid_fds = (master, slave)
            self._rfid_path = os.ttyname(slave)
        except BaseException:
            await self.stop()
            raise
        log.info("sim world: %d connectors, meters on %s:%d, RFID on %s", len(self.specs), HOST,
                 self._meter_server.port, self._rfid_path)

    async def stop(self) -> None:
        """Stop everything; the meters' energy is saved to the state directory."""
        for link in self._links.values():
            with contextlib.suppress(Exception):
                await link.close()
        tasks = list(self._tasks.values())
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=2.0)
            for task in pending:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        self._links.clear()
        self._cut.clear()
        self._ports.clear()
        for bus in self._buses.values():
            with contextlib.suppress(Exception):
                bus.shutdown()
        self._buses.clear()
        if self._meter_server is not None:
            server, self._meter_server = self._meter_server, None
            await server.stop()  # saves every meter
        else:
            for meter in self.meters.values():
                with contextlib.suppress(OSError):
                    meter.stop()
        if self._rfid_fds is not None:
            for fd in self._rfid_fds:
                with contextlib.suppress(OSError):
                    os.close(fd)
            self._rfid_fds = None
            self._rfid_path = None
        self._started = False

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def _connect(self, cid: int) -> None:
        """Give the controller a fresh line to the station and let it serve it."""
        spec = self.specs[cid]
        if spec.transport == "serial":
            link, path = await open_pty_pair()
            self._ports[cid] = path
        else:
            link = CanLink(self._bus(spec.can_channel), spec.node, role="controller")
        self._links[cid] = link
        self._tasks[cid] = asyncio.create_task(self.controllers[cid].run(link), name=f"sim-controller-{cid}")

    async def _disconnect(self, cid: int) -> None:
        link, task = self._links.pop(cid, None), self._tasks.pop(cid, None)
        if link is not None:
            with contextlib.suppress(Exception):
                await link.close()
        if task is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(task), 2.0)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def _bus(self, channel: str) -> Any:
        bus = self._buses.get(channel)
        if bus is None:
            import can

            bus = self._buses[channel] = can.Bus(interface="virtual", channel=channel)
        return bus

    # ------------------------------------------------------------------ where the station connects
    def controller_port(self, connector_id: int) -> str:
        """Slave pty path of the connector's controller (serial transport)."""
        spec = self._spec(connector_id)
        if spec.transport != "serial":
            raise ValueError(f"connector {connector_id} uses the CAN transport (channel {spec.can_channel!r}, "
                             f"node {spec.node}), not a serial port")
        self._require_started()
        return self._ports[connector_id]

    @property
    def meter_endpoint(self) -> tuple[str, int]:
        """(host, port) of the Modbus TCP server hosting every connector's meter."""
        self._require_started()
        assert self._meter_server is not None and self._meter_server.port is not None
        return (HOST, self._meter_server.port)

    def meter_device_id(self, connector_id: int) -> int:
        return self._spec(connector_id).device_id

    @property
    def rfid_port(self) -> str:
        """Slave pty path of the RFID reader."""
        self._require_started()
        assert self._rfid_path is not None
        return self._rfid_path

    def controller(self, connector_id: int) -> SimController:
        self._spec(connector_id)
        return self.controllers[connector_id]

    # ------------------------------------------------------------------ what a person does
    def plug(self, connector_id: int, cable_max_a: int | None = 32) -> None:
        """A vehicle is plugged in. ``cable_max_a``: the PP rating of its cable (13, 20, 32, 63);
        ignored on a tethered connector (its fixed cable has no PP resistor)."""
        spec = self._spec(connector_id)
        controller = self.controllers[connector_id]
        if cable_max_a is not None and (not _is_int(cable_max_a) or cable_max_a not in CABLE_RATINGS_A):
            raise ValueError(f"cable_max_a must be one of 13, 20, 32, 63 (or null for a tethered connector), "
                             f"got {cable_max_a!r}")
        if controller.tethered:
            cable_max_a = None
        elif cable_max_a is None:
            raise ValueError(f"cable_max_a: connector {connector_id} is a socket outlet ({spec.connector_type}); "
                             "the cable needs a rating of 13, 20, 32 or 63 A")
        if controller.vehicle is not None:
            raise ValueError(f"connector {connector_id} already has a vehicle plugged in")
        controller.plug(Vehicle(cable_max_a=int(cable_max_a) if cable_max_a is not None else None,
                                reaction_s=self.vehicle_reaction_s))

    def charge(self, connector_id: int, max_current_a: float = 16, phases: int = 3) -> None:
        """The plugged vehicle asks for energy (state C once the station offers PWM)."""
        vehicle = self._vehicle(connector_id)
        if not _is_number(max_current_a) or not 0 < max_current_a <= 80:
            raise ValueError(f"max_current_a must be a number above 0 and at most 80, got {max_current_a!r}")
        if not _is_int(phases) or phases not in (1, 3):
            raise ValueError(f"phases must be 1 or 3, got {phases!r}")
        vehicle.charge(float(max_current_a), int(phases))
        self.controllers[connector_id].refresh()

    def suspend(self, connector_id: int) -> None:
        """The vehicle pauses: back to B, it stays plugged."""
        self._vehicle(connector_id).suspend()
        self.controllers[connector_id].refresh()

    def unplug(self, connector_id: int) -> None:
        """The vehicle leaves (state A). Unplugging an empty connector changes nothing."""
        self._spec(connector_id)
        self.controllers[connector_id].unplug()

    def present_card(self, uid: str) -> None:
        """Hold a card on the reader: ``<UID upper-case hex>\\r\\n`` appears on the RFID pty."""
        if not isinstance(uid, str) or not UID_RE.fullmatch(uid):
            raise ValueError(f"uid must be 8, 14 or 20 hexadecimal digits, got {uid!r}")
        self._require_started()
        assert self._rfid_fds is not None
        line = f"{uid.upper()}\r\n".encode("ascii")
        try:
            os.write(self._rfid_fds[0], line)
        except BlockingIOError:
            log.warning("sim RFID reader: nobody reads the reader; card %s dropped", uid.upper())

    def set_fault(self, connector_id: int, code: str, active: bool) -> None:
        """Raise or clear a hardware fault (SPEC.md §7 codes; PowerMeterFailure = the meter is silent)."""
        self._spec(connector_id)
        if not isinstance(code, str) or code not in FAULT_CODES:
            raise ValueError(f"code must be one of {', '.join(FAULT_CODES)}, got {code!r}")
        if not isinstance(active, bool):
            raise ValueError(f"active must be true or false, got {active!r}")  # noqa: TRY004 - the API answers 400
        if code == "PowerMeterFailure":
            self.meters[connector_id].online = not active
        else:
            self.controllers[connector_id].set_fault(code, active)

    def set_meter_online(self, connector_id: int, online: bool) -> None:
        """The connector's meter answers (True) or stops answering (False)."""
        self._spec(connector_id)
        if not isinstance(online, bool):
            raise ValueError(f"online must be true or false, got {online!r}")  # noqa: TRY004 - the API answers 400
        self.meters[connector_id].online = online

    # ------------------------------------------------------------------ faults of the line and the MCU
    async def pull_link(self, connector_id: int) -> None:
        """The controller's line to the station is cut. Serial: the adapter is gone (the pty pair
        closes, the station reads an error; a new path appears on :meth:`restore_link`). CAN: the
        node leaves the bus (bus-off): the station hears nothing. The controller runs on by itself,
        so its heartbeat timeout opens the contactor."""
        self._spec(connector_id)
        self._require_started()
        if connector_id in self._cut:
            return
        await self._disconnect(connector_id)
        line = _CutLine()
        self._cut[connector_id] = line
        self._links[connector_id] = line
        self._tasks[connector_id] = asyncio.create_task(self.controllers[connector_id].run(line),
                                                        name=f"sim-controller-{connector_id}-cut")
        log.warning("sim world: connector %d: controller line cut", connector_id)

    async def restore_link(self, connector_id: int) -> None:
        """The line is back (serial: on a new pty path; CAN: the node recovered from bus-off)."""
        self._spec(connector_id)
        if self._cut.pop(connector_id, None) is None:
            return
        await self._disconnect(connector_id)
        await self._connect(connector_id)
        log.info("sim world: connector %d: controller line restored", connector_id)

    def link_cut(self, connector_id: int) -> bool:
        return connector_id in self._cut

    def feed_garbage(self, connector_id: int, data: bytes) -> None:
        """Noise on the line towards the station: raw bytes on the serial line, or (CAN) frames
        with the controller's identifiers and ``data`` cut into random-length payloads."""
        spec = self._spec(connector_id)
        self._require_started()
        link = self._links.get(connector_id)
        if connector_id in self._cut or link is None:
            return
        if spec.transport == "serial":
            link._writer.write(bytes(data))
            return
        import can

        from stationd.hw.evse_protocol.can_link import CAN_FUNCTIONS, Sender, can_id

        functions = [f.code for f in CAN_FUNCTIONS if f.sender is Sender.CONTROLLER]
        bus, view = self._bus(spec.can_channel), memoryview(bytes(data))
        while view:
            size = min(len(view), 1 + view[0] % 8)
            function = functions[view[0] % len(functions)]
            bus.send(can.Message(arbitration_id=can_id(function, spec.node), data=bytes(view[:size]),
                                 is_extended_id=False))
            view = view[size:]

    def reboot_controller(self, connector_id: int) -> None:
        """The controller's MCU restarts (brown-out, watchdog): contactor open, PWM off, uptime 0."""
        self._spec(connector_id)
        self.controllers[connector_id].power_cycle()

    # ------------------------------------------------------------------ GET /state
    def connector_state(self, connector_id: int) -> dict[str, Any]:
        self._spec(connector_id)
        controller, meter = self.controllers[connector_id], self.meters[connector_id]
        faults = sorted(controller.faults, key=lambda name: FAULT_BY_NAME[name].bit)
        if not meter.online:
            faults.append("PowerMeterFailure")
        return {
            "id": connector_id,
            "cp_state": controller.cp_state.name,
            "pwm_current_a": controller.offered_current_a,
            "contactor": controller.contactor_closed,
            "locked": controller.lock_state is LockState.LOCKED,
            "energy_wh": round(meter.energy_import_wh, 3),
            "power_w": round(meter.power_w, 1),
            "faults": faults,
        }

    def state(self) -> dict[str, Any]:
        return {"connectors": [self.connector_state(cid) for cid in self.specs]}

    # ------------------------------------------------------------------ helpers
    def _spec(self, connector_id: int) -> SimConnectorSpec:
        spec = self.specs.get(connector_id) if _is_int(connector_id) else None
        if spec is None:
            raise KeyError(f"no connector {connector_id!r}; connectors: {', '.join(map(str, self.specs))}")
        return spec

    def _vehicle(self, connector_id: int) -> Vehicle:
        self._spec(connector_id)
        vehicle = self.controllers[connector_id].vehicle
        if vehicle is None:
            raise ValueError(f"no vehicle is plugged in at connector {connector_id}; plug one in first")
        return vehicle

    def _require_started(self) -> None:
        if not self._started:
            raise RuntimeError("the simulated world is not started (await world.start())")


class _CutLine:
    """A controller's side of a cut line: nothing arrives, whatever it sends is lost."""

    def __init__(self) -> None:
        self._ended = asyncio.Event()

    async def receive(self) -> Any:
        await self._ended.wait()
        raise LinkClosed("the line was restored")

    async def send(self, msg: Any, *, reliable: bool | None = None) -> None:
        raise LinkDown("the line to the station is cut")

    async def close(self) -> None:
        self._ended.set()


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _unique(values: list[Any], what: str) -> None:
    seen: set[Any] = set()
    for value in values:
        if value in seen:
            raise ValueError(f"{what} {value!r} given twice")
        seen.add(value)
