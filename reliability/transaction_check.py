"""What the central system received of a station's transactions, checked against the station's
own records: nothing lost, nothing twice but the message in flight, every transaction closed
exactly once, MeterValues in order.

The central system's records are the wire truth (``CentralSystem.messages``). A message sent
again after a kill or a lost connection is the *same* message: same action, same payload
(its transactionId is filled in from the station's record at send time); such repeats are
counted as duplicates. A repeated StartTransaction gets a second transactionId from the
central system; the station keeps the last one it was answered, so a transaction is the group
of identical StartTransactions and the transactionIds they were given.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from firmware_sim.central_system import CALL, CALLRESULT

from .demo_station import read_db

__all__ = ["Received", "TransactionReport", "check_transactions", "journal_sent", "received"]

START, STOP, METER_VALUES = "StartTransaction", "StopTransaction", "MeterValues"
TRANSACTION_ACTIONS = (START, STOP, METER_VALUES)
REGISTER = "Energy.Active.Import.Register"


@dataclass
class Received:
    """One transaction CALL as the central system got it (first copy), and how often."""

    action: str
    payload: dict[str, Any]
    key: str
    seqs: list[int] = field(default_factory=list)  # CS record seq of every copy
    monotonic: list[float] = field(default_factory=list)  # when each copy arrived
    transaction_ids: list[int] = field(default_factory=list)  # StartTransaction: what the CS answered


@dataclass
class TransactionReport:
    transactions: int = 0
    messages: int = 0  # distinct transaction messages received
    duplicates: int = 0  # extra copies
    duplicate_times: list[float] = field(default_factory=list)  # arrival of each extra copy (monotonic)
    lost: int = 0
    problems: list[str] = field(default_factory=list)

    def problem(self, text: str, *, lost: bool = False) -> None:
        if lost:
            self.lost += 1
        self.problems.append(text)


def _key(action: str, payload: Any) -> str:
    return action + " " + json.dumps(payload, sort_keys=True, separators=(",", ":"))


def received(records: list[Any]) -> list[Received]:
    """The distinct transaction CALLs in order of first arrival, with their copies and answers."""
    by_key: dict[str, Received] = {}
    by_uid: dict[str, Received] = {}
    for record in records:
        if record.direction == "in" and record.message_type_id == CALL and record.action in TRANSACTION_ACTIONS:
            key = _key(record.action, record.payload)
            entry = by_key.get(key)
            if entry is None:
                entry = by_key[key] = Received(record.action, record.payload, key)
            entry.seqs.append(record.seq)
            entry.monotonic.append(record.monotonic)
            if record.unique_id is not None:
                by_uid[record.unique_id] = entry
        elif (record.direction == "out" and record.message_type_id == CALLRESULT and record.action == START
              and record.sent and isinstance(record.payload, dict)):
            entry = by_uid.get(record.unique_id)
            tid = record.payload.get("transactionId")
            if entry is not None and isinstance(tid, int):
                entry.transaction_ids.append(tid)
    return sorted(by_key.values(), key=lambda e: e.seqs[0])


def _register(meter_values: list[dict]) -> float | None:
    for entry in meter_values:
        for value in entry.get("sampledValue", []):
            if value.get("measurand", "Energy.Active.Import.Register") == REGISTER and value.get("format") != "SignedData":
                try:
                    number = float(value["value"])
                except (KeyError, ValueError):
                    return None
                return number * 1000 if value.get("unit") == "kWh" else number
    return None


def check_transactions(records: list[Any], data_dir: Path | None = None) -> TransactionReport:
    """Check the central system's records (and, given ``data_dir`` of a stopped station, its
    database and message journal). Returns counts and one line per problem."""
    report = TransactionReport()
    messages = received(records)
    report.messages = len(messages)
    for entry in messages:
        report.duplicates += len(entry.seqs) - 1
        report.duplicate_times += entry.monotonic[1:]
    starts = [m for m in messages if m.action == START]
    report.transactions = len(starts)
    start_of_tid: dict[int, Received] = {}
    for start in starts:
        if not start.transaction_ids:
            report.problem(f"StartTransaction {start.payload} was never answered by the central system")
        for tid in start.transaction_ids:
            start_of_tid[tid] = start
    stops: dict[int, list[Received]] = {}
    meter_values: dict[int, list[Received]] = {}
    order: dict[str, int] = {m.key: m.seqs[0] for m in messages}
    for entry in messages:
        if entry.action == START:
            continue
        tid = entry.payload.get("transactionId")
        if tid not in start_of_tid:
            report.problem(f"{entry.action} with transactionId {tid!r} that no StartTransaction was given: "
                           f"{entry.payload}")
            continue
        start = start_of_tid[tid]
        if order[start.key] > entry.seqs[0]:
            report.problem(f"{entry.action} of transaction {tid} arrived before its StartTransaction")
        (stops if entry.action == STOP else meter_values).setdefault(id(start), []).append(entry)
    for start in starts:
        own_stops = stops.get(id(start), [])
        label = f"transaction {start.transaction_ids} (connector {start.payload.get('connectorId')}, " \
                f"started {start.payload.get('timestamp')})"
        if not own_stops:
            report.problem(f"{label} has no StopTransaction", lost=True)
            continue
        if len(own_stops) > 1:
            report.problem(f"{label} has {len(own_stops)} different StopTransactions: "
                           f"{[s.payload for s in own_stops]}")
        stop = own_stops[0]
        used = stop.payload.get("transactionId")
        begin, end = float(start.payload["meterStart"]), float(stop.payload["meterStop"])
        if end < begin:
            report.problem(f"{label}: meterStop {end} < meterStart {begin}")
        if stop.payload.get("timestamp", "") < start.payload.get("timestamp", ""):
            report.problem(f"{label}: StopTransaction stamped before its start")
        last_times: dict[str, str] = {}  # per reading context: periodic and clock-aligned are stamped differently
        last_energy = begin
        for mv in meter_values.get(id(start), []):
            if mv.payload.get("transactionId") != used:
                report.problem(f"{label}: MeterValues with transactionId {mv.payload.get('transactionId')}, "
                               f"its StopTransaction with {used}")
            if order[mv.key] > order[stop.key]:
                report.problem(f"{label}: MeterValues arrived after its StopTransaction")
            for value in mv.payload.get("meterValue", []):
                stamp = value.get("timestamp", "")
                context = (value.get("sampledValue") or [{}])[0].get("context", "Sample.Periodic")
                last = last_times.get(context, start.payload["timestamp"])
                if stamp < last:
                    report.problem(f"{label}: {context} MeterValues out of order ({stamp} after {last})")
                last_times[context] = max(last, stamp)
            energy = _register(mv.payload.get("meterValue", []))
            if energy is not None:
                if energy < last_energy - 0.5:
                    report.problem(f"{label}: energy went back from {last_energy} to {energy} Wh")
                if energy > end + 1.0:
                    report.problem(f"{label}: MeterValues {energy} Wh above its meterStop {end}")
                last_energy = max(last_energy, energy)
        if max(last_times.values(), default="") > stop.payload.get("timestamp", ""):
            report.problem(f"{label}: MeterValues stamped after the StopTransaction")
    if data_dir is not None:
        _check_station(report, messages, start_of_tid, data_dir)
    return report


def _check_station(report: TransactionReport, messages: list[Received], start_of_tid: dict[int, Received],
                   data_dir: Path) -> None:
    """The stopped station's own records against what arrived."""
    for (count,) in read_db(data_dir, "SELECT count(*) FROM outbox"):
        if count:
            report.problem(f"{count} messages still in the station's outbox", lost=True)
    for (count,) in read_db(data_dir, "SELECT count(*) FROM outbox_dead_letters"):
        if count:
            report.problem(f"{count} messages parked as dead letters", lost=True)
    sessions = read_db(data_dir, "SELECT s.session_id, s.connector_id, s.stopped_at, s.stop_reason, t.transaction_id "
                                 "FROM sessions s LEFT JOIN ocpp_transactions t USING (session_id) ORDER BY 1")
    stop_tids = {m.payload.get("transactionId") for m in messages if m.action == STOP}
    starts = {id(s) for s in start_of_tid.values()}
    if len(sessions) != len(starts):
        report.problem(f"the station has {len(sessions)} sessions, the central system {len(starts)} transactions")
    for session_id, connector_id, stopped_at, reason, tid in sessions:
        if stopped_at is None:
            report.problem(f"session {session_id} is still open after the clean stop")
        if tid is None:
            report.problem(f"session {session_id} (connector {connector_id}) never got a transactionId", lost=True)
        elif tid not in start_of_tid:
            report.problem(f"session {session_id}: transactionId {tid} unknown to the central system", lost=True)
        elif tid not in stop_tids:
            report.problem(f"session {session_id} (transaction {tid}, {reason}): no StopTransaction arrived", lost=True)
    keys = {m.key for m in messages}
    for action, payload in journal_sent(data_dir):
        if _key(action, payload) not in keys:
            report.problem(f"the station's journal says it sent {action} {payload}; the central system never got it",
                           lost=True)


def journal_sent(data_dir: Path) -> list[tuple[str, dict]]:
    """The transaction CALLs the station's OCPP message journal says it sent (both files)."""
    sent = []
    for name in ("ocpp-journal.log.1", "ocpp-journal.log"):
        path = data_dir / name
        if not path.exists():
            continue
        for line in path.read_text(errors="replace").splitlines():
            parts = line.split(" ", 2)
            if len(parts) != 3 or parts[1] != "->":
                continue
            try:
                frame = json.loads(parts[2])
            except ValueError:
                continue  # a line cut by the kill
            if isinstance(frame, list) and len(frame) == 4 and frame[0] == CALL and frame[2] in TRANSACTION_ACTIONS:
                sent.append((frame[2], frame[3]))
    return sent
