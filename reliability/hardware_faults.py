"""Hardware faults: the controller line pulled and fed garbage, CAN bus-off, meter timeouts, a
controller rebooting, the RCD and over-current tripping — at rest, while charging, while stopping.

One real daemon runs in this process against firmware_sim: connector 1's controller on a serial
line (a pty), connector 2's on a python-can virtual CAN bus, both meters on Modbus TCP, a real
central system on 127.0.0.1. Each fault is injected through the simulated world's hooks
(``pull_link``/``restore_link``, ``feed_garbage``, ``reboot_controller``, ``set_fault``,
``set_meter_online``); the two connectors are tried side by side. After each fault the checks
are what a person at the station and the backend would see:

- the StatusNotification: Faulted with the fault's errorCode (vendorErrorCode for codes outside
  OCPP 1.6) while it lasts, then Available / Charging again;
- the WebUI's connector row (``diagnostics.sections.hardware``, what ``/api/status`` serves):
  the same status, the controller link up again;
- the contactor: open while the line is lost during a charge (the controller's own heartbeat
  timeout), for the RCD, over-current and a meter that stopped answering;
- recovery without restarting the daemon;
- the session: never closed by the fault itself (it resumes), closed exactly once when the
  vehicle leaves, its meterStop the meter's register.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from firmware_sim.central_system import CentralSystem
from firmware_sim.world import SimConnectorSpec, SimWorld
from stationd.config.station_file import parse_station_config
from stationd.daemon import Daemon
from stationd.diagnostics.sections import hardware
from stationd.sdnotify import SystemdNotifier

from .tally import Tally

CATEGORY, UNIT = "hardware_faults", "faults"
BOX = "TE-HF0001"
SERIAL, CAN = 1, 2  # connector ids: the controller's transport
TRANSPORT = {SERIAL: "serial", CAN: "CAN"}
METER_TOLERANCE_WH = 15.0  # the last 1 s sample before the stop at ≤ 11 kW, and rounding
# While the meter is silent the station cannot know the energy that still flows until the
# contactor opens (meter timeout detection, then PowerMeterFailure): its meterStop is the last
# reading it had. That gap is at most 10 s at 11 kW; meterStop must never exceed the register.
METER_SILENT_TOLERANCE_WH = 11_000 * 10 / 3600
SAFE_WITHIN_S = 8.0  # line lost while charging: the controller opens within its 2 s timeout (+ detection)
RECOVER_WITHIN_S = 45.0  # serial re-open backoff (1, 2, 4 … s) included


@dataclass(frozen=True)
class Kind:
    name: str
    transports: tuple[int, ...]
    error_code: str | None  # the StatusNotification errorCode while it lasts (None: no Faulted expected)
    vendor_error_code: str | None = None
    opens_contactor: bool = False  # while charging, the contactor must be seen open
    latched: bool = False  # cleared only once the vehicle left (the station clears it then)


KINDS = (
    Kind("line pulled", (SERIAL, CAN), "OtherError", "ControllerLinkLost", opens_contactor=True),
    Kind("garbage on the line", (SERIAL, CAN), None),
    Kind("meter timeout", (SERIAL, CAN), "PowerMeterFailure", opens_contactor=True),
    Kind("controller reboot", (SERIAL, CAN), None),  # it opens by itself at once; the check: it resumes
    Kind("RCD trip", (SERIAL, CAN), "GroundFailure", opens_contactor=True, latched=True),
    Kind("over-current", (SERIAL, CAN), "OverCurrentFailure", opens_contactor=True, latched=True),
)
MOMENTS = ("idle", "charging", "stopping")


def station_yaml(url: str, data_dir: Path, channel: str) -> str:
    return (f"identity: {{serial_number: HF0001, chargebox_id_template: 'TE-{{serial}}'}}\n"
            f"ocpp: {{endpoint: '{url}', security_profile: 0}}\n"
            f"hardware:\n  connectors:\n"
            f"    - {{id: {SERIAL}, controller: {{transport: sim}}, meter: {{model: sim}}}}\n"
            f"    - {{id: {CAN}, controller: {{transport: can, can_interface: virtual, can_channel: {channel}, "
            f"node_id: {CAN}}}, meter: {{model: sim}}}}\n"
            f"  rfid: {{transport: none}}\n"
            f"modbus_server: {{enabled: false, bind: '127.0.0.1:0'}}\n"
            f"webui: {{bind: '127.0.0.1:0'}}\n"
            f"data_dir: {data_dir}\n")


class FaultFailed(Exception):
    """One check after a fault did not hold."""


class Bench:
    """The daemon, its simulated hardware and the central system, all in this event loop."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.channel = f"hf-{uuid.uuid4().hex[:8]}"
        self.cs = CentralSystem(heartbeat_interval=300)
        self.world = SimWorld([SimConnectorSpec(SERIAL), SimConnectorSpec(CAN, transport="can",
                                                                          can_channel=self.channel)],
                              directory / "sim", vehicle_reaction_s=0)
        self.station = None
        self.daemon: Daemon | None = None
        self.task: asyncio.Task | None = None
        self.boots = 0

    async def __aenter__(self) -> Bench:
        await self.cs.start()
        await self.world.start()
        config = parse_station_config(station_yaml(self.cs.url, self.directory / "data", self.channel))
        self.daemon = Daemon(config, world=self.world, notifier=SystemdNotifier.from_env({}), handle_signals=False,
                             component_factories=[self._capture])
        self.task = asyncio.create_task(self.daemon.run(), name="stationd")
        await self.cs.wait_for("BootNotification", chargebox_id=BOX, timeout=20)
        await until(lambda: all(self.row(c)["controller"]["linkUp"] for c in (SERIAL, CAN)), 20, "links up")
        await until(lambda: all(self.last_status(c) == ("Available", "NoError", None) for c in (SERIAL, CAN)),
                    20, "both connectors Available")
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            if self.task is not None:
                self.daemon.request_stop("hardware faults over")
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self.task, 20)
        finally:
            await self.world.stop()
            await self.cs.stop()

    def _capture(self, station) -> list:
        self.boots += 1
        self.station = station
        return []

    @property
    def alive(self) -> bool:
        return self.task is not None and not self.task.done() and self.boots == 1

    # ---- what the backend, the WebUI and the car park show ----
    def row(self, connector_id: int) -> dict:
        """The connector as the WebUI's /api/status shows it."""
        return next(r for r in hardware(self.station)["connectors"] if r["id"] == connector_id)

    def statuses(self, connector_id: int) -> list[tuple[str, str, str | None]]:
        return [(p["status"], p["errorCode"], p.get("vendorErrorCode")) for p in self.cs.payloads(
            "StatusNotification", BOX) if p["connectorId"] == connector_id]

    def last_status(self, connector_id: int) -> tuple[str, str, str | None] | None:
        sent = self.statuses(connector_id)
        return sent[-1] if sent else None

    def sim(self, connector_id: int) -> dict:
        return self.world.connector_state(connector_id)

    def transactions(self, connector_id: int) -> dict[int, dict]:
        """The connector's transactions: transactionId → {"connector", "meterStart", "stops"}; a
        StopTransaction for an id the station never started counts under every connector."""
        records = self.cs.messages(BOX)
        answers = {r.unique_id: r.payload for r in records if r.direction == "out" and r.message_type_id == 3}
        found: dict[int, dict] = {}
        for record in records:
            if record.direction == "in" and record.message_type_id == 2 and record.action == "StartTransaction":
                answer = answers.get(record.unique_id)
                if answer is not None:
                    found[answer["transactionId"]] = {"connector": record.payload["connectorId"],
                                                      "meterStart": record.payload["meterStart"], "stops": []}
        for stop in self.cs.payloads("StopTransaction", BOX):
            found.setdefault(stop["transactionId"], {"connector": None, "meterStart": None, "stops": []})
            found[stop["transactionId"]]["stops"].append(stop)
        return {n: t for n, t in found.items() if t["connector"] in (connector_id, None)}


async def until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise FaultFailed(f"not within {timeout:g} s: {what}")
        await asyncio.sleep(0.05)


# ---- one fault at one moment on one connector ----------------------------------------------

async def try_fault(bench: Bench, kind: Kind, moment: str, cid: int, rng: random.Random) -> str:
    """Inject ``kind`` at ``moment`` on connector ``cid``, check, recover; returns a note."""
    world = bench.world
    before_tx = set(bench.transactions(cid))
    sent_before = len(bench.statuses(cid))
    if moment in ("charging", "stopping"):
        world.plug(cid, cable_max_a=32)
        world.charge(cid, max_current_a=16, phases=3)
        await until(lambda: bench.last_status(cid) == ("Charging", "NoError", None), 15, "Charging")
        await until(lambda: bench.sim(cid)["contactor"] and bench.sim(cid)["power_w"] > 0, 10, "energy flows")
        await asyncio.sleep(rng.uniform(0.3, 1.5))  # some energy, at a random phase of the meter poll
    charging = moment != "idle"

    recover = await inject(bench, kind, cid, rng)
    if kind.error_code is not None:
        want = ("Faulted", kind.error_code, kind.vendor_error_code)
        await until(lambda: want in bench.statuses(cid)[sent_before:], 15, f"StatusNotification {want}")
        await until(lambda: bench.row(cid)["status"] == "Faulted", 5, "the WebUI shows Faulted")
        if bench.row(cid)["errorCode"] != kind.error_code:
            raise FaultFailed(f"the WebUI shows errorCode {bench.row(cid)['errorCode']}, not {kind.error_code}")
    if charging and kind.opens_contactor:
        await until(lambda: not bench.sim(cid)["contactor"], SAFE_WITHIN_S, "the contactor open (safe state)")
    if moment == "stopping":  # the vehicle leaves while the fault lasts
        world.unplug(cid)
        await asyncio.sleep(0.5)
    await recover()
    if kind.latched and moment == "charging":  # the tripped vehicle is not re-energized: it has to leave
        await asyncio.sleep(1.0)
        if bench.sim(cid)["contactor"]:
            raise FaultFailed("the contactor closed again on the vehicle that tripped it")
        world.unplug(cid)
    elif moment == "charging":
        await until(lambda: bench.last_status(cid) == ("Charging", "NoError", None), RECOVER_WITHIN_S,
                    "Charging again after recovery")
        await until(lambda: bench.sim(cid)["contactor"] and bench.sim(cid)["power_w"] > 0, 10,
                    "energy flows again")
        # as the other WebUI checks: within a moment (on a loaded machine a heartbeat may come late
        # enough for the controller to go safe once more, and recover)
        await until(lambda: bench.row(cid)["status"] == "Charging", 5, "the WebUI shows Charging")
        world.unplug(cid)
    await until(lambda: bench.last_status(cid) == ("Available", "NoError", None), RECOVER_WITHIN_S,
                "Available again")
    await until(lambda: bench.row(cid)["status"] == "Available" and bench.row(cid)["controller"]["linkUp"], 5,
                "the WebUI shows Available, link up")
    if bench.sim(cid)["contactor"]:
        raise FaultFailed("the contactor is closed with no vehicle")
    if charging:
        await check_session(bench, cid, before_tx, meter_silent=kind.name == "meter timeout")
    elif set(bench.transactions(cid)) != before_tx:
        raise FaultFailed("a transaction appeared on an idle connector")
    if not bench.alive:
        raise FaultFailed("the daemon stopped or restarted")
    faulted = sum(1 for s in bench.statuses(cid)[sent_before:] if s[0] == "Faulted")
    return f"{kind.name}/{moment}/{TRANSPORT[cid]}: {faulted} Faulted report(s)"


async def inject(bench: Bench, kind: Kind, cid: int, rng: random.Random) -> Callable[[], Awaitable[None]]:
    """Start the fault; returns what ends it (the cause goes away)."""
    world = bench.world
    if kind.name == "line pulled":
        await world.pull_link(cid)
        hold = rng.uniform(3.5, 5.0)  # longer than the station's 3 s silence detection

        async def restore() -> None:
            await until(lambda: bench.row(cid)["controller"]["linkUp"] is False, hold + 10, "the link seen lost")
            await world.restore_link(cid)
            await until(lambda: bench.row(cid)["controller"]["linkUp"], RECOVER_WITHIN_S, "the link back")
        return restore
    if kind.name == "garbage on the line":
        stop = asyncio.Event()

        async def noise() -> None:
            while not stop.is_set():
                world.feed_garbage(cid, rng.randbytes(rng.randint(1, 64)))
                await asyncio.sleep(rng.uniform(0.01, 0.1))
        task = asyncio.create_task(noise())
        await asyncio.sleep(rng.uniform(1.5, 3.0))

        async def quiet() -> None:
            stop.set()
            await task
        return quiet
    if kind.name == "meter timeout":
        world.set_meter_online(cid, False)

        async def answer() -> None:
            world.set_meter_online(cid, True)
        return answer
    if kind.name == "controller reboot":
        world.reboot_controller(cid)

        async def nothing() -> None:
            await asyncio.sleep(0.2)
        return nothing
    code = {"RCD trip": "GroundFailure", "over-current": "OverCurrentFailure"}[kind.name]
    world.set_fault(cid, code, True)

    async def clear() -> None:
        world.set_fault(cid, code, False)
    return clear


async def check_session(bench: Bench, cid: int, before: set[int], meter_silent: bool = False) -> None:
    """Exactly one new transaction on ``cid``, stopped exactly once, meterStop = the meter's register
    (after a meter timeout: the last reading the station had, never above the register)."""
    await until(lambda: any(t["stops"] for n, t in bench.transactions(cid).items() if n not in before), 15,
                "StopTransaction")
    await asyncio.sleep(0.3)  # a duplicate would come right after
    new = {n: t for n, t in bench.transactions(cid).items() if n not in before}
    if len(new) != 1:
        raise FaultFailed(f"{len(new)} transactions for one vehicle (the fault must not end or restart it): "
                          f"{sorted(new)}")
    (number, tx), = new.items()
    if tx["connector"] != cid or len(tx["stops"]) != 1:
        raise FaultFailed(f"transaction {number}: connector {tx['connector']}, stopped {len(tx['stops'])} times")
    stop = tx["stops"][0]
    register = bench.sim(cid)["energy_wh"]
    tolerance = METER_SILENT_TOLERANCE_WH if meter_silent else METER_TOLERANCE_WH
    if (abs(stop["meterStop"] - register) > tolerance or stop["meterStop"] < tx["meterStart"]
            or stop["meterStop"] > register + 1):
        raise FaultFailed(f"transaction {number}: meterStart {tx['meterStart']}, meterStop {stop['meterStop']}, "
                          f"the meter's register {register:.0f} Wh")
    if stop.get("reason") != "EVDisconnected":
        raise FaultFailed(f"transaction {number} stopped with reason {stop.get('reason')}, not EVDisconnected")


# ---- the campaign -----------------------------------------------------------------------------

def plan(long: bool, rng: random.Random) -> dict[int, list[tuple[Kind, str]]]:
    """Per connector, the (fault, moment) pairs to try, in a shuffled order."""
    rounds = 3 if long else 1
    per: dict[int, list[tuple[Kind, str]]] = {SERIAL: [], CAN: []}
    for cid in per:
        for kind in KINDS:
            if cid not in kind.transports:
                continue
            moments = MOMENTS if long else SHORT_MOMENTS.get(kind.name, ("charging",))
            per[cid] += [(kind, moment) for moment in moments] * rounds
        rng.shuffle(per[cid])
    return per


SHORT_MOMENTS = {"line pulled": ("charging", "stopping"), "garbage on the line": ("charging",),
                 "meter timeout": ("charging",), "controller reboot": ("charging",), "RCD trip": ("charging",),
                 "over-current": ("idle",)}


async def campaign(long: bool, seed: int | None = None) -> Tally:
    tally = Tally(CATEGORY, UNIT)
    seed = random.randrange(1 << 30) if seed is None else seed
    rng = random.Random(seed)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="stationd-hwfaults-") as directory:
        async with Bench(Path(directory)) as bench:
            per = plan(long, rng)

            async def sequence(cid: int) -> None:
                local = random.Random(rng.random())
                for kind, moment in per[cid]:
                    name = f"{kind.name}/{moment}/{TRANSPORT[cid]}"
                    try:
                        note = await try_fault(bench, kind, moment, cid, local)
                    except Exception as exc:  # noqa: BLE001 - one failed fault is counted, the rest go on
                        tally.failed(f"{name}: {exc}")
                        await settle(bench, cid)
                    else:
                        tally.ok()
                        logging.getLogger("reliability").debug(note)

            await asyncio.gather(sequence(SERIAL), sequence(CAN))
            if not bench.alive:
                tally.failed("the daemon is not running at the end")
    tally.notes.append(f"seed {seed}; {len(KINDS)} kinds × {'3 moments × 3 rounds' if long else 'chosen moments'} "
                       f"× serial and CAN controller, one daemon, {time.monotonic() - started:.0f} s")
    return tally


async def settle(bench: Bench, cid: int) -> None:
    """After a failed try: undo whatever may still be injected, so the next try starts clean."""
    world = bench.world
    with contextlib.suppress(Exception):
        await world.restore_link(cid)
    for code in ("GroundFailure", "OverCurrentFailure"):
        with contextlib.suppress(Exception):
            world.set_fault(cid, code, False)
    with contextlib.suppress(Exception):
        world.set_meter_online(cid, True)
    with contextlib.suppress(Exception):
        world.unplug(cid)
    with contextlib.suppress(FaultFailed):
        await until(lambda: bench.last_status(cid) == ("Available", "NoError", None), RECOVER_WITHIN_S, "settled")


def run(long: bool) -> Tally:
    return asyncio.run(campaign(long))
