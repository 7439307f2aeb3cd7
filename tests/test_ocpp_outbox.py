"""The transaction-message outbox: a real SQLite database in tmp_path, a scripted fake ``send``."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from stationd.ocpp_client.errors import CallError, CallTimeout, ConnectionLost
from stationd.ocpp_client.outbox import MAX_UNSYNCED, SYNC_EVERY, DeadLetter, Outbox
from stationd.storage import Database

REPO = Path(__file__).resolve().parent.parent
NOW = "2024-05-01T12:00:00Z"


def start(session: int, connector: int = 1) -> dict[str, Any]:
    return {"connectorId": connector, "idTag": f"TAG{session}", "meterStart": 0, "timestamp": NOW}


def mv(value: int, connector: int = 1) -> dict[str, Any]:
    return {"connectorId": connector,
            "meterValue": [{"timestamp": NOW, "sampledValue": [{"value": str(value)}]}]}


def stop(value: int) -> dict[str, Any]:
    return {"meterStop": value, "timestamp": NOW, "reason": "Local"}


def security(kind: str) -> dict[str, Any]:
    return {"type": kind, "timestamp": NOW}


def label(action: str, payload: dict[str, Any]) -> str:
    """A readable name of a message on the wire: Start:TAG1, MV:3, Stop:42, SEN:ResetOrReboot."""
    if action == "StartTransaction":
        return f"Start:{payload['idTag']}"
    if action == "MeterValues":
        return f"MV:{payload['meterValue'][0]['sampledValue'][0]['value']}"
    if action == "StopTransaction":
        return f"Stop:{payload['meterStop']}"
    return f"SEN:{payload['type']}"


class Backend:
    """A fake ``send``: records every call, answers like a central system, or fails as scripted.

    ``script`` maps a call number (0-based, over the backend's life) to an exception to raise
    instead of answering; ``refuse(predicate)`` answers every matching call with a CALLERROR.
    Every MeterValues/StopTransaction on the wire must carry a real transactionId.
    """

    def __init__(self, *, first_tid: int = 100, yield_each: bool = False) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.answered: list[str] = []
        self.script: dict[int, BaseException] = {}
        self.refusals: list[Callable[[str, dict[str, Any]], bool]] = []
        self.next_tid = first_tid
        self.tids: dict[str, int] = {}
        self.yield_each = yield_each
        self.in_flight = self.max_in_flight = 0
        self.hook: Callable[[str, dict[str, Any]], Any] | None = None

    def refuse(self, predicate: Callable[[str, dict[str, Any]], bool]) -> None:
        self.refusals.append(predicate)

    @property
    def wire(self) -> list[str]:
        return [label(a, p) for a, p in self.calls]

    async def send(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        number = len(self.calls)
        self.calls.append((action, payload))
        if action in ("MeterValues", "StopTransaction"):
            tid = payload.get("transactionId")
            assert isinstance(tid, int) and not isinstance(tid, bool) and tid != -1, (action, payload)
        else:
            assert "transactionId" not in payload
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.yield_each:
                await asyncio.sleep(0)
            if self.hook is not None:
                await self.hook(action, payload)
            if number in self.script:
                raise self.script[number]
            for predicate in self.refusals:
                if predicate(action, payload):
                    raise CallError("InternalError", "cannot process")
            self.answered.append(label(action, payload))
            if action == "StartTransaction":
                self.next_tid += 1
                self.tids[payload["idTag"]] = self.next_tid
                return {"transactionId": self.next_tid, "idTagInfo": {"status": "Accepted"}}
            if action == "StopTransaction":
                return {"idTagInfo": {"status": "Accepted"}}
            return {}
        finally:
            self.in_flight -= 1


class Sleeps:
    """A fake sleep: records the waits, returns at once (or waits for ``gate``)."""

    def __init__(self) -> None:
        self.waits: list[float] = []
        self.gate: asyncio.Event | None = None

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        if self.gate is not None:
            await asyncio.wait_for(self.gate.wait(), 5)
        await asyncio.sleep(0)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def db(data_dir: Path):
    with Database.open(data_dir) as database:
        yield database


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def make(db: Database, sleeps: Sleeps):
    outboxes: list[Outbox] = []

    def factory(database: Database = db, *, attempts: int = 3, interval: float = 2.0, **kw: Any) -> Outbox:
        outbox = Outbox(database, attempts=lambda: attempts, retry_interval=lambda: interval, sleep=sleeps, **kw)
        outboxes.append(outbox)
        return outbox

    yield factory
    for outbox in outboxes:
        outbox.close()


# --------------------------------------------------------------------------- schema and enqueue


def test_migration_3_creates_the_outbox_tables(db: Database) -> None:
    assert db.schema_version >= 3  # later features append migrations
    names = {r[0] for r in db.query("SELECT name FROM sqlite_master")}
    assert {"outbox", "ocpp_transactions", "outbox_dead_letters", "outbox_security"} <= names


def test_enqueue_rejects_what_could_never_be_sent(make) -> None:
    outbox = make()
    with pytest.raises(ValueError, match="does not go through the outbox"):
        outbox.enqueue("StatusNotification", {"connectorId": 1})
    with pytest.raises(ValueError, match="needs the session_id"):
        outbox.enqueue("StartTransaction", start(1))
    with pytest.raises(ValueError, match="not a transaction message"):
        outbox.enqueue("MeterValues", mv(1))
    with pytest.raises(ValueError, match="not a real transactionId"):
        outbox.enqueue("StopTransaction", {**stop(1), "transactionId": -1})
    with pytest.raises(ValueError, match="not a real transactionId"):
        outbox.enqueue("MeterValues", {**mv(1), "transactionId": "7"})
    with pytest.raises(ValueError, match="not plain JSON"):
        outbox.enqueue("MeterValues", {**mv(1), "x": float("nan")}, session_id=1)
    with pytest.raises(TypeError):
        outbox.enqueue("MeterValues", [1], session_id=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="belongs to no session"):
        outbox.enqueue("SecurityEventNotification", security("ResetOrReboot"), session_id=1)
    assert outbox.pending_count() == 0


def test_placeholder_transaction_id_of_a_session_message_is_dropped_at_enqueue(make) -> None:
    outbox = make()
    outbox.enqueue("StopTransaction", {**stop(5), "transactionId": -1}, session_id=3)
    [message] = outbox.pending()
    assert "transactionId" not in message.payload and message.session_id == 3


# --------------------------------------------------------------------------- order and persistence


async def test_order_kept_across_enqueues_while_offline(make) -> None:
    outbox, backend = make(), Backend()
    outbox.enqueue("StartTransaction", start(1), session_id=1)
    outbox.enqueue("MeterValues", mv(1), session_id=1)
    backend.script[0] = ConnectionLost("offline")
    assert await outbox.deliver(backend.send) is False
    assert isinstance(outbox.last_interruption, ConnectionLost)
    for value in (2, 3):
        outbox.enqueue("MeterValues", mv(value), session_id=1)
    outbox.enqueue("StopTransaction", stop(3), session_id=1)
    assert [m.action for m in outbox.pending()] == ["StartTransaction"] + ["MeterValues"] * 3 + ["StopTransaction"]

    assert await outbox.deliver(backend.send) is True
    assert backend.answered == ["Start:TAG1", "MV:1", "MV:2", "MV:3", "Stop:3"]
    assert outbox.pending_count() == 0


def test_queue_survives_closing_and_reopening_the_database(data_dir: Path) -> None:
    with Database.open(data_dir) as db, Outbox(db, attempts=lambda: 3, retry_interval=lambda: 1) as outbox:
        ids = [outbox.enqueue("StartTransaction", start(1), session_id=1),
               outbox.enqueue("MeterValues", mv(1), session_id=1),
               outbox.enqueue("SecurityEventNotification", security("StartupOfTheDevice")),
               outbox.enqueue("StopTransaction", stop(9), session_id=1)]
    with Database.open(data_dir) as db, Outbox(db, attempts=lambda: 3, retry_interval=lambda: 1) as outbox:
        pending = outbox.pending()
        assert [m.id for m in pending] == ids == sorted(ids)
        assert [(m.queue, m.action, m.session_id) for m in pending] == [
            ("transaction", "StartTransaction", 1), ("transaction", "MeterValues", 1),
            ("security", "SecurityEventNotification", None), ("transaction", "StopTransaction", 1)]
        assert pending[1].payload == mv(1)
        assert outbox.counts() == {"transaction": 3, "security": 1, "dead_letters": 0}


CHILD = textwrap.dedent("""
    import asyncio, sys, time
    from stationd.ocpp_client.errors import ConnectionLost
    from stationd.ocpp_client.outbox import Outbox
    from stationd.storage import Database

    db = Database.open(sys.argv[1])
    outbox = Outbox(db, attempts=lambda: 3, retry_interval=lambda: 1)
    outbox.enqueue("StartTransaction", {"connectorId": 1, "idTag": "T", "meterStart": 0,
                                        "timestamp": "2024-05-01T12:00:00Z"}, session_id=1)
    for i in range(150):
        outbox.enqueue("MeterValues", {"connectorId": 1, "meterValue": [
            {"timestamp": "2024-05-01T12:00:00Z", "sampledValue": [{"value": str(i)}]}]}, session_id=1)
    calls = 0

    async def send(action, payload):
        global calls
        calls += 1
        if calls == 102:  # Start + MV 0..99 answered; MV 100 in flight when the link drops
            raise ConnectionLost("link down")
        return {"transactionId": 7, "idTagInfo": {"status": "Accepted"}} if action == "StartTransaction" else {}

    assert asyncio.run(outbox.deliver(send)) is False
    last = outbox.enqueue("MeterValues", {"connectorId": 1, "meterValue": [
        {"timestamp": "2024-05-01T12:00:00Z", "sampledValue": [{"value": "last"}]}]}, session_id=1)
    print("enqueued", last, flush=True)
    time.sleep(60)
""")


def test_sigkill_right_after_enqueue_and_delivery_loses_nothing_and_repeats_nothing(data_dir: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(data_dir)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    try:
        line = child.stdout.readline()
        assert line.startswith("enqueued "), (line, child.stderr.read() if child.poll() is not None else "")
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(10) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stdout.close()
        child.stderr.close()
    last_id = int(line.split()[1])
    with Database.open(data_dir) as db, Outbox(db, attempts=lambda: 3, retry_interval=lambda: 1) as outbox:
        pending = outbox.pending()
        # exactly the undelivered ones: the one in flight (100) and the rest, in order
        values = [m.payload["meterValue"][0]["sampledValue"][0]["value"] for m in pending]
        assert values == [str(i) for i in range(100, 150)] + ["last"]
        assert pending[-1].id == last_id
        assert outbox.transaction_id(1) == 7 and outbox.session_for_transaction(7) == 1


# A process killed during a replay (kill -9) sends again at most the one message in flight. The
# fast removal of the message answered last is written while the next CALL is in flight (after
# that CALL was handed to the socket); before that CALL goes out, the answer is recorded in the
# acknowledgement file, and reopening the outbox removes that message. The child sends MeterValues
# 0..9 and is killed at its call number ``crash_at`` (1-based, the value crash_at - 1):
#   before-wire: at the start of the call, before the frame is on the wire;
#   on-wire:     just after the frame is on the wire, before anything else runs (the removal of
#                the message before is not written yet: the acknowledgement alone covers it);
#   in-flight:   while waiting for the answer (that removal is written by then).
CRASH_CHILD = textwrap.dedent("""
    import asyncio, os, signal, sys
    from stationd.ocpp_client.outbox import Outbox
    from stationd.storage import Database

    data_dir, wire_log, crash_at, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    log = os.open(wire_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    calls = 0

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    async def send(action, payload):
        global calls
        calls += 1
        if calls == crash_at and mode == "before-wire":
            die()
        os.write(log, (payload["meterValue"][0]["sampledValue"][0]["value"] + "\\n").encode())  # on the wire
        if calls == crash_at:
            if mode == "on-wire":
                die()
            for _ in range(3):
                await asyncio.sleep(0)
            die()
        await asyncio.sleep(0)
        return {}

    db = Database.open(data_dir)  # durable, as the daemon opens it: fast removals on their own connection
    outbox = Outbox(db, attempts=lambda: 3, retry_interval=lambda: 1)
    asyncio.run(outbox.deliver(send))
""")


@pytest.mark.parametrize(("mode", "resent"), [("before-wire", []), ("on-wire", ["4"]), ("in-flight", ["4"])])
async def test_sigkill_during_a_replay_sends_again_only_the_message_in_flight(
        data_dir: Path, tmp_path: Path, mode: str, resent: list[str]) -> None:
    with Database.open(data_dir) as db, Outbox(db, attempts=lambda: 3, retry_interval=lambda: 1) as outbox:
        for value in range(10):
            outbox.enqueue("MeterValues", {**mv(value), "transactionId": 7})
    wire_log = tmp_path / f"wire-{mode}.log"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.run([sys.executable, "-c", CRASH_CHILD, str(data_dir), str(wire_log), "5", mode],
                           capture_output=True, text=True, env=env, cwd=REPO, timeout=60)
    assert child.returncode == -signal.SIGKILL, child.stderr
    before = wire_log.read_text().split()
    assert before == [str(v) for v in range(5 if mode != "before-wire" else 4)]
    # reopened: the answered ones are gone, the one in flight (if it was on the wire) comes again
    with Database.open(data_dir) as db, Outbox(db, attempts=lambda: 3, retry_interval=lambda: 1) as outbox:
        backend = Backend()
        assert await outbox.deliver(backend.send)
        assert outbox.pending_count() == 0
    after = [name.split(":")[1] for name in backend.wire]
    assert after == [str(v) for v in range(len(before) - len(resent), 10)]
    assert [v for v in after if v in before] == resent


async def test_a_stale_acknowledgement_removes_nothing(data_dir: Path) -> None:
    """The acknowledgement file names a message by id and created_at, and only the head of its
    FIFO is removed on reopening: a file left from a removal already written, or from another
    database (a factory reset starts the ids at 1 again), changes nothing."""
    from stationd.ocpp_client.outbox import _ACK, ACK_SUFFIX

    with Database.open(data_dir) as db, Outbox(db, attempts=lambda: 3, retry_interval=lambda: 1) as outbox:
        ids = [outbox.enqueue("MeterValues", {**mv(v), "transactionId": 7}) for v in range(3)]
        created = [m.created_at for m in outbox.pending()]
    ack = Path(f"{data_dir / 'station.db'}{ACK_SUFFIX}")
    assert ack.exists()
    for acked_id, acked_created in [(ids[1], created[1]), (ids[0], "2000-01-01T00:00:00+00:00"), (999, created[0])]:
        ack.write_bytes(_ACK.pack(acked_id, acked_created.encode()))  # not the head / another message / gone
        with Database.open(data_dir) as db, Outbox(db, attempts=lambda: 3, retry_interval=lambda: 1) as outbox:
            assert [m.id for m in outbox.pending()] == ids
    ack.write_bytes(_ACK.pack(ids[0], created[0].encode()))  # the head, answered just before a crash
    with Database.open(data_dir) as db, Outbox(db, attempts=lambda: 3, retry_interval=lambda: 1) as outbox:
        assert [m.id for m in outbox.pending()] == ids[1:]


# --------------------------------------------------------------------------- transactionId


async def test_start_transaction_id_is_filled_into_the_sessions_later_messages(make) -> None:
    outbox, backend = make(), Backend(first_tid=41)
    answers: list[tuple[str, dict, dict]] = []
    outbox.enqueue("StartTransaction", start(1), session_id=1)
    outbox.enqueue("StartTransaction", start(2, connector=2), session_id=2)
    outbox.enqueue("MeterValues", mv(10), session_id=1)
    outbox.enqueue("MeterValues", mv(20, connector=2), session_id=2)
    outbox.enqueue("StopTransaction", stop(11), session_id=1)
    assert outbox.transaction_id(1) is None
    assert await outbox.deliver(backend.send, lambda *a: answers.append(a)) is True

    assert outbox.transaction_id(1) == 42 and outbox.transaction_id(2) == 43
    assert outbox.session_for_transaction(43) == 2 and outbox.session_for_transaction(99) is None
    sent = {label(a, p): p for a, p in backend.calls}
    assert sent["MV:10"]["transactionId"] == 42
    assert sent["MV:20"]["transactionId"] == 43
    assert sent["Stop:11"]["transactionId"] == 42
    assert answers[0] == ("StartTransaction", start(1), {"transactionId": 42, "idTagInfo": {"status": "Accepted"}})
    assert [a[0] for a in answers] == ["StartTransaction", "StartTransaction", "MeterValues", "MeterValues",
                                       "StopTransaction"]


async def test_stop_enqueued_before_the_start_is_confirmed_waits_for_the_real_id(make, db: Database) -> None:
    outbox, backend = make(), Backend(first_tid=6)
    outbox.enqueue("StartTransaction", start(1), session_id=1)
    backend.script[0] = ConnectionLost("StartTransaction.conf never arrived")
    assert await outbox.deliver(backend.send) is False
    # offline: the session ends; its StopTransaction is queued without an id
    outbox.enqueue("MeterValues", mv(5), session_id=1)
    outbox.enqueue("StopTransaction", {**stop(5), "transactionId": -1}, session_id=1)
    backend.script[1] = CallTimeout("no answer again")
    assert await outbox.deliver(backend.send) is False
    assert isinstance(outbox.last_interruption, CallTimeout)
    assert backend.wire == ["Start:TAG1", "Start:TAG1"]  # nothing overtook the unconfirmed Start

    assert await outbox.deliver(backend.send) is True
    assert backend.wire == ["Start:TAG1"] * 3 + ["MV:5", "Stop:5"]
    assert [p["transactionId"] for a, p in backend.calls[3:]] == [7, 7]
    assert db.query("SELECT transaction_id FROM ocpp_transactions WHERE session_id = 1")[0][0] == 7


async def test_transaction_id_is_persisted(data_dir: Path) -> None:
    with Database.open(data_dir) as db, Outbox(db, attempts=lambda: 3, retry_interval=lambda: 1) as outbox:
        outbox.enqueue("StartTransaction", start(1), session_id=5)
        assert await outbox.deliver(Backend(first_tid=999).send)
    with Database.open(data_dir) as db, Outbox(db, attempts=lambda: 3, retry_interval=lambda: 1) as outbox:
        assert outbox.transaction_id(5) == 1000
        outbox.enqueue("StopTransaction", stop(1), session_id=5)
        backend = Backend()
        assert await outbox.deliver(backend.send)
        assert backend.calls[0][1]["transactionId"] == 1000


async def test_explicit_transaction_id_without_session_is_sent_as_is(make) -> None:
    outbox, backend = make(), Backend()
    outbox.enqueue("MeterValues", {**mv(1), "transactionId": 0})  # backends do hand out 0
    assert await outbox.deliver(backend.send)
    assert backend.calls[0][1]["transactionId"] == 0


# --------------------------------------------------------------------------- outages


async def test_connection_lost_mid_delivery_resends_only_the_message_in_flight(make) -> None:
    outbox, backend = make(), Backend()
    outbox.enqueue("StartTransaction", start(1), session_id=1)
    for value in range(10):
        outbox.enqueue("MeterValues", mv(value), session_id=1)
    outbox.enqueue("StopTransaction", stop(10), session_id=1)
    outbox.enqueue("SecurityEventNotification", security("ResetOrReboot"))
    # scripted outage: call 4 is lost with the link, call 9 times out, call 12 is lost again
    backend.script.update({4: ConnectionLost("down"), 9: CallTimeout("late"), 12: ConnectionLost("down")})
    rounds = 0
    while not await outbox.deliver(backend.send):
        rounds += 1
        assert rounds < 10
    assert rounds == 3
    sends = Counter(backend.wire)
    repeated = {name for name, n in sends.items() if n > 1}
    interrupted = {label(*backend.calls[n]) for n in (4, 9, 12)}
    assert repeated == interrupted and all(sends[name] == 2 for name in repeated)
    expected = ["Start:TAG1"] + [f"MV:{v}" for v in range(10)] + ["Stop:10"]
    assert [name for name in backend.answered if not name.startswith("SEN")] == expected
    assert sorted(backend.answered) == sorted(expected + ["SEN:ResetOrReboot"])
    assert outbox.pending_count() == 0 and outbox.dead_letters() == []


async def test_run_delivers_what_is_enqueued_and_returns_when_the_connection_is_lost(make, sleeps: Sleeps) -> None:
    outbox, backend = make(interval=3.0), Backend(yield_each=True)
    task = asyncio.create_task(outbox.run(backend.send))
    outbox.enqueue("StartTransaction", start(1), session_id=1)
    for _ in range(20):
        await asyncio.sleep(0)
    assert backend.answered == ["Start:TAG1"] and not task.done()

    backend.script[1] = CallTimeout("no answer")  # the connection may still be up: retry later
    outbox.enqueue("MeterValues", mv(1), session_id=1)
    for _ in range(20):
        await asyncio.sleep(0)
    assert backend.wire == ["Start:TAG1", "MV:1", "MV:1"] and sleeps.waits == [3.0] and not task.done()

    backend.script[3] = ConnectionLost("down")
    outbox.enqueue("MeterValues", mv(2), session_id=1)
    await asyncio.wait_for(task, 2)
    assert outbox.pending()[0].payload == mv(2)


async def test_concurrent_deliver_calls_keep_one_call_in_flight(make) -> None:
    outbox, backend = make(), Backend(yield_each=True)
    outbox.enqueue("StartTransaction", start(1), session_id=1)
    for value in range(30):
        outbox.enqueue("MeterValues", mv(value), session_id=1)
        outbox.enqueue("SecurityEventNotification", security(f"E{value}"))

    async def enqueue_more() -> bool:
        await asyncio.sleep(0)
        outbox.enqueue("StopTransaction", stop(99), session_id=1)
        return await outbox.deliver(backend.send)  # "again after each enqueue"

    results = await asyncio.gather(outbox.deliver(backend.send), outbox.deliver(backend.send), enqueue_more())
    assert results == [True, True, True]
    assert backend.max_in_flight == 1
    assert len(backend.calls) == 62 and len(set(backend.wire)) == 62
    assert [n for n in backend.wire if not n.startswith("SEN")][-1] == "Stop:99"


# --------------------------------------------------------------------------- refusals and dead letters


async def test_call_error_is_retried_with_growing_waits_then_parked_and_delivery_goes_on(
        make, sleeps: Sleeps, caplog: pytest.LogCaptureFixture) -> None:
    outbox, backend = make(attempts=4, interval=2.5), Backend()
    outbox.enqueue("MeterValues", {**mv(1), "transactionId": 3})
    outbox.enqueue("MeterValues", {**mv(2), "transactionId": 3})
    backend.refuse(lambda action, payload: label(action, payload) == "MV:1")
    parked: list[DeadLetter] = []
    with caplog.at_level(logging.ERROR, logger="stationd.ocpp_client.outbox"):
        assert await outbox.deliver(backend.send, on_parked=parked.append) is True
    assert backend.wire == ["MV:1"] * 4 + ["MV:2"]
    assert sleeps.waits == [2.5, 5.0, 7.5]
    [letter] = outbox.dead_letters()
    assert parked == [letter]
    assert letter.action == "MeterValues" and letter.attempts == 4 and letter.payload["transactionId"] == 3
    assert letter.last_error == "CALLERROR InternalError: cannot process"
    assert "refused 4 times" in letter.reason and letter.parked_at
    assert any("parked" in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)
    assert outbox.counts() == {"transaction": 0, "security": 0, "dead_letters": 1}


async def test_attempts_survive_a_reconnect_and_a_restart(data_dir: Path, sleeps: Sleeps) -> None:
    backend = Backend()
    backend.refuse(lambda action, payload: action == "StopTransaction")
    backend.script[1] = ConnectionLost("down")  # the second attempt is lost with the link
    with Database.open(data_dir) as db, Outbox(db, attempts=lambda: 3, retry_interval=lambda: 1,
                                               sleep=sleeps) as outbox:
        outbox.enqueue("StopTransaction", {**stop(1), "transactionId": 8})
        assert await outbox.deliver(backend.send) is False
        [message] = outbox.pending()
        assert message.attempts == 1 and message.last_error.startswith("CALLERROR InternalError")
    with Database.open(data_dir) as db, Outbox(db, attempts=lambda: 3, retry_interval=lambda: 1,
                                               sleep=sleeps) as outbox:
        assert await outbox.deliver(backend.send) is True
        assert len(backend.calls) == 4  # 1 refused, 1 lost (not counted), 2 refused
        assert [d.attempts for d in outbox.dead_letters()] == [3]
        assert sleeps.waits == [1, 2]


async def test_invalid_start_transaction_conf_counts_as_a_failed_attempt(make) -> None:
    outbox = make(attempts=2)
    outbox.enqueue("StartTransaction", start(1), session_id=1)
    calls = []

    async def send(action: str, payload: dict) -> Any:
        calls.append(action)
        return {"idTagInfo": {"status": "Accepted"}} if len(calls) == 1 else "nonsense"

    assert await outbox.deliver(send)
    [letter] = outbox.dead_letters()
    assert "transactionId None is not an integer" in (letter.last_error or "") or "not an object" in letter.last_error
    assert letter.attempts == 2 and outbox.transaction_id(1) is None


async def test_parked_start_parks_its_sessions_followers_but_not_other_sessions(make) -> None:
    outbox, backend = make(attempts=2), Backend()
    backend.refuse(lambda action, payload: label(action, payload) == "Start:TAG1")
    start1 = outbox.enqueue("StartTransaction", start(1), session_id=1)
    outbox.enqueue("MeterValues", mv(1), session_id=1)
    outbox.enqueue("StartTransaction", start(2, connector=2), session_id=2)
    outbox.enqueue("StopTransaction", stop(1), session_id=1)
    outbox.enqueue("MeterValues", mv(2, connector=2), session_id=2)
    parked: list[DeadLetter] = []
    assert await outbox.deliver(backend.send, on_parked=parked.append)
    assert backend.wire == ["Start:TAG1", "Start:TAG1", "Start:TAG2", "MV:2"]

    # the session goes on: a later message of it is parked too when it reaches the head
    outbox.enqueue("MeterValues", mv(3), session_id=1)
    outbox.enqueue("MeterValues", mv(4, connector=2), session_id=2)
    assert await outbox.deliver(backend.send, on_parked=parked.append)
    assert backend.wire[-1] == "MV:4" and "MV:3" not in backend.wire

    letters = outbox.dead_letters()
    assert [label(d.action, d.payload) for d in letters] == ["Start:TAG1", "MV:1", "Stop:1", "MV:3"]
    assert parked == letters
    assert "refused 2 times" in letters[0].reason
    for follower in letters[1:]:
        assert follower.reason.startswith(f"the StartTransaction of session 1 (message {start1}) was parked")
        assert follower.attempts == 0 and "transactionId" not in follower.payload


async def test_a_requeued_start_takes_its_followers_along_and_a_discarded_letter_is_gone(make) -> None:
    outbox, backend = make(attempts=1), Backend()
    backend.refuse(lambda action, payload: label(action, payload) == "Start:TAG1")
    outbox.enqueue("StartTransaction", start(1), session_id=1)
    outbox.enqueue("MeterValues", mv(1), session_id=1)
    outbox.enqueue("StopTransaction", stop(1), session_id=1)
    outbox.enqueue("StartTransaction", start(2, connector=2), session_id=2)
    assert await outbox.deliver(backend.send)
    outbox.enqueue("StopTransaction", stop(2), session_id=2)
    backend.refusals.clear()
    backend.refuse(lambda action, payload: label(action, payload) == "Stop:2")
    assert await outbox.deliver(backend.send)
    letters = outbox.dead_letters()
    assert [label(d.action, d.payload) for d in letters] == ["Start:TAG1", "MV:1", "Stop:1", "Stop:2"]

    backend.refusals.clear()  # the backend was fixed
    new_ids = outbox.requeue([letters[0].id])  # the StartTransaction only: its followers come along
    assert len(new_ids) == 3 and min(new_ids) > max(d.id for d in letters)
    assert [label(d.action, d.payload) for d in outbox.dead_letters()] == ["Stop:2"]
    assert [m.attempts for m in outbox.pending()] == [0, 0, 0]
    sent = len(backend.wire)
    assert await outbox.deliver(backend.send)
    assert backend.wire[sent:] == ["Start:TAG1", "MV:1", "Stop:1"]
    assert outbox.transaction_id(1) is not None and outbox.pending() == []

    assert outbox.requeue([12345]) == []  # unknown ids change nothing
    [gone] = outbox.discard([outbox.dead_letters()[0].id, 12345])
    assert label(gone.action, gone.payload) == "Stop:2" and outbox.dead_letters() == []
    assert outbox.counts()["dead_letters"] == 0


async def test_message_of_a_session_without_any_start_is_parked_not_blocking(make) -> None:
    outbox, backend = make(), Backend()
    outbox.enqueue("StopTransaction", stop(1), session_id=77)
    outbox.enqueue("MeterValues", {**mv(2), "transactionId": 5})
    assert await outbox.deliver(backend.send)
    assert backend.wire == ["MV:2"]
    [letter] = outbox.dead_letters()
    assert "session 77 has no transactionId" in letter.reason


async def test_dead_letters_are_kept_across_restarts(data_dir: Path, sleeps: Sleeps) -> None:
    backend = Backend()
    backend.refuse(lambda action, payload: action == "SecurityEventNotification")
    with Database.open(data_dir) as db, Outbox(db, attempts=lambda: 1, retry_interval=lambda: 1,
                                               sleep=sleeps) as outbox:
        outbox.enqueue("SecurityEventNotification", security("TamperDetectionActivated"))
        assert await outbox.deliver(backend.send)
    with Database.open(data_dir) as db, Outbox(db, attempts=lambda: 1, retry_interval=lambda: 1) as outbox:
        [letter] = outbox.dead_letters()
        assert (letter.queue, letter.payload["type"], letter.attempts) == ("security", "TamperDetectionActivated", 1)
        assert outbox.counts()["dead_letters"] == 1 and sleeps.waits == []


async def test_on_answer_errors_are_logged_and_delivery_goes_on(make, caplog: pytest.LogCaptureFixture) -> None:
    outbox, backend = make(), Backend()
    outbox.enqueue("StartTransaction", start(1), session_id=1)
    outbox.enqueue("MeterValues", mv(1), session_id=1)

    def on_answer(action: str, payload: dict, response: dict) -> None:
        raise RuntimeError("application bug")

    with caplog.at_level(logging.ERROR):
        assert await outbox.deliver(backend.send, on_answer)
    assert backend.answered == ["Start:TAG1", "MV:1"] and outbox.pending_count() == 0
    assert sum("on_answer failed" in r.getMessage() for r in caplog.records) == 2


# --------------------------------------------------------------------------- two FIFOs


async def test_security_events_are_not_held_back_by_a_refused_transaction_message(make, sleeps: Sleeps) -> None:
    outbox, backend = make(attempts=2), Backend(yield_each=True)
    outbox.enqueue("MeterValues", {**mv(1), "transactionId": 3})
    outbox.enqueue("SecurityEventNotification", security("ResetOrReboot"))
    refused_once = []
    backend.refuse(lambda a, p: a == "MeterValues" and not refused_once and not refused_once.append(1))
    sleeps.gate = asyncio.Event()  # the retry wait ends only once the security event went out

    async def hook(action: str, payload: dict) -> None:
        if action == "SecurityEventNotification":
            sleeps.gate.set()

    backend.hook = hook
    assert await outbox.deliver(backend.send)
    assert backend.wire == ["MV:1", "SEN:ResetOrReboot", "MV:1"]


async def test_transaction_messages_are_not_held_back_by_a_refused_security_event(make, sleeps: Sleeps) -> None:
    outbox, backend = make(attempts=3), Backend(yield_each=True)
    outbox.enqueue("SecurityEventNotification", security("InvalidMessages"))
    outbox.enqueue("StartTransaction", start(1), session_id=1)
    outbox.enqueue("StopTransaction", stop(2), session_id=1)
    backend.refuse(lambda a, p: a == "SecurityEventNotification")
    sleeps.gate = asyncio.Event()

    async def hook(action: str, payload: dict) -> None:
        if action == "StopTransaction":
            sleeps.gate.set()

    backend.hook = hook
    assert await outbox.deliver(backend.send)  # (a blocked FIFO would time out in the gated sleep)
    security_sends = [i for i, name in enumerate(backend.wire) if name.startswith("SEN")]
    assert len(security_sends) == 3 and backend.wire.index("Stop:2") < security_sends[1]
    assert backend.answered == ["Start:TAG1", "Stop:2"]
    assert [d.queue for d in outbox.dead_letters()] == ["security"]


# --------------------------------------------------------------------------- replay speed


async def replay(data_dir: Path, n: int, *, durable_removal: bool) -> tuple[float, float, Backend]:
    """Queue Start + n MeterValues, then time their replay against an instant ``send``."""
    with Database.open(data_dir, durable=False) as fast_db, \
            Outbox(fast_db, attempts=lambda: 3, retry_interval=lambda: 1) as filler:
        filler.enqueue("StartTransaction", start(1), session_id=1)
        for value in range(n):
            filler.enqueue("MeterValues", mv(value), session_id=1)
    backend = Backend()
    payloads = [mv(value) for value in range(n)]
    began = time.perf_counter()
    for payload in payloads:  # the same instant send, called directly: the baseline
        await backend.send("MeterValues", {**payload, "transactionId": 1})
    baseline = time.perf_counter() - began
    backend.calls.clear()
    backend.answered.clear()
    with Database.open(data_dir) as db, Outbox(db, attempts=lambda: 3, retry_interval=lambda: 1,
                                               durable_removal=durable_removal) as outbox:
        began = time.perf_counter()
        assert await outbox.deliver(backend.send) is True
        elapsed = time.perf_counter() - began
        assert outbox.pending_count() == 0
    return elapsed, baseline, backend


async def test_replay_of_10000_messages_per_message_overhead(tmp_path: Path) -> None:
    n = 10_000
    elapsed, baseline, backend = await replay(tmp_path / "a", n, durable_removal=False)
    assert backend.answered == ["Start:TAG1"] + [f"MV:{v}" for v in range(n)]
    assert {p["transactionId"] for a, p in backend.calls[1:]} == {101}
    overhead = (elapsed - baseline) / (n + 1)
    m = 1_000
    elapsed_d, baseline_d, backend_d = await replay(tmp_path / "b", m, durable_removal=True)
    assert len(backend_d.answered) == m + 1
    overhead_d = (elapsed_d - baseline_d) / (m + 1)
    print(f"\noutbox replay: {n} messages in {elapsed * 1e3:.0f} ms, overhead {overhead * 1e6:.1f} us/message "
          f"(background WAL sync every {SYNC_EVERY}, inline at {MAX_UNSYNCED}); durable_removal=True: {overhead_d * 1e6:.1f} us/message")


async def test_removal_durability_policy(make, monkeypatch: pytest.MonkeyPatch) -> None:
    """Start/Stop and the removal that empties the FIFO are durable commits; a backlog of
    MeterValues is removed on the non-syncing connection (module docstring)."""
    outbox, backend = make(), Backend()
    removals: list[tuple[str, bool]] = []
    original = Database.execute
    labels: dict[int, str] = {}

    def spy(self: Database, sql: str, params: Any = ()) -> Any:
        if sql.startswith("DELETE FROM outbox WHERE id"):
            removals.append((labels[params[0]], self.durable))
        return original(self, sql, params)

    monkeypatch.setattr(Database, "execute", spy)
    labels[outbox.enqueue("StartTransaction", start(1), session_id=1)] = "Start:TAG1"
    for value in range(3):
        labels[outbox.enqueue("MeterValues", mv(value), session_id=1)] = f"MV:{value}"
    labels[outbox.enqueue("StopTransaction", stop(3), session_id=1)] = "Stop:3"
    labels[outbox.enqueue("MeterValues", {**mv(9), "transactionId": 101})] = "MV:9"
    assert await outbox.deliver(backend.send)
    assert removals == [("Start:TAG1", True), ("MV:0", False), ("MV:1", False), ("MV:2", False), ("Stop:3", True), ("MV:9", True)]


def test_durable_removal_uses_one_connection(make, db: Database) -> None:
    assert make(durable_removal=True)._fast is db
    assert make()._fast is not db


async def test_cancelled_delivery_leaves_the_message_in_flight_queued(make) -> None:
    outbox, backend = make(), Backend()
    outbox.enqueue("StartTransaction", start(1), session_id=1)
    outbox.enqueue("MeterValues", mv(1), session_id=1)
    hang = asyncio.Event()

    async def stuck(action: str, payload: dict) -> None:
        await hang.wait()

    backend.hook = stuck
    task = asyncio.create_task(outbox.deliver(backend.send))
    while not backend.calls:
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [m.action for m in outbox.pending()] == ["StartTransaction", "MeterValues"]
    backend.hook = None
    assert await outbox.deliver(backend.send)
    assert backend.wire == ["Start:TAG1", "Start:TAG1", "MV:1"]


async def test_enqueue_from_another_thread_wakes_run(make) -> None:
    outbox, backend = make(), Backend(yield_each=True)
    task = asyncio.create_task(outbox.run(backend.send))
    await asyncio.sleep(0)
    await asyncio.to_thread(outbox.enqueue, "SecurityEventNotification", security("SettingSystemTime"))
    for _ in range(200):
        if backend.answered:
            break
        await asyncio.sleep(0.005)
    assert backend.answered == ["SEN:SettingSystemTime"]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_message_at_its_attempt_limit_after_a_restart_is_parked_without_another_try(
        data_dir: Path, sleeps: Sleeps) -> None:
    with Database.open(data_dir) as db, Outbox(db, attempts=lambda: 5, retry_interval=lambda: 1,
                                               sleep=sleeps) as outbox:
        outbox.enqueue("MeterValues", {**mv(1), "transactionId": 4})
        backend = Backend()
        backend.refuse(lambda a, p: True)
        backend.script[2] = ConnectionLost("down")
        assert await outbox.deliver(backend.send) is False
        assert outbox.pending()[0].attempts == 2
    # the installer lowered TransactionMessageAttempts to 2 meanwhile
    with Database.open(data_dir) as db, Outbox(db, attempts=lambda: 2, retry_interval=lambda: 1,
                                               sleep=sleeps) as outbox:
        backend = Backend()
        assert await outbox.deliver(backend.send)
        assert backend.calls == []
        [letter] = outbox.dead_letters()
        assert letter.attempts == 2 and letter.reason.startswith("refused 2 times")


async def test_delivery_with_another_send_waits_for_the_running_one(make) -> None:
    outbox, old, new = make(), Backend(yield_each=True), Backend(yield_each=True)
    for value in range(5):
        outbox.enqueue("MeterValues", {**mv(value), "transactionId": 1})
    old.script[2] = ConnectionLost("old connection gone")
    results = await asyncio.gather(outbox.deliver(old.send), outbox.deliver(new.send))
    assert results == [False, True]
    assert old.wire == ["MV:0", "MV:1", "MV:2"] and new.wire == ["MV:2", "MV:3", "MV:4"]
    assert old.max_in_flight == new.max_in_flight == 1


def test_a_message_that_breaks_the_schema_is_refused_when_queued(tmp_path) -> None:
    from stationd.ocpp_client.rpc import check_request

    db = Database.open(tmp_path)
    outbox = Outbox(db, attempts=lambda: 3, retry_interval=lambda: 0.0, check=check_request)
    with pytest.raises(ValueError, match="not sent"):
        outbox.enqueue("StartTransaction", {"connectorId": 1, "idTag": "x" * 21, "meterStart": 0,
                                            "timestamp": "2026-11-22T12:00:00Z"}, session_id=1)
    assert outbox.pending_count() == 0
    # a StopTransaction of a session is checked as it will go out, with its transactionId
    outbox.enqueue("StopTransaction", {"meterStop": 5, "timestamp": "2026-11-22T12:00:00Z"}, session_id=1)
    assert outbox.pending_count() == 1
    outbox.close()
    db.close()
