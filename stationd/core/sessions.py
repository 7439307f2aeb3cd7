"""Charging sessions and their durable record (SQLite, every change on disk before it counts).

A session is the core's view of a charge: who (idTag), where (connector), from when and which
meter reading, until when and why. The OCPP client turns sessions into transactions.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime

from ..storage import Database, StorageError

log = logging.getLogger("stationd.core.sessions")

STORAGE_ERRORS = (sqlite3.Error, StorageError, OSError)  # a write that did not happen

# StopTransaction reasons of OCPP 1.6 (the core uses the same words).
STOP_REASONS = frozenset({
    "EmergencyStop", "EVDisconnected", "HardReset", "Local", "Other", "PowerLoss", "Reboot", "Remote",
    "SoftReset", "UnlockCommand", "DeAuthorized",
})


@dataclass(frozen=True)
class Session:
    session_id: int
    connector_id: int
    id_tag: str
    started_at: datetime
    meter_start_wh: float
    last_meter_wh: float | None = None
    stopped_at: datetime | None = None
    meter_stop_wh: float | None = None
    stop_reason: str | None = None
    stop_id_tag: str | None = None

    @property
    def open(self) -> bool:
        return self.stopped_at is None

    @property
    def energy_wh(self) -> float:
        end = self.meter_stop_wh if self.meter_stop_wh is not None else self.last_meter_wh
        return max(0.0, (end if end is not None else self.meter_start_wh) - self.meter_start_wh)


class SessionStore:
    """Session rows are written through ``db`` (durable: on disk before the call returns). The
    latest meter reading of an open session, written at every sample, goes through
    ``progress_db`` when given: a second connection with synchronous=NORMAL, which survives a
    crash of the process (kill -9) and costs no fsync per sample; a power cut may lose the last
    readings since the previous checkpoint, never a session.

    ``on_stop(listener)``: ``listener(closed_session)`` runs inside the SQLite transaction that
    closes the session, so what it writes through the same database (the OCPP client queues the
    StopTransaction there) is committed together with the close: a crash can never leave a
    closed session whose end nobody recorded. A listener that fails to write (a storage error)
    rolls the close back and the error reaches the caller (who keeps the session's end until
    storage works again); any other exception of a listener is logged and the session is
    closed all the same."""

    def __init__(self, db: Database, progress_db: Database | None = None):
        self.db = db
        self.progress_db = progress_db or db
        self._stop_listeners: list[Callable[[Session], None]] = []

    def on_stop(self, listener: Callable[[Session], None]) -> None:
        self._stop_listeners.append(listener)

    def start(self, connector_id: int, id_tag: str, started_at: datetime, meter_start_wh: float) -> Session:
        with self.db.transaction():
            cursor = self.db.execute(
                "INSERT INTO sessions (connector_id, id_tag, started_at, meter_start_wh, last_meter_wh) "
                "VALUES (?, ?, ?, ?, ?)",
                (connector_id, id_tag, started_at.isoformat(), meter_start_wh, meter_start_wh),
            )
        return Session(int(cursor.lastrowid), connector_id, id_tag, started_at, meter_start_wh, meter_start_wh)

    def stop(self, session: Session, stopped_at: datetime, meter_stop_wh: float, reason: str,
             stop_id_tag: str | None = None) -> Session:
        if reason not in STOP_REASONS:
            raise ValueError(f"unknown stop reason {reason!r}")
        closed = replace(session, stopped_at=stopped_at, meter_stop_wh=meter_stop_wh, last_meter_wh=meter_stop_wh,
                         stop_reason=reason, stop_id_tag=stop_id_tag)
        with self.db.transaction():
            cursor = self._close_row(closed)
            if cursor.rowcount:  # closed now (not before): the listeners record its end with it
                for listener in self._stop_listeners:
                    try:
                        listener(closed)
                    except STORAGE_ERRORS:
                        raise  # nothing of the close is written: the caller sees the storage failure
                    except Exception:
                        log.exception("session %d: a stop listener failed", session.session_id)
        return closed

    def record_late_stop(self, closed: Session) -> None:
        """Write the end of a session closed while nothing could be recorded; its stop listeners
        already heard of it (through the caller), so they are not called again."""
        self._close_row(closed)

    def _close_row(self, closed: Session):
        return self.db.execute(
            "UPDATE sessions SET stopped_at = ?, meter_stop_wh = ?, last_meter_wh = ?, stop_reason = ?, "
            "stop_id_tag = ? WHERE session_id = ? AND stopped_at IS NULL",
            (closed.stopped_at.isoformat(), closed.meter_stop_wh, closed.meter_stop_wh, closed.stop_reason,
             closed.stop_id_tag, closed.session_id),
        )

    def record_meter(self, session: Session, energy_wh: float) -> Session:
        """Remember the latest reading of an open session (what a power cut would end it with)."""
        self.progress_db.execute("UPDATE sessions SET last_meter_wh = ? WHERE session_id = ?",
                                 (energy_wh, session.session_id))
        return replace(session, last_meter_wh=energy_wh)

    def open_sessions(self) -> list[Session]:
        rows = self.db.query("SELECT * FROM sessions WHERE stopped_at IS NULL ORDER BY session_id")
        return [_session(row) for row in rows]

    def recent(self, limit: int = 50) -> list[Session]:
        rows = self.db.query("SELECT * FROM sessions ORDER BY session_id DESC LIMIT ?", (limit,))
        return [_session(row) for row in rows]


def _session(row) -> Session:
    return Session(
        session_id=row["session_id"], connector_id=row["connector_id"], id_tag=row["id_tag"],
        started_at=datetime.fromisoformat(row["started_at"]), meter_start_wh=row["meter_start_wh"],
        last_meter_wh=row["last_meter_wh"],
        stopped_at=datetime.fromisoformat(row["stopped_at"]) if row["stopped_at"] else None,
        meter_stop_wh=row["meter_stop_wh"], stop_reason=row["stop_reason"], stop_id_tag=row["stop_id_tag"],
    )
