"""A small synchronous event bus: the core publishes, the edges (OCPP, WebUI, hardware) listen.

Handlers run in publication order, inside ``publish``; a failing handler is logged and does
not stop the others. Handlers that need to do I/O hand the event to their own task.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

log = logging.getLogger("stationd.core")

E = TypeVar("E")


class EventBus:
    def __init__(self) -> None:
        self._handlers: list[tuple[type | None, Callable[[Any], None]]] = []

    def subscribe(self, handler: Callable[[E], None], event_type: type[E] | None = None) -> Callable[[], None]:
        """Call ``handler`` for every event of ``event_type`` (None: every event)."""
        item = (event_type, handler)
        self._handlers.append(item)
        return lambda: self._handlers.remove(item) if item in self._handlers else None

    def publish(self, event: object) -> None:
        for event_type, handler in list(self._handlers):
            if event_type is None or isinstance(event, event_type):
                try:
                    handler(event)
                except Exception:
                    log.exception("handler of %s failed", type(event).__name__)


@dataclass(frozen=True)
class StatusChanged:
    """A connector's (or, for 0, the station's) OCPP status changed."""

    connector_id: int
    status: str
    error_code: str
    vendor_error_code: str | None
    info: str | None
    timestamp: datetime


@dataclass(frozen=True)
class OutputsChanged:
    """What the core wants a connector's controller to do now."""

    connector_id: int
    offer_a: float  # 0 = no PWM
    contactor: bool
    locked: bool


@dataclass(frozen=True)
class SessionStarted:
    session: Any  # core.sessions.Session
    reservation_id: int | None = None  # the reservation it used (StartTransaction.reservationId)


@dataclass(frozen=True)
class SessionEnded:
    session: Any


@dataclass(frozen=True)
class MeterSampled:
    connector_id: int
    sample: Any  # hw.meters MeterSample-like: energy_import_wh, power_w, current_a, voltage_v, ...


@dataclass(frozen=True)
class CardPresented:
    """An RFID card was held to the reader (authorization decides what it means)."""

    uid: str
    timestamp: datetime


@dataclass(frozen=True)
class FaultChanged:
    connector_id: int
    code: str
    active: bool
    timestamp: datetime


@dataclass(frozen=True)
class EnrollmentChanged:
    """The MasterSerial card opened (or the timeout closed) the window that adds cards locally."""

    active: bool
    until: datetime | None


@dataclass(frozen=True)
class CardEnrolled:
    uid: str
