"""A load-balancing cluster of real stations on 127.0.0.1: one master, two slaves, an external
building meter (firmware_sim's Janitza UMG 96RM over Modbus TCP) and simulated vehicles.

First in one process (three ``Daemon``s with simulated hardware), then as three ``stationd demo``
processes (configured by a backend over OCPP and the `stationd config` CLI, driven through their
control APIs), the master killed with SIGKILL and restarted."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import aiohttp
import pytest
from conftest import REPO

import stationd.daemon as daemon_module
from firmware_sim.central_system import CentralSystem
from firmware_sim.meters import SimMeter, serve_tcp
from firmware_sim.world import SimConnectorSpec, SimWorld
from stationd.config.station_file import parse_station_config
from stationd.config.store import ConfigStore
from stationd.config.value_types import Source
from stationd.daemon import Daemon
from stationd.load_balancing.service import LoadBalancingService
from stationd.sdnotify import SystemdNotifier

MAX_CLUSTER = 30
MAX_BUILDING = 60
FALLBACK = 6  # LoadBalancingFallbackCurrent's default
SLACK = 0.05  # offers are 0.1 A steps


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def until(condition, timeout: float = 15.0, what: str = "") -> None:
    try:
        async with asyncio.timeout(timeout):
            while not condition():
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what or condition}") from None


def cluster_keys(master_uri: str, meter_port: int | None) -> dict[str, dict[str, str]]:
    """The keys of each member, set before it starts: (master, slave) settings."""
    # The wiring is known (1.RST), so each station reports its vehicle's current per grid phase and
    # the master can tell the cluster's own draw apart from the rest of the building's.
    common = {"LoadBalancingMasterURI": master_uri, "LoadBalancingEnabled": "TRUE", "ConnectorPhaseRotation": "1.RST",
              "GridMaxPower": "0", "GridMaxCurrentPerPhase": "32"}
    master = {**common, "LoadBalancingMode": "Master", "LoadBalancingMaxCluster": str(MAX_CLUSTER),
              "LoadBalancingAlgo": "UNIFORM"}
    if meter_port is not None:
        master.update({"LoadBalancingEnergyMeterEnabled": "TRUE", "LoadBalancingEnergyMeterIP": f"127.0.0.1:{meter_port}",
                       "LoadBalancingEnergyMeterType": "Janitza", "LoadBalancingMaxBuilding": str(MAX_BUILDING)})
    return {"master": master, "slave": {**common, "LoadBalancingMode": "Slave"}}


class BuildingLoad:
    """The building meter sees the rest of the building plus what the cluster's vehicles draw."""

    def __init__(self):
        self.meter = SimMeter("JANITZA_UMG96RM")
        self.rest_a = 0.0
        self.cluster_a: callable = lambda: (0.0, 0.0, 0.0)
        self.server = None
        self._task: asyncio.Task | None = None

    async def start(self) -> int:
        self.server = await serve_tcp({1: self.meter}, "127.0.0.1", 0)
        self._task = asyncio.create_task(self._follow())
        return self.server.port

    async def _follow(self) -> None:
        while True:
            cluster = self.cluster_a()
            self.meter.set_load(tuple(self.rest_a + amps for amps in cluster))
            await asyncio.sleep(0.1)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self.server is not None:
            await self.server.stop()


# ================================================================= in one process
def station_yaml(data_dir: Path, serial: str) -> str:
    return (f"identity: {{serial_number: {serial}}}\n"
            f"hardware:\n  connectors:\n    - id: 1\n      controller: {{transport: sim}}\n      meter: {{model: sim}}\n"
            f"modbus_server: {{enabled: false, bind: '127.0.0.1:0'}}\n"
            f"data_dir: {data_dir}\n")


class Member:
    """One station: its simulated hardware and, while it runs, its daemon."""

    def __init__(self, root: Path, serial: str, keys: dict[str, str]):
        data_dir = root / serial
        data_dir.mkdir(parents=True)
        self.box_id = f"TE-{serial}"
        self.config = parse_station_config(station_yaml(data_dir, serial))
        store = ConfigStore.open(data_dir)  # what `stationd config set --data-dir` does
        for key, value in keys.items():
            assert store.set(key, value, Source.LOCAL).ok, key
        self.world = SimWorld([SimConnectorSpec(1)], root / f"{serial}-sim", vehicle_reaction_s=0)
        self.daemon: Daemon | None = None
        self.task: asyncio.Task | None = None
        self.core = None

    async def start(self) -> None:
        if not self.world._started:
            await self.world.start()
        self.core = None
        self.daemon = Daemon(self.config, world=self.world, notifier=SystemdNotifier.from_env({}),
                             handle_signals=False, component_factories=[self._capture])
        self.task = asyncio.create_task(self.daemon.run())
        await until(lambda: self.core is not None and self.core.connectors[1].link_up, what="the station to start")

    def _capture(self, station):
        self.core = station.core
        return []

    async def stop(self) -> None:
        if self.task is not None and not self.task.done():
            self.daemon.request_stop("test")
            assert await asyncio.wait_for(self.task, 15) == 0

    def pwm(self) -> float:
        return self.world.state()["connectors"][0]["pwm_current_a"]

    def limit(self) -> float | None:
        return self.core.connectors[1].limits.get("load balancing") if self.core else None

    def drawing(self) -> tuple[float, float, float]:
        return self.world.meters[1].current_a


@pytest.fixture
def fast_fallback(monkeypatch):
    """The daemon's service with a 1 s fallback hold, short reconnect waits and 2 s for the offers
    to settle before the building meter's reading counts again (product: 30 s, 30 s, 5 s)."""
    monkeypatch.setattr(daemon_module, "LoadBalancingService",
                        functools.partial(LoadBalancingService, fallback_hold_s=1.0, backoff_max_s=0.5, settle_s=2.0))


async def test_an_in_process_cluster_shares_max_cluster_minus_the_building_and_falls_back(tmp_path, fast_fallback):
    building = BuildingLoad()
    meter_port = await building.start()
    keys = cluster_keys(f"ws://127.0.0.1:{free_port()}/{{BoxId}}", meter_port)
    master = Member(tmp_path, "LBM001", keys["master"])
    slaves = [Member(tmp_path, f"LBS00{i}", keys["slave"]) for i in (1, 2)]
    members = [master, *slaves]
    building.cluster_a = lambda: tuple(sum(m.drawing()[p] for m in members) for p in range(3))
    worst = {"sum": 0.0}

    async def watch_total():
        while True:
            worst["sum"] = max(worst["sum"], sum(m.pwm() for m in members))
            await asyncio.sleep(0.02)

    watcher = None
    try:
        for member in members:
            await member.start()
        await until(lambda: all(m.limit() == 0 for m in members), what="every idle connector held at 0")
        watcher = asyncio.create_task(watch_total())

        # Three vehicles that would each take 32 A share MaxCluster (30 A): 10 A each.
        for member in members:
            member.world.plug(1, cable_max_a=32)
            member.world.charge(1, max_current_a=32, phases=3)
        # (the status follows the PWM once each vehicle draws: wait for both)
        await until(lambda: [m.pwm() for m in members] == [10.0] * 3
                    and all(m.core.status(1).status.value == "Charging" for m in members),
                    what="10 A each, all Charging")
        assert sum(m.pwm() for m in members) <= MAX_CLUSTER

        # The rest of the building takes 40 A of the building's 60 A: 20 A left for the cluster.
        building.rest_a = 40.0
        await until(lambda: sum(m.pwm() for m in members) <= MAX_BUILDING - 40 + SLACK
                    and min(m.pwm() for m in members) >= 6, what="the cluster to make room for the building")
        assert [m.pwm() for m in members] == [6.6] * 3  # 20 A / 3, rounded down to 0.1 A
        await asyncio.sleep(2.5)  # and it stays there: the meter's reading does not make it swing
        assert [m.pwm() for m in members] == [6.6] * 3
        building.rest_a = 0.0
        await until(lambda: [m.pwm() for m in members] == [10.0] * 3, what="the building's load gone")
        watcher.cancel()
        assert worst["sum"] <= MAX_CLUSTER + SLACK, f"the cluster's offers once added up to {worst['sum']} A"

        # The master goes away: each slave holds the fallback current, then nothing after the hold.
        await master.stop()
        lost = time.monotonic()
        await until(lambda: all(s.pwm() == FALLBACK for s in slaves), what="the fallback current")
        await until(lambda: all(s.pwm() == 0 for s in slaves), timeout=5, what="no current after the hold")
        assert time.monotonic() - lost >= 0.9  # it was held for the 1 s hold
        assert all(s.core.status(1).status.value == "SuspendedEVSE" for s in slaves)

        # The master is back (same data directory): the allocation resumes.
        await master.start()
        await until(lambda: [m.pwm() for m in members] == [10.0] * 3, what="the allocation to resume")
        assert all(s.limit() == 10.0 for s in slaves)
    finally:
        if watcher is not None:
            watcher.cancel()
        for member in members:
            await member.stop()
            await member.world.stop()
        await building.stop()


# ================================================================= three stationd processes
FALLBACK_HOLD_S = 2.0  # STATIOND_LB_FALLBACK_HOLD_S for the processes (product: 30 s)
STATIOND = str(REPO / ".venv" / "bin" / "stationd")


class DemoStation:
    """``stationd demo`` with one connector, its control API and logs in ``root``."""

    def __init__(self, root: Path, serial: str):
        self.serial, self.box_id = serial, f"TE-{serial}"
        self.data_dir = root / serial
        self.log_path = root / f"{serial}.log"
        self.api_port, self.modbus_port, self.webui_port = free_port(), free_port(), free_port()
        self.proc: subprocess.Popen | None = None
        self.state: dict | None = None  # the last GET /state of connector 1

    def start(self, backend: str) -> None:
        env = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
        env.update(STATIOND_LB_FALLBACK_HOLD_S=str(FALLBACK_HOLD_S), STATIOND_LB_BACKOFF_MAX_S="1",
                   PYTHONFAULTHANDLER="1")
        self.state = None
        with open(self.log_path, "a") as log:
            self.proc = subprocess.Popen(
                [STATIOND, "demo", "--connectors", "1", "--serial-number", self.serial, "--backend", backend,
                 "--security-profile", "0",
                 "--data-dir", str(self.data_dir), "--sim-api", f"127.0.0.1:{self.api_port}",
                 "--modbus", f"127.0.0.1:{self.modbus_port}", "--webui", f"127.0.0.1:{self.webui_port}"],
                stdout=subprocess.DEVNULL, stderr=log, start_new_session=True, env=env)

    def kill(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGABRT)  # faulthandler writes every thread's stack to the log
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=5)
            raise AssertionError(f"{self.serial} did not stop within 15 s of SIGTERM:\n{self.log()[-8000:]}") from None
        finally:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def config_set(self, key: str, value: str) -> None:
        cli = await asyncio.create_subprocess_exec(STATIOND, "config", "set", "--data-dir", str(self.data_dir), key,
                                                   value, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.STDOUT)
        out, _ = await cli.communicate()
        assert cli.returncode == 0 and out.decode().startswith(("Accepted", "RebootRequired")), (key, out)

    async def api(self, http: aiohttp.ClientSession, method: str, path: str, body: dict | None = None) -> dict:
        async with http.request(method, f"http://127.0.0.1:{self.api_port}{path}",
                                data=json.dumps(body) if body is not None else b"") as response:
            assert response.status == 200, await response.text()
            return await response.json()

    async def poll(self, http: aiohttp.ClientSession) -> None:
        try:
            self.state = (await self.api(http, "GET", "/state"))["connectors"][0]
        except (aiohttp.ClientError, OSError):
            self.state = None

    def pwm(self) -> float | None:
        return None if self.state is None else self.state["pwm_current_a"]

    def amps(self) -> float:
        """The vehicle's current per phase (3 phases at 230 V) from the simulated meter's power."""
        return 0.0 if self.state is None else self.state["power_w"] / (3 * 230)


@pytest.mark.slow
async def test_three_stationd_processes_form_a_cluster_and_survive_the_master_being_killed(tmp_path):
    building = BuildingLoad()
    meter_port = await building.start()
    backend = CentralSystem()  # the cluster's backend, on 127.0.0.1
    await backend.start()
    keys = cluster_keys(f"ws://127.0.0.1:{free_port()}/{{BoxId}}", meter_port)
    master = DemoStation(tmp_path, "LBP0001")
    slaves = [DemoStation(tmp_path, f"LBP000{i}") for i in (2, 3)]
    stations = [master, *slaves]
    building.cluster_a = lambda: (sum(s.amps() for s in stations),) * 3
    worst = {"sum": 0.0, "watching": False}

    async def watch(http):
        while True:
            await asyncio.gather(*(s.poll(http) for s in stations))
            if worst["watching"] and all(s.pwm() is not None for s in stations):
                worst["sum"] = max(worst["sum"], sum(s.pwm() for s in stations))
            await asyncio.sleep(0.1)

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
        watcher = None
        try:
            for station in stations:
                station.start(backend.url)
            await until(lambda: all(s.data_dir.joinpath("settings.json").exists() for s in stations), 30,
                        "the demos to start")
            watcher = asyncio.create_task(watch(http))
            await until(lambda: all(s.state is not None for s in stations), 30, "the control APIs")

            # Configured with the CLI while they run (a data directory is a station's only once it
            # ran); LoadBalancingEnabled last, so no station ever tries the default master URI.
            # The backend sets the cluster's keys (ChangeConfiguration), the installer switches it on
            # with the CLI while the stations run; LoadBalancingEnabled last, so that no station ever
            # tries the default master URI (wss://eatongm:8443).
            async def configure(station: DemoStation, values: dict[str, str]) -> None:
                await backend.wait_for("BootNotification", chargebox_id=station.box_id, timeout=30)
                for key, value in values.items():
                    if key != "LoadBalancingEnabled":
                        answer = await backend.call(station.box_id, "ChangeConfiguration", {"key": key, "value": value})
                        assert answer["status"] in ("Accepted", "RebootRequired"), (key, answer)
            await asyncio.gather(configure(master, keys["master"]), *(configure(s, keys["slave"]) for s in slaves))
            await asyncio.gather(*(s.config_set("LoadBalancingEnabled", "TRUE") for s in stations))
            await until(lambda: all(f"cluster: slave {s.box_id} connected" in master.log() for s in slaves), 15,
                        "the slaves to join the master")
            await until(lambda: all(s.pwm() == 0 for s in stations), 5)

            for station in stations:
                await station.api(http, "POST", "/connectors/1/plug", {"cable_max_a": 32})
                await station.api(http, "POST", "/connectors/1/charge", {"max_current_a": 32, "phases": 3})
            await until(lambda: [s.pwm() for s in stations] == [10.0] * 3, 20, "MaxCluster shared: 10 A each")
            worst["watching"] = True

            building.rest_a = 40.0  # 60 A for the building, 40 A taken by the rest of it
            await until(lambda: sum(s.pwm() or 0 for s in stations) <= MAX_BUILDING - 40 + SLACK
                        and min(s.pwm() or 0 for s in stations) >= 6, 15, "room made for the building")
            await asyncio.sleep(3)  # and it stays there: the meter's reading does not make it swing
            assert sum(s.pwm() for s in stations) <= MAX_BUILDING - 40 + SLACK
            assert min(s.pwm() for s in stations) >= 6
            building.rest_a = 0.0
            await until(lambda: [s.pwm() for s in stations] == [10.0] * 3, 15, "back to 10 A each")
            worst["watching"] = False
            assert worst["sum"] <= MAX_CLUSTER + SLACK, f"the offers once added up to {worst['sum']} A"

            master.kill()  # SIGKILL: no goodbye on the cluster link
            killed = time.monotonic()
            await until(lambda: all(s.pwm() == FALLBACK for s in slaves), 10, "the slaves' fallback current")
            await until(lambda: all(s.pwm() == 0 for s in slaves), 10, "no current after the hold")
            assert time.monotonic() - killed >= FALLBACK_HOLD_S - 0.3

            master.start(backend.url)  # the same data directory: the same keys (its own session ended with PowerLoss)
            await until(lambda: all((s.pwm() or 0) >= 6 for s in slaves), 20, "the allocation to resume")
            worst["sum"], worst["watching"] = 0.0, True
            await asyncio.sleep(2)
            assert worst["sum"] <= MAX_CLUSTER + SLACK
        finally:
            if watcher is not None:
                watcher.cancel()
                await asyncio.gather(watcher, return_exceptions=True)
            codes = await asyncio.gather(*(asyncio.to_thread(s.stop) for s in stations))
            await building.stop()
            await backend.stop()
    for station in stations:
        assert "Traceback" not in station.log(), station.log()[-3000:]
    assert codes == [0, 0, 0], [s.log()[-2000:] for s in stations]
    assert "cluster: slave TE-LBP0002 connected" in master.log()
    assert "cluster: lost the master; fallback current 6 A" in slaves[0].log()
