"""Power cuts: ``kill -9`` of ``stationd demo`` at random moments during sessions.

The station (``stationd demo --backend …`` on one data directory, 2 connectors, free charging)
talks to a central system in this process that records every frame.
MeterValueSampleInterval (1 s), ConnectionTimeOut and ClockAlignedDataInterval are set once
with ChangeConfiguration after the first start.
Each try drives sessions through the firmware_sim control API and, at a moment chosen by a
seeded ``random.Random`` — idle, right after a plug, with a StartTransaction / MeterValues /
StopTransaction CALL at the central system and its answer held back, mid-charging, right after
an unplug, at a random time — SIGKILLs the whole process group, restarts the demo on the same
data directory and checks that it boots, that both settings are intact (GetConfiguration),
and that its outbox drains. The simulator dies with the demo (it runs inside it), so after the
restart no vehicle is plugged in: the session the cut interrupted is closed by the station
with reason PowerLoss (``Station.start``), at the last meter reading it recorded.

At the end every vehicle leaves, the demo stops cleanly and :mod:`reliability.transaction_check`
compares the central system's records with the station's database and message journal:
every StartTransaction has exactly one StopTransaction, MeterValues in order, nothing the
station recorded or journaled as sent is missing (lost), and at most one message — the one
in flight — arrived twice per kill (duplicated).
"""

from __future__ import annotations

import asyncio
import logging
import random
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from firmware_sim.central_system import CALL, DEFAULT, CentralSystem

from .demo_station import DemoStation, keep_for_inspection, read_db
from .tally import Tally
from .transaction_check import TransactionReport, check_transactions

__all__ = ["KILLS_LONG", "KILLS_SHORT", "MOMENTS", "PowerCuts", "power_cuts", "run"]

KILLS_SHORT = 8  # each moment once
KILLS_LONG = 100
SEED = 20_610
CHARGEBOX_ID = "PC-1"
CONNECTORS = (1, 2)
SETTINGS = {"MeterValueSampleInterval": "1", "ConnectionTimeOut": "47", "ClockAlignedDataInterval": "0"}
HELD = 60.0  # s an answer is held back: longer than any try, so the kill always comes first
# Where a kill may hit (one is drawn per try).
MOMENTS = ("idle", "plug", "start_in_flight", "charging", "meter_in_flight", "unplug", "stop_in_flight", "random")

log = logging.getLogger("reliability.power_cuts")


def run(long: bool) -> Tally:
    return asyncio.run(power_cuts(KILLS_LONG if long else KILLS_SHORT)).tally


@dataclass
class PowerCuts:
    """One run: the tally, the final check, and how many sessions the station closed with PowerLoss."""

    tally: Tally
    report: TransactionReport
    power_loss_stops: int


async def power_cuts(kills: int, seed: int = SEED, *, moments: tuple[str, ...] = MOMENTS) -> PowerCuts:
    """``kills`` tries: the first one at each of ``moments`` in turn, then drawn at random."""
    tally = Tally("power_cuts", "kill -9")
    rng = random.Random(seed)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="reliability-power-cuts-") as tmp:
        data_dir = Path(tmp) / "station"
        data_dir.mkdir()
        async with CentralSystem(heartbeat_interval=300, max_records=None) as cs:
            station = DemoStation(data_dir, cs.url, CHARGEBOX_ID, connectors=len(CONNECTORS))
            cut = _Cutter(cs, station, rng)
            kill_times: list[float] = []
            try:
                station.start()
                await cut.booted(configure=True)
                for number in range(1, kills + 1):
                    moment = moments[(number - 1) % len(moments)] if number <= len(moments) else rng.choice(moments)
                    try:
                        await cut.drive_and_kill(moment)
                        kill_times.append(time.monotonic())
                        station.start()
                        await cut.booted()
                        tally.ok()
                    except Exception as exc:  # noqa: BLE001 - one failed try is counted, the run goes on
                        tally.failed(f"kill {number} ({moment}): {type(exc).__name__}: {exc}")
                        log.warning("kill %d (%s) failed: %s\n%s", number, moment, exc, station.log_tail())
                        cs.reset_responses()
                        if not station.running:
                            station.start()
                            await cut.booted()
                    cut.counts[moment] = cut.counts.get(moment, 0) + 1
                try:
                    await cut.finish()
                except Exception as exc:  # noqa: BLE001 - counted below, with the records checked anyway
                    tally.revoke(f"final clean stop: {type(exc).__name__}: {exc}")
            finally:
                station.stop()
            report = check_transactions(cs.messages(CHARGEBOX_ID), data_dir)
            if report.problems:
                kept = keep_for_inspection(data_dir, "power-cuts")
                tally.notes.append(f"data directory and demo log kept in {kept}")
            power_loss = cut.power_loss_stops()
        _judge(tally, report, kill_times)
        tally.notes.append(f"{kills} kills in {time.monotonic() - started:.0f} s, seed {seed}; moments "
                           + ", ".join(f"{m} {n}" for m, n in sorted(cut.counts.items()))
                           + f"; {report.transactions} transactions, {report.messages} transaction messages "
                             f"received, {report.duplicates} duplicated, {report.lost} lost; "
                             f"{power_loss} sessions closed with reason PowerLoss")
    return PowerCuts(tally, report, power_loss)


def _judge(tally: Tally, report: TransactionReport, kill_times: list[float]) -> None:
    """Losses and problems from the final check; duplicates: at most one per kill."""
    tally.lost += report.lost
    tally.duplicated += report.duplicates
    per_kill: dict[int, int] = {}
    for arrived in report.duplicate_times:
        kill = sum(1 for t in kill_times if t <= arrived)  # the kill before the copy arrived
        per_kill[kill] = per_kill.get(kill, 0) + 1
    bad = {kill: n for kill, n in per_kill.items() if kill == 0 or n > 1}
    problems = list(report.problems) + [
        f"{n} messages arrived twice after kill {kill} (at most the one in flight may)" if kill else
        f"{n} messages arrived twice before any kill" for kill, n in sorted(bad.items())]
    for problem in problems:  # a problem found only in the final check takes a survivor away
        tally.revoke(problem)


class _Cutter:
    """Drives sessions on the demo and kills it at the chosen moment."""

    def __init__(self, cs: CentralSystem, station: DemoStation, rng: random.Random) -> None:
        self.cs, self.station, self.rng = cs, station, rng
        self.counts: dict[str, int] = {}
        self._boots = 0

    # ---- waiting for what the central system gets ----------------------------------------

    def _mark(self) -> int:
        records = self.cs.messages(CHARGEBOX_ID)
        return records[-1].seq if records else -1

    async def _received(self, action: str, after: int, count: int = 1, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            found = [r for r in self.cs.messages(CHARGEBOX_ID) if r.seq > after and r.direction == "in"
                     and r.message_type_id == CALL and r.action == action]
            if len(found) >= count:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {action} (wanted {count}, got {len(found)}) within {timeout:g} s")
            if self.station.child is not None:
                self.station.child.check_alive()
            await asyncio.sleep(0.005)

    async def booted(self, *, configure: bool = False) -> None:
        """After a (re)start: BootNotification, the settings intact, the outbox drained.
        ``configure``: the first start; the settings are set with ChangeConfiguration."""
        self._boots += 1
        mark_boots = self._boots
        await self.station.wait_api()
        deadline = time.monotonic() + 30
        while len(self.cs.payloads("BootNotification", CHARGEBOX_ID)) < mark_boots:
            if time.monotonic() > deadline:
                raise TimeoutError("no BootNotification within 30 s of the start")
            await asyncio.sleep(0.02)
        await self.cs.wait_connected(CHARGEBOX_ID, timeout=10)
        if configure:
            for key, value in SETTINGS.items():
                answer = await self.cs.call(CHARGEBOX_ID, "ChangeConfiguration", {"key": key, "value": value})
                if answer.get("status") != "Accepted":
                    raise AssertionError(f"ChangeConfiguration {key} {value}: {answer}")
        answer = await self.cs.call(CHARGEBOX_ID, "GetConfiguration", {"key": list(SETTINGS)})
        values = {entry["key"]: entry.get("value") for entry in answer.get("configurationKey", [])}
        if values != SETTINGS:
            raise AssertionError(f"settings not intact after the restart: {values}, wanted {SETTINGS}")
        await self.outbox_drained()

    async def outbox_drained(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while read_db(self.station.data_dir, "SELECT count(*) FROM outbox")[0][0]:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the outbox did not drain within {timeout:g} s of the restart")
            await asyncio.sleep(0.05)

    # ---- the vehicles ---------------------------------------------------------------------

    async def _vehicles_gone(self) -> None:
        state = await self.station.api("GET", "/state")
        for connector in state["connectors"]:
            if connector["cp_state"] != "A":
                await self.station.api("POST", f"/connectors/{connector['id']}/unplug")

    async def _charge(self, connector_id: int) -> None:
        await self.station.api("POST", f"/connectors/{connector_id}/plug", {"cable_max_a": 32})
        await self.station.api("POST", f"/connectors/{connector_id}/charge", {"max_current_a": 16, "phases": 3})

    async def _unplug(self, connector_id: int) -> None:
        await self.station.api("POST", f"/connectors/{connector_id}/unplug")

    def _hold(self, action: str) -> None:
        """The central system holds back its next answer to ``action`` (the kill comes first)."""
        self.cs.respond(action, DEFAULT, delay=HELD, times=1, chargebox_id=CHARGEBOX_ID)

    # ---- one try ----------------------------------------------------------------------------

    async def drive_and_kill(self, moment: str) -> None:
        rng = self.rng
        await self._vehicles_gone()
        connector, other = rng.sample(CONNECTORS, 2)
        if moment != "idle" and rng.random() < 0.5:  # a second session in the background
            await self._charge(other)
        mark = self._mark()
        if moment == "idle":
            await asyncio.sleep(rng.uniform(0, 0.5))
        elif moment == "plug":
            await self._charge(connector)
            await asyncio.sleep(rng.uniform(0, 0.1))
        elif moment == "start_in_flight":
            self._hold("StartTransaction")
            await self._charge(connector)
            await self._received("StartTransaction", mark)
        elif moment == "charging":
            await self._charge(connector)
            await self._received("MeterValues", mark, count=rng.randint(1, 3))
            await asyncio.sleep(rng.uniform(0, 1))
        elif moment == "meter_in_flight":
            self._hold("MeterValues")  # the first one of the session (or of the one in the background)
            await self._charge(connector)
            await self._received("MeterValues", mark)
            await asyncio.sleep(0.05)  # its answer would be out by now
        elif moment == "unplug":
            await self._charge(connector)
            await self._received("MeterValues", mark)
            await self._unplug(connector)
            await asyncio.sleep(rng.uniform(0, 0.05))
        elif moment == "stop_in_flight":
            await self._charge(connector)
            await self._received("MeterValues", mark)
            self._hold("StopTransaction")
            mark = self._mark()
            await self._unplug(connector)
            await self._received("StopTransaction", mark)
        elif moment == "random":
            await self._charge(connector)
            await asyncio.sleep(rng.uniform(0, 3))
            if rng.random() < 0.3:
                await self._unplug(connector)
                await asyncio.sleep(rng.uniform(0, 0.2))
        else:
            raise ValueError(f"unknown moment {moment!r}")
        self.station.kill()
        self.cs.reset_responses()

    async def finish(self) -> None:
        """Every vehicle leaves; the sessions close, the outbox drains; then a clean stop."""
        await self._vehicles_gone()
        deadline = time.monotonic() + 20
        while read_db(self.station.data_dir, "SELECT count(*) FROM sessions WHERE stopped_at IS NULL")[0][0]:
            if time.monotonic() > deadline:
                raise TimeoutError("sessions still open 20 s after every vehicle left")
            await asyncio.sleep(0.05)
        await self.outbox_drained()
        code = self.station.stop()
        if code not in (0, None):
            raise RuntimeError(f"stationd demo exited with status {code} on SIGTERM")

    def power_loss_stops(self) -> int:
        return sum(1 for p in self.cs.payloads("StopTransaction", CHARGEBOX_ID) if p.get("reason") == "PowerLoss")
