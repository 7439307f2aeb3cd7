"""The outbox: OCPP messages that must not be lost, kept in SQLite until their answer arrives.

Transaction messages (StartTransaction, StopTransaction, MeterValues with a transactionId) and
critical SecurityEventNotifications go through here; nothing else does (StatusNotification,
Heartbeat, ... are sent directly and may overtake the outbox). Every transaction message goes
through the outbox even while online, so that new ones wait behind the queued ones (TC_036).

Usage (by the connection code)::

    outbox = Outbox(db, attempts=lambda: cfg.TransactionMessageAttempts,
                    retry_interval=lambda: cfg.TransactionMessageRetryInterval)
    outbox.enqueue("StartTransaction", {...}, session_id=session.session_id)   # durable on return
    outbox.enqueue("MeterValues", {"connectorId": 1, "meterValue": [...]}, session_id=...)
    # after BootNotification was accepted, for the life of the connection:
    await outbox.run(rpc.call, on_answer)            # returns when the connection is lost
    # or, step by step: await outbox.deliver(rpc.call, on_answer)  (safe to call concurrently)

Rules
-----
* **Durable before sent.** ``enqueue`` commits with the database's durability (the daemon's
  database is ``synchronous=FULL``: on disk before ``enqueue`` returns).
* **Two independent FIFOs** in one table (column ``queue``): ``transaction`` and ``security``.
  Each is strictly ordered (id order); neither waits for the other (a transaction message
  waiting to be retried does not hold back a security event, and the other way round). There
  is still only **one CALL in flight** at a time: the two FIFOs take turns on one send lock.
* **transactionId.** A StartTransaction is enqueued with the core's ``session_id``. Its
  ``.conf`` transactionId is recorded for that session (table ``ocpp_transactions``) in the
  same SQLite transaction that removes the message. MeterValues/StopTransaction given a
  ``session_id`` are stored *without* transactionId; it is filled in at send time from that
  record. A StopTransaction whose StartTransaction is unconfirmed therefore simply waits
  behind it in the FIFO (across reconnects and restarts) and goes out with the real id. The
  outbox never invents a transactionId: ``-1`` or a missing id never reaches the wire.
* **Connection problems are not failures.** ``ConnectionLost``, ``CallTimeout`` (and
  ``ConnectFailed``) from ``send`` end the delivery and leave the message queued: it is sent
  again after reconnect (the message in flight may thus arrive twice; nothing else). They do
  not count as attempts: a message is never parked because the network was down.
* **Refusals are retried, then parked, never dropped.** A CALLERROR (any ``OcppError`` other
  than the above) or an unusable answer (not an object; a StartTransaction.conf without an
  integer transactionId) is a failed attempt. ``attempts()`` (TransactionMessageAttempts) is
  the total number of tries; between them the outbox waits ``retry_interval()`` x the number
  of failed attempts so far. The attempt count is persisted; a delivery interrupted while
  waiting resumes with the next try at once after reconnect. After the last failed attempt
  the message moves to ``outbox_dead_letters`` (with the last error, the attempt count, a
  reason, the time), an error is logged, ``on_parked`` is called, and delivery goes on with
  the next message. (A message found at its limit, e.g. after a crash right after its last
  attempt or a lowered TransactionMessageAttempts, is parked without another try.) Dead
  letters stay until someone acts on them (WebUI Diagnostics > Dead Letters: ``requeue`` sends
  them again at the end of their FIFO, ``discard`` deletes them, both logged); the outbox
  never resends them by itself.
* **A parked StartTransaction takes its session with it.** Its session can never get a
  transactionId, so its queued MeterValues/StopTransaction are parked at once with the reason
  "the StartTransaction of session N (message M) was parked ...", and so is any later message
  of that session when it reaches the head of the FIFO. A message whose session has no
  transactionId and no StartTransaction before it (a caller bug) is parked as well, with its
  own reason, instead of blocking the FIFO forever.

Removal durability (speed of the replay after a reconnect)
----------------------------------------------------------
Removing an answered message is the one write per message on the delivery path. With
``synchronous=FULL`` each removal is an fsync (0.13-3 ms on the development VM, depending on
other I/O; more on eMMC), which would cost a large part of a loopback round trip (~0.5 ms).
So by default:

* StartTransaction (removal + transactionId record), StopTransaction, parking, and the
  removal that empties a FIFO commit on the durable connection. A durable commit fsyncs the
  whole WAL, so it also makes every removal before it durable. In steady state (one message
  at a time) every removal is therefore durable.
* The other removals (MeterValues, security events during a backlog) commit on a second
  connection to the same file with ``synchronous=NORMAL``, and not between the answer and the
  next CALL but while that next CALL is in flight (the ``DELETE`` and its commit cost ~15-40 us,
  about a tenth of a loopback round trip; written then, they overlap the central system's
  turn). What makes this safe is the **acknowledgement file** ``station.db-outbox-ack``:
  before the next CALL is sent, the answered message is recorded there with one ``pwrite``
  (48 bytes per FIFO: its id and created_at; no fsync, ~2 us). Opening an ``Outbox`` removes
  (durably) the message that file names if it is still the head of its FIFO with the same id
  and created_at — the only case in which its removal was not written yet; a stale entry (its
  removal written; a file left from another database) matches nothing. So a *process* crash
  (kill -9, OOM, daemon restart) still sends again only the one message in flight. (At most
  one removal waits at a time: it is written before the next answer is taken in, before a
  message is parked, at the end of every delivery and on ``close``. ``pending_count`` and the
  WebUI's counts may include the message answered last for that moment.)
  The fast connection never checkpoints inline (a checkpoint fsyncs: milliseconds on the
  delivery path); to bound what a power cut can undo, a background thread fsyncs the WAL
  file once ``SYNC_EVERY`` such removals are unsynced (off the delivery path: the WAL is
  append-only, so the fsync makes every frame written before it durable) and checkpoints it
  (PASSIVE) every ``CHECKPOINT_EVERY_SYNCS``-th time; should it fall behind, every
  ``MAX_UNSYNCED``-th removal is made durable inline. A power cut / kernel crash can thus
  undo at most ``MAX_UNSYNCED - 1`` removals: those already delivered MeterValues/security
  events are then sent once more (duplicates, never loss; StartTransaction/StopTransaction
  are never in that window).
* Reading ahead (``PREFETCH`` rows and their ``json.loads``) is also done while a CALL is in
  flight. A message is stored in the wire form the ``check`` made of it, so ``send`` may skip
  copying and checking it again (``RpcEndpoint.call(..., checked=True)``).

``Outbox(..., durable_removal=True)`` makes every removal durable (one fsync per message).

Threading: ``deliver``/``run`` run on the event loop and do their SQLite calls inline (they are
short). ``enqueue`` and ``wake`` may also be called from another thread (the database is shared
behind its lock; the wake-up is handed to the loop).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sqlite3
import struct
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

from ..storage import Database
from .errors import CallError, CallTimeout, ConnectFailed, ConnectionLost, OcppError

__all__ = [
    "MAX_UNSYNCED", "QUEUE_OF_ACTION", "SECURITY", "SYNC_EVERY", "TRANSACTION", "DeadLetter", "Outbox",
    "QueuedMessage",
]

log = logging.getLogger(__name__)

TRANSACTION = "transaction"
SECURITY = "security"
QUEUES = (TRANSACTION, SECURITY)

START = "StartTransaction"
STOP = "StopTransaction"
METER_VALUES = "MeterValues"
SECURITY_EVENT = "SecurityEventNotification"

# Which FIFO an action goes through; actions not listed are not outbox messages.
QUEUE_OF_ACTION: dict[str, str] = {
    START: TRANSACTION,
    STOP: TRANSACTION,
    METER_VALUES: TRANSACTION,
    SECURITY_EVENT: SECURITY,
}
# Messages that carry their session's transactionId.
FOLLOWERS = frozenset({STOP, METER_VALUES})
# Removed with a durable commit always (a duplicate would matter to the backend).
DURABLE_REMOVAL = frozenset({START, STOP})
# Unsynced fast removals that start a background fsync of the WAL, and the most there may be
# before a removal is made durable inline (see module docstring).
SYNC_EVERY = 32
MAX_UNSYNCED = 256
# Rows read ahead per query on the delivery path; while a CALL is in flight, fewer at a time
# (what is read then should be done before the answer comes: ~4 us a row).
PREFETCH = 64
PREFETCH_IN_FLIGHT = 16
# Every this many background syncs of the WAL also checkpoint it (the fast connection does not).
CHECKPOINT_EVERY_SYNCS = 8
# A transactionId placeholder some stations send before the real one is known; never ours.
PLACEHOLDER_TRANSACTION_ID = -1

_NOT_CONNECTED = (ConnectionLost, CallTimeout, ConnectFailed)
# The acknowledgement file (module docstring): one slot per FIFO, the id and created_at of the
# message of that FIFO answered last. 48 bytes at offset 0 / 64: each slot in the first sector.
ACK_SUFFIX = "-outbox-ack"
_ACK = struct.Struct("<q40s")
_ACK_SLOT = {TRANSACTION: 0, SECURITY: 64}
_TID_CACHE_MAX = 4096

Send = Callable[[str, dict], Awaitable[dict]]
OnAnswer = Callable[[str, dict, dict], None]
OnParked = Callable[["DeadLetter"], None]

_COLUMNS = "id, queue, action, payload, session_id, created_at, attempts, last_error"
# The queue name is a literal so that SQLite can use the partial index of a FIFO (migration 3).
_HEAD_SQL = {queue: f"SELECT {_COLUMNS} FROM outbox WHERE queue = '{queue}' AND id > ? ORDER BY id LIMIT ?"
             for queue in QUEUES}


@dataclass(frozen=True, slots=True)
class QueuedMessage:
    """One message in the outbox. ``payload`` is as stored (without a session's transactionId)."""

    id: int
    queue: str
    action: str
    payload: dict[str, Any]
    session_id: int | None
    created_at: str
    attempts: int = 0
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A parked message: never sent successfully, kept for the WebUI."""

    id: int
    queue: str
    action: str
    payload: dict[str, Any]
    session_id: int | None
    created_at: str
    attempts: int
    last_error: str | None
    reason: str
    parked_at: str


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _is_transaction_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _dumps(payload: dict[str, Any]) -> str:
    return json.dumps(payload, separators=(",", ":"), allow_nan=False)


def _message(row: Any) -> QueuedMessage:
    return QueuedMessage(row[0], row[1], row[2], json.loads(row[3]), row[4], row[5], row[6], row[7])


def _describe(exc: BaseException) -> str:
    if isinstance(exc, CallError):
        return f"CALLERROR {exc.code}" + (f": {exc.description}" if exc.description else "")
    return f"{type(exc).__name__}: {exc}"


def _answer_problem(action: str, response: Any) -> str | None:
    """Why an answer cannot be used (then it counts as a failed attempt), or None."""
    if not isinstance(response, dict):
        return f"invalid {action}.conf: not an object ({type(response).__name__})"
    if action == START and not _is_transaction_id(response.get("transactionId")):
        return f"invalid StartTransaction.conf: transactionId {response.get('transactionId')!r} is not an integer"
    return None


class Outbox:
    """The durable FIFOs of outgoing transaction messages and security events (module docstring)."""

    def __init__(
        self,
        db: Database,
        *,
        attempts: Callable[[], int],
        retry_interval: Callable[[], float],
        clock: Callable[[], datetime] = _utcnow,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        durable_removal: bool = False,
        check: Callable[[str, dict[str, Any]], Any] | None = None,
    ) -> None:
        self._db = db
        # Checks a message once, when it is queued (the OCPP schema): a message that could never
        # be sent is refused here, where it is made, instead of blocking its FIFO later.
        self._check = check
        self._attempts, self._retry_interval = attempts, retry_interval
        self._clock, self._sleep = clock, sleep
        # Second connection for removals that need not be synced one by one (docstring).
        self._fast: Database = db
        if db.durable and not durable_removal:
            self._fast = Database.open(db.path.parent, durable=False)
            # No checkpoint inline in a fast removal (it fsyncs: up to milliseconds on the
            # delivery path); the background sync checkpoints instead (_sync_wal).
            self._fast.execute("PRAGMA wal_autocheckpoint = 0")
        self._checkpointer: sqlite3.Connection | None = None  # the background sync's own connection
        self._wal_syncs = 0
        # Fast removals so far, and how many of them are known to be on disk.
        self._fast_removals = self._durable_upto = 0
        self._wal_sync: Future[None] | None = None  # a running background fsync of the WAL
        self._wal_sync_covers = 0
        self._executor: ThreadPoolExecutor | None = None
        self._buffers: dict[str, deque[QueuedMessage]] = {queue: deque() for queue in QUEUES}
        # Answered messages whose fast removal is acknowledged but not yet written (at most one).
        self._unremoved: list[QueuedMessage] = []
        self._ack_fd: int | None = None
        self._ack_path = Path(f"{db.path}{ACK_SUFFIX}")
        self._recover_acknowledged()
        if self._fast is not db:
            self._ack_fd = os.open(self._ack_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self._tids: dict[int, int] = {}
        self._woken = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._delivery_lock = asyncio.Lock()
        self._running: tuple[Send, asyncio.Future[bool]] | None = None
        self.last_interruption: OcppError | None = None
        """Why the last delivery stopped early (ConnectionLost / CallTimeout / ConnectFailed)."""

    # ------------------------------------------------------------------ enqueue

    def enqueue(self, action: str, payload: dict[str, Any], *, session_id: int | None = None) -> int:
        """Store one message at the end of its FIFO (durably, before returning); return its id.

        StartTransaction needs ``session_id``. MeterValues/StopTransaction of a session: pass
        ``session_id`` (any transactionId in ``payload`` is dropped; the session's real one is
        filled in at send time). Without ``session_id`` they need an integer transactionId.
        Raises ValueError (TypeError for a payload that is no dict) for anything that could
        never be sent correctly.
        """
        queue = QUEUE_OF_ACTION.get(action)
        if queue is None:
            raise ValueError(f"{action!r} does not go through the outbox (only {', '.join(QUEUE_OF_ACTION)})")
        if not isinstance(payload, dict):
            raise TypeError(f"{action} payload must be a JSON object, got {type(payload).__name__}")
        if session_id is not None and (isinstance(session_id, bool) or not isinstance(session_id, int)):
            raise ValueError(f"session_id must be an integer, got {session_id!r}")
        stored = dict(payload)
        if action == START:
            if session_id is None:
                raise ValueError("StartTransaction needs the session_id its transactionId is recorded for")
            if "transactionId" in stored:
                raise ValueError("StartTransaction has no transactionId (the backend assigns it)")
        elif action in FOLLOWERS:
            if session_id is not None:
                stored.pop("transactionId", None)
            else:
                tid = stored.get("transactionId")
                if tid is None:
                    raise ValueError(
                        f"{action} without transactionId and without session_id is not a transaction message "
                        f"(send it directly)")
                if not _is_transaction_id(tid) or tid == PLACEHOLDER_TRANSACTION_ID:
                    raise ValueError(f"{action}: transactionId {tid!r} is not a real transactionId "
                                     f"(pass session_id while the transaction is unconfirmed)")
        elif session_id is not None:
            raise ValueError(f"{action} belongs to no session")
        if self._check is not None:  # as it will go out: the transactionId filled in
            probe = {**stored, "transactionId": 0} if action in FOLLOWERS and session_id is not None else stored
            wire = self._check(action, probe)
            if isinstance(wire, dict):  # its wire form is what is stored (and sent as it is)
                stored = dict(wire)
                if action in FOLLOWERS and session_id is not None:
                    stored.pop("transactionId", None)  # the placeholder of the check
        try:
            text = _dumps(stored)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{action} payload is not plain JSON: {exc}") from None
        before = self._fast_removals
        cursor = self._db.execute(
            "INSERT INTO outbox (queue, action, payload, session_id, created_at) VALUES (?, ?, ?, ?, ?)",
            (queue, action, text, session_id, self._now()),
        )
        self._synced(before)  # a durable commit syncs the whole WAL
        self.wake()
        return int(cursor.lastrowid)

    # ------------------------------------------------------------------ transactions

    def transaction_id(self, session_id: int) -> int | None:
        """The transactionId the backend gave the session's StartTransaction, if confirmed."""
        tid = self._tids.get(session_id)
        if tid is None:
            rows = self._db.query("SELECT transaction_id FROM ocpp_transactions WHERE session_id = ?", (session_id,))
            if rows:
                tid = int(rows[0][0])
                self._remember(session_id, tid)
        return tid

    def session_for_transaction(self, transaction_id: int) -> int | None:
        """The session of a transactionId (the newest one if the backend reused the id)."""
        rows = self._db.query(
            "SELECT session_id FROM ocpp_transactions WHERE transaction_id = ? ORDER BY session_id DESC LIMIT 1",
            (transaction_id,),
        )
        return int(rows[0][0]) if rows else None

    def _remember(self, session_id: int, tid: int) -> None:
        if len(self._tids) >= _TID_CACHE_MAX:
            self._tids.clear()
        self._tids[session_id] = tid

    # ------------------------------------------------------------------ delivery

    def wake(self) -> None:
        """Something was enqueued / the connection is up: a waiting ``run`` goes on."""
        loop = self._loop
        if loop is not None:
            try:
                in_loop = asyncio.get_running_loop() is loop
            except RuntimeError:
                in_loop = False
            if not in_loop:
                try:
                    loop.call_soon_threadsafe(self._woken.set)
                except RuntimeError:  # loop closed: nobody waits
                    pass
                return
        self._woken.set()

    async def run(self, send: Send, on_answer: OnAnswer | None = None, *, on_parked: OnParked | None = None) -> None:
        """Deliver for the life of one connection: whenever something is queued, until the
        connection is lost (then return; call again after the next BootNotification/reconnect).
        After a CallTimeout (the connection may still be up) it tries again after
        ``retry_interval()``."""
        while True:
            if await self.deliver(send, on_answer, on_parked=on_parked):
                await self._woken.wait()
            elif isinstance(self.last_interruption, CallTimeout):
                await self._sleep(max(0.0, float(self._retry_interval())))
            else:
                return

    async def deliver(self, send: Send, on_answer: OnAnswer | None = None, *,
                      on_parked: OnParked | None = None) -> bool:
        """Send queued messages until both FIFOs are empty (True) or the connection is lost /
        a call timed out (False; see ``last_interruption``). The message in flight then stays
        queued and is sent again next time.

        ``send(action, payload)`` returns the answer's payload or raises CallError /
        ConnectionLost / CallTimeout. ``on_answer(action, payload_sent, answer)`` is called
        after the message was removed (or, for a fast removal, acknowledged: module
        docstring) (e.g. to act on StartTransaction.conf idTagInfo);
        ``on_parked(dead_letter)`` after a message was parked. Exceptions in them are logged.

        Safe to call while a delivery runs: with the same ``send`` it joins the running one
        (which then also takes what is new); with another ``send`` it waits for it to end.
        """
        running = self._running
        if running is not None and running[0] == send and not running[1].done():
            self.wake()
            return await asyncio.shield(running[1])
        async with self._delivery_lock:
            loop = asyncio.get_running_loop()
            self._loop = loop
            future: asyncio.Future[bool] = loop.create_future()
            self._running = (send, future)
            drained = False
            try:
                drained = await self._deliver(send, on_answer, on_parked)
            finally:
                self._running = None
                future.set_result(drained)
            return drained

    async def _deliver(self, send: Send, on_answer: OnAnswer | None, on_parked: OnParked | None) -> bool:
        self._write_removals()
        for buffer in self._buffers.values():
            buffer.clear()  # read afresh from the database on every (re)connect
        self.last_interruption = None
        while True:
            self._woken.clear()
            interruption = await self._pass(send, on_answer, on_parked)
            if interruption is not None:
                self.last_interruption = interruption
                log.info("outbox delivery interrupted", extra={"fields": {
                    "error": _describe(interruption), "pending": self.pending_count()}})
                return False
            if not self._woken.is_set():
                return True

    async def _pass(self, send: Send, on_answer: OnAnswer | None, on_parked: OnParked | None) -> OcppError | None:
        """Both FIFOs side by side, one CALL at a time; returns the connection error, if any."""
        send_lock = asyncio.Lock()
        tasks = [asyncio.create_task(self._work(queue, send, on_answer, on_parked, send_lock),
                                     name=f"outbox-{queue}") for queue in QUEUES]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        finally:
            for task in tasks:
                task.cancel()
            outcomes = await asyncio.gather(*tasks, return_exceptions=True)
            self._write_removals()
        for outcome in outcomes:
            if isinstance(outcome, _NOT_CONNECTED):
                return outcome
        for outcome in outcomes:
            if isinstance(outcome, BaseException) and not isinstance(outcome, asyncio.CancelledError):
                raise outcome
        return None

    async def _work(self, queue: str, send: Send, on_answer: OnAnswer | None, on_parked: OnParked | None,
                    send_lock: asyncio.Lock) -> None:
        while True:
            message = self._head(queue)
            if message is None:
                return
            payload = self._wire_payload(message, on_parked)
            if payload is None:
                continue  # parked
            if message.attempts and message.attempts >= self._allowed():
                # its last attempt failed just before a crash, or the limit was lowered since
                self._park(message, payload, self._refused_reason(message), on_parked)
                continue
            # While this CALL is in flight, not between an answer and the next CALL: write the
            # removal of the message answered last (acknowledged already) and read ahead.
            if self._unremoved:
                asyncio.get_running_loop().call_soon(self._write_removals)
            if len(self._buffers[queue]) <= PREFETCH_IN_FLIGHT:
                asyncio.get_running_loop().call_soon(self._read_ahead, queue, PREFETCH_IN_FLIGHT)
            async with send_lock:
                try:
                    response = await send(message.action, payload)
                except _NOT_CONNECTED:
                    raise
                except OcppError as exc:
                    error: str | None = _describe(exc)
                else:
                    error = _answer_problem(message.action, response)
            if error is None:
                self._delivered(message, response)
                if on_answer is not None:
                    try:
                        on_answer(message.action, payload, response)
                    except Exception:
                        log.exception("outbox on_answer failed", extra={"fields": {
                            "id": message.id, "action": message.action}})
                continue
            message = self._refused(message, error)
            allowed = self._allowed()
            if message.attempts >= allowed:
                self._park(message, payload, self._refused_reason(message), on_parked)
            else:
                delay = max(0.0, float(self._retry_interval())) * message.attempts
                log.warning("outbox message refused, will retry", extra={"fields": {
                    "id": message.id, "action": message.action, "attempt": message.attempts, "of": allowed,
                    "retry_in_s": delay, "error": error}})
                await self._sleep(delay)

    def _allowed(self) -> int:
        """TransactionMessageAttempts: tries in all (at least one)."""
        return max(1, int(self._attempts()))

    def _refused_reason(self, message: QueuedMessage) -> str:
        return (f"refused {message.attempts} times (TransactionMessageAttempts {self._allowed()}); "
                f"last error: {message.last_error}")

    def _head(self, queue: str) -> QueuedMessage | None:
        """The first message of a FIFO; keeps at least one more read ahead if there is one."""
        buffer = self._buffers[queue]
        if len(buffer) < 2:
            self._read_ahead(queue)
        return buffer[0] if buffer else None

    def _read_ahead(self, queue: str, limit: int = PREFETCH) -> None:
        """Append the next rows of a FIFO to its buffer (after the last one buffered)."""
        buffer = self._buffers[queue]
        if not buffer:
            self._write_removals()  # from the head: an answered message must not come again
        after = buffer[-1].id if buffer else 0
        rows = self._db.query(_HEAD_SQL[queue], (after, limit))
        buffer.extend(_message(row) for row in rows)

    def _wire_payload(self, message: QueuedMessage, on_parked: OnParked | None) -> dict[str, Any] | None:
        """The payload to send, with the session's transactionId; None if the message was parked."""
        payload = message.payload
        if message.action not in FOLLOWERS:
            return payload
        if message.session_id is not None:
            tid = self.transaction_id(message.session_id)
            if tid is None:
                self._park(message, payload, self._no_transaction_reason(message.session_id), on_parked)
                return None
            payload = {**payload, "transactionId": tid}
        if not _is_transaction_id(payload.get("transactionId")):  # only a damaged row can get here
            self._park(message, payload, "no valid transactionId to send it with", on_parked)
            return None
        return payload

    def _no_transaction_reason(self, session_id: int) -> str:
        rows = self._db.query(
            "SELECT id FROM outbox_dead_letters WHERE session_id = ? AND action = ? ORDER BY id DESC LIMIT 1",
            (session_id, START),
        )
        if rows:
            return _start_parked_reason(session_id, int(rows[0][0]))
        return (f"session {session_id} has no transactionId: no StartTransaction of this session was "
                f"queued before this message")

    def _delivered(self, message: QueuedMessage, response: dict[str, Any]) -> None:
        self._write_removals()  # the one before, if its turn has not come yet
        buffer = self._buffers[message.queue]
        if buffer and buffer[0].id == message.id:
            buffer.popleft()
        if message.action == START:
            tid, before = int(response["transactionId"]), self._fast_removals
            with self._db.transaction():
                self._db.execute(
                    "INSERT OR REPLACE INTO ocpp_transactions (session_id, transaction_id, confirmed_at) "
                    "VALUES (?, ?, ?)", (message.session_id, tid, self._now()))
                self._db.execute("DELETE FROM outbox WHERE id = ?", (message.id,))
            assert message.session_id is not None
            self._remember(message.session_id, tid)
            self._synced(before)
            return
        unsynced = self._fast_removals - self._durable_upto
        if (self._fast is self._db or message.action in DURABLE_REMOVAL or not buffer
                or unsynced + 1 >= MAX_UNSYNCED):
            self._db.execute("DELETE FROM outbox WHERE id = ?", (message.id,))
            self._synced(self._fast_removals)
            return
        if self._acknowledge(message):
            self._unremoved.append(message)  # written while the next CALL is in flight
        else:
            self._fast_remove(message)

    def _acknowledge(self, message: QueuedMessage) -> bool:
        """Record that ``message`` was answered in the acknowledgement file (one ``pwrite``)."""
        if self._ack_fd is None:
            return False
        try:
            os.pwrite(self._ack_fd, _ACK.pack(message.id, message.created_at.encode()[:40]),
                      _ACK_SLOT[message.queue])
        except (OSError, KeyError, struct.error) as exc:
            log.warning("outbox: acknowledgement not written; removing at once", extra={"fields": {
                "id": message.id, "error": str(exc)}})
            return False
        return True

    def _write_removals(self) -> None:
        """Write the removal of the acknowledged messages (called soon after the next send)."""
        while self._unremoved:
            self._fast_remove(self._unremoved.pop(0))

    def _fast_remove(self, message: QueuedMessage) -> None:
        self._fast.execute("DELETE FROM outbox WHERE id = ?", (message.id,))
        self._fast_removals += 1
        if self._wal_sync is not None and self._wal_sync.done():
            self._wal_synced()
        if self._fast_removals - self._durable_upto >= SYNC_EVERY and self._wal_sync is None:
            self._start_wal_sync()

    def _recover_acknowledged(self) -> None:
        """After a crash: remove the message the acknowledgement file names as answered, if it
        is still the head of its FIFO (same id, same created_at); else it is stale (its removal
        was written, or the file belongs to another database) and changes nothing."""
        try:
            with open(self._ack_path, "rb") as file:
                data = file.read(128)
        except FileNotFoundError:
            return
        except OSError as exc:
            log.warning("outbox: acknowledgement file not readable", extra={"fields": {"error": str(exc)}})
            return
        for queue, offset in _ACK_SLOT.items():
            if len(data) < offset + _ACK.size:
                continue
            acked_id, created = _ACK.unpack_from(data, offset)
            if acked_id <= 0:
                continue
            rows = self._db.query(f"SELECT id, created_at FROM outbox WHERE queue = '{queue}' ORDER BY id LIMIT 1")
            if rows and int(rows[0][0]) == acked_id and str(rows[0][1]).encode()[:40] == created.rstrip(b"\0"):
                before = self._fast_removals
                self._db.execute("DELETE FROM outbox WHERE id = ?", (acked_id,))  # durable
                self._synced(before)
                log.info("outbox: removed the message answered just before the last stop", extra={
                    "fields": {"id": acked_id, "queue": queue}})

    def _synced(self, upto: int) -> None:
        """A durable commit just happened: the first ``upto`` fast removals are on disk."""
        if self._db.durable:
            self._durable_upto = max(self._durable_upto, upto)

    def _start_wal_sync(self) -> None:
        """fsync the WAL in a worker thread; once done, the removals before it are on disk.

        Polled from the delivery path (no event-loop callback), so it is credited even while
        ``send`` answers without yielding.
        """
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox-wal-sync")
        self._wal_sync_covers = self._fast_removals
        self._wal_syncs += 1
        self._wal_sync = self._executor.submit(self._sync_wal, self._wal_syncs % CHECKPOINT_EVERY_SYNCS == 0)

    def _sync_wal(self, checkpoint: bool) -> None:
        """In the worker thread: fsync the WAL; now and then also checkpoint it (PASSIVE: it
        waits for no reader or writer), which keeps the WAL from growing during a long replay."""
        _fsync(f"{self._db.path}-wal")
        if checkpoint:
            try:
                if self._checkpointer is None:
                    self._checkpointer = sqlite3.connect(str(self._db.path), isolation_level=None,
                                                         check_same_thread=False)
                self._checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except sqlite3.Error as exc:  # the next one, or a durable commit's, will do
                log.debug("outbox: WAL checkpoint failed: %s", exc)

    def _wal_synced(self) -> None:
        future, self._wal_sync = self._wal_sync, None
        assert future is not None
        error = future.exception()
        if error is not None:
            log.warning("outbox: fsync of the WAL failed; removals are synced inline instead",
                        extra={"fields": {"error": str(error)}})
        else:
            self._durable_upto = max(self._durable_upto, self._wal_sync_covers)

    def _refused(self, message: QueuedMessage, error: str) -> QueuedMessage:
        """Count a failed attempt (persisted); return the message as it is now."""
        attempts = message.attempts + 1
        self._fast.execute("UPDATE outbox SET attempts = ?, last_error = ? WHERE id = ?", (attempts, error, message.id))
        message = replace(message, attempts=attempts, last_error=error)
        buffer = self._buffers[message.queue]
        if buffer and buffer[0].id == message.id:
            buffer[0] = message
        return message

    def _park(self, message: QueuedMessage, payload: dict[str, Any], reason: str,
              on_parked: OnParked | None) -> None:
        """Move a message (and, for a StartTransaction, its session's followers) to the dead letters."""
        self._write_removals()
        now, before = self._now(), self._fast_removals
        parked = [DeadLetter(message.id, message.queue, message.action, payload, message.session_id,
                             message.created_at, message.attempts, message.last_error, reason, now)]
        with self._db.transaction():
            if message.action == START and message.session_id is not None:
                follower_reason = _start_parked_reason(message.session_id, message.id)
                rows = self._db.query(
                    f"SELECT {_COLUMNS} FROM outbox WHERE queue = ? AND session_id = ? AND id != ? ORDER BY id",
                    (message.queue, message.session_id, message.id))
                parked += [DeadLetter(m.id, m.queue, m.action, m.payload, m.session_id, m.created_at, m.attempts,
                                      m.last_error, follower_reason, now) for m in map(_message, rows)]
            self._db.executemany(
                "INSERT INTO outbox_dead_letters (id, queue, action, payload, session_id, created_at, attempts, "
                "last_error, reason, parked_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(d.id, d.queue, d.action, _dumps(d.payload), d.session_id, d.created_at, d.attempts,
                  d.last_error, d.reason, d.parked_at) for d in parked])
            self._db.executemany("DELETE FROM outbox WHERE id = ?", [(d.id,) for d in parked])
        self._synced(before)
        self._buffers[message.queue].clear()  # rows left the FIFO out of order: read it afresh
        for letter in parked:
            log.error("outbox message parked (never dropped; see the dead letters)", extra={"fields": {
                "id": letter.id, "queue": letter.queue, "action": letter.action, "session": letter.session_id,
                "attempts": letter.attempts, "reason": letter.reason}})
            if on_parked is not None:
                try:
                    on_parked(letter)
                except Exception:
                    log.exception("outbox on_parked failed", extra={"fields": {"id": letter.id}})

    # ------------------------------------------------------------------ for the WebUI

    def pending(self, queue: str | None = None, limit: int | None = None) -> list[QueuedMessage]:
        """Queued messages in send order (of one FIFO, or of both by id)."""
        where, params = ("WHERE queue = ?", [queue]) if queue is not None else ("", [])
        rows = self._db.query(f"SELECT {_COLUMNS} FROM outbox {where} ORDER BY id LIMIT ?",
                              (*params, -1 if limit is None else limit))
        return [_message(row) for row in rows]

    def pending_count(self, queue: str | None = None) -> int:
        if queue is None:
            return int(self._db.query("SELECT count(*) FROM outbox")[0][0])
        return int(self._db.query("SELECT count(*) FROM outbox WHERE queue = ?", (queue,))[0][0])

    def dead_letters(self, limit: int | None = None) -> list[DeadLetter]:
        """Parked messages, in their original order."""
        rows = self._db.query(
            f"SELECT {_COLUMNS}, reason, parked_at FROM outbox_dead_letters ORDER BY id LIMIT ?",
            (-1 if limit is None else limit,))
        return [DeadLetter(r[0], r[1], r[2], json.loads(r[3]), r[4], r[5], r[6], r[7], r[8], r[9]) for r in rows]

    def requeue(self, letter_ids: Iterable[int]) -> list[int]:
        """Send dead letters again — the operator's decision, e.g. once the backend was fixed.

        Each chosen letter goes to the end of its FIFO as a new message without failed
        attempts, in the letters' original order, checked as any new message is; a parked
        StartTransaction takes its session's parked MeterValues/StopTransaction along (they
        cannot go without it). All of them or none (ValueError: nothing changed). Unknown ids
        are ignored. Returns the new messages' ids."""
        chosen = set(letter_ids)
        letters = self.dead_letters()
        sessions = {d.session_id for d in letters if d.id in chosen and d.action == START and d.session_id is not None}
        again = [d for d in letters if d.id in chosen or (d.action in FOLLOWERS and d.session_id in sessions)]
        with self._db.transaction():
            new_ids = [self.enqueue(d.action, d.payload, session_id=d.session_id) for d in again]
            self._db.executemany("DELETE FROM outbox_dead_letters WHERE id = ?", [(d.id,) for d in again])
        for letter, new_id in zip(again, new_ids):
            log.warning("dead letter queued again", extra={"fields": {
                "id": letter.id, "new_id": new_id, "action": letter.action, "session": letter.session_id}})
        return new_ids

    def discard(self, letter_ids: Iterable[int]) -> list[DeadLetter]:
        """Delete dead letters for good — the operator's decision; each is logged with its
        payload's action, session and reason. Returns the letters deleted."""
        chosen = set(letter_ids)
        gone = [d for d in self.dead_letters() if d.id in chosen]
        with self._db.transaction():
            self._db.executemany("DELETE FROM outbox_dead_letters WHERE id = ?", [(d.id,) for d in gone])
        for letter in gone:
            log.warning("dead letter discarded", extra={"fields": {
                "id": letter.id, "action": letter.action, "session": letter.session_id, "reason": letter.reason}})
        return gone

    def counts(self) -> dict[str, int]:
        """``{"transaction": n, "security": n, "dead_letters": n}`` for the WebUI."""
        result = {queue: 0 for queue in QUEUES}
        for queue, count in self._db.query("SELECT queue, count(*) FROM outbox GROUP BY queue"):
            result[queue] = int(count)
        result["dead_letters"] = int(self._db.query("SELECT count(*) FROM outbox_dead_letters")[0][0])
        return result

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Close the outbox's own connection (the shared database stays open)."""
        self._write_removals()
        if self._ack_fd is not None:
            os.close(self._ack_fd)
            self._ack_fd = None
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        if self._checkpointer is not None:
            self._checkpointer.close()
            self._checkpointer = None
        if self._fast is not self._db:
            self._fast.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _now(self) -> str:
        return self._clock().isoformat()


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _start_parked_reason(session_id: int, start_id: int) -> str:
    return (f"the StartTransaction of session {session_id} (message {start_id}) was parked, so this "
            f"session has no transactionId to send this message with")
