"""The station core: connectors, sessions, faults and current limits, and what follows from them.

Inputs come from the hardware drivers (controller states, meter samples, RFID cards) and from
the edges (authorizations, stop requests, current limits, availability). After every input the
core works out, for each connector, what its controller should do (``OutputsChanged``) and the
OCPP status it is in (``StatusChanged``), and publishes what changed on the event bus.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone

from ..config.store import Change, ConfigStore
from ..power import Allocation
from . import current_limits
from .connector import (
    Connector,
    ControllerState,
    Outputs,
    PendingAuthorization,
    Status,
    StatusReport,
    connector_status,
    station_status,
)
from .demand import ConnectorDemand, DrawWindow
from .events import (
    CardPresented,
    EventBus,
    FaultChanged,
    MeterSampled,
    OutputsChanged,
    SessionEnded,
    SessionStarted,
    StatusChanged,
)
from ..storage import StorageError
from ..storage.health import storage_problem
from ..storage.meta import StationMeta
from .faults import Scope, fault
from ..power.allocation import PAUSED_NOT_ENOUGH
from .iec61851 import CpState
from .reservations import Reservation
from .sessions import Session, SessionStore

log = logging.getLogger("stationd.core")

FREE_MODE = 1  # CsMode 1: Free (Plug&Start)
AVAILABILITY_META = "availability"  # ChangeAvailability survives a restart
SOCKET_TYPES = {"Type2Socket", "Type3Socket"}  # a socket locks the cable; a fixed cable needs no lock
WATCHED_KEYS = ("CsMode", "/power/station/mainsMaxCurrent", "MaxCurrentLimit", "TamperDetectionEnabled",
                "StopTransactionOnEVSideDisconnect", "GridMaxPower", "GridVoltage", "GridPhaseConnection",
                "ConnectorPhaseRotation")
NOT_CHARGING = "no session"
STORAGE_ERRORS = (sqlite3.Error, StorageError, OSError)
STORAGE_CHECK_S = 5.0  # the data directory's free space / writability is checked this often


@dataclass(frozen=True)
class ConnectorSpec:
    id: int
    max_current_a: float
    phases: int
    connector_type: str = "Type2Socket"


@dataclass(frozen=True)
class AuthorizeResult:
    accepted: bool
    connector_id: int | None = None
    started: bool = False  # False: waiting for the cable (ConnectionTimeOut)
    reason: str = ""


class StationCore:
    def __init__(self, store: ConfigStore, sessions: SessionStore, specs: Iterable[ConnectorSpec],
                 bus: EventBus | None = None, clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)):
        self.store, self.sessions, self.clock = store, sessions, clock
        self.meta = StationMeta(sessions.db)
        self.bus = bus or EventBus()
        self.connectors = {s.id: Connector(s.id, s.max_current_a, s.phases, s.connector_type) for s in specs}
        self.station_fault_sources: dict[str, frozenset[str]] = {}
        self.operative = True
        self._published: dict[int, StatusReport] = {}
        self._scheduled_availability: dict[int, bool] = {}
        self._draws = {c: DrawWindow() for c in self.connectors}
        self._allocations: dict[int, Allocation] = {}
        # Storage policy: while nothing can be recorded (disk full, read-only, write errors) a
        # running session goes on (its records kept in memory and written once storage works
        # again), no new one starts, and the free connectors report Faulted / StorageFailure.
        self.storage_failure: str | None = None
        self._unwritten: list[Session] = []  # stops (and meter readings) to write when storage is back
        self._storage_checked = float("-inf")
        store.subscribe(self._on_setting, names=WATCHED_KEYS)

    # ---- lifecycle --------------------------------------------------------------------

    def start(self) -> None:
        """Restore availability, close what a power cut left open, publish every status once."""
        saved = self.meta.get(AVAILABILITY_META, {})
        self.operative = saved.get("0", True)
        for connector in self.connectors.values():
            connector.operative = saved.get(str(connector.id), True)
        for session in self.sessions.open_sessions():
            meter = session.last_meter_wh if session.last_meter_wh is not None else session.meter_start_wh
            closed = self.sessions.stop(session, self.clock(), meter, "PowerLoss")
            log.warning("session %d on connector %d was open at start; closed with reason PowerLoss (%.0f Wh)",
                        closed.session_id, closed.connector_id, closed.energy_wh)
            self.bus.publish(SessionEnded(closed))
        self._evaluate_all(force=True)

    def shutdown(self, reason: str = "Reboot") -> None:
        """End every open session (the daemon is stopping: the controllers will go safe)."""
        for connector in self.connectors.values():
            if connector.session is not None:
                self._end_session(connector, reason)
        self._evaluate_all()

    def tick(self) -> None:
        """Expire authorizations nobody plugged in for (ConnectionTimeOut) and reservations
        nobody came for, check the storage; call every second."""
        now = self.clock()
        if now.timestamp() - self._storage_checked >= STORAGE_CHECK_S:
            self._storage_checked = now.timestamp()
            self.check_storage()
        for connector in self.connectors.values():
            reservation = connector.reservation
            if reservation is not None and now >= reservation.expires_at:
                log.info("connector %d: reservation %d expired", connector.id, reservation.reservation_id)
                connector.reservation = None
                self._evaluate(connector)
            if connector.pending is not None and now >= connector.pending.expires_at:
                log.info("connector %d: authorization of %s expired (no cable within ConnectionTimeOut)",
                         connector.id, connector.pending.id_tag)
                connector.pending = None
                self._evaluate(connector)

    # ---- storage -------------------------------------------------------------------------

    def check_storage(self) -> None:
        """Is the data directory writable with room to spare? Writes what waits when it is."""
        problem = storage_problem(self.sessions.db.path.parent)
        if problem is None and self.storage_failure is not None:
            try:
                for session in list(self._unwritten):
                    self._write_session(session)
                    self._unwritten.remove(session)
                self.meta.set("storage_check", self.clock().isoformat())
            except STORAGE_ERRORS as exc:
                problem = f"writing still fails: {exc}"
        if problem is not None:
            self._storage_failed(problem)
        elif self.storage_failure is not None:
            log.warning("storage: the data directory is writable again; new sessions may start")
            self.storage_failure = None
            self._evaluate_all()

    def _storage_failed(self, problem: object) -> None:
        if self.storage_failure is None:
            log.critical("storage: cannot record anything (%s); running sessions go on, no new session starts "
                         "(StorageFailure) until the data directory can be written", problem)
            self.storage_failure = str(problem)
            self._evaluate_all()

    def _write_session(self, session: Session) -> None:
        if session.stopped_at is not None:
            self.sessions.record_late_stop(session)
        elif session.last_meter_wh is not None:
            self.sessions.record_meter(session, session.last_meter_wh)

    # ---- inputs from the hardware ----------------------------------------------------

    def controller_link(self, connector_id: int, up: bool) -> None:
        connector = self.connectors[connector_id]
        connector.link_up = up
        self._set_faults(connector, "link", set() if up else {"ControllerLinkLost"})
        if not up:
            log.error("connector %d: EVSE controller link lost", connector_id)
        self._evaluate_all()

    def controller_state(self, connector_id: int, state: ControllerState, faults: Iterable[str] = ()) -> None:
        connector = self.connectors[connector_id]
        before = connector.controller
        connector.controller = state
        connector_faults = {c for c in faults if fault(c).scope is Scope.CONNECTOR}
        self._set_station_faults(f"controller:{connector_id}", {c for c in faults if fault(c).scope is Scope.STATION})
        if state.cp_state in (CpState.E, CpState.F):
            connector_faults.add("EVCommunicationError")
        self._set_faults(connector, "controller", connector_faults)
        self._update_tamper()
        if state.cp_state.plugged and not before.cp_state.plugged:
            self._plugged_in(connector)
        elif before.cp_state.plugged and not state.cp_state.plugged:
            self._unplugged(connector)
        self._evaluate_all()

    def meter_sample(self, connector_id: int, sample) -> None:
        connector = self.connectors[connector_id]
        connector.last_energy_wh = sample.energy_import_wh
        if connector.session is not None:  # what a power cut would end the session with
            try:
                connector.session = self.sessions.record_meter(connector.session, sample.energy_import_wh)
            except STORAGE_ERRORS as exc:
                connector.session = replace(connector.session, last_meter_wh=sample.energy_import_wh)
                self._storage_failed(exc)
            self._draws[connector_id].sample(tuple(sample.current_a), self._now())
            self._check_energy_cap(connector)
        self.bus.publish(MeterSampled(connector_id, sample))
        if connector.session is not None and len(self._allocations) > 1:
            self._evaluate_all()  # what one vehicle leaves unused goes to the others

    def meter_online(self, connector_id: int, online: bool, reason: str = "") -> None:
        connector = self.connectors[connector_id]
        if online != connector.meter_online:
            log.log(logging.INFO if online else logging.ERROR, "connector %d: meter %s%s", connector_id,
                    "back online" if online else "offline", f" ({reason})" if reason else "")
        connector.meter_online = online
        self._set_faults(connector, "meter", set() if online else {"PowerMeterFailure"})
        self._evaluate(connector)

    def card_presented(self, uid: str) -> None:
        for connector in self.connectors.values():
            if connector.hold_lock_for is not None and connector.hold_lock_for.lower() == uid.lower():
                log.info("connector %d: %s presented; releasing the cable", connector.id, uid)
                connector.hold_lock_for = None
                self._evaluate(connector)
        self.bus.publish(CardPresented(uid, self.clock()))

    def station_fault(self, code: str, active: bool, source: str = "station") -> None:
        """Raise or clear a station-wide fault (connector 0) from any source."""
        current = set(self.station_fault_sources.get(source, frozenset()))
        current.add(code) if active else current.discard(code)
        self._set_station_faults(source, current)
        self._evaluate_all()

    # ---- inputs from the edges (authorization, OCPP, WebUI, Modbus server) -------------

    def authorize(self, connector_id: int | None, id_tag: str, parent_id_tag: str | None = None) -> AuthorizeResult:
        """Let ``id_tag`` charge: at once when a vehicle is plugged in, else when one is."""
        connector = self._pick_connector(connector_id, id_tag, parent_id_tag)
        if connector is None:
            return AuthorizeResult(False, connector_id, reason="no connector is free")
        refusal = self._refusal(connector, id_tag, parent_id_tag)
        if refusal:
            return AuthorizeResult(False, connector.id, reason=refusal)
        if connector.plugged:  # also after a session ended: a new card starts a new session
            self._start_session(connector, id_tag, parent_id_tag)
            self._evaluate_all()
            return AuthorizeResult(True, connector.id, started=True)
        timeout = timedelta(seconds=int(self.store.get("ConnectionTimeOut")))
        connector.pending = PendingAuthorization(id_tag, self.clock() + timeout, parent_id_tag)
        self._evaluate(connector)
        return AuthorizeResult(True, connector.id, started=False)

    def stop_session(self, connector_id: int, reason: str, id_tag: str | None = None) -> bool:
        connector = self.connectors.get(connector_id)
        if connector is None or connector.session is None:
            return False
        self._end_session(connector, reason, id_tag)
        self._evaluate_all()
        return True

    def deauthorize(self, connector_id: int) -> None:
        """The backend refused the session's idTag (StartTransaction.conf): after
        MaxEnergyOnInvalidId more Wh, stop (StopTransactionOnInvalidId, reason DeAuthorized, the
        cable stays locked for its owner) or only stop the energy."""
        connector = self.connectors[connector_id]
        if connector.session is None or connector.deauthorized_at_wh is not None:
            return
        connector.deauthorized_at_wh = connector.last_energy_wh or connector.session.meter_start_wh
        log.warning("connector %d: the backend refused %s", connector_id, connector.session.id_tag)
        self._check_energy_cap(connector)
        self._evaluate_all()

    def reserve(self, reservation_id: int, connector_id: int, id_tag: str, expires_at: datetime,
                parent_id_tag: str | None = None) -> str:
        """ReserveNow: Accepted, Faulted, Occupied, Rejected or Unavailable."""
        for other in self.connectors.values():  # the same id replaces a reservation
            if other.reservation is not None and other.reservation.reservation_id == reservation_id:
                other.reservation = None
                self._evaluate(other)
        if connector_id == 0 and not self.store.get("ReserveConnectorZeroSupported"):
            return "Rejected"
        connector = self.connectors.get(connector_id)
        if connector is None:
            return "Rejected"
        status = self.status(connector_id).status.value
        if status in ("Faulted", "Unavailable"):
            return status
        if status != "Available" or expires_at <= self.clock():
            return "Occupied" if status != "Available" else "Rejected"
        connector.reservation = Reservation(reservation_id, connector_id, id_tag, expires_at, parent_id_tag)
        self._evaluate(connector)
        return "Accepted"

    def cancel_reservation(self, reservation_id: int) -> bool:
        for connector in self.connectors.values():
            if connector.reservation is not None and connector.reservation.reservation_id == reservation_id:
                connector.reservation = None
                self._evaluate(connector)
                return True
        return False

    def unlock(self, connector_id: int) -> str:
        """UnlockConnector: Unlocked, UnlockFailed or NotSupported (no lock here)."""
        connector = self.connectors.get(connector_id)
        if connector is None or connector.connector_type not in SOCKET_TYPES:
            return "NotSupported"
        if connector.session is not None:
            self._end_session(connector, "UnlockCommand")
        connector.hold_lock_for = None
        self._evaluate_all()
        if not connector.controller.locked:
            return "Unlocked"
        return "Unlocked" if connector.link_up and "ConnectorLockFailure" not in connector.faults else "UnlockFailed"

    def set_limit(self, connector_id: int, source: str, amps: float | None, reason: str | None = None) -> None:
        """A current limit (A per phase) from ``source`` ("smart charging", "energy manager",
        "load balancing" …) and why, for people; None removes it; connector 0 = every connector."""
        targets = self.connectors.values() if connector_id == 0 else [self.connectors[connector_id]]
        for connector in targets:
            if amps is None:
                connector.limits.pop(source, None)
                connector.limit_notes.pop(source, None)
            else:
                connector.limits[source] = float(amps)
                if reason:
                    connector.limit_notes[source] = reason
                else:
                    connector.limit_notes.pop(source, None)
        self._evaluate_all()

    def set_availability(self, connector_id: int, operative: bool) -> str:
        """Accepted, or Scheduled when a session must end first (then applied at its end)."""
        targets = list(self.connectors.values()) if connector_id == 0 else [self.connectors[connector_id]]
        if connector_id == 0:
            self.operative = operative
        busy = [c for c in targets if c.session is not None and not operative]
        for connector in targets:
            if connector in busy:
                self._scheduled_availability[connector.id] = operative
            else:
                connector.operative = operative
        self._save_availability(pending=self._scheduled_availability)
        self._evaluate_all()
        return "Scheduled" if busy else "Accepted"

    def _save_availability(self, pending: dict[int, bool] | None = None) -> None:
        saved = {"0": self.operative, **{str(c.id): c.operative for c in self.connectors.values()}}
        saved.update({str(cid): value for cid, value in (pending or {}).items()})  # a reboot applies it
        self.meta.set(AVAILABILITY_META, saved)

    # ---- queries ----------------------------------------------------------------------

    def status(self, connector_id: int) -> StatusReport:
        if connector_id == 0:
            report = station_status(self.station_faults, self.operative)
            return self._storage_status(report, None)
        connector = self.connectors[connector_id]
        return self._storage_status(connector_status(connector, self.station_faults, self.operative), connector)

    def _storage_status(self, report: StatusReport, connector: Connector | None) -> StatusReport:
        """No storage: Faulted / StorageFailure, except where a session runs (it may go on)."""
        if self.storage_failure is None or report.status is Status.FAULTED:
            return report
        if connector is not None and connector.session is not None:
            return report
        return StatusReport(Status.FAULTED, fault("StorageFailure"))

    @property
    def station_faults(self) -> set[str]:
        return set().union(*self.station_fault_sources.values())

    def offer_limit(self, connector: Connector) -> float:
        """The current (A per phase) this connector is offered now, or would be if a session
        started on it now (0: it would have to wait)."""
        if connector.id in self._allocations:
            return self._allocations[connector.id].offer_a
        now = self._now()
        extra = current_limits.demand(self.store, connector, self._draws[connector.id], now, hypothetical=True)
        return current_limits.resolve(self.store, [*self._demands(now), extra], now)[connector.id].offer_a

    def connector_demands(self, exclude: tuple[str, ...] = ()) -> list[ConnectorDemand]:
        """Every connector as an allocation sees it (no session: ``started_at`` None), with the caps
        of the limit sources in ``exclude`` left out (a load balancer must not feed on its own result)."""
        now = self._now()
        return [current_limits.demand(self.store, c, self._draws[c.id], now, exclude) for c in self.connectors.values()]

    # ---- internals --------------------------------------------------------------------

    def _plugged_in(self, connector: Connector) -> None:
        connector.finishing = False
        if connector.session is not None:
            return
        if connector.pending is not None:
            pending, connector.pending = connector.pending, None
            if not self._refusal(connector, pending.id_tag, pending.parent_id_tag):
                self._start_session(connector, pending.id_tag, pending.parent_id_tag)
        elif self.store.get("CsMode") == FREE_MODE and connector.reservation is None and not self._refusal(connector):
            self._start_session(connector, str(self.store.get("/hw/auth/device/Dummy/id/value")))

    def _unplugged(self, connector: Connector) -> None:
        connector.finishing = False
        connector.hold_lock_for = None
        if connector.session is not None and self.store.get("StopTransactionOnEVSideDisconnect"):
            self._end_session(connector, "EVDisconnected")

    def _refusal(self, connector: Connector, id_tag: str | None = None, parent_id_tag: str | None = None) -> str:
        if connector.session is not None:
            return f"connector {connector.id} is occupied"
        if self.storage_failure is not None:
            return f"nothing can be recorded ({self.storage_failure})"
        report = self.status(connector.id)
        if report.status in ("Faulted", "Unavailable"):
            return f"connector {connector.id} is {report.status}"
        reservation = connector.reservation
        if reservation is not None and (id_tag is None or not reservation.admits(id_tag, parent_id_tag)):
            return f"connector {connector.id} is reserved"
        return ""

    def _pick_connector(self, connector_id: int | None, id_tag: str, parent_id_tag: str | None) -> Connector | None:
        if connector_id is not None:
            return self.connectors.get(connector_id)
        free = [c for c in self.connectors.values() if not self._refusal(c, id_tag, parent_id_tag)]
        reserved = [c for c in free if c.reservation is not None]  # the holder's own reservation first
        plugged = [c for c in free if c.plugged and not c.finishing]
        return (reserved or plugged or free or [None])[0]

    def _start_session(self, connector: Connector, id_tag: str, parent_id_tag: str | None = None) -> None:
        meter = connector.last_energy_wh if connector.last_energy_wh is not None else 0.0
        try:
            connector.session = self.sessions.start(connector.id, id_tag, self.clock(), meter)
        except STORAGE_ERRORS as exc:
            log.error("connector %d: no session for %s: it cannot be recorded (%s)", connector.id, id_tag, exc)
            connector.pending = None
            self._storage_failed(exc)
            return
        self._draws[connector.id].reset()
        connector.session_parent_id_tag = parent_id_tag
        connector.pending = None
        reservation, connector.reservation = connector.reservation, None
        log.info("connector %d: session %d started for %s at %.0f Wh", connector.id,
                 connector.session.session_id, id_tag, meter)
        self.bus.publish(SessionStarted(connector.session, reservation.reservation_id if reservation else None))

    def _end_session(self, connector: Connector, reason: str, id_tag: str | None = None) -> None:
        session: Session = connector.session  # type: ignore[assignment]
        meter = connector.last_energy_wh if connector.last_energy_wh is not None else (
            session.last_meter_wh if session.last_meter_wh is not None else session.meter_start_wh)
        try:
            closed = self.sessions.stop(session, self.clock(), meter, reason, id_tag)
        except STORAGE_ERRORS as exc:  # ended all the same; written when storage works again
            closed = replace(session, stopped_at=self.clock(), meter_stop_wh=meter, last_meter_wh=meter,
                             stop_reason=reason, stop_id_tag=id_tag)
            self._unwritten.append(closed)
            log.error("connector %d: session %d ended (%s) but cannot be recorded yet (%s); kept in memory",
                      connector.id, session.session_id, reason, exc)
            self._storage_failed(exc)
        connector.session = None
        connector.session_parent_id_tag = None
        connector.deauthorized_at_wh = None
        if reason == "DeAuthorized" and connector.plugged:
            connector.hold_lock_for = session.id_tag  # until its owner presents the card
        connector.finishing = connector.plugged
        log.info("connector %d: session %d ended (%s), %.0f Wh", connector.id, closed.session_id, reason,
                 closed.energy_wh)
        self.bus.publish(SessionEnded(closed))
        if connector.id in self._scheduled_availability:
            connector.operative = self._scheduled_availability.pop(connector.id)
            self._save_availability(self._scheduled_availability)

    def _check_energy_cap(self, connector: Connector) -> None:
        if connector.deauthorized_at_wh is None or connector.session is None:
            return
        delivered = (connector.last_energy_wh or 0.0) - connector.deauthorized_at_wh
        if delivered >= int(self.store.get("MaxEnergyOnInvalidId")) and self.store.get("StopTransactionOnInvalidId"):
            self._end_session(connector, "DeAuthorized")
            self._evaluate_all()

    def _energy_allowed(self, connector: Connector) -> bool:
        if connector.deauthorized_at_wh is None:
            return True
        delivered = (connector.last_energy_wh or 0.0) - connector.deauthorized_at_wh
        return delivered < int(self.store.get("MaxEnergyOnInvalidId"))

    def _set_faults(self, connector: Connector, source: str, codes: set[str]) -> None:
        before = connector.faults
        connector.fault_sources[source] = frozenset(codes)
        self._announce_faults(connector.id, before, connector.faults)

    def _set_station_faults(self, source: str, codes: set[str]) -> None:
        before = self.station_faults
        self.station_fault_sources[source] = frozenset(codes)
        self._announce_faults(0, before, self.station_faults)

    def _announce_faults(self, connector_id: int, before: set[str], after: set[str]) -> None:
        now = self.clock()
        for code in sorted(after - before):
            self.bus.publish(FaultChanged(connector_id, code, True, now))
        for code in sorted(before - after):
            self.bus.publish(FaultChanged(connector_id, code, False, now))

    def _update_tamper(self) -> None:
        open_door = any(c.controller.door_open for c in self.connectors.values())
        tampered = open_door and bool(self.store.get("TamperDetectionEnabled"))
        self._set_station_faults("tamper", {"TamperDetected"} if tampered else set())
        if tampered:
            for connector in self.connectors.values():
                if connector.session is not None:
                    self._end_session(connector, "Other")

    def _now(self) -> float:
        return self.clock().timestamp()

    def _drawing(self, connector: Connector) -> bool:
        """Whether the connector takes part in the allocation: a session that may have energy."""
        return (connector.session is not None and self._energy_allowed(connector)
                and self.status(connector.id).status != "Faulted")

    def _demands(self, now: float) -> list[ConnectorDemand]:
        """The sessions that take part in the allocation, in session start order."""
        drawing = sorted((c for c in self.connectors.values() if self._drawing(c)),
                         key=lambda c: (c.session.started_at, c.session.session_id))
        return [current_limits.demand(self.store, c, self._draws[c.id], now) for c in drawing]

    def _allocate(self) -> None:
        now = self._now()
        self._allocations = current_limits.resolve(self.store, self._demands(now), now)
        for connector in self.connectors.values():
            allocation = self._allocations.get(connector.id)
            if allocation is None:
                connector.paused_since = connector.charging_since = None
                connector.limit_reason = NOT_CHARGING if connector.session is None else (
                    "faulted" if self.status(connector.id).status == "Faulted" else "energy cap (backend refused the idTag)")
                continue
            connector.limit_reason = allocation.reason
            if allocation.offer_a > 0:
                connector.paused_since = None
                if connector.charging_since is None:
                    connector.charging_since = now
            else:
                connector.charging_since = None
                if allocation.reason == PAUSED_NOT_ENOUGH and connector.paused_since is None:
                    connector.paused_since = now

    def _outputs(self, connector: Connector) -> Outputs:
        if connector.session is None or self.status(connector.id).status == "Faulted":
            held = connector.hold_lock_for is not None and connector.plugged
            return Outputs(locked=held and connector.connector_type in SOCKET_TYPES)
        allocation = self._allocations.get(connector.id)
        offer = allocation.offer_a if allocation is not None else 0.0
        return Outputs(
            offer_a=offer,
            contactor=offer > 0 and connector.controller.cp_state.wants_energy,
            locked=connector.plugged and connector.connector_type in SOCKET_TYPES,
        )

    def _evaluate_all(self, force: bool = False) -> None:
        self._evaluate_station(force)
        self._allocate()
        for connector in self.connectors.values():
            self._evaluate_connector(connector, force)

    def _evaluate_station(self, force: bool = False) -> None:
        self._publish_status(0, self.status(0), force)

    def _evaluate(self, _connector: Connector) -> None:
        """Something about one connector changed: the shares of all of them may follow."""
        self._evaluate_all()

    def _evaluate_connector(self, connector: Connector, force: bool = False) -> None:
        if connector.reservation is not None and self.status(connector.id).status in ("Faulted", "Unavailable"):
            log.info("connector %d: reservation %d ends (connector %s)", connector.id,
                     connector.reservation.reservation_id, self.status(connector.id).status.value)
            connector.reservation = None
        outputs = self._outputs(connector)
        if outputs != connector.outputs or force:
            connector.outputs = outputs
            self._draws[connector.id].offer(outputs.offer_a, self._now())
            self.bus.publish(OutputsChanged(connector.id, outputs.offer_a, outputs.contactor, outputs.locked))
        self._publish_status(connector.id, self.status(connector.id), force)

    def _publish_status(self, connector_id: int, report: StatusReport, force: bool) -> None:
        if not force and self._published.get(connector_id) == report:
            return
        self._published[connector_id] = report
        self.bus.publish(StatusChanged(connector_id, report.status.value, report.error_code,
                                       report.vendor_error_code, report.info, self.clock()))

    def _on_setting(self, change: Change) -> None:
        if change.key == "TamperDetectionEnabled":
            self._update_tamper()
        self._evaluate_all()
