"""``ocpp_fuzz``: hostile OCPP frames from a central system; every CALL answered right, the daemon alive.

A raw WebSocket central system on 127.0.0.1 (:class:`FuzzCentralSystem`, subprotocol ocpp1.6)
answers the station's own CALLs as an accepting backend does (firmware_sim's default answers)
and sends the frames of :class:`reliability.ocpp_frames.FrameGenerator` (seeded) to a real
``stationd demo`` subprocess, in batches of :data:`BATCH` frames. After every batch:

* every frame is judged: a CALL must get exactly one answer with its id — a CALLRESULT whose
  payload passes the action's .conf schema, or a well-formed CALLERROR with the 1.6 code the
  frame deserves; a frame that is no usable CALL must get none. An answer with an id we never
  sent (or a second one) is a wrong answer too;
* the daemon must still be the same process and answer a valid GetConfiguration and a
  TriggerMessage Heartbeat (whose Heartbeat must then arrive) — these probes count as frames;
* the daemon's RSS is read from /proc.

One frame above the WebSocket limit (9 MiB; the station's documented behaviour: close 1009,
then reconnect) is sent at the end, after the reconnect backoff was set to 0 s.

Counts (unit "frames"): tried = frames sent, survived = frames answered as they must be,
lost = CALLs that got no answer or a wrong one. Memory: the RSS after the run must stay below
``1.2 × RSS after warm-up + 16 MiB`` (the warm-up sends every kind of frame, the 1–2 MB ones
included, so the allocator's high-water mark for them is reached before the baseline is read;
what grows beyond that is state kept per frame).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from bench.common import REPO, Child, free_port, rss_bytes
from firmware_sim.central_system import DEFAULT_ANSWERS, ocpp_now
from stationd.ocpp_client import schemas
from stationd.ocpp_client.actions import KNOWN_ACTIONS
from stationd.ocpp_client.errors import ERROR_CODES

from .ocpp_frames import ANSWER_NONE, RESULT, Case, FrameGenerator
from .tally import Tally

__all__ = ["BATCH", "FuzzCentralSystem", "judge", "run"]

BATCH = 100
SHORT_FRAMES, LONG_FRAMES = 2_000, 20_000
SHORT_SEED, LONG_SEED = 16_001, 16_002
WARM_UP_FRAMES = 400
OVERSIZE_BYTES = 9 * 2**20  # above the station's WebSocket max_size (8 MiB)
ANSWER_WAIT_S = 15.0  # DESIGN.md: every CALL answered within a few seconds (handler deadline 10 s)
BOOT_WAIT_S = 90.0
RSS_FACTOR, RSS_SLACK = 1.2, 16 * 2**20
CHARGEBOX_ID = "TE-DEMO000001"


class _Backend:
    """What firmware_sim's DEFAULT_ANSWERS need of a central system."""

    heartbeat_interval = 300

    def __init__(self) -> None:
        self._ids = itertools.count(1)

    def now_iso(self) -> str:
        return ocpp_now(datetime.now(UTC))

    def next_transaction_id(self) -> int:
        return next(self._ids)


class FuzzCentralSystem:
    """A raw OCPP 1.6J central system for one station: sends any frame, records the answers."""

    def __init__(self) -> None:
        self.port = 0
        self._server = None
        self._ws: ServerConnection | None = None
        self._backend = _Backend()
        self.connected = asyncio.Event()
        self.connections = 0
        self.close_codes: list[int | None] = []
        self.station_calls: Counter[str] = Counter()
        self.sent_ids: set[str] = set()
        self.answers: dict[str, tuple[list, float]] = {}  # id → (answer, time received)
        self.unexpected: list[str] = []  # answers with an id we never sent, or a second answer
        self._answered: set[str] = set()
        self._changed = asyncio.Event()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ocpp"

    async def start(self) -> None:
        self._server = await serve(self._serve, "127.0.0.1", 0, subprotocols=["ocpp1.6"], max_size=2**20,
                                   ping_interval=None)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await asyncio.wait_for(self._server.wait_closed(), 10)

    async def _serve(self, ws: ServerConnection) -> None:
        self._ws, self.connections = ws, self.connections + 1
        self.connected.set()
        try:
            async for frame in ws:
                await self._on_frame(ws, frame)
        except ConnectionClosed:
            pass
        finally:
            self.close_codes.append(ws.close_code)
            if self._ws is ws:
                self._ws = None
                self.connected.clear()
            self._notify()

    async def _on_frame(self, ws: ServerConnection, frame: str | bytes) -> None:
        try:
            message = json.loads(frame)
            type_id, uid = message[0], message[1]
        except (ValueError, TypeError, IndexError, KeyError):
            self.unexpected.append(f"unreadable frame from the station: {str(frame)[:120]!r}")
            return
        if type_id == 2:
            action = message[2]
            self.station_calls[action] += 1
            answer = DEFAULT_ANSWERS.get(action)
            reply = [3, uid, answer(self._backend, message[3])] if answer else [4, uid, "NotSupported", "", {}]
            await ws.send(json.dumps(reply))
        elif uid not in self.sent_ids or uid in self._answered:
            self.unexpected.append(f"answer to no CALL of ours (or a second one): {str(frame)[:160]}")
        else:
            self._answered.add(uid)
            self.answers[uid] = (message, time.monotonic())
        self._notify()

    def _notify(self) -> None:
        event, self._changed = self._changed, asyncio.Event()
        event.set()

    async def until(self, condition, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not condition():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            try:
                await asyncio.wait_for(self._changed.wait(), min(left, 0.5))
            except TimeoutError:
                pass
        return True

    async def send(self, frame: str | bytes, uid: str | None = None) -> bool:
        """Send one frame (waiting up to 30 s for the station to be connected); False if it could not."""
        if uid is not None:
            self.sent_ids.add(uid)
        for _ in range(2):
            if not await self.until(lambda: self._ws is not None, 30):
                return False
            try:
                await self._ws.send(frame)
                return True
            except ConnectionClosed:
                await asyncio.sleep(0.1)
        return False

    async def call(self, uid: str, action: str, payload: dict, timeout: float = ANSWER_WAIT_S) -> list | None:
        if not await self.send(json.dumps([2, uid, action, payload]), uid):
            return None
        await self.until(lambda: uid in self.answers, timeout)
        answer = self.answers.pop(uid, None)
        return answer[0] if answer else None


def judge(case: Case, answer: list | None) -> str | None:
    """None when ``answer`` is what ``case`` deserves, else why not."""
    if ANSWER_NONE in case.expect:
        return None if answer is None else f"answered {json.dumps(answer)[:120]}, expected no answer"
    if answer is None:
        return "no answer"
    if answer[0] == 3:
        if RESULT not in case.expect:
            return f"CALLRESULT {json.dumps(answer)[:100]}, expected {'/'.join(sorted(case.expect))}"
        if len(answer) != 3 or not isinstance(answer[2], dict):
            return f"malformed CALLRESULT {json.dumps(answer)[:100]}"
        if case.action in KNOWN_ACTIONS:
            violation = schemas.validate(schemas.RESPONSE, case.action, answer[2])
            if violation is not None:
                return f"invalid {case.action}.conf: {violation.code} {violation.description}"
        return None
    if answer[0] == 4:
        if (len(answer) != 5 or answer[2] not in ERROR_CODES or not isinstance(answer[3], str)
                or not isinstance(answer[4], dict)):
            return f"malformed CALLERROR {json.dumps(answer)[:160]}"
        if answer[2] not in case.expect:
            return f"{answer[2]} ({answer[3][:100]}), expected {'/'.join(sorted(case.expect))}"
        return None
    return f"answer of type {answer[0]!r}"


class _Fuzz:
    def __init__(self, cs: FuzzCentralSystem, child: Child, tally: Tally) -> None:
        self.cs, self.child, self.tally = cs, child, tally
        self.outcomes: Counter[str] = Counter()
        self.latencies: list[float] = []
        self.probe_ids = itertools.count(1)
        self.rss: list[int] = []

    def _outcome(self, case: Case, why: str | None) -> None:
        label = case.kind.split()[0]
        if why is None:
            self.tally.ok()
            self.outcomes[f"{label} ok"] += 1
        else:
            self.tally.failed(f"{case.kind}: {why}; frame {str(case.frame)[:160]!r}")
            self.outcomes[f"{label} FAILED"] += 1
            if ANSWER_NONE not in case.expect:
                self.tally.lost += 1

    async def batch(self, cases: list[Case]) -> bool:
        """Send, judge, probe; False when the daemon is gone (the run stops)."""
        sent_at: dict[str, float] = {}
        for case in cases:
            if case.uid is not None:
                sent_at[case.uid] = time.monotonic()
            if not await self.cs.send(case.frame, case.uid):
                self._outcome(case, "could not be sent: the station is not connected")
        waiting = [c.uid for c in cases if c.uid is not None and ANSWER_NONE not in c.expect]
        probes_ok = await self.probe()
        await self.cs.until(lambda: all(uid in self.cs.answers for uid in waiting), ANSWER_WAIT_S)
        await asyncio.sleep(0.05)  # an answer that should not come would have come by now
        for case in cases:
            answer = self.cs.answers.pop(case.uid, None) if case.uid is not None else None
            if answer is not None:
                self.latencies.append(answer[1] - sent_at[case.uid])
            self._outcome(case, judge(case, answer[0] if answer else None))
        self.rss.append(rss_bytes(self.child.pid) if self.child.proc.poll() is None else 0)
        return probes_ok and self.child.proc.poll() is None

    async def probe(self) -> bool:
        """A valid GetConfiguration and TriggerMessage Heartbeat: answered, the Heartbeat sent."""
        alive = self.child.proc.poll() is None
        uid = f"probe{next(self.probe_ids)}"
        answer = await self.cs.call(uid, "GetConfiguration", {"key": ["HeartbeatInterval"]})
        keys = answer[2].get("configurationKey", []) if answer and answer[0] == 3 else []
        self._outcome(Case("probe GetConfiguration", "", uid, frozenset({RESULT}), "GetConfiguration"),
                      None if alive and keys and keys[0].get("key") == "HeartbeatInterval" else f"answer {answer}")
        heartbeats = self.cs.station_calls["Heartbeat"]
        uid = f"probe{next(self.probe_ids)}"
        answer = await self.cs.call(uid, "TriggerMessage", {"requestedMessage": "Heartbeat"})
        accepted = bool(answer) and answer[0] == 3 and answer[2] == {"status": "Accepted"}
        beat = accepted and await self.cs.until(lambda: self.cs.station_calls["Heartbeat"] > heartbeats, 10)
        self._outcome(Case("probe TriggerMessage", "", uid, frozenset({RESULT}), "TriggerMessage"),
                      None if beat and self.child.proc.poll() is None else f"answer {answer}, Heartbeat sent: {beat}")
        return bool(keys) and beat

    async def oversize(self, gen: FrameGenerator) -> None:
        """One frame above the WebSocket limit: the station closes with 1009 and reconnects."""
        uid = gen.uid()
        frame = json.dumps([2, uid, "DataTransfer", {"vendorId": "fuzz", "data": "C" * OVERSIZE_BYTES}])
        connections, boots = self.cs.connections, self.cs.station_calls["BootNotification"]
        sent = await self.cs.send(frame, uid)
        closed = await self.cs.until(lambda: len(self.cs.close_codes) >= connections, 20)
        back = await self.cs.until(lambda: self.cs.connections > connections and self.cs.connected.is_set(), 30)
        code = self.cs.close_codes[-1] if self.cs.close_codes else None
        self.cs.answers.pop(uid, None)
        problem = None
        if not (sent and closed and code == 1009 and back):
            problem = f"sent {sent}, closed {closed} with code {code}, reconnected {back}"
        elif self.cs.station_calls["BootNotification"] != boots:
            problem = "a plain reconnect sent BootNotification again"
        self._outcome(Case("oversize 9 MiB (close 1009, reconnect)", frame[:100], None, frozenset({"1009"})),
                      problem)


async def _configure(cs: FuzzCentralSystem) -> None:
    """Reconnect backoff 0 s (the oversize frame makes the station reconnect)."""
    for key in ("RetryBackoffWaitMinimum", "RetryBackoffRandomRange"):
        answer = await cs.call(f"setup-{key}", "ChangeConfiguration", {"key": key, "value": "0"})
        if not answer or answer[0] != 3 or answer[2].get("status") != "Accepted":
            raise RuntimeError(f"ChangeConfiguration {key}=0 answered {answer}")


def _warm_up_cases(gen: FrameGenerator, count: int) -> list[Case]:
    cases = [gen.next(kind) for kind in gen.WEIGHTS for _ in range(2)]
    return cases + [gen.next() for _ in range(max(0, count - len(cases)))]


async def _run(long: bool, frames: int | None, seed: int | None) -> Tally:
    tally = Tally("ocpp_fuzz", "frames")
    frames = frames or (LONG_FRAMES if long else SHORT_FRAMES)
    seed = seed if seed is not None else (LONG_SEED if long else SHORT_SEED)
    gen = FrameGenerator(seed)
    started = time.monotonic()
    cs = FuzzCentralSystem()
    await cs.start()
    with tempfile.TemporaryDirectory(prefix="ocpp-fuzz-") as tmp:
        log_path = Path(tmp) / "stationd.log"
        with open(log_path, "wb") as log_file:
            child = Child([sys.executable, "-m", "stationd", "demo", "--backend", cs.url, "--security-profile", "0",
                           "--data-dir", str(Path(tmp) / "data"), "--sim-api", f"127.0.0.1:{free_port()}",
                           "--modbus", f"127.0.0.1:{free_port()}", "--webui", f"127.0.0.1:{free_port()}"],
                          name="stationd demo", stdout=log_file, stderr=subprocess.STDOUT, cwd=REPO)
            try:
                fuzz = _Fuzz(cs, child, tally)
                if not await cs.until(lambda: cs.station_calls["BootNotification"] > 0, BOOT_WAIT_S):
                    raise RuntimeError(f"stationd demo sent no BootNotification within {BOOT_WAIT_S:g} s "
                                       f"(exit status {child.proc.poll()}): {_tail(log_path)}")
                pid = child.pid
                await _configure(cs)
                warm = _warm_up_cases(gen, WARM_UP_FRAMES)
                alive = True
                for start in range(0, len(warm), BATCH):
                    alive = alive and await fuzz.batch(warm[start:start + BATCH])
                rss_warm = fuzz.rss[-1]
                sent = len(warm)
                while alive and sent < frames:
                    cases = [gen.next() for _ in range(min(BATCH, frames - sent))]
                    sent += len(cases)
                    alive = await fuzz.batch(cases)
                    if not alive:
                        tally.failed(f"the daemon stopped answering or died after {sent} frames "
                                     f"(exit status {child.proc.poll()}): {_tail(log_path)}")
                if alive:
                    await fuzz.oversize(gen)
                    alive = await fuzz.probe()
                rss_end = rss_bytes(pid) if child.proc.poll() is None else 0
                bound = RSS_FACTOR * rss_warm + RSS_SLACK
                if child.pid != pid or child.proc.poll() is not None:
                    tally.failed(f"the daemon is gone (exit status {child.proc.poll()})")
                if rss_end > bound:
                    tally.failed(f"memory not bounded: RSS {rss_end / 2**20:.1f} MiB after the run, "
                                 f"{rss_warm / 2**20:.1f} MiB after warm-up (bound {bound / 2**20:.1f} MiB)")
                if cs.unexpected:
                    tally.failed(f"{len(cs.unexpected)} answers to no CALL of ours, first: {cs.unexpected[0]}")
                latencies = sorted(fuzz.latencies) or [0.0]
                tally.notes += [
                    f"seed {seed}; {sent + 1} generated frames in batches of {BATCH} + 2 probes per batch, "
                    f"against `stationd demo` (pid {pid}) in {time.monotonic() - started:.0f} s",
                    f"RSS after warm-up {rss_warm / 2**20:.1f} MiB, peak {max(fuzz.rss) / 2**20:.1f} MiB, "
                    f"after the run {rss_end / 2**20:.1f} MiB (bound {bound / 2**20:.1f} MiB)",
                    f"answer latency (frames answered): median {latencies[len(latencies) // 2] * 1000:.0f} ms, "
                    f"max {latencies[-1] * 1000:.0f} ms; connections {cs.connections}; "
                    f"station CALLs answered {dict(cs.station_calls)}",
                    "outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(fuzz.outcomes.items())),
                ]
            finally:
                child.stop()
    await cs.stop()
    return tally


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def run(long: bool, *, frames: int | None = None, seed: int | None = None) -> Tally:
    """The category: ``frames`` generated frames (default 2,000 short, 20,000 long) with ``seed``."""
    return asyncio.run(_run(long, frames, seed))


if __name__ == "__main__":  # python -m reliability.ocpp_fuzz [FRAMES]
    result = run(False, frames=int(sys.argv[1]) if len(sys.argv) > 1 else None)
    print(json.dumps(result.as_json(), indent=2))
