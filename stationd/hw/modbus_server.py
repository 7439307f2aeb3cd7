"""The station's own Modbus TCP server, for energy managers (Heidelberg Energy Control map).

Connector n answers at device id ``unit_id + n - 1``. Reads are answered from the core's
connector objects and the last ``MeterSampled`` sample at the moment of the request (inside
pymodbus' SimDevice action); a write of holding register 261 becomes the connector's "energy manager"
current limit in the core at once. A per-device watchdog (register 257) falls back to the
failsafe current (register 262) when the energy manager goes silent. Switching the server off
(or stopping it) removes every "energy manager" limit. See docs/modbus-server.md.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from ..config.store import ConfigStore
from ..core.connector import Connector, Status
from ..core.events import MeterSampled
from ..core.iec61851 import MIN_CURRENT_A, CpState
from ..core.station import StationCore
from . import modbus_map as mm

log = logging.getLogger("stationd.modbus_server")

LIMIT_SOURCE = "energy manager"  # the core's name for this current limit
ENABLE_KEY_PROPOSAL = "ModbusServerEnabled"  # not in the key registry yet (see docs)
BIT_FUNCTIONS = {1, 2, 5, 15}  # coils and discrete inputs: the map has none
MAX_DEVICE_ID = 255
_UNSET = object()


class ConnectorDevice:
    """One connector as one Modbus device: its holding registers, watchdog and limit."""

    def __init__(self, server: ModbusServer, connector: Connector, device_id: int, now: float):
        self.server, self.connector, self.device_id = server, connector, device_id
        self.holding: dict[int, int] = {
            257: mm.DEFAULT_WATCHDOG_MS, 258: mm.STANDBY_DISABLED, 259: mm.UNLOCKED, 260: 0,
            261: mm.max_deciamps(connector.max_current_a), 262: mm.PAUSE,
        }
        self.last_request = now
        self.controlled = False  # the energy manager has written 261 since the server started
        self.failsafe = False  # the watchdog fired; stays until the next write of 261
        self.applied: object = _UNSET  # the "energy manager" limit last given to the core

    @property
    def connector_id(self) -> int:
        return self.connector.id

    def limit(self) -> float | None:
        """The current limit (A) this device imposes now; None: none."""
        if self.holding[259] == mm.LOCKED:
            return 0.0
        if self.failsafe:
            return self.holding[262] / 10
        if self.controlled:
            return self.holding[261] / 10
        return None

    def sim_device(self) -> SimDevice:
        return SimDevice(id=self.device_id, action=self.action, simdata=(
            [SimData(0, count=16, values=False, datatype=DataType.BITS)],  # never served (BIT_FUNCTIONS)
            [SimData(0, count=16, values=False, datatype=DataType.BITS)],
            _blocks(mm.Table.HOLDING),
            _blocks(mm.Table.INPUT),
        ))

    async def action(self, function_code: int, start: int, address: int, count: int,
                     registers: list[int], set_values: list[int] | list[bool] | None) -> ExcCodes | None:
        """pymodbus calls this before every access (a write is applied only if it returns None)."""
        if function_code in BIT_FUNCTIONS:
            return ExcCodes.ILLEGAL_ADDRESS
        if set_values is None:
            words = self.server.input_words(self) if function_code == 4 else self.holding
            for a in range(address, address + count):
                registers[a - start] = words.get(a, 0)
        else:
            refused = self.server.write(self, address, [int(v) for v in set_values])
            if refused is not None:
                return refused
        self.last_request = self.server.clock()  # a successful request feeds the watchdog
        return None


class ModbusServer:
    """Serve the connectors over Modbus TCP until cancelled (one ``run()`` for the supervisor)."""

    def __init__(self, core: StationCore, store: ConfigStore, host: str = "127.0.0.1", port: int = 1502,
                 unit_id: int = 1, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep, *,
                 enabled: Callable[[], bool] | None = None, tick: float = 0.5):
        last_id = unit_id + len(core.connectors) - 1
        if unit_id < 1 or last_id > MAX_DEVICE_ID:
            raise ValueError(f"device ids {unit_id}..{last_id} do not fit 1..{MAX_DEVICE_ID}")
        self.core, self.store, self.host, self.requested_port = core, store, host, port
        self.unit_id, self.clock, self._sleep, self._tick = unit_id, clock, sleep, tick
        self._enabled = enabled or (lambda: True)
        self.devices: dict[int, ConnectorDevice] = {}  # by device id, while serving
        self.listening = asyncio.Event()
        self._server: ModbusTcpServer | None = None
        self._samples: dict[int, Any] = {}
        self._baseline_wh = {c.id: c.last_energy_wh for c in core.connectors.values()}
        self._label = _station_label(store)
        core.bus.subscribe(self._on_sample, MeterSampled)

    @classmethod
    def from_config(cls, core: StationCore, store: ConfigStore, config: Any, **kwargs: Any) -> ModbusServer:
        """From the station config's ``modbus_server`` section (bind, unit_id)."""
        host, port = config.address
        return cls(core, store, host, port, config.unit_id, **kwargs)

    # ---- lifecycle --------------------------------------------------------------------

    async def run(self) -> None:
        """Serve while enabled, stay closed while not; on cancel close the socket and drop limits."""
        try:
            while True:
                if self._enabled():
                    await self._serve()
                else:
                    await self._sleep(self._tick)
        finally:
            await self._close()

    @property
    def port(self) -> int:
        """The bound port (useful with port 0)."""
        if self._server is None or self._server.transport is None:
            raise RuntimeError("the Modbus server is not listening")
        return self._server.transport.sockets[0].getsockname()[1]

    async def _serve(self) -> None:
        now = self.clock()
        self.devices = {}
        for offset, connector in enumerate(sorted(self.core.connectors.values(), key=lambda c: c.id)):
            device = ConnectorDevice(self, connector, self.unit_id + offset, now)
            self.devices[device.device_id] = device
        sim_devices = [d.sim_device() for d in self.devices.values()] + [_unknown_device()]
        self._server = ModbusTcpServer(sim_devices, address=(self.host, self.requested_port))
        await self._server.serve_forever(background=True)  # RuntimeError if it cannot listen
        for device in self.devices.values():
            self._apply_limit(device)
        log.info("Modbus server listening on %s:%d (Heidelberg map, device ids %s)", self.host, self.port,
                 ", ".join(f"{d.device_id} = connector {d.connector_id}" for d in self.devices.values()))
        self.listening.set()
        while self._enabled():
            self.check_watchdogs()
            await self._sleep(self._tick)
        log.info("Modbus server switched off")
        await self._close()

    async def _close(self) -> None:
        self.listening.clear()
        server, self._server = self._server, None
        if server is not None:
            await server.shutdown()
        for connector in self.core.connectors.values():
            if LIMIT_SOURCE in connector.limits:
                self.core.set_limit(connector.id, LIMIT_SOURCE, None)
        for device in self.devices.values():
            device.applied = None
        self.devices = {}

    # ---- watchdog ---------------------------------------------------------------------

    def check_watchdogs(self) -> None:
        """Apply the failsafe current where the energy manager was silent too long (run() ticks it)."""
        now = self.clock()
        for device in self.devices.values():
            timeout_ms = device.holding[257]
            if not device.controlled or device.failsafe or timeout_ms == 0:
                continue
            if (now - device.last_request) * 1000 >= timeout_ms:
                device.failsafe = True
                log.warning("connector %d: no Modbus request for %d ms (watchdog); failsafe current %.1f A",
                            device.connector_id, timeout_ms, device.holding[262] / 10)
                self._apply_limit(device)

    # ---- requests (called from ConnectorDevice.action) --------------------------------

    def write(self, device: ConnectorDevice, address: int, values: list[int]) -> ExcCodes | None:
        """Check every value first; refuse all (nothing changes) or apply all."""
        max_a = device.connector.max_current_a
        for a, value in enumerate(values, start=address):
            register = mm.holding(a)
            if register is None or not register.writable:
                return ExcCodes.ILLEGAL_ADDRESS
            if not mm.accepts(register, value, max_a):
                log.warning("connector %d: refused Modbus write of %d to holding register %d %s (allowed: %s)",
                            device.connector_id, value, a, register.name, mm.allowed_text(register, max_a))
                return ExcCodes.ILLEGAL_VALUE
        for a, value in enumerate(values, start=address):
            if device.holding[a] != value or a == 261:
                log.log(logging.INFO if device.holding[a] != value else logging.DEBUG,
                        "connector %d: Modbus %s = %d", device.connector_id, mm.holding(a).name, value)
            device.holding[a] = value
            if a == 261:
                device.controlled, device.failsafe = True, False
        self._apply_limit(device)
        return None

    def input_words(self, device: ConnectorDevice) -> dict[int, int]:
        """Every input register's word, from the core as it is now."""
        values = self._input_values(device)
        words: dict[int, int] = {}
        for register in mm.by_table(mm.Table.INPUT):
            words.update(zip(register.addresses, _encode(register, values[register.name])))
        return words

    # ---- internals --------------------------------------------------------------------

    def _apply_limit(self, device: ConnectorDevice) -> None:
        limit = device.limit()
        if device.applied is _UNSET or limit != device.applied:
            device.applied = limit
            if limit is not None or LIMIT_SOURCE in device.connector.limits:
                self.core.set_limit(device.connector_id, LIMIT_SOURCE, limit)

    def _on_sample(self, event: MeterSampled) -> None:
        self._samples[event.connector_id] = event.sample
        if self._baseline_wh.get(event.connector_id) is None:
            self._baseline_wh[event.connector_id] = getattr(event.sample, "energy_import_wh", None)

    def _input_values(self, device: ConnectorDevice) -> dict[str, Any]:
        connector = device.connector
        sample = self._samples.get(connector.id) if connector.meter_online else None
        energy = connector.last_energy_wh or 0.0
        baseline = self._baseline_wh.get(connector.id)
        temperature = connector.controller.temperature_c
        return {
            "reserved": 0,
            "layout_version": mm.LAYOUT_VERSION,
            "charging_state": self._charging_state(device),
            "current_l1": _phase(sample, "current_a", 0) * 10,
            "current_l2": _phase(sample, "current_a", 1) * 10,
            "current_l3": _phase(sample, "current_a", 2) * 10,
            "pcb_temperature": 0 if temperature is None else temperature * 10,
            "voltage_l1": _phase(sample, "voltage_v", 0),
            "voltage_l2": _phase(sample, "voltage_v", 1),
            "voltage_l3": _phase(sample, "voltage_v", 2),
            "external_lock_state": mm.UNLOCKED if connector.operative and self.core.operative else mm.LOCKED,
            "power": max(0.0, getattr(sample, "power_w", None) or 0.0),
            "energy_since_power_on": max(0.0, energy - baseline) if baseline is not None else 0.0,
            "energy_total": energy,
            "hardware_max_current": connector.max_current_a,
            "hardware_min_current": MIN_CURRENT_A,
            "logistic_string": f"{self._label} connector {connector.id}",
        }

    def _charging_state(self, device: ConnectorDevice) -> int:
        connector = device.connector
        cp = connector.controller.cp_state
        if cp in (CpState.E, CpState.F):
            return mm.CHARGING_STATE[cp, False]
        status = self.core.status(connector.id).status
        if device.holding[259] == mm.LOCKED or status in (Status.FAULTED, Status.UNAVAILABLE):
            return mm.NOT_READY
        if cp is CpState.A:  # would the station offer current if a vehicle came now?
            allowed = self.core.offer_limit(connector) >= MIN_CURRENT_A
        else:
            allowed = connector.outputs.offer_a > 0
        return mm.CHARGING_STATE[cp, allowed]


def _blocks(table: mm.Table) -> list[SimData]:
    """SimData for a table: mapped addresses valid, read-only ones marked; the gaps are invalid."""
    return [SimData(r.address, count=r.words, datatype=DataType.REGISTERS, readonly=not r.writable)
            for r in mm.by_table(table)]


async def _no_such_device(*_args: Any) -> ExcCodes:
    return ExcCodes.GATEWAY_NO_RESPONSE


def _unknown_device() -> SimDevice:
    """Device id 0 in pymodbus = every id not defined: answer exception 0x0B for them."""
    return SimDevice(id=0, action=_no_such_device, simdata=[
        SimData(0, count=0x10000, datatype=DataType.REGISTERS)])


def _station_label(store: ConfigStore) -> str:
    try:
        return f"stationd {store.get('SerialNumber')}"
    except KeyError:
        return "stationd"


def _phase(sample: Any, field: str, index: int) -> float:
    values = getattr(sample, field, None)
    if not values or index >= len(values) or values[index] is None:
        return 0.0
    return max(0.0, float(values[index]))


def _encode(register: mm.Register, value: Any) -> list[int]:
    if register.type == "ascii":
        raw = str(value).encode("ascii", "replace")[: register.words * 2].ljust(register.words * 2, b"\0")
        return [int.from_bytes(raw[i:i + 2], "big") for i in range(0, len(raw), 2)]
    number = round(float(value))
    if register.type == "int16":
        return [min(0x7FFF, max(-0x8000, number)) & 0xFFFF]
    if register.type == "uint32":
        number = min(0xFFFFFFFF, max(0, int(float(value))))  # energy: whole Wh, never rounded up
        return [number >> 16, number & 0xFFFF]
    return [min(0xFFFF, max(0, number))] * register.words
