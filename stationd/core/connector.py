"""One connector's state and the OCPP status that follows from it (a pure function)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

from .faults import Fault, fault
from .iec61851 import CpState


class Status(enum.StrEnum):
    """OCPP 1.6 ChargePointStatus."""

    AVAILABLE = "Available"
    PREPARING = "Preparing"
    CHARGING = "Charging"
    SUSPENDED_EV = "SuspendedEV"
    SUSPENDED_EVSE = "SuspendedEVSE"
    FINISHING = "Finishing"
    RESERVED = "Reserved"
    UNAVAILABLE = "Unavailable"
    FAULTED = "Faulted"


@dataclass(frozen=True)
class ControllerState:
    """What a connector's EVSE controller reports, in the core's words."""

    cp_state: CpState = CpState.A
    cable_max_a: int | None = None  # proximity pilot rating; None: no cable or a fixed cable
    offered_a: float = 0.0  # what the controller offers with PWM right now
    contactor_closed: bool = False
    locked: bool = False
    temperature_c: float | None = None
    door_open: bool = False


@dataclass(frozen=True)
class Outputs:
    """What the core wants the controller to do."""

    offer_a: float = 0.0  # 0 = no PWM
    contactor: bool = False
    locked: bool = False


@dataclass(frozen=True)
class PendingAuthorization:
    """An idTag authorized before the cable was plugged in (ConnectionTimeOut applies)."""

    id_tag: str
    expires_at: datetime
    parent_id_tag: str | None = None


@dataclass
class Connector:
    id: int
    max_current_a: float
    phases: int
    connector_type: str = "Type2Socket"
    controller: ControllerState = field(default_factory=ControllerState)
    link_up: bool = False
    fault_sources: dict[str, frozenset[str]] = field(default_factory=dict)  # e.g. "controller", "meter"
    operative: bool = True
    reservation: object | None = None  # core.reservations.Reservation
    session: object | None = None  # core.sessions.Session while one is open
    session_parent_id_tag: str | None = None
    deauthorized_at_wh: float | None = None  # the backend refused the idTag; energy cap from here
    hold_lock_for: str | None = None  # DeAuthorized stop: the cable stays locked for this idTag
    finishing: bool = False  # a session ended; the vehicle is still plugged in
    pending: PendingAuthorization | None = None
    outputs: Outputs = field(default_factory=Outputs)
    limits: dict[str, float] = field(default_factory=dict)  # current limit (A) by source
    limit_notes: dict[str, str] = field(default_factory=dict)  # why a source limits (e.g. "cluster limit L1")
    limit_reason: str = ""  # what bounds the current offer now, for people ("cable 20 A", "station limit L2")
    paused_since: float | None = None  # epoch s: a "not enough current" pause began (allocation rotation)
    charging_since: float | None = None  # epoch s: its offer > 0 began (a turn is not cut short)
    meter_online: bool = True
    last_energy_wh: float | None = None

    @property
    def plugged(self) -> bool:
        return self.controller.cp_state.plugged

    @property
    def faults(self) -> set[str]:
        return set().union(*self.fault_sources.values())


@dataclass(frozen=True)
class StatusReport:
    status: Status
    fault: Fault | None = None

    @property
    def error_code(self) -> str:
        return self.fault.error_code if self.fault else "NoError"

    @property
    def vendor_error_code(self) -> str | None:
        return self.fault.vendor_error_code if self.fault else None

    @property
    def info(self) -> str | None:
        return self.fault.description if self.fault else None


def connector_status(connector: Connector, station_faults: set[str], station_operative: bool) -> StatusReport:
    """The OCPP status of a connector: faults first, then availability, then the session."""
    faulting = _worst(connector.faults | {c for c in station_faults if fault(c).faulted})
    if faulting is not None and faulting.faulted:
        return StatusReport(Status.FAULTED, faulting)
    warning = faulting  # a fault that leaves the connector usable is still reported
    if connector.session is not None:
        return StatusReport(_session_status(connector), warning)
    if not (connector.operative and station_operative):
        return StatusReport(Status.UNAVAILABLE, warning)
    if connector.finishing and connector.plugged:
        return StatusReport(Status.FINISHING, warning)
    if connector.reservation is not None and not connector.plugged:
        return StatusReport(Status.RESERVED, warning)
    if connector.plugged or connector.pending is not None:
        return StatusReport(Status.PREPARING, warning)
    return StatusReport(Status.AVAILABLE, warning)


def station_status(station_faults: set[str], station_operative: bool) -> StatusReport:
    """Connector 0 reports only Available, Unavailable or Faulted."""
    worst = _worst(station_faults)
    if worst is not None and worst.faulted:
        return StatusReport(Status.FAULTED, worst)
    return StatusReport(Status.AVAILABLE if station_operative else Status.UNAVAILABLE, worst)


def _session_status(connector: Connector) -> Status:
    if connector.outputs.offer_a <= 0:
        return Status.SUSPENDED_EVSE  # the station offers nothing (beats SuspendedEV)
    if connector.controller.cp_state.wants_energy:
        return Status.CHARGING
    return Status.SUSPENDED_EV


def _worst(codes: set[str]) -> Fault | None:
    """The fault to report: one that stops charging before one that does not; then by name."""
    faults = sorted((fault(c) for c in codes), key=lambda f: (not f.faulted, f.code))
    return faults[0] if faults else None
