"""The station's transaction messages: StartTransaction, MeterValues, StopTransaction.

The core's sessions become OCPP transactions here. Every transaction message goes through the
outbox (durable, in order, transactionId filled in at send time); this module decides what the
messages say and when they are made.

Wiring (daemon / OCPP client)
-----------------------------
::

    transactions = Transactions(core, store, outbox, clock=..., sleep=..., signed=..., send_direct=...)
    core.start()                      # AFTER the constructor: see below
    ... supervisor runs transactions.run()   (the periodic and clock-aligned timers)
    ... outbox.run(call, transactions.on_answer)    (StartTransaction.conf idTagInfo)
    ... TriggerMessage MeterValues: transactions.triggered_meter_values(connector_id)

* The bus subscriptions are made in ``__init__``. **Construct Transactions before
  ``core.start()``**: ``start()`` closes the sessions a power cut left open and publishes their
  SessionEnded (reason PowerLoss) right away; a later subscriber would miss them and the
  backend would never get those StopTransactions.
* ``run()`` only drives the timers. Start/Stop messages are enqueued from the bus handlers,
  synchronously, whether or not ``run()`` is running.
* ``send_direct(action, payload)`` (async, optional) sends a message that is not a transaction
  message: the clock-aligned MeterValues of a connector without a session (OCPP sends them
  without transactionId, so they are not queued; lost while offline). It must raise (e.g.
  ConnectionLost) or drop the message while the station is not registered. Without it, idle
  connectors send no clock-aligned values.

Decisions
---------
* **StartTransaction** {connectorId, idTag, meterStart (whole Wh), timestamp, reservationId if
  the session used a reservation}, enqueued with the session id at SessionStarted.
* **Transaction.Begin / Transaction.End** values are *not* sent as MeterValues; they go into
  StopTransaction.transactionData (what backends read; OCPP allows both). Their register value
  is the session's own meterStart / meterStop; the other measurands come from the connector's
  latest MeterSample (left out while the meter is offline). Begin's Current.Offered /
  Power.Offered are the core's first offer of the session.
* **Periodic** (MeterValueSampleInterval s, 0 = off): from the session's start, every interval
  (no drift; missed ticks are skipped, not replayed), MeterValues with context Sample.Periodic
  and the MeterValuesSampledData measurands, stamped with the tick time (the latest sample is
  at most one meter poll old). Energy.Active.Import.Interval = Wh since the previous tick (the
  first: since meterStart). The same tick records the StopTxnSampledData values for
  transactionData.
* **Clock-aligned** (ClockAlignedDataInterval s, 0 = off): the day is divided from local
  midnight of the TimeZone key (absolute seconds from midnight: on a daylight-saving day the
  last interval before midnight is shorter or longer; every day starts again at midnight). At
  the end of each interval, for every connector: MeterValues with context Sample.Clock and the
  MeterValuesAlignedData measurands, **stamped with the interval start** and sent at its end
  (OCPP-NOTES §5), reading the meter at the end. Energy.Active.Import.Interval = Wh of the
  interval (left out for an interval whose start this process did not see: the first after
  start-up or after a change of the interval). A connector in a session sends through the
  outbox (with transactionId); the others through ``send_direct``. No connectorId 0 values:
  every meter belongs to one connector. A session also records StopTxnAlignedData values.
* **transactionData is bounded**: at most ``max_data_entries`` MeterValues (default 48) of
  periodic/aligned values per session, besides Begin and End. When full, every second kept
  entry is dropped and from then on only every 2nd (4th, ...) tick is kept: the first entry, an
  even spread over the session, and always the latest one remain. Begin and End come first and
  last; the others in the order they were taken. No transactionData when StopTxnSampledData and
  StopTxnAlignedData are both empty (or nothing was recorded).
* **StopTransaction** {meterStop (whole Wh), timestamp, idTag = the idTag that stopped it
  (left out when nobody presented one: EV disconnected, reset, power loss...), reason (left
  out when Local), transactionData}, enqueued with the session id when the session is closed:
  inside the SQLite transaction that closes it (``SessionStore.on_stop``; a core without one:
  at SessionEnded), so the close and the queued StopTransaction (or its journal entry while it
  waits for a signed reading) are on disk together or not at all. When storage fails, the
  close is rolled back with it; the core then ends the session in memory and publishes
  SessionEnded, and the StopTransaction is kept in memory and queued again every
  ``UNQUEUED_RETRY_S`` until storage takes it (lost only if the process dies meanwhile).
* **Signed readings** (``signed``: a SignedMeterSource; connectors whose meter ``signs``): fetched at SessionStarted
  (Transaction.Begin) and SessionEnded (Transaction.End) and added as SignedData next to the
  Raw register value of Begin/End (so only when StopTxnSampledData has
  Energy.Active.Import.Register, the default). Waiting for the End reading (at most
  ``signed_timeout`` s) delays the StopTransaction; meanwhile the unsigned StopTransaction is
  journaled in station_meta (in the commit that closes the session) and enqueued at the next
  start should the process die (queueing it and clearing the journal are one commit). When
  ``run()`` is not running (shutdown) or the stop is a PowerLoss (the reading now is not the
  session's end), the StopTransaction goes out at once without the End signature.
* A stop of a session whose StartTransaction this process did not enqueue (a power cut between
  the session's start and its StartTransaction) first enqueues that StartTransaction, unless it
  is queued, confirmed or parked.
* **Settings apply at once**: a new MeterValueSampleInterval restarts every session's periodic
  timer from now; a new ClockAlignedDataInterval or TimeZone restarts the clock grid; the
  measurand lists are read whenever values are made.
* **Not Accepted StartTransaction.conf** (Blocked, Expired, Invalid, ConcurrentTx): ``on_answer``
  calls ``core.deauthorize(connector)`` if the transaction's session is still running there;
  the core then stops it (StopTransactionOnInvalidId, reason DeAuthorized) or stops the energy.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import zoneinfo
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, time, timedelta
from typing import Any

from ..config.store import Change, ConfigStore
from ..core.events import MeterSampled, OutputsChanged, SessionEnded, SessionStarted
from ..core.sessions import Session
from ..storage import StorageError
from .meter_values import REGISTER, SignedMeterSource, meter_value, sampled_values, signed_value, wh
from .timestamps import ocpp_time

__all__ = ["MAX_DATA_ENTRIES", "SIGNED_TIMEOUT_S", "Transactions", "aligned_interval"]

log = logging.getLogger("stationd.ocpp.transactions")

START, STOP, METER_VALUES = "StartTransaction", "StopTransaction", "MeterValues"
SAMPLE_INTERVAL = "MeterValueSampleInterval"
ALIGNED_INTERVAL = "ClockAlignedDataInterval"
SAMPLED_DATA, ALIGNED_DATA = "MeterValuesSampledData", "MeterValuesAlignedData"
STOP_SAMPLED, STOP_ALIGNED = "StopTxnSampledData", "StopTxnAlignedData"
TIME_ZONE = "TimeZone"
PERIODIC, ALIGNED = "periodic", "aligned"  # the two kinds of transactionData entries
WATCHED = (SAMPLE_INTERVAL, ALIGNED_INTERVAL, TIME_ZONE)

MAX_DATA_ENTRIES = 48  # periodic + aligned MeterValues kept per session for transactionData
SIGNED_TIMEOUT_S = 10.0  # a backstop: the source gives up on its own (SignedMeter sign_timeout 3 s)
MAX_SLEEP_S = 60.0  # the timers look at the wall clock at least this often (clock set by NTP)
PENDING_STOPS_META = "ocpp.pending_stops"  # StopTransactions waiting for a signed End reading
UNQUEUED_RETRY_S = 5.0  # a StopTransaction storage refused is queued again this often
STORAGE_ERRORS = (sqlite3.Error, StorageError, OSError)


def aligned_interval(now: datetime, seconds: int, tz: zoneinfo.ZoneInfo | Any = UTC) -> tuple[datetime, datetime]:
    """The clock-aligned interval [start, end) holding ``now`` (UTC datetimes): the local day
    of ``tz`` divided into ``seconds`` from midnight; the last interval ends at midnight."""
    local = now.astimezone(tz)
    midnight = datetime.combine(local.date(), time(0), tzinfo=tz).astimezone(UTC)
    if midnight > now:  # a zone whose midnight is skipped by a DST change
        midnight = datetime.combine(local.date() - timedelta(days=1), time(0), tzinfo=tz).astimezone(UTC)
    next_midnight = datetime.combine(local.date() + timedelta(days=1), time(0), tzinfo=tz).astimezone(UTC)
    elapsed = (now.astimezone(UTC) - midnight).total_seconds()
    start = midnight + timedelta(seconds=seconds * int(elapsed // seconds))
    return start, min(start + timedelta(seconds=seconds), next_midnight)


def _delta(energy: float | None, before: float | None) -> float | None:
    """Wh since ``before``; None without both readings or when the register went backwards
    (a replaced meter: the interval's energy is unknown)."""
    if energy is None or before is None or energy < before:
        return None
    return energy - before


class _EnergyAt:
    """A meter sample (or none) with the register value a session recorded."""

    def __init__(self, sample: Any, energy_import_wh: float | None):
        self._sample = sample
        self.energy_import_wh = energy_import_wh

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sample, name, None) if self._sample is not None else None


@dataclass(frozen=True)
class _Snapshot:
    """Everything a set of SampledValues is made from, taken at one moment."""

    timestamp: datetime
    sample: Any
    offered_a: float | None
    phases: int
    temperature_c: float | None

    def values(self, measurands: tuple[str, ...], context: str, interval_energy: float | None = None) -> list[dict]:
        return sampled_values(self.sample, measurands, context, offered_a=self.offered_a, phases=self.phases,
                              temperature_c=self.temperature_c, interval_energy=interval_energy)


class _Thinned:
    """At most ``limit`` entries (+ the latest): the first, an even spread, the last."""

    def __init__(self, limit: int):
        self.limit = max(2, limit)
        self.kept: list[Any] = []
        self.latest: Any = None
        self.stride = 1
        self.count = 0

    def add(self, entry: Any) -> None:
        self.latest = entry
        if self.count % self.stride == 0:
            self.kept.append(entry)
            if len(self.kept) > self.limit:
                self.kept = self.kept[::2]
                self.stride *= 2
        self.count += 1

    def items(self) -> list[Any]:
        if self.latest is None:
            return []
        return self.kept if self.kept and self.kept[-1] is self.latest else [*self.kept, self.latest]


@dataclass
class _Tx:
    session: Session
    begin: _Snapshot
    periodic_due: datetime | None = None
    periodic_mark: float | None = None  # register at the previous periodic tick
    begin_offer_pending: bool = True
    begin_signed: str | None = None
    begin_task: asyncio.Task | None = None
    data: _Thinned = field(default_factory=lambda: _Thinned(MAX_DATA_ENTRIES))


class Transactions:
    """Sessions → StartTransaction / MeterValues / StopTransaction in the outbox (module docstring)."""

    def __init__(self, core: Any, store: ConfigStore, outbox: Any, *,
                 clock: Callable[[], datetime] | None = None,
                 sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
                 signed: SignedMeterSource | None = None,
                 send_direct: Callable[[str, dict], Awaitable[Any]] | None = None,
                 max_data_entries: int = MAX_DATA_ENTRIES,
                 signed_timeout: float = SIGNED_TIMEOUT_S,
                 reporting: Callable[[], bool] = lambda: True):
        self.core, self.store, self.outbox = core, store, outbox
        # Whether there is a backend to tell (ServerMode Online): a stand-alone station keeps its
        # sessions in its own records only and queues no transaction messages.
        self._reporting = reporting
        self._clock = clock or core.clock
        self._sleep = sleep
        self._signed = signed
        self._send_direct = send_direct
        self._max_data_entries = max_data_entries
        self._signed_timeout = signed_timeout
        self._txs: dict[int, _Tx] = {}  # by session id
        self._started: set[int] = set()  # sessions whose StartTransaction this process enqueued
        self._samples: dict[int, Any] = {}  # the latest MeterSample of each connector
        self._aligned: tuple[datetime, datetime] | None = None  # the current clock-aligned interval
        self._aligned_marks: dict[int, tuple[datetime, float]] = {}  # connector → (interval start, Wh)
        self._wake = asyncio.Event()
        self._running = False
        self._tasks: set[asyncio.Task] = set()
        self._stopping: set[asyncio.Task] = set()
        core.bus.subscribe(self._session_started, SessionStarted)
        self._ended_in_store: set[int] = set()  # sessions whose stop was queued with their close
        self._unqueued: list[tuple[Session, dict]] = []  # StopTransactions storage did not take yet
        sessions = getattr(core, "sessions", None)
        if callable(getattr(sessions, "on_stop", None)):
            # in the very SQLite transaction that closes the session: a kill -9 or power cut
            # between the close and the queueing of its StopTransaction cannot lose it
            sessions.on_stop(self._session_closed)
        core.bus.subscribe(self._session_ended_event, SessionEnded)
        core.bus.subscribe(self._meter_sampled, MeterSampled)
        core.bus.subscribe(self._outputs_changed, OutputsChanged)
        store.subscribe(self._setting_changed, names=WATCHED)
        self._recover_pending_stops()

    # ---- for the OCPP client ----------------------------------------------------------

    def on_answer(self, action: str, payload: dict, response: dict) -> None:
        """The outbox's answer hook: act on StartTransaction.conf idTagInfo."""
        if action != START or not isinstance(response, dict):
            return
        status = (response.get("idTagInfo") or {}).get("status")
        if status is None or status == "Accepted":
            return
        tid = response.get("transactionId")
        connector_id = payload.get("connectorId")
        session_id = self.outbox.session_for_transaction(tid) if isinstance(tid, int) else None
        connector = self.core.connectors.get(connector_id)
        session = connector.session if connector is not None else None
        if session is not None and session_id is None:  # not recorded: recognise it by its fields
            same = session.id_tag == payload.get("idTag") and ocpp_time(session.started_at) == payload.get("timestamp")
        else:
            same = session is not None and session.session_id == session_id
        log.warning("StartTransaction.conf: idTag %s of transaction %s on connector %s is %s%s",
                    payload.get("idTag"), tid, connector_id, status,
                    "; de-authorizing the session" if same else " (its session has already ended)")
        if same:
            self.core.deauthorize(connector_id)

    def triggered_meter_values(self, connector_id: int | None = None) -> list[dict]:
        """MeterValues payloads (context Trigger, MeterValuesSampledData) for TriggerMessage:
        one connector, or every connector for None/0. A connector in a transaction with a
        known transactionId gets it. Connectors without any value are left out."""
        ids = sorted(self.core.connectors) if not connector_id else [connector_id]
        measurands = self._measurands(SAMPLED_DATA)
        now = self._clock()
        payloads = []
        for cid in ids:
            values = self._snapshot(cid, now).values(measurands, "Trigger")
            if not values:
                continue
            payload: dict[str, Any] = {"connectorId": cid, "meterValue": [meter_value(now, values)]}
            session = self.core.connectors[cid].session
            tid = self.outbox.transaction_id(session.session_id) if session is not None else None
            if tid is not None:
                payload["transactionId"] = tid
            payloads.append(payload)
        return payloads

    # ---- the timers -----------------------------------------------------------------------

    def use_signed_readings(self, source: SignedMeterSource | None) -> None:
        """Signed meter readings for Transaction.Begin/End (known once the meters are built)."""
        self._signed = source

    async def run(self) -> None:
        """Periodic and clock-aligned MeterValues, for ever (cancel to stop)."""
        self._running = True
        try:
            while True:
                self._wake.clear()
                now = self._clock()
                self._fire(now)
                due = self._next_due()
                delay = MAX_SLEEP_S if due is None else min(MAX_SLEEP_S, (due - self._clock()).total_seconds())
                if delay > 0:
                    await self._sleep_or_wake(delay)
        finally:
            self._running = False
            pending = list(self._stopping | self._tasks)
            for task in pending:
                task.cancel()  # a StopTransaction waiting for its signature goes out without
            await asyncio.gather(*pending, return_exceptions=True)

    async def _sleep_or_wake(self, delay: float) -> None:
        sleeper = asyncio.ensure_future(self._sleep(delay))
        waker = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleeper, waker):
                task.cancel()
            await asyncio.gather(sleeper, waker, return_exceptions=True)

    def _next_due(self) -> datetime | None:
        dues = [tx.periodic_due for tx in self._txs.values() if tx.periodic_due is not None]
        if self._unqueued:
            dues.append(self._clock() + timedelta(seconds=UNQUEUED_RETRY_S))
        if self._aligned is not None:
            dues.append(self._aligned[1])
        return min(dues, default=None)

    def _fire(self, now: datetime) -> None:
        self._retry_unqueued()
        interval = self._int(SAMPLE_INTERVAL)
        for tx in list(self._txs.values()):
            if interval <= 0:
                tx.periodic_due = None
            if tx.periodic_due is None or now < tx.periodic_due:
                continue
            due = tx.periodic_due
            try:
                self._periodic(tx, due if now - due < timedelta(seconds=interval) else now)
            except Exception:
                log.exception("periodic MeterValues of session %d failed", tx.session.session_id)
            missed = int((now - due).total_seconds() // interval)  # skipped, not replayed
            tx.periodic_due = due + timedelta(seconds=interval * (missed + 1))
        seconds = self._int(ALIGNED_INTERVAL)
        if seconds <= 0:
            self._aligned = None
            self._aligned_marks.clear()
            return
        current = aligned_interval(now, seconds, self._zone())
        if self._aligned is not None and now >= self._aligned[1]:
            ended = aligned_interval(current[0] - timedelta(microseconds=1), seconds, self._zone())
            try:
                self._clock_aligned(ended[0], current[0], now)
            except Exception:
                log.exception("clock-aligned MeterValues failed")
        elif self._aligned is None:
            self._aligned_marks.clear()  # a new grid: no interval start was seen yet
        self._aligned = current

    def _periodic(self, tx: _Tx, stamp: datetime) -> None:
        cid = tx.session.connector_id
        snapshot = self._snapshot(cid, stamp)
        energy = getattr(snapshot.sample, "energy_import_wh", None) if snapshot.sample is not None else None
        interval = _delta(energy, tx.periodic_mark)
        values = snapshot.values(self._measurands(SAMPLED_DATA), "Sample.Periodic", interval)
        if values:
            self.outbox.enqueue(METER_VALUES, {"connectorId": cid, "meterValue": [meter_value(stamp, values)]},
                                session_id=tx.session.session_id)
        stop_measurands = self._measurands(STOP_SAMPLED)
        if stop_measurands:
            values = snapshot.values(stop_measurands, "Sample.Periodic", interval)
            if values:
                tx.data.add((PERIODIC, meter_value(stamp, values)))
        if energy is not None:
            tx.periodic_mark = energy

    def _clock_aligned(self, start: datetime, end: datetime, now: datetime) -> None:
        """The interval [start, end) is over: its values, stamped ``start``, for every connector."""
        measurands = self._measurands(ALIGNED_DATA)
        stop_measurands = self._measurands(STOP_ALIGNED)
        sessions = {tx.session.connector_id: tx for tx in self._txs.values()}
        for cid in sorted(self.core.connectors):
            snapshot = self._snapshot(cid, now)
            energy = getattr(snapshot.sample, "energy_import_wh", None) if snapshot.sample is not None else None
            mark = self._aligned_marks.pop(cid, None)
            interval = _delta(energy, mark[1]) if mark is not None and mark[0] == start else None
            if energy is not None:
                self._aligned_marks[cid] = (end, energy)
            tx = sessions.get(cid)
            if measurands:
                values = snapshot.values(measurands, "Sample.Clock", interval)
                if values:
                    payload = {"connectorId": cid, "meterValue": [meter_value(start, values)]}
                    if tx is not None:
                        self.outbox.enqueue(METER_VALUES, payload, session_id=tx.session.session_id)
                    elif self._send_direct is not None:
                        self._spawn(self._direct(METER_VALUES, payload))
            if tx is not None and stop_measurands:
                values = snapshot.values(stop_measurands, "Sample.Clock", interval)
                if values:
                    tx.data.add((ALIGNED, meter_value(start, values)))

    async def _direct(self, action: str, payload: dict) -> None:
        assert self._send_direct is not None
        try:
            await self._send_direct(action, payload)
        except Exception as exc:  # noqa: BLE001 - not a transaction message: lost while offline
            log.debug("clock-aligned %s of connector %s not sent: %s", action, payload.get("connectorId"), exc)

    # ---- the bus ----------------------------------------------------------------------------

    def _meter_sampled(self, event: MeterSampled) -> None:
        self._samples[event.connector_id] = event.sample

    def _outputs_changed(self, event: OutputsChanged) -> None:
        for tx in self._txs.values():
            if tx.session.connector_id == event.connector_id and tx.begin_offer_pending:
                tx.begin_offer_pending = False
                tx.begin = replace(tx.begin, offered_a=event.offer_a)

    def _session_started(self, event: SessionStarted) -> None:
        if not self._reporting():
            return
        session: Session = event.session
        payload: dict[str, Any] = {"connectorId": session.connector_id, "idTag": session.id_tag,
                                   "meterStart": wh(session.meter_start_wh), "timestamp": ocpp_time(session.started_at)}
        if event.reservation_id is not None:
            payload["reservationId"] = event.reservation_id
        queued = self.outbox.enqueue(START, payload, session_id=session.session_id)
        if queued is not None:
            self._started.add(session.session_id)
        snapshot = self._snapshot(session.connector_id, session.started_at, session.meter_start_wh)
        tx = _Tx(session, snapshot, periodic_mark=session.meter_start_wh, data=_Thinned(self._max_data_entries))
        interval = self._int(SAMPLE_INTERVAL)
        if interval > 0:
            tx.periodic_due = session.started_at + timedelta(seconds=interval)
        self._txs[session.session_id] = tx
        if self._signs(session.connector_id):
            tx.begin_task = self._spawn(self._fetch_begin_signature(tx))
        self._wake.set()

    def _session_closed(self, session: Session) -> None:
        """SessionStore.on_stop: inside the commit that closes the session (a storage error
        raised here rolls the close back; the core then publishes SessionEnded all the same)."""
        tx = self._txs.get(session.session_id)
        try:
            self._session_ended(SessionEnded(session), strict=True)
        except BaseException:
            if tx is not None:
                self._txs[session.session_id] = tx  # for the SessionEnded that follows
            raise
        self._ended_in_store.add(session.session_id)

    def _session_ended_event(self, event: SessionEnded) -> None:
        """SessionEnded on the bus: only a stop the store could not record (storage failure)
        or a core without ``SessionStore.on_stop`` is still to be queued here."""
        sid = event.session.session_id
        if sid in self._ended_in_store:
            self._ended_in_store.discard(sid)
            if self._close_recorded(sid):
                return
            log.error("session %d: its close was not committed; queueing its StopTransaction again", sid)
        self._session_ended(event)

    def _close_recorded(self, session_id: int) -> bool:
        """Whether the session's close (and the StopTransaction queued with it) was committed."""
        try:
            rows = self.core.sessions.db.query("SELECT stopped_at FROM sessions WHERE session_id = ?", (session_id,))
        except STORAGE_ERRORS:
            return False
        return bool(rows) and rows[0][0] is not None

    def _retry_unqueued(self) -> None:
        while self._unqueued:
            session, payload = self._unqueued[0]
            try:
                self._enqueue_stop(session, payload, strict=True)
            except Exception as exc:  # noqa: BLE001 - storage still failing: next tick
                log.debug("StopTransaction of session %d still not queued: %s", session.session_id, exc)
                return
            self._unqueued.pop(0)

    def _signs(self, connector_id: int) -> bool:
        """Whether the connector's meter signs its readings (then the StopTransaction waits for
        the signed Transaction.End reading, journaled meanwhile)."""
        return self._signed is not None and self._running and self._signed.signs(connector_id)

    async def _fetch_begin_signature(self, tx: _Tx) -> None:
        tx.begin_signed = await self._signed_reading(tx.session.connector_id, "Transaction.Begin")

    def _session_ended(self, event: SessionEnded, *, strict: bool = False) -> None:
        if not self._reporting():
            return
        session: Session = event.session
        tx = self._txs.pop(session.session_id, None)
        self._wake.set()
        cid = session.connector_id
        live = tx is not None and session.stop_reason != "PowerLoss"
        if tx is None:
            tx = _Tx(session, _Snapshot(session.started_at, _EnergyAt(None, session.meter_start_wh), None, 1, None),
                     periodic_mark=session.meter_start_wh)
        if session.session_id not in self._started:
            self._ensure_started(session)
        end = (self._snapshot(cid, session.stopped_at, session.meter_stop_wh) if live else
               _Snapshot(session.stopped_at, _EnergyAt(None, session.meter_stop_wh), None, 1, None))
        unsigned = self._stop_payload(tx, session, end, None)
        if not (live and self._signs(cid)):  # queued now, with the close
            self._enqueue_stop(session, unsigned, strict=strict)
            if tx.begin_task is not None:
                tx.begin_task.cancel()
            return
        self._journal(session.session_id, unsigned)
        task = self._spawn(self._stop_with_signature(tx, session, end, unsigned))
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)

    async def _stop_with_signature(self, tx: _Tx, session: Session, end: _Snapshot, unsigned: dict) -> None:
        payload = unsigned
        try:
            if tx.begin_task is not None and not tx.begin_task.done():
                await asyncio.wait({tx.begin_task}, timeout=self._signed_timeout)
            signature = await self._signed_reading(session.connector_id, "Transaction.End")
            payload = self._stop_payload(tx, session, end, signature)
        finally:  # also when cancelled (shutdown): the StopTransaction must go out
            self._enqueue_stop(session, payload)

    def _enqueue_stop(self, session: Session, payload: dict, *, strict: bool = False) -> None:
        """Queue it; ``strict``: a storage error is raised (the caller rolls back), else the
        StopTransaction is kept in memory and queued again at every timer tick until it is."""
        try:
            with self._atomic():  # queued and out of the journal together: never both, never neither
                self.outbox.enqueue(STOP, payload, session_id=session.session_id)
                self._journal(session.session_id, None)
        except STORAGE_ERRORS as exc:
            if strict:
                raise
            log.error("StopTransaction of session %d cannot be queued yet (%s); kept in memory and tried "
                      "again", session.session_id, exc)
            self._unqueued.append((session, payload))
            self._wake.set()
            return
        log.info("StopTransaction of session %d queued (%s)", session.session_id, session.stop_reason)

    def _stop_payload(self, tx: _Tx, session: Session, end: _Snapshot, end_signed: str | None) -> dict:
        payload: dict[str, Any] = {"meterStop": wh(session.meter_stop_wh), "timestamp": ocpp_time(session.stopped_at)}
        if session.stop_id_tag:
            payload["idTag"] = session.stop_id_tag
        if session.stop_reason and session.stop_reason != "Local":
            payload["reason"] = session.stop_reason
        sampled, aligned = self._measurands(STOP_SAMPLED), self._measurands(STOP_ALIGNED)
        if not sampled and not aligned:
            return payload
        entries: list[dict] = []
        if sampled:
            begin = tx.begin.values(sampled, "Transaction.Begin")
            if tx.begin_signed and any(v["measurand"] == REGISTER for v in begin):
                begin.append(signed_value(tx.begin_signed, "Transaction.Begin"))
            if begin:
                entries.append(meter_value(tx.begin.timestamp, begin))
        entries.extend(entry for kind, entry in tx.data.items() if (sampled if kind == PERIODIC else aligned))
        if sampled:
            interval = _delta(getattr(end.sample, "energy_import_wh", None), tx.periodic_mark)
            values = end.values(sampled, "Transaction.End", interval)
            if end_signed and any(v["measurand"] == REGISTER for v in values):
                values.append(signed_value(end_signed, "Transaction.End"))
            if values:
                entries.append(meter_value(end.timestamp, values))
        if entries:
            payload["transactionData"] = entries
        return payload

    def _ensure_started(self, session: Session) -> None:
        """A StartTransaction for a session this process did not see start (module docstring)."""
        sid = session.session_id
        try:
            if self.outbox.transaction_id(sid) is not None:
                return
            if any(m.action == START and m.session_id == sid for m in self.outbox.pending("transaction")):
                return
            if any(d.action == START and d.session_id == sid for d in self.outbox.dead_letters()):
                return
        except AttributeError:  # an outbox without the queries: assume the start was queued
            return
        log.warning("session %d has no StartTransaction in the outbox; queueing it before its stop", sid)
        self.outbox.enqueue(START, {"connectorId": session.connector_id, "idTag": session.id_tag,
                                    "meterStart": wh(session.meter_start_wh),
                                    "timestamp": ocpp_time(session.started_at)}, session_id=sid)
        self._started.add(sid)

    # ---- signed readings and the journal of StopTransactions waiting for them -----------------

    async def _signed_reading(self, connector_id: int, context: str) -> str | None:
        assert self._signed is not None
        try:
            async with asyncio.timeout(self._signed_timeout):
                return await self._signed.signed_reading(connector_id, context)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the Raw values go out without the signature
            log.warning("no signed %s reading of connector %d: %s", context, connector_id,
                        exc.__class__.__name__ if isinstance(exc, TimeoutError) else exc)
            return None

    def _journal(self, session_id: int, payload: dict | None) -> None:
        if self._signed is None:
            return
        pending = dict(self.core.meta.get(PENDING_STOPS_META, {}) or {})
        if payload is None:
            if pending.pop(str(session_id), None) is None:
                return
        else:
            pending[str(session_id)] = payload
        self.core.meta.set(PENDING_STOPS_META, pending)

    def _recover_pending_stops(self) -> None:
        meta = getattr(self.core, "meta", None)
        pending = meta.get(PENDING_STOPS_META, {}) if meta is not None else {}
        if not pending:
            return
        with self._atomic():
            for session_id, payload in sorted(pending.items(), key=lambda item: int(item[0])):
                log.warning("StopTransaction of session %s was waiting for its signed reading when stationd "
                            "stopped; queueing it without", session_id)
                self.outbox.enqueue(STOP, payload, session_id=int(session_id))
            meta.set(PENDING_STOPS_META, {})

    def _atomic(self) -> Any:
        """One SQLite transaction around the outbox and the journal of pending stops (they share
        the station database), so a crash cannot come between queueing a StopTransaction and
        taking it out of the journal."""
        meta = getattr(self.core, "meta", None)
        db = getattr(meta, "db", None)
        return db.transaction() if db is not None else contextlib.nullcontext()

    # ---- helpers ------------------------------------------------------------------------------

    def _snapshot(self, connector_id: int, timestamp: datetime, energy_wh: float | None = None) -> _Snapshot:
        """The connector's values now; ``energy_wh`` replaces the register (a session's own)."""
        connector = self.core.connectors[connector_id]
        sample = self._samples.get(connector_id) if connector.meter_online else None
        if energy_wh is not None:
            sample = _EnergyAt(sample, energy_wh)
        return _Snapshot(timestamp, sample, connector.outputs.offer_a, connector.phases,
                         connector.controller.temperature_c)

    def _measurands(self, key: str) -> tuple[str, ...]:
        return tuple(self.store.get(key) or ())

    def _int(self, key: str) -> int:
        return int(self.store.get(key) or 0)

    def _zone(self) -> Any:
        name = self.store.get(TIME_ZONE) or "UTC"
        try:
            return UTC if name == "UTC" else zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            log.warning("unknown TimeZone %r; clock-aligned data uses UTC", name)
            return UTC

    def _setting_changed(self, change: Change) -> None:
        if change.key == SAMPLE_INTERVAL:
            interval = self._int(SAMPLE_INTERVAL)
            now = self._clock()
            for tx in self._txs.values():
                tx.periodic_due = now + timedelta(seconds=interval) if interval > 0 else None
        else:
            self._aligned = None  # a new grid from now
        self._wake.set()

    def _spawn(self, coro: Awaitable[Any]) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task
