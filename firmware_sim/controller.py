"""A simulated EVSE controller: the firmware of one connector's MCU, speaking the real protocol.

``SimController`` implements the controller side of docs/evse-protocol.md on any link of
``stationd.hw.evse_protocol`` (a ``SerialLink`` on a pty master, a ``CanLink`` with role
"controller"): Hello after start-up and on RequestHello, Status every STATUS_PERIOD and at once
on every change, the command rules of §8 with their ResultReason, the safety rules of §7
(heartbeat timeout, opening the contactor by itself when the vehicle leaves C/D or a fault
that opens the contactor appears, the 6 s PWM-stop rule, over-current), faults with latching
and Reset(CLEAR_FAULTS), and the firmware-update receiver of §11.

The physics runs on an injected clock: every ``tick_s`` (and right after every input) the
controller derives the CP state from its vehicle (A without one), lets the vehicle draw
min(offer, its maximum) while the contactor is closed and puts that load on its meter.

Tests and the car park (``firmware_sim.world``) act on it with :meth:`plug`, :meth:`unplug`,
:meth:`set_fault`, :meth:`set_door_open`; the controller state survives the link: ``run(link)``
may be called again with the same or a new link after the previous one ended.

Simulator choices (the document leaves them open): the lock moves instantly; latched faults
survive a Reset SOFT/HARD (they are kept like in EEPROM) and clear only with CLEAR_FAULTS;
Event SAFETY_OPEN is sent only when the contactor was actually commanded or closed; the
periodic Status is sent only while the station was heard in the last few seconds (a pty
buffers what a real wire would lose), changes are always reported.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import math
import os
import tempfile
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stationd.hw.evse_protocol import (
    FAULT_BY_NAME,
    PROTOCOL_VERSION,
    BootAbort,
    BootBegin,
    BootChunk,
    BootCommit,
    BootError,
    BootState,
    BootStatus,
    CommandResult,
    ConnectorType,
    CpState,
    Event,
    EventCode,
    Heartbeat,
    Hello,
    LinkClosed,
    LinkError,
    LockState,
    MessageType,
    RcdState,
    RequestHello,
    Reset,
    ResetKind,
    ResultReason,
    SetContactor,
    SetCurrent,
    SetLock,
    Status,
    check_offer,
    crc32,
    duty_permille,
)
from stationd.hw.evse_protocol.timing import (
    HEARTBEAT_TIMEOUT_S,
    PWM_STOP_FORCE_OPEN_S,
    STATUS_PERIOD_S,
)

from .meters import SimMeter
from .vehicle import Vehicle

__all__ = ["CONTROLLER_FAULT_CODES", "SimController", "make_controller_image"]

log = logging.getLogger("firmware_sim.controller")

#: SPEC.md §7 codes a controller can raise by injection (``set_fault``).
CONTROLLER_FAULT_CODES: tuple[str, ...] = (
    "GroundFailure", "OverCurrentFailure", "PowerSwitchFailure", "ConnectorLockFailure",
    "EVCommunicationError", "UnderVoltage", "HighTemperature", "OverVoltage", "InternalError",
    "TamperDetected",
)

# Event values (docs/evse-protocol.md §9, EventCode)
BOOT_POWER_ON, BOOT_RESET_COMMAND, BOOT_NEW_FIRMWARE = 0, 2, 4
SAFETY_VEHICLE_LEFT, SAFETY_FAULT, SAFETY_HEARTBEAT, SAFETY_PWM_STOP = 1, 2, 3, 4

NOMINAL_VOLTAGE_V = 230.0
OVER_VOLTAGE_V = 265.0  # above the +10 % limit (253 V)
AMBIENT_TEMPERATURE_C = 25.0
HOT_TEMPERATURE_C = 90.0
OVER_CURRENT_MARGIN = 1.10  # draw above offer + 10 % ...
OVER_CURRENT_S = 5.0  # ... for longer than this trips OverCurrentFailure
STATUS_MIN_GAP_S = 0.02  # Status not more often than this (real time)
STATION_GONE_S = 5.0  # no frame from the station this long (real time): no periodic Status
SEND_LIMIT_S = 2.0  # a send that takes longer than this (blocked line) is given up
OUTBOX_LIMIT = 64  # reliable messages waiting to be sent; beyond this the oldest is dropped
DEFAULT_SLOT_SIZE = 512 * 1024

Version = tuple[int, int, int]


@dataclass
class _Update:
    """The firmware image being received into the inactive slot."""

    size: int
    crc32: int
    version: Version
    forced: bool
    data: bytearray
    last_chunk: tuple[int, bytes] | None = None  # (offset, data) of the last accepted chunk


class SimController:
    def __init__(
        self,
        *,
        hardware_id: str = "SIM-EVSE-1",
        connector_type: ConnectorType = ConnectorType.TYPE2_SOCKET,
        max_current_a: float = 32.0,
        phases: int = 3,
        meter: SimMeter | None = None,
        clock: Callable[[], float] = time.monotonic,
        firmware_version: Version = (1, 0, 0),
        bootloader_version: Version = (1, 0, 0),
        state_path: str | os.PathLike[str] | None = None,
        tick_s: float = 0.1,
        slot_size: int = DEFAULT_SLOT_SIZE,
    ) -> None:
        if not isinstance(hardware_id, str) or not 0 < len(hardware_id) <= 16 or not all(
                " " <= ch <= "~" for ch in hardware_id):
            raise ValueError(f"hardware_id must be 1-16 printable ASCII characters, got {hardware_id!r}")
        if phases not in (1, 3):
            raise ValueError(f"phases must be 1 or 3, got {phases!r}")
        if not 6.0 <= float(max_current_a) <= 80.0:
            raise ValueError(f"max_current_a must be 6-80 A, got {max_current_a!r}")
        if tick_s <= 0:
            raise ValueError("tick_s must be > 0")
        self.hardware_id = hardware_id
        self.connector_type = ConnectorType(connector_type)
        self.max_current_a = float(max_current_a)
        self.phases = phases
        self.meter = meter
        self.bootloader_version = tuple(bootloader_version)
        self.slot_size = slot_size
        self.state_path = Path(state_path) if state_path is not None else None
        self.firmware_version: Version = tuple(firmware_version)  # type: ignore[assignment]
        self._load_state()
        self._clock = clock
        self._tick_s = tick_s

        # what the outside world does
        self.vehicle: Vehicle | None = None
        self.service_mode = False  # door opened by a technician: no TamperDetected
        self.door_open = False
        self.flash_error = False  # test hook: writing the update slot fails (FLASH_ERROR)
        self._causes: set[str] = set()  # injected fault causes still present

        # controller state
        self._powered = False
        self._booted_at = clock()
        self._last_heartbeat = clock()
        self._requested_a = 0.0
        self._commanded = False
        self._closed = False
        self._lock = LockState.NOT_FITTED if self.tethered else LockState.UNLOCKED
        self._faults: set[str] = set()  # active fault bits (names)
        self._cp = CpState.A
        self._pwm_stop_since: float | None = None
        self._over_current_since: float | None = None
        self._draw_a = 0.0
        self._meter_load: tuple[tuple[float, ...], tuple[float, ...]] | None = None
        self._boot_state = BootState.IDLE
        self._update: _Update | None = None
        self.stats = {"commands": 0, "heartbeats": 0, "dropped_events": 0}

        # link side
        self._link: Any = None
        self._outbox: deque[Any] = deque()
        self._outbox_ready = asyncio.Event()
        self._wake = asyncio.Event()
        self._force_status = True
        self._sent_key: tuple[Any, ...] | None = None
        self._sent_temperature = math.nan
        self._sent_at = -math.inf
        self._heard_real = -math.inf
        self._evaluate()

    # ------------------------------------------------------------------ read-only views
    @property
    def tethered(self) -> bool:
        return self.connector_type is not ConnectorType.TYPE2_SOCKET

    @property
    def cp_state(self) -> CpState:
        return self._cp

    @property
    def offered_current_a(self) -> float:
        if self._requested_a == 0 or self._opening_fault():
            return 0.0
        limit = min(self._requested_a, self.max_current_a)
        pp = self.pp_current_a
        return min(limit, float(pp)) if pp else limit

    @property
    def pwm_duty_permille(self) -> int:
        if "InternalError" in self._faults:
            return 0  # steady −12 V (state F)
        return duty_permille(self.offered_current_a)

    @property
    def pp_current_a(self) -> int:
        if self.tethered or self.vehicle is None or self.vehicle.cable_max_a is None:
            return 0
        return int(self.vehicle.cable_max_a)

    @property
    def contactor_commanded(self) -> bool:
        return self._commanded

    @property
    def contactor_closed(self) -> bool:
        return self._closed

    @property
    def lock_state(self) -> LockState:
        if "ConnectorLockFailure" in self._causes and not self.tethered:
            return LockState.FAULT
        return self._lock

    @property
    def rcd_state(self) -> RcdState:
        return RcdState.TRIPPED if "GroundFailure" in self._faults else RcdState.OK

    @property
    def temperature_c(self) -> float:
        return HOT_TEMPERATURE_C if "HighTemperature" in self._causes else AMBIENT_TEMPERATURE_C

    @property
    def faults(self) -> frozenset[str]:
        return frozenset(self._faults)

    @property
    def draw_a(self) -> float:
        return self._draw_a

    @property
    def uptime_s(self) -> int:
        return max(0, int(self._clock() - self._booted_at)) if self._powered else 0

    @property
    def boot_state(self) -> BootState:
        return self._boot_state

    def hello(self) -> Hello:
        return Hello(
            protocol_version=PROTOCOL_VERSION, hardware_id=self.hardware_id,
            firmware_version=self.firmware_version, connector_type=self.connector_type,
            max_current_a=self.max_current_a, phases=self.phases,
            bootloader_version=self.bootloader_version,  # type: ignore[arg-type]
        )

    def status(self) -> Status:
        return Status(
            cp_state=self._cp, pp_current_a=self.pp_current_a, pwm_duty_permille=self.pwm_duty_permille,
            offered_current_a=self.offered_current_a, contactor_commanded=self._commanded,
            contactor_closed=self._closed, lock_state=self.lock_state, rcd_state=self.rcd_state,
            temperature_c=self.temperature_c, door_open=self.door_open, faults=frozenset(self._faults),
            uptime_s=self.uptime_s,
        )

    # ------------------------------------------------------------------ the car park
    def plug(self, vehicle: Vehicle) -> None:
        """A vehicle is connected (CP state B); its ``cable_max_a`` is what PP reports."""
        if self.vehicle is not None:
            raise ValueError("a vehicle is already plugged in")
        self.vehicle = vehicle
        self._evaluate()

    def unplug(self) -> None:
        """The vehicle leaves (state A); the contactor opens at once if it was closed."""
        self.vehicle = None
        self._evaluate()

    def set_fault(self, code: str, active: bool) -> None:
        """Raise or remove the cause of a hardware fault (SPEC.md §7 codes of a controller).

        A non-latched fault clears with its cause; a latched one stays until Reset(CLEAR_FAULTS).
        """
        if code not in CONTROLLER_FAULT_CODES:
            raise ValueError(f"unknown controller fault {code!r}; allowed: {', '.join(CONTROLLER_FAULT_CODES)}")
        if active:
            if code in self._causes:
                return
            self._causes.add(code)
            if code == "TamperDetected":
                self.door_open = True
            self._raise_fault(code)
        else:
            if code not in self._causes:
                return
            self._causes.discard(code)
            if code == "TamperDetected":
                self.door_open = False
            if not FAULT_BY_NAME[code].latched:
                self._clear_fault(code)
            if code == "PowerSwitchFailure":
                self._apply_contactor()
        self._evaluate()

    def power_cycle(self) -> None:
        """The controller reboots (brown-out, watchdog): contactor open, PWM off, uptime 0,
        then Hello and Event BOOTED like after power-on; latched faults survive (EEPROM)."""
        log.warning("%s: rebooting (power cycle)", self.hardware_id)
        self._commanded = False
        self._apply_contactor()
        self._restart(BOOT_POWER_ON)

    def set_door_open(self, open_: bool) -> None:
        """The housing door / tamper contact; opening it outside service mode sets TamperDetected."""
        if open_ and not self.service_mode:
            self.set_fault("TamperDetected", True)
            return
        if not open_ and "TamperDetected" in self._causes:
            self.set_fault("TamperDetected", False)
            return
        self.door_open = bool(open_)
        self._evaluate()

    # ------------------------------------------------------------------ serving a link
    async def run(self, link: Any) -> None:
        """Serve ``link`` until it closes. The first call powers the controller on."""
        if self._link is not None:
            raise RuntimeError("this controller already serves a link")
        self._link = link
        self._outbox.clear()
        self._outbox_ready = asyncio.Event()  # bound to this run's event loop
        self._wake = asyncio.Event()
        if not self._powered:
            self._power_on(BOOT_POWER_ON)
        else:
            self._force_status = True
        self._wake.set()
        tasks = [asyncio.create_task(self._tick_loop(), name=f"{self.hardware_id}-tick"),
                 asyncio.create_task(self._status_loop(link), name=f"{self.hardware_id}-status"),
                 asyncio.create_task(self._sender_loop(link), name=f"{self.hardware_id}-send")]
        try:
            while True:
                try:
                    msg = await link.receive()
                except LinkClosed:
                    return
                self._heard_real = asyncio.get_running_loop().time()
                try:
                    self._handle(msg)
                except Exception:  # a message must never stop the firmware
                    log.exception("%s: handling %s failed", self.hardware_id, type(msg).__name__)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._link = None
            self._outbox.clear()

    def refresh(self) -> None:
        """Re-derive the state after the vehicle changed its mind (charge / suspend)."""
        self._evaluate()

    def tick(self) -> None:
        """One physics step at the clock's present time (the run loop calls it every tick_s)."""
        now = self._clock()
        if (self._powered and "HeartbeatTimeout" not in self._faults
                and now - self._last_heartbeat >= HEARTBEAT_TIMEOUT_S):
            log.warning("%s: no Heartbeat for %.1f s: going safe", self.hardware_id, now - self._last_heartbeat)
            self._raise_fault("HeartbeatTimeout", safety_value=SAFETY_HEARTBEAT)
        self._evaluate()

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(self._tick_s)
            try:
                self.tick()
            except Exception:
                log.exception("%s: tick failed", self.hardware_id)

    async def _status_loop(self, link: Any) -> None:
        loop = asyncio.get_running_loop()
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._tick_s):
                    await self._wake.wait()
            self._wake.clear()
            status = self.status()
            now = self._clock()
            changed = (self._force_status or self._status_key(status) != self._sent_key
                       or abs(status.temperature_c - self._sent_temperature) >= 1.0)
            periodic = (now - self._sent_at >= STATUS_PERIOD_S
                        and loop.time() - self._heard_real < STATION_GONE_S)
            if not (changed or periodic):
                continue
            self._force_status = False
            self._sent_key, self._sent_temperature, self._sent_at = (
                self._status_key(status), status.temperature_c, now)
            try:
                async with asyncio.timeout(SEND_LIMIT_S):
                    await link.send(status, reliable=False)
            except LinkClosed:
                return
            except (LinkError, TimeoutError) as exc:
                log.debug("%s: Status not sent: %s", self.hardware_id, exc)
            await asyncio.sleep(STATUS_MIN_GAP_S)

    async def _sender_loop(self, link: Any) -> None:
        while True:
            while not self._outbox:
                self._outbox_ready.clear()
                await self._outbox_ready.wait()
            msg = self._outbox.popleft()
            try:
                async with asyncio.timeout(SEND_LIMIT_S):
                    await link.send(msg)
            except LinkClosed:
                return
            except (LinkError, TimeoutError) as exc:
                log.info("%s: %s lost: %s", self.hardware_id, type(msg).__name__, exc or "send blocked")
                continue
            if isinstance(msg, Hello):  # a fresh station gets the complete state right after Hello
                self._force_status = True
                self._wake.set()

    @staticmethod
    def _status_key(status: Status) -> tuple[Any, ...]:
        return (status.cp_state, status.pp_current_a, status.pwm_duty_permille, status.offered_current_a,
                status.contactor_commanded, status.contactor_closed, status.lock_state, status.rcd_state,
                status.door_open, status.faults)

    def _emit(self, msg: Any) -> None:
        """Queue a reliable message (Hello, Event, CommandResult, BootStatus) for the station."""
        if self._link is None:
            return  # nobody on the line: a real MCU would lose it too
        if len(self._outbox) >= OUTBOX_LIMIT:
            self._outbox.popleft()
            self.stats["dropped_events"] += 1
        self._outbox.append(msg)
        self._outbox_ready.set()

    # ------------------------------------------------------------------ messages
    def _handle(self, msg: Any) -> None:
        if isinstance(msg, Heartbeat):
            self.stats["heartbeats"] += 1
            self._last_heartbeat = self._clock()
            if "HeartbeatTimeout" in self._faults:
                log.info("%s: Heartbeat resumed", self.hardware_id)
                self._clear_fault("HeartbeatTimeout")
                self._evaluate()
        elif isinstance(msg, RequestHello):
            self._emit(self.hello())
        elif isinstance(msg, SetCurrent):
            self._result(MessageType.SET_CURRENT, self._set_current(msg.amps))
        elif isinstance(msg, SetContactor):
            self._result(MessageType.SET_CONTACTOR, self._set_contactor(msg.closed))
        elif isinstance(msg, SetLock):
            self._result(MessageType.SET_LOCK, self._set_lock(msg.locked))
        elif isinstance(msg, Reset):
            self._reset(msg.kind)
        elif isinstance(msg, BootBegin):
            self._emit(self._boot_begin(msg))
        elif isinstance(msg, BootChunk):
            self._emit(self._boot_chunk(msg))
        elif isinstance(msg, BootCommit):
            self._boot_commit()
        elif isinstance(msg, BootAbort):
            self._update, self._boot_state = None, BootState.IDLE
            self._emit(BootStatus(BootState.IDLE, 0, BootError.NONE))
        else:  # a controller → station message arriving here: not ours to handle
            log.debug("%s: ignoring %s", self.hardware_id, type(msg).__name__)

    def _result(self, command: MessageType, reason: ResultReason) -> None:
        self.stats["commands"] += 1
        if reason is not ResultReason.OK:
            log.info("%s: %s refused: %s", self.hardware_id, command.doc, reason.name)
        self._evaluate()
        self._emit(CommandResult(command, reason))

    def _set_current(self, amps: float) -> ResultReason:
        verdict = check_offer(amps)
        if verdict is not ResultReason.OK:
            return verdict
        if amps > 0:
            if self._boot_state is BootState.RECEIVING:
                return ResultReason.BUSY
            if self._opening_fault():
                return ResultReason.FAULT_ACTIVE
        self._requested_a = float(amps)
        return ResultReason.OK

    def _set_contactor(self, closed: bool) -> ResultReason:
        if not closed:
            self._commanded = False
            self._apply_contactor()
            return ResultReason.HARDWARE_FAILURE if self._closed else ResultReason.OK
        if self._boot_state is BootState.RECEIVING:
            return ResultReason.BUSY
        if self._opening_fault():
            return ResultReason.FAULT_ACTIVE
        if (self._cp not in (CpState.C, CpState.D) or self.offered_current_a == 0
                or self.lock_state not in (LockState.LOCKED, LockState.NOT_FITTED)):
            return ResultReason.NOT_ALLOWED
        self._commanded = True
        self._apply_contactor()
        return ResultReason.OK if self._closed else ResultReason.HARDWARE_FAILURE

    def _set_lock(self, locked: bool) -> ResultReason:
        if self.tethered:
            return ResultReason.UNSUPPORTED
        if locked and self.pp_current_a == 0:
            return ResultReason.NOT_ALLOWED
        if not locked and (self._closed or self._commanded):
            return ResultReason.NOT_ALLOWED
        if "ConnectorLockFailure" in self._causes:
            return ResultReason.HARDWARE_FAILURE
        self._lock = LockState.LOCKED if locked else LockState.UNLOCKED
        return ResultReason.OK

    def _reset(self, kind: ResetKind) -> None:
        self._result(MessageType.RESET, ResultReason.OK)  # answered before acting
        if kind is ResetKind.CLEAR_FAULTS:
            for name in sorted(self._faults):
                if FAULT_BY_NAME[name].latched and name not in self._causes:
                    self._clear_fault(name)
            self._evaluate()
            return
        log.info("%s: Reset %s: restarting", self.hardware_id, kind.name)
        self._commanded = False
        self._apply_contactor()
        self._restart(BOOT_RESET_COMMAND)

    # ------------------------------------------------------------------ firmware update (§11)
    def _boot_begin(self, msg: BootBegin) -> BootStatus:
        self._update = None
        self._boot_state = BootState.IDLE
        if self._closed or self._commanded:
            return BootStatus(BootState.IDLE, 0, BootError.BUSY)
        if msg.size > self.slot_size:
            return BootStatus(BootState.IDLE, 0, BootError.TOO_LARGE)
        if tuple(msg.version) < self.firmware_version and not msg.forced:
            return BootStatus(BootState.IDLE, 0, BootError.DOWNGRADE)
        self._update = _Update(msg.size, msg.crc32, tuple(msg.version), msg.forced, bytearray())  # type: ignore[arg-type]
        self._boot_state = BootState.RECEIVING
        log.info("%s: firmware update %s, %d bytes", self.hardware_id, _v(msg.version), msg.size)
        return BootStatus(BootState.RECEIVING, 0, BootError.NONE)

    def _boot_chunk(self, msg: BootChunk) -> BootStatus:
        update = self._update
        if update is None or self._boot_state is not BootState.RECEIVING:
            return BootStatus(self._boot_state, 0, BootError.NOT_STARTED)
        received = len(update.data)
        if update.last_chunk == (msg.offset, msg.data) and crc32(msg.data) == msg.crc32:
            return BootStatus(BootState.RECEIVING, received, BootError.NONE)  # repeat: answer again
        if msg.offset != received:
            return BootStatus(BootState.RECEIVING, received, BootError.OFFSET_MISMATCH)
        if crc32(msg.data) != msg.crc32:
            return BootStatus(BootState.RECEIVING, received, BootError.CHUNK_CRC)
        if received + len(msg.data) > update.size:
            return BootStatus(BootState.RECEIVING, received, BootError.TOO_LARGE)
        if self.flash_error:
            self._update, self._boot_state = None, BootState.FAILED
            return BootStatus(BootState.FAILED, received, BootError.FLASH_ERROR)
        update.data += msg.data
        update.last_chunk = (msg.offset, bytes(msg.data))
        return BootStatus(BootState.RECEIVING, len(update.data), BootError.NONE)

    def _boot_commit(self) -> None:
        update = self._update
        if update is None or self._boot_state is not BootState.RECEIVING:
            self._emit(BootStatus(self._boot_state, 0, BootError.NOT_STARTED))
            return
        received = len(update.data)
        error = BootError.NONE
        if received < update.size:
            error = BootError.INCOMPLETE
        elif crc32(bytes(update.data)) != update.crc32:
            error = BootError.IMAGE_CRC
        elif update.version < self.firmware_version and not update.forced:
            error = BootError.BAD_VERSION
        self._update = None
        if error is not BootError.NONE:
            self._boot_state = BootState.FAILED
            log.warning("%s: firmware update failed: %s; %s stays", self.hardware_id, error.name,
                        _v(self.firmware_version))
            self._emit(BootStatus(BootState.FAILED, received, error))
            return
        self._boot_state = BootState.COMPLETE
        self._emit(BootStatus(BootState.COMPLETE, received, BootError.NONE))
        log.info("%s: firmware %s installed; restarting", self.hardware_id, _v(update.version))
        self.firmware_version = update.version
        self._save_state()
        self._commanded = False
        self._apply_contactor()
        self._restart(BOOT_NEW_FIRMWARE)

    # ------------------------------------------------------------------ internals
    def _power_on(self, cause: int) -> None:
        self._powered = True
        self._restart(cause)

    def _restart(self, cause: int) -> None:
        """The application starts (again): PWM off, contactor open, uptime 0, Hello, BOOTED."""
        now = self._clock()
        self._booted_at = now
        self._last_heartbeat = now
        self._requested_a = 0.0
        self._commanded = False
        self._apply_contactor()
        self._pwm_stop_since = self._over_current_since = None
        self._update = None
        self._boot_state = BootState.IDLE
        # RAM is gone: non-latched bits are detected afresh; latched ones were kept in EEPROM
        self._faults = {name for name in self._faults
                        if FAULT_BY_NAME[name].latched or name in self._causes}
        self._emit(self.hello())
        self._emit(Event(EventCode.BOOTED, cause))
        self._force_status = True
        self._evaluate()

    def _opening_fault(self) -> bool:
        return any(FAULT_BY_NAME[name].opens_contactor for name in self._faults)

    def _raise_fault(self, name: str, *, safety_value: int = SAFETY_FAULT) -> None:
        if name in self._faults:
            return
        log.warning("%s: fault %s raised", self.hardware_id, name)
        self._faults.add(name)
        if FAULT_BY_NAME[name].opens_contactor:
            was_on = self._commanded or self._closed
            self._requested_a = 0.0  # PWM off: the station has to command it again
            self._commanded = False
            self._apply_contactor()
            if was_on:
                self._emit(Event(EventCode.SAFETY_OPEN, safety_value))
        self._emit(Event(EventCode.FAULT_RAISED, FAULT_BY_NAME[name].bit))
        self._wake.set()

    def _clear_fault(self, name: str) -> None:
        if name not in self._faults:
            return
        log.info("%s: fault %s cleared", self.hardware_id, name)
        self._faults.discard(name)
        self._emit(Event(EventCode.FAULT_CLEARED, FAULT_BY_NAME[name].bit))
        self._wake.set()

    def _apply_contactor(self) -> None:
        """The feedback follows the command, unless the contactor is broken (welded / stuck)."""
        if "PowerSwitchFailure" not in self._causes:
            self._closed = self._commanded

    def _derive_cp(self) -> CpState:
        if "InternalError" in self._faults:
            return CpState.F
        if "EVCommunicationError" in self._causes:
            return CpState.E
        if self.vehicle is None:
            return CpState.A
        return CpState[self.vehicle.cp_state(self.offered_current_a).value]

    def _evaluate(self) -> None:
        """Derive everything that follows from the present inputs; open the contactor if unsafe."""
        now = self._clock()
        cp = self._derive_cp()
        if cp is not self._cp:
            self._cp = cp
            self._emit(Event(EventCode.CP_STATE_CHANGED, int(cp)))
        charging_state = cp in (CpState.C, CpState.D)
        if not charging_state and self._commanded:
            self._commanded = False
            self._apply_contactor()
            self._emit(Event(EventCode.SAFETY_OPEN, SAFETY_VEHICLE_LEFT))
        offered = self.offered_current_a
        if charging_state and offered == 0 and self._commanded:
            if self._pwm_stop_since is None:
                self._pwm_stop_since = now
            elif now - self._pwm_stop_since >= PWM_STOP_FORCE_OPEN_S:
                self._commanded = False
                self._apply_contactor()
                self._emit(Event(EventCode.SAFETY_OPEN, SAFETY_PWM_STOP))
        else:
            self._pwm_stop_since = None
        draw = self.vehicle.update(offered, self._closed, now) if self.vehicle is not None else 0.0
        if not self._closed:
            draw = 0.0
        self._draw_a = draw
        if draw > offered * OVER_CURRENT_MARGIN + 1e-6:
            if self._over_current_since is None:
                self._over_current_since = now
            elif now - self._over_current_since > OVER_CURRENT_S:
                self._raise_fault("OverCurrentFailure")
                self._over_current_since = None
        else:
            self._over_current_since = None
        self._update_meter(draw)
        if self._status_key(self.status()) != self._sent_key:
            self._wake.set()

    def _update_meter(self, draw: float) -> None:
        if self.meter is None:
            return
        single = self.phases == 1 or (self.vehicle is not None and self.vehicle.phases == 1)
        currents = (draw, 0.0, 0.0) if single else (draw, draw, draw)
        voltage = OVER_VOLTAGE_V if "OverVoltage" in self._causes else NOMINAL_VOLTAGE_V
        voltages = (voltage, voltage, 0.0) if "UnderVoltage" in self._causes else (voltage,) * 3
        if (currents, voltages) != self._meter_load:  # the meter integrates by itself in between
            self._meter_load = (currents, voltages)
            self.meter.set_load(currents, voltage_v=voltages)

    # ------------------------------------------------------------------ persistence
    def _load_state(self) -> None:
        if self.state_path is None or not self.state_path.exists():
            return
        try:
            state = json.loads(self.state_path.read_text(encoding="utf-8"))
            version = tuple(int(v) for v in state["firmware_version"])
            if len(version) != 3 or not all(0 <= v <= 0xFFFF for v in version):
                raise ValueError(f"bad version {version}")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.error("%s: unreadable controller state %s (%s); ignored", self.hardware_id, self.state_path, exc)
            return
        self.firmware_version = version  # type: ignore[assignment]

    def _save_state(self) -> None:
        if self.state_path is None:
            return
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(prefix=self.state_path.name, suffix=".tmp", dir=self.state_path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump({"hardware_id": self.hardware_id, "firmware_version": list(self.firmware_version)}, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, self.state_path)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            log.exception("%s: cannot save controller state", self.hardware_id)

    def __repr__(self) -> str:
        return f"SimController({self.hardware_id!r}, cp={self._cp.name}, faults={sorted(self._faults)})"


def _v(version: Any) -> str:
    return ".".join(str(part) for part in version)


def make_controller_image(version: Version | str, size: int = 16 * 1024) -> bytes:
    """A valid image file (docs/evse-protocol.md §11.1) of simulated controller firmware
    ``version`` ((1, 2, 0) or "1.2.0"), ``size`` image bytes: what the station's "Flash
    Firmware" takes and SimController's bootloader installs. The content is derived from the
    version, so the same version always gives the same file."""
    from stationd.hw.flashing import build_image  # the format's reference writer

    if isinstance(version, str):
        version = tuple(int(part) for part in version.split("."))  # type: ignore[assignment]
    text = _v(version)
    data = bytearray(f"SIM-EVSE application {text}\n".encode("ascii"))
    block = 0
    while len(data) < size:
        data += hashlib.sha256(f"{text}/{block}".encode("ascii")).digest()
        block += 1
    return build_image(tuple(version), bytes(data[:size]))  # type: ignore[arg-type]
