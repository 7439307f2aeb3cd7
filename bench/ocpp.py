"""OCPP figures: outbox replay against the loopback round trip, RFID tap → StartTransaction, start → boot.

Three measurements, each against the project's own central system
(:class:`firmware_sim.central_system.CentralSystem`, which answers every CALL at once):

1. **replay_ratio_to_rtt_limit** — how close the outbox's replay after a reconnect comes to the
   limit one CALL in flight sets (OCPP-J: one CALL at a time, so no replay can go faster than
   one message per round trip). First the round trip: ``N`` sequential
   ``RpcEndpoint.call("Heartbeat", {})`` on one WebSocket → mean RTT. Then a real
   :class:`~stationd.storage.Database` (durable, as the daemon opens it) and
   :class:`~stationd.ocpp_client.outbox.Outbox` in a temporary directory: one StartTransaction
   (session 1) and then ``n`` MeterValues of that session (the daemon's own Sample.Periodic
   format, transactionId filled in at send time from the StartTransaction.conf) are queued
   while no connection is open; then the station connects
   (``websockets`` client as :func:`stationd.ocpp_client.connection.open_connection` sets it up:
   subprotocol ocpp1.6, no compression) and ``outbox.deliver(endpoint.call)`` is timed until
   the queue is empty. rate = (n + 1) / elapsed; ratio = rate × RTT (1.0 = the round-trip limit).
   Done twice: with the central system in a separate process
   (``python -m firmware_sim.central_system --port 0 --log-level WARNING``; the goal-checked
   figure) and in the benchmark's own event loop (station and central system then share one
   core and one loop: informational). The same loop of sequential MeterValues calls without the
   outbox is timed as well (informational): the difference is the outbox's own cost per message.
   Each loop also reads the CPU time of both processes (``/proc/<pid>/task/*/schedstat``, ns):
   with one CALL in flight the two sides take turns, so the wall time per message is close to
   the station's CPU plus the central system's CPU per message, and the note shows both.
2. **tap_to_starttx_p50_ms** — a local list hit: ``stationd demo --backend <CS>
   --security-profile 0`` as a subprocess; the central system runs in the benchmark's event
   loop and answers at once. After the boot the CS sets CsMode 0 (cards needed),
   LocalAuthListEnabled and LocalPreAuthorize true with ChangeConfiguration where
   GetConfiguration shows another value, and sends SendLocalList (Full, listVersion 1, every
   card the cycles will use, Accepted); GetLocalListVersion must then answer 1. Per cycle: plug
   connector 1 (control API), wait for StatusNotification Preparing, POST /rfid (from a worker
   thread, so the CS keeps serving), and take the time from just before the POST is sent to the
   CS's receipt of StartTransaction (``time.monotonic()`` on both ends, one process); then the
   same card, presented again after the reader's repeat window (2 s), stops the session
   (StopTransaction), the vehicle is unplugged, and the cycle waits for StatusNotification
   Available. Every cycle uses a new card UID. A list hit starts without asking the backend: an
   Authorize from the station during the cycles fails the benchmark.
3. **start_to_boot_s** — ``time.monotonic()`` just before ``subprocess.Popen`` of
   ``stationd demo --backend <CS> --security-profile 0 --data-dir <fresh>`` to the CS's receipt
   of its BootNotification; the median of several runs, each on a fresh data directory.

Every child process is stopped in a ``finally`` (``bench.common.Child``); every wait is bounded.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Self

from websockets.asyncio.client import connect

from firmware_sim.central_system import CALL, CentralSystem, Record
from stationd.ocpp_client.meter_values import meter_value, sampled_values
from stationd.ocpp_client.outbox import Outbox
from stationd.ocpp_client.rpc import WEBSOCKET_MAX_SIZE, RpcEndpoint, check_request
from stationd.storage import Database

from .common import (
    LOOPBACK,
    Child,
    LogCapture,
    free_port,
    percentile,
    read_lines,
    summarize_problems,
)
from .figures import Figure
from .mode import Mode

__all__ = ["run"]

RTT_CALLS, QUICK_RTT_CALLS = 500, 200
WARMUP_CALLS = 50
REPLAY, QUICK_REPLAY = 10_000, 2_000  # MeterValues after the StartTransaction
CARD = "AEC78085"  # the replay's idTag
# The reader reports a card held on it once: the same UID again within this many seconds (the
# RfidReader's default repeat_s, 2 s) is the same presentation. The stop tap waits this long.
SAME_CARD_S = 2.3
CHARGEBOX = "BENCH"
START_TIMEOUT_S = 60.0  # the demo's first start makes a TLS certificate; a busy machine is slower
STEP_TIMEOUT_S = 15.0  # one plug, tap, stop, unplug
REPLAY_TIMEOUT_S = 300.0
SUBPROTOCOL = "ocpp1.6"
NOW = datetime(2025, 1, 1, tzinfo=UTC)


def run(mode: Mode) -> list[Figure]:
    tap_cycles = mode.pick(full=20, quick=5, smoke=1)
    boot_runs = mode.pick(full=5, quick=2, smoke=1)
    figures: list[Figure] = []
    with LogCapture("firmware_sim") as cs_log, LogCapture("stationd") as station_log:
        # The replay's sizes are _replay_figures' own: smoke runs quick's (2,000 messages, ~5 s).
        figures += _replay_figures(mode is not Mode.FULL)
        figures += asyncio.run(_tap_figures(tap_cycles))
        figures += asyncio.run(_boot_figures(boot_runs))
    for lines, who in ((cs_log.lines, "the central system (in-process)"), (station_log.lines, "the outbox/RPC")):
        note = summarize_problems(lines, who)
        if note:
            print(note, file=sys.stderr)
    return figures


# --------------------------------------------------------------------------- 1. replay vs. RTT
async def _no_calls(action: str, payload: dict) -> dict:
    raise NotImplementedError(action)  # the central system sends nothing during the benchmark


class _Station:
    """One WebSocket to the central system with the station's RPC layer on it."""

    def __init__(self, url: str) -> None:
        self.url = f"{url}/{CHARGEBOX}"

    async def __aenter__(self) -> RpcEndpoint:
        # As open_connection() sets it up, without credentials (security profile 0).
        self._ws = await connect(self.url, subprotocols=[SUBPROTOCOL], compression=None, proxy=None,  # type: ignore[list-item]
                                 max_size=WEBSOCKET_MAX_SIZE, ping_interval=None, open_timeout=10, close_timeout=5)
        if self._ws.subprotocol != SUBPROTOCOL:
            raise RuntimeError(f"the central system did not accept {SUBPROTOCOL}")
        self.endpoint = RpcEndpoint(self._ws, _no_calls)
        self._task = asyncio.create_task(self.endpoint.run())
        return self.endpoint

    async def __aexit__(self, *exc_info: object) -> None:
        await self._ws.close()
        try:
            async with asyncio.timeout(10):
                await self._task
        except TimeoutError:
            self._task.cancel()


@dataclass
class _Loop:
    """One timed loop of CALLs: wall time and each side's CPU time per message."""

    messages: int
    wall_s: float
    station_cpu_s: float
    cs_cpu_s: float | None  # None: the central system runs in the station's own thread

    @property
    def per_message_s(self) -> float:
        return self.wall_s / self.messages

    def cpu_us(self) -> str:
        station = self.station_cpu_s / self.messages * 1e6
        if self.cs_cpu_s is None:
            return f"{station:.0f} us CPU/message (both ends)"
        return f"station {station:.0f} + CS {self.cs_cpu_s / self.messages * 1e6:.0f} us CPU/message"


def _cpu_ns(pid: int) -> int:
    """CPU time of every thread of ``pid`` in ns (the scheduler's counters: /proc/<pid>/task/*/schedstat)."""
    total = 0
    for stat in Path(f"/proc/{pid}/task").glob("*/schedstat"):
        try:
            total += int(stat.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            pass  # a thread that ended meanwhile
    return total


class _Clock:
    """Wall time and the CPU time of the station (this process) and of a separate central system."""

    def __init__(self, cs_pid: int | None) -> None:
        self.cs_pid = cs_pid

    def __enter__(self) -> Self:
        self._cs = _cpu_ns(self.cs_pid) if self.cs_pid else 0
        self._own = _cpu_ns(os.getpid())
        self._wall = time.perf_counter()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.wall_s = time.perf_counter() - self._wall
        self.station_cpu_s = (_cpu_ns(os.getpid()) - self._own) / 1e9
        self.cs_cpu_s = (_cpu_ns(self.cs_pid) - self._cs) / 1e9 if self.cs_pid else None

    def loop(self, messages: int) -> _Loop:
        return _Loop(messages, self.wall_s, self.station_cpu_s, self.cs_cpu_s)


async def _call_loop(url: str, calls: int, action: str, payload: dict, cs_pid: int | None) -> _Loop:
    """``calls`` sequential CALL → CALLRESULT round trips on one connection (after a warm-up).

    The warm-up runs on a connection of its own. Every round trip on the *first* connection to a
    freshly started central system is ~30 % slower, on both sides (Heartbeat 333-347 us wall,
    CPU station 194-237 + CS 173-196 us; on every later connection 250-256 us, 157 + 135 us;
    not a matter of how many calls: 1,050 on that first connection were as slow). The Heartbeat
    loop timed first used to be that connection: it made the RTT ~30 % too long and flattered
    the ratio by as much (the replay and the MeterValues loop already ran on later connections).
    """
    async with _Station(url) as endpoint:
        for _ in range(WARMUP_CALLS):
            await endpoint.call(action, payload)
    async with _Station(url) as endpoint:
        for _ in range(WARMUP_CALLS):
            await endpoint.call(action, payload)
        async with asyncio.timeout(REPLAY_TIMEOUT_S):
            with _Clock(cs_pid) as clock:
                for _ in range(calls):
                    await endpoint.call(action, payload)
    return clock.loop(calls)


def _meter_values(value_wh: int) -> dict[str, Any]:
    """A MeterValues payload as the daemon makes it (Sample.Periodic, the default measurand)."""
    sample = SimpleNamespace(energy_import_wh=float(value_wh))
    values = sampled_values(sample, ["Energy.Active.Import.Register"], "Sample.Periodic", offered_a=16.0,
                            phases=3, temperature_c=None)
    if not values:
        raise RuntimeError("sampled_values() made no SampledValue for the register: the bench's sample is stale")
    return {"connectorId": 1, "meterValue": [meter_value(NOW + timedelta(seconds=60 * value_wh), values)]}


def _fill(data_dir: Path, n: int) -> None:
    """Queue Start + n MeterValues of session 1 while offline (not timed; one SQLite transaction)."""
    with Database.open(data_dir, durable=False) as db, \
            Outbox(db, attempts=lambda: 3, retry_interval=lambda: 1, check=check_request) as filler, db.transaction():
        filler.enqueue("StartTransaction", {"connectorId": 1, "idTag": CARD, "meterStart": 0,
                                            "timestamp": NOW.isoformat().replace("+00:00", "Z")}, session_id=1)
        for value in range(n):
            filler.enqueue("MeterValues", _meter_values(value), session_id=1)


async def _replay(url: str, data_dir: Path, n: int, cs_pid: int | None) -> _Loop:
    """Deliver Start + n MeterValues, queued while offline, over a fresh connection."""
    _fill(data_dir, n)
    answers = {"StartTransaction": 0, "MeterValues": 0}

    def on_answer(action: str, payload: dict, answer: dict) -> None:
        answers[action] += 1

    # Opened as the daemon opens it (OcppClient): durable (synchronous=FULL), each message checked
    # against the schema when queued and sent with call(..., checked=True); the outbox adds its
    # fast connection.
    with Database.open(data_dir) as db, Outbox(db, attempts=lambda: 3, retry_interval=lambda: 1,
                                               check=check_request) as outbox:
        if outbox.pending_count() != n + 1:
            raise RuntimeError(f"{outbox.pending_count()} messages queued, expected {n + 1}")
        async with _Station(url) as endpoint:
            send = functools.partial(endpoint.call, checked=True)  # as OcppClient._call_checked
            async with asyncio.timeout(REPLAY_TIMEOUT_S):
                with _Clock(cs_pid) as clock:
                    drained = await outbox.deliver(send, on_answer)
        if not drained or outbox.pending_count() or outbox.dead_letters():
            raise RuntimeError(f"replay did not empty the outbox: drained={drained}, "
                               f"pending={outbox.pending_count()}, parked={len(outbox.dead_letters())}, "
                               f"interruption={outbox.last_interruption!r}")
    if answers != {"StartTransaction": 1, "MeterValues": n}:
        raise RuntimeError(f"answers {answers}, expected 1 StartTransaction and {n} MeterValues")
    return clock.loop(n + 1)


async def _replay_case(url: str, tmp: Path, n: int, calls: int, cs_pid: int | None) -> dict[str, _Loop]:
    return {
        "heartbeat": await _call_loop(url, calls, "Heartbeat", {}, cs_pid),
        "replay": await _replay(url, tmp, n, cs_pid),
        # The same MeterValues without the outbox: what the payload itself costs both ends.
        "meter_values": await _call_loop(url, calls, "MeterValues", {**_meter_values(1), "transactionId": 1}, cs_pid),
    }


async def _in_process(tmp: Path, n: int, calls: int) -> dict[str, _Loop]:
    cs = CentralSystem(path="/ocpp", max_records=1000)
    await cs.start()
    try:
        result = await _replay_case(cs.url, tmp, n, calls, None)
        if cs.violations():
            raise RuntimeError(f"the central system saw OCPP violations: {cs.violations()[:3]}")
        tids = {p.get("transactionId") for p in cs.payloads("MeterValues")[-100:]}
        if len(tids) != 1 or not isinstance(next(iter(tids)), int):
            raise RuntimeError(f"MeterValues went out with transactionIds {tids}")
        return result
    finally:
        await cs.stop()


def _separate_process(tmp: Path, n: int, calls: int) -> dict[str, _Loop]:
    with open(tmp / "central_system.log", "wb") as err, Child(
            [sys.executable, "-m", "firmware_sim.central_system", "--host", LOOPBACK, "--port", "0",
             "--log-level", "WARNING"], name="firmware_sim.central_system", stdout=subprocess.PIPE,
            stderr=err) as cs:
        assert cs.proc.stdout is not None
        line = read_lines(cs.proc.stdout, 1, START_TIMEOUT_S, cs)[0]  # "central system: ws://…/ocpp/<chargebox id>"
        url = line.split(": ", 1)[1].rsplit("/", 1)[0]
        if not url.startswith(f"ws://{LOOPBACK}:"):
            raise RuntimeError(f"unexpected first line of the central system: {line!r}")
        result = asyncio.run(_replay_case(url, tmp, n, calls, cs.pid))
        cs.check_alive()
    problems = (tmp / "central_system.log").read_text(errors="replace").strip()
    if problems:
        print(f"bench: note: the central system process logged:\n{problems[:2000]}", file=sys.stderr)
    return result


def _replay_figures(quick: bool) -> list[Figure]:
    n, calls = (QUICK_REPLAY, QUICK_RTT_CALLS) if quick else (REPLAY, RTT_CALLS)
    with tempfile.TemporaryDirectory(prefix="bench-ocpp-replay-") as tmp:
        (Path(tmp) / "sep").mkdir()
        (Path(tmp) / "in").mkdir()
        separate = _separate_process(Path(tmp) / "sep", n, calls)
        inside = asyncio.run(_in_process(Path(tmp) / "in", n, calls))

    def ratio(r: dict[str, _Loop], base: str = "heartbeat") -> float:
        return r[base].per_message_s / r["replay"].per_message_s  # rate x RTT

    def how(r: dict[str, _Loop]) -> str:
        hb, mv, rp = r["heartbeat"], r["meter_values"], r["replay"]
        return (f"Heartbeat RTT {hb.per_message_s * 1e3:.3f} ms ({hb.cpu_us()}); replay of Start + {n} MeterValues "
                f"{rp.wall_s:.2f} s = {1 / rp.per_message_s:.0f} msg/s, {rp.per_message_s * 1e3:.3f} ms/message "
                f"({rp.cpu_us()}); the same MeterValues called in a loop without the outbox "
                f"{mv.per_message_s * 1e3:.3f} ms ({mv.cpu_us()})")

    sep, ins = separate, inside
    return [
        Figure("replay_ratio_to_rtt_limit", round(ratio(sep), 3), "x 1/RTT", ">= 0.9",
               f"CS in a separate process ({calls} Heartbeats for the RTT): {how(sep)}. CS in the bench's own loop "
               f"(one core for both ends): ratio {ratio(ins):.3f}, {how(ins)}"),
        Figure("replay_ratio_in_process", round(ratio(ins), 3), "x 1/RTT", None, "CS in the benchmark's own event loop"),
        Figure("replay_ratio_to_mv_rtt", round(ratio(sep, "meter_values"), 3), "x", None,
               "replay rate x the round trip of the same MeterValues without the outbox (separate CS)"),
        Figure("ocpp_rtt_ms", round(sep["heartbeat"].per_message_s * 1e3, 3), "ms", None,
               "Heartbeat CALL → CALLRESULT, CS in a separate process"),
        Figure("replay_msgs_per_s", round(1 / sep["replay"].per_message_s), "msg/s", None,
               "outbox replay after a reconnect, CS in a separate process"),
    ]


# --------------------------------------------------------------------------- the demo as a subprocess
def _stationd() -> list[str]:
    script = Path(sys.executable).with_name("stationd")  # the console script, as a person starts it
    return [str(script)] if script.exists() else [sys.executable, "-m", "stationd"]


def _start_demo(backend: str, data_dir: Path, log_path: Path) -> tuple[Child, int]:
    api_port = free_port()
    with open(log_path, "ab") as err:
        child = Child([*_stationd(), "demo", "--backend", backend, "--security-profile", "0",
                       "--data-dir", str(data_dir), "--sim-api", f"{LOOPBACK}:{api_port}",
                       "--modbus", f"{LOOPBACK}:{free_port()}", "--webui", f"{LOOPBACK}:{free_port()}",
                       "--connectors", "1"],
                      name="stationd demo", stdout=err, stderr=err)
    return child, api_port


async def _stop(child: Child) -> None:
    """Stop the demo from a worker thread: the in-process CS must keep serving its close handshake."""
    try:
        await asyncio.to_thread(child.stop)
    except BaseException:
        child.stop(timeout=2)
        raise


# The station's own close when the benchmark stops it (logged as a warning by the connection code).
_OWN_CLOSE = "sent 1000 (OK); then received 1000 (OK)"


def _problems(log_path: Path) -> list[str]:
    """The demo's warnings and errors, without the close that SIGTERM causes."""
    try:
        text = log_path.read_text(errors="replace")
    except FileNotFoundError:
        return []
    return [line for line in text.splitlines()
            if (any(f" {lvl} " in line for lvl in ("WARNING", "ERROR", "CRITICAL")) or "Traceback" in line)
            and _OWN_CLOSE not in line]


def _tail(log_path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(log_path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return ""


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _post(port: int, path: str, body: dict[str, Any] | None = None) -> float:
    """POST to the control API; returns time.monotonic() taken just before the request is sent."""
    request = urllib.request.Request(f"http://{LOOPBACK}:{port}{path}", method="POST",
                                     data=json.dumps(body or {}).encode(), headers={"Content-Type": "application/json"})
    sent = time.monotonic()
    with _OPENER.open(request, timeout=5) as response:
        response.read()
    return sent


def _since(moment: float) -> Callable[[Record], bool]:
    return lambda record: record.monotonic >= moment


async def _await_status(cs: CentralSystem, status: str, after: float, child: Child) -> Record:
    def matches(r: Record) -> bool:
        return (r.message_type_id == CALL and r.monotonic >= after and isinstance(r.payload, dict)
                and r.payload.get("connectorId") == 1 and r.payload.get("status") == status)

    return await _await(cs, "StatusNotification", child, matches)


async def _await(cs: CentralSystem, action: str, child: Child, predicate: Callable[[Record], bool] | None = None,
                 timeout: float = STEP_TIMEOUT_S) -> Record:
    deadline = time.monotonic() + timeout
    while True:
        child.check_alive()
        try:
            return await cs.wait_for(action, predicate=predicate, message_type_id=CALL,
                                     timeout=min(1.0, max(0.01, deadline - time.monotonic())))
        except TimeoutError:
            if time.monotonic() >= deadline:
                raise TimeoutError(f"no {action} from the demo within {timeout:g} s") from None


# --------------------------------------------------------------------------- 2. tap → StartTransaction
async def _tap_figures(cycles: int) -> list[Figure]:
    cs = CentralSystem(path="/ocpp")
    await cs.start()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-ocpp-tap-") as tmp:
            log_path = Path(tmp) / "demo.log"
            demo, api = _start_demo(cs.url, Path(tmp) / "data", log_path)
            try:
                samples = await _tap_cycles(cs, demo, api, cycles)
            except Exception:
                print(f"bench: demo log (last lines):\n{_tail(log_path)}", file=sys.stderr)
                raise
            finally:
                await _stop(demo)
            problems = _problems(log_path)
            if problems:
                print(summarize_problems(problems, "stationd demo (tap)"), file=sys.stderr)
    finally:
        await cs.stop()
    via = (f"local list hit (SendLocalList Full v1 of the {cycles} cards, LocalPreAuthorize true; "
           f"no Authorize sent)")
    how = (f"{cycles} cycles, POST /rfid → StartTransaction received, stationd demo subprocess, CS in the bench "
           f"process answering at once; runs (ms): {', '.join(f'{t:.1f}' for t in samples)}")
    return [
        Figure("tap_to_starttx_p50_ms", round(percentile(samples, 50), 1), "ms", "< 20", f"{via}: {how}"),
        Figure("tap_to_starttx_p99_ms", round(percentile(samples, 99), 1), "ms", None,
               f"{via}, nearest rank of {cycles}"),
    ]


# Cards needed (CsMode 0); a card of the backend's list starts at once, without an Authorize.
TAP_CONFIGURATION = {"CsMode": "0", "LocalAuthListEnabled": "true", "LocalPreAuthorize": "true"}


def _tap_card(cycle: int) -> str:
    return f"BE{cycle:06X}"  # a new card each cycle: the reader would take a quick repeat for the same one


async def _configure(cs: CentralSystem, chargebox: str, wanted: dict[str, str]) -> None:
    """ChangeConfiguration of each key whose value (GetConfiguration) is not the wanted one."""
    answer = await cs.call(chargebox, "GetConfiguration", {"key": list(wanted)})
    current = {item["key"]: item.get("value") for item in answer.get("configurationKey", [])}
    for key, value in wanted.items():
        if current.get(key) != value:
            changed = await cs.call(chargebox, "ChangeConfiguration", {"key": key, "value": value})
            if changed.get("status") != "Accepted":
                raise RuntimeError(f"ChangeConfiguration {key} {value} answered {changed}")


async def _send_local_list(cs: CentralSystem, chargebox: str, cards: list[str]) -> None:
    """SendLocalList Full, version 1: every card Accepted."""
    answer = await cs.call(chargebox, "SendLocalList", {
        "listVersion": 1, "updateType": "Full",
        "localAuthorizationList": [{"idTag": card, "idTagInfo": {"status": "Accepted"}} for card in cards]})
    if answer.get("status") != "Accepted":
        raise RuntimeError(f"SendLocalList answered {answer}")
    version = await cs.call(chargebox, "GetLocalListVersion", {})
    if version.get("listVersion") != 1:
        raise RuntimeError(f"GetLocalListVersion answered {version} after SendLocalList version 1")


async def _tap_cycles(cs: CentralSystem, demo: Child, api: int, cycles: int) -> list[float]:
    boot = await _await(cs, "BootNotification", demo, timeout=START_TIMEOUT_S)
    chargebox = boot.chargebox_id
    await _await_status(cs, "Available", boot.monotonic, demo)
    await _configure(cs, chargebox, TAP_CONFIGURATION)
    listed = time.monotonic()
    await _send_local_list(cs, chargebox, [_tap_card(cycle) for cycle in range(cycles)])
    samples: list[float] = []
    for cycle in range(cycles):
        card = _tap_card(cycle)
        plugged = time.monotonic()
        await asyncio.to_thread(_post, api, "/connectors/1/plug", {"cable_max_a": 32})
        await _await_status(cs, "Preparing", plugged, demo)
        await asyncio.sleep(0.2)  # the plug's own traffic is over
        tapped = await asyncio.to_thread(_post, api, "/rfid", {"uid": card})
        start = await _await(cs, "StartTransaction", demo, _since(tapped))
        if str(start.payload.get("idTag", "")).lower() != card.lower():
            raise RuntimeError(f"StartTransaction for {start.payload.get('idTag')!r}, the card was {card}")
        samples.append((start.monotonic - tapped) * 1e3)
        await asyncio.sleep(max(0.0, tapped + SAME_CARD_S - time.monotonic()))  # the card was taken away
        stopped = await asyncio.to_thread(_post, api, "/rfid", {"uid": card})
        await _await(cs, "StopTransaction", demo, _since(stopped))
        unplugged = time.monotonic()
        await asyncio.to_thread(_post, api, "/connectors/1/unplug")
        await _await_status(cs, "Available", unplugged, demo)
    authorizes = [r.payload for r in cs.messages(chargebox) if r.direction == "in" and r.message_type_id == CALL
                  and r.action == "Authorize" and r.monotonic >= listed]
    if authorizes:
        raise RuntimeError(f"{len(authorizes)} Authorize sent for cards of the local list (LocalPreAuthorize "
                           f"true), e.g. {authorizes[0]}: the figure would not be a local list hit")
    return samples


# --------------------------------------------------------------------------- 3. start → BootNotification
async def _boot_figures(runs: int) -> list[Figure]:
    cs = CentralSystem(path="/ocpp")
    await cs.start()
    times: list[float] = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench-ocpp-boot-") as tmp:
            for index in range(runs):
                log_path = Path(tmp) / f"demo-{index}.log"
                started = time.monotonic()
                demo, _ = _start_demo(cs.url, Path(tmp) / f"data-{index}", log_path)
                try:
                    boot = await _await(cs, "BootNotification", demo, _since(started),
                                        timeout=START_TIMEOUT_S)
                    times.append(boot.monotonic - started)
                except Exception:
                    print(f"bench: demo log (last lines):\n{_tail(log_path)}", file=sys.stderr)
                    raise
                finally:
                    await _stop(demo)
                await cs.wait_disconnected(boot.chargebox_id, timeout=10)  # the next run starts from nothing
                problems = _problems(log_path)
                if problems:
                    print(summarize_problems(problems, f"stationd demo (boot {index + 1})"), file=sys.stderr)
    finally:
        await cs.stop()
    spread = ", ".join(f"{t:.2f}" for t in times)
    return [Figure("start_to_boot_s", round(statistics.median(times), 2), "s", "< 2",
                   f"Popen of {' '.join(Path(a).name for a in _stationd()[:1])} demo --backend … → BootNotification "
                   f"at the CS, median of {runs} runs on a fresh data dir each ({spread} s)")]
