"""The charging session history as the backend records it (SPEC §8), read from the database.

One :class:`SessionRow` per row of the core's ``sessions`` table, with the OCPP transactionId
of its StartTransaction.conf (``ocpp_transactions``) when the backend confirmed one.
:class:`SessionFilter` (date range in UTC, connector, idTag) selects rows, newest first;
:func:`page` reads one page of them, :func:`batch_after` the next batch below a session id
(the CSV export walks all of them that way: no row cap, bounded memory), :func:`csv_lines`
turns rows into CSV text.

"Authentication" is *anonymous* for the dummy idTag of free charging
(``/hw/auth/device/Dummy/id/value``), *RFID* otherwise — the backend's 0 and 1.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone

PAGE_SIZE = 50
BATCH = 500
MAX_ID_TAG = 20
ANONYMOUS, RFID = "anonymous", "RFID"
CSV_HEADER = ("session_id", "transaction_id", "connector", "id_tag", "authentication", "start", "end",
              "duration_s", "energy_kwh", "meter_start_kwh", "meter_stop_kwh", "stop_reason")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

_SELECT = ("SELECT s.session_id, s.connector_id, s.id_tag, s.started_at, s.stopped_at, s.meter_start_wh, "
           "s.last_meter_wh, s.meter_stop_wh, s.stop_reason, t.transaction_id "
           "FROM sessions s LEFT JOIN ocpp_transactions t ON t.session_id = s.session_id")


@dataclass(frozen=True)
class SessionRow:
    session_id: int
    transaction_id: int | None
    connector_id: int
    id_tag: str
    authentication: str
    started_at: datetime
    stopped_at: datetime | None
    meter_start_wh: float
    meter_stop_wh: float | None  # the stop reading; while open, the latest one
    stop_reason: str | None

    @property
    def open(self) -> bool:
        return self.stopped_at is None

    @property
    def duration_s(self) -> int | None:
        return None if self.stopped_at is None else int((self.stopped_at - self.started_at).total_seconds())

    @property
    def energy_kwh(self) -> float:
        end = self.meter_stop_wh if self.meter_stop_wh is not None else self.meter_start_wh
        return max(0.0, end - self.meter_start_wh) / 1000


@dataclass(frozen=True)
class SessionFilter:
    since: date | None = None
    until: date | None = None  # inclusive
    connector_id: int | None = None
    id_tag: str = ""

    def where(self) -> tuple[str, list]:
        clauses, params = [], []
        if self.since is not None:
            clauses.append("s.started_at >= ?")
            params.append(datetime.combine(self.since, time(), timezone.utc).isoformat())
        if self.until is not None:
            clauses.append("s.started_at < ?")
            params.append(datetime.combine(self.until + timedelta(days=1), time(), timezone.utc).isoformat())
        if self.connector_id is not None:
            clauses.append("s.connector_id = ?")
            params.append(self.connector_id)
        if self.id_tag:
            clauses.append("s.id_tag = ?")
            params.append(self.id_tag)
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params

    def query(self) -> dict[str, str]:
        """The filter as URL query fields (for the pager and the export link)."""
        fields = {"from": self.since.isoformat() if self.since else "", "to": self.until.isoformat() if self.until else "",
                  "connector": str(self.connector_id) if self.connector_id is not None else "", "idtag": self.id_tag}
        return {name: value for name, value in fields.items() if value}


def parse_filter(query, connector_ids) -> tuple[SessionFilter, dict[str, str]]:
    """The filter of a request's query (``from``, ``to``, ``connector``, ``idtag``) and the
    problems by field name (English; the page translates them)."""
    errors: dict[str, str] = {}

    def day(name: str) -> date | None:
        text = query.get(name, "").strip()
        if not text:
            return None
        try:
            return date.fromisoformat(text)
        except ValueError:
            errors[name] = "A date as YYYY-MM-DD."
            return None

    since, until = day("from"), day("to")
    if since and until and since > until:
        errors["to"] = "The end date is before the start date."
    connector_text = query.get("connector", "").strip()
    connector_id = None
    if connector_text:
        if connector_text.isdigit() and int(connector_text) in connector_ids:
            connector_id = int(connector_text)
        else:
            errors["connector"] = "No such connector."
    id_tag = query.get("idtag", "").strip()
    if len(id_tag) > MAX_ID_TAG:
        errors["idtag"] = "An idTag has at most 20 characters."
        id_tag = ""
    if errors:
        return SessionFilter(), errors
    return SessionFilter(since, until, connector_id, id_tag), errors


def count(db, where: SessionFilter) -> int:
    clause, params = where.where()
    return int(db.query(f"SELECT count(*) FROM sessions s{clause}", params)[0][0])


def page(db, where: SessionFilter, number: int, anonymous_tag: str, size: int = PAGE_SIZE) -> list[SessionRow]:
    """Page ``number`` (from 1) of the matching sessions, newest first."""
    clause, params = where.where()
    rows = db.query(f"{_SELECT}{clause} ORDER BY s.session_id DESC LIMIT ? OFFSET ?",
                    (*params, size, (number - 1) * size))
    return [_row(row, anonymous_tag) for row in rows]


def batch_after(db, where: SessionFilter, before_id: int | None, anonymous_tag: str, size: int = BATCH) -> list[SessionRow]:
    """The next ``size`` matching sessions with an id below ``before_id`` (None: from the newest)."""
    clause, params = where.where()
    if before_id is not None:
        clause = f"{clause} AND s.session_id < ?" if clause else " WHERE s.session_id < ?"
        params = [*params, before_id]
    rows = db.query(f"{_SELECT}{clause} ORDER BY s.session_id DESC LIMIT ?", (*params, size))
    return [_row(row, anonymous_tag) for row in rows]


def _row(row, anonymous_tag: str) -> SessionRow:
    stop = row["meter_stop_wh"] if row["meter_stop_wh"] is not None else row["last_meter_wh"]
    return SessionRow(row["session_id"], row["transaction_id"], row["connector_id"], row["id_tag"],
                      ANONYMOUS if row["id_tag"] == anonymous_tag else RFID,
                      datetime.fromisoformat(row["started_at"]),
                      datetime.fromisoformat(row["stopped_at"]) if row["stopped_at"] else None,
                      row["meter_start_wh"], stop, row["stop_reason"])


def _cell(value) -> str:
    """A CSV cell that a spreadsheet will not run as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def _stamp(moment: datetime | None) -> str:
    return "" if moment is None else moment.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def csv_lines(rows: list[SessionRow], *, header: bool = False) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    if header:
        writer.writerow(CSV_HEADER)
    for r in rows:
        writer.writerow([r.session_id, r.transaction_id if r.transaction_id is not None else "", r.connector_id,
                         _cell(r.id_tag), r.authentication, _stamp(r.started_at), _stamp(r.stopped_at),
                         "" if r.duration_s is None else r.duration_s, f"{r.energy_kwh:.3f}",
                         f"{r.meter_start_wh / 1000:.3f}",
                         "" if r.meter_stop_wh is None else f"{r.meter_stop_wh / 1000:.3f}", r.stop_reason or ""])
    return buffer.getvalue()

