"""The EVSE controller driver: one connector's controller, over a serial or CAN link.

It keeps the link alive (Heartbeat every 0.5 s; a controller silent for 3 s is lost), turns
the controller's Status into the core's ControllerState, and sends the core's outputs (offer,
contactor, lock) whenever they change and again after every reconnect or controller restart.
A link that cannot be opened or breaks is reported to the core (fault ControllerLinkLost) and
reopened with growing pauses; the driver itself never gives up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from ..core import iec61851
from ..core.connector import ControllerState
from ..core.events import OutputsChanged
from ..core.station import StationCore
from .evse_protocol import (
    BootAbort,
    BootStatus,
    CommandResult,
    Event,
    EventCode,
    Heartbeat,
    Hello,
    LinkError,
    LockState,
    RequestHello,
    Reset,
    ResetKind,
    SetContactor,
    SetCurrent,
    SetLock,
    Status,
)
from .evse_protocol.enums import FAULT_BY_NAME
from .evse_protocol.timing import CONTROLLER_SILENCE_S, HEARTBEAT_PERIOD_S

log = logging.getLogger("stationd.hw.controller")

# Protocol fault bits whose core fault code differs (the rest carry the same name).
FAULT_CODES = {"PpInvalid": "CableRatingInvalid"}
RESEND_S = 10.0  # the outputs are sent again this often, whatever happened
CLEAR_FAULTS_S = 5.0  # latched faults with no vehicle plugged in: Reset(CLEAR_FAULTS) at most this often

OpenLink = Callable[[], Awaitable[object]]  # -> SerialLink | CanLink


def controller_state(status: Status) -> tuple[ControllerState, set[str]]:
    """The core's view of a Status message, and the core fault codes it carries."""
    state = ControllerState(
        cp_state=iec61851.CpState(status.cp_state.name),
        cable_max_a=status.pp_current_a or None,
        offered_a=status.offered_current_a,
        contactor_closed=status.contactor_closed,
        locked=status.lock_state is LockState.LOCKED,
        temperature_c=status.temperature_c,
        door_open=status.door_open,
    )
    return state, {FAULT_CODES.get(name, name) for name in status.faults}


class ControllerDriver:
    def __init__(self, connector_id: int, open_link: OpenLink, core: StationCore, *,
                 max_backoff: float = 30.0, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep):
        self.connector_id, self._open_link, self.core = connector_id, open_link, core
        self._max_backoff, self._sleep = max_backoff, sleep
        self.hello: Hello | None = None
        self.last_status: Status | None = None
        self.boot_status: asyncio.Queue[BootStatus] = asyncio.Queue()
        self._outputs_changed = asyncio.Event()
        self._clear_faults = asyncio.Event()
        self._cleared_at = -CLEAR_FAULTS_S
        self._link = None
        self.core.bus.subscribe(self._on_outputs, OutputsChanged)

    async def run(self) -> None:
        backoff = 1.0
        reported_down = False
        while True:
            try:
                link = await self._open_link()
            except (OSError, ValueError, LinkError) as exc:
                if not reported_down:
                    log.error("connector %d: cannot open the controller link: %s", self.connector_id, exc)
                    self.core.controller_link(self.connector_id, False)
                    reported_down = True
                await self._sleep(backoff)
                backoff = min(backoff * 2, self._max_backoff)
                continue
            self._link = link
            try:
                await self._serve(link)
                reason = "the link closed"
            except (LinkError, OSError, TimeoutError) as exc:
                reason = str(exc) or type(exc).__name__
            finally:
                self._link = None
                with contextlib.suppress(Exception):
                    await link.close()
            log.error("connector %d: controller link lost (%s); reconnecting", self.connector_id, reason)
            self.core.controller_link(self.connector_id, False)
            reported_down = True
            backoff = 1.0
            await self._sleep(backoff)

    async def send(self, message) -> None:
        """Send a message to the controller now (firmware flashing uses this: stationd.hw.flashing)."""
        if self._link is None:
            raise LinkError("the controller link is down")
        await self._link.send(message)

    async def _serve(self, link) -> None:
        self.hello = None
        await link.send(RequestHello())
        # A firmware update cut short (link lost, station restarted) would leave the controller
        # refusing to charge (BUSY): discard it; an idle bootloader just answers IDLE.
        await link.send(BootAbort())
        tasks = [asyncio.create_task(self._heartbeats(link)), asyncio.create_task(self._push_outputs(link)),
                 asyncio.create_task(self._clear_latched(link))]
        try:
            while True:
                async with asyncio.timeout(CONTROLLER_SILENCE_S):
                    message = await link.receive()
                self._received(message)
                for task in tasks:
                    if task.done():
                        task.result()  # a failed sender ends this link
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _received(self, message) -> None:
        if isinstance(message, Status):
            restarted = self.last_status is not None and message.uptime_s < self.last_status.uptime_s
            if self.last_status is None or restarted or "HeartbeatTimeout" in message.faults:
                self._outputs_changed.set()  # the controller lost what we told it: tell it again
            self.last_status = message
            self._check_latched(message)
            if self.hello is not None:
                state, faults = controller_state(message)
                self.core.controller_state(self.connector_id, state, faults)
        elif isinstance(message, Hello):
            first = self.hello is None
            self.hello = message
            if first:
                log.info("connector %d: controller %s firmware %s, %s, %.0f A, %d phases", self.connector_id,
                         message.hardware_id, ".".join(map(str, message.firmware_version)),
                         message.connector_type.name, message.max_current_a, message.phases)
                self.core.controller_link(self.connector_id, True)
                self._outputs_changed.set()
        elif isinstance(message, CommandResult):
            if not message.ok:
                log.warning("connector %d: controller refused %s: %s", self.connector_id,
                            message.command_type.name, message.reason.name)
        elif isinstance(message, Event):
            if message.code is EventCode.BOOTED:  # restarted (however briefly): it lost our outputs
                self._outputs_changed.set()
            level = logging.DEBUG if message.code is EventCode.CP_STATE_CHANGED else logging.INFO
            log.log(level, "connector %d: controller event %s (%d)", self.connector_id, message.code.name, message.value)
        elif isinstance(message, BootStatus):
            self.boot_status.put_nowait(message)

    async def _heartbeats(self, link) -> None:
        counter = 0
        while True:
            await link.send(Heartbeat(counter), reliable=False)
            counter = (counter + 1) & 0xFFFF
            await asyncio.sleep(HEARTBEAT_PERIOD_S)

    async def _push_outputs(self, link) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(RESEND_S):
                    await self._outputs_changed.wait()
            self._outputs_changed.clear()
            if self.hello is None:
                continue
            outputs = self.core.connectors[self.connector_id].outputs
            # Open first, close last: the contactor never closes before the offer is set.
            if not outputs.contactor:
                await link.send(SetContactor(False))
            await link.send(SetCurrent(outputs.offer_a))
            if self._lock_fitted():
                await link.send(SetLock(outputs.locked))
            if outputs.contactor:
                await link.send(SetContactor(True))

    def _check_latched(self, status: Status) -> None:
        """A latched fault (RCD, over-current, welded contactor …) stays until the station clears
        it. The station asks only once the vehicle is gone (CP A): the controller clears what
        is no longer caused, the next vehicle may charge; the one that tripped it is never
        re-energized automatically."""
        latched = [name for name in status.faults if name in FAULT_BY_NAME and FAULT_BY_NAME[name].latched
                   and name != "TamperDetected"]  # the door: a technician's matter (service mode)
        loop = asyncio.get_running_loop()
        if latched and status.cp_state.name == "A" and loop.time() - self._cleared_at >= CLEAR_FAULTS_S:
            self._cleared_at = loop.time()
            log.info("connector %d: vehicle gone; clearing latched faults %s", self.connector_id, ", ".join(latched))
            self._clear_faults.set()

    async def _clear_latched(self, link) -> None:
        while True:
            await self._clear_faults.wait()
            self._clear_faults.clear()
            await link.send(Reset(ResetKind.CLEAR_FAULTS))

    def _lock_fitted(self) -> bool:
        return self.last_status is None or self.last_status.lock_state is not LockState.NOT_FITTED

    def _on_outputs(self, event: OutputsChanged) -> None:
        if event.connector_id == self.connector_id:
            self._outputs_changed.set()
