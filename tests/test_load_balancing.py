"""The load-balancing cluster's parts one by one: messages, settings, the meter's address, and
a slave/master pair over a real WebSocket on 127.0.0.1 with real station cores."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import socket
from datetime import datetime, timezone
from pathlib import Path

import pytest
from test_core_station import Rig
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.exceptions import InvalidStatus

from stationd.core.demand import ConnectorDemand
from stationd.core.iec61851 import CpState
from stationd.load_balancing.building_load import RestOfBuilding
from stationd.load_balancing.master import WAITING, ClusterMaster, decreases_first
from stationd.load_balancing.service import LoadBalancingService
from stationd.power.allocation import Allocation
from stationd.load_balancing.slave import ClusterSlave
from stationd.load_balancing.building_meter import BuildingMeter, meter_model, parse_address
from stationd.load_balancing.protocol import (
    MAX_MESSAGE_BYTES,
    AllocationMessage,
    ProtocolError,
    Report,
    allocation_json,
    parse,
    report_json,
)
from stationd.load_balancing.settings import ListenAddress, box_id_of, listen_address, member_url
from stationd.hw.meters.maps import METER_MAPS

STARTED = datetime(2024, 5, 1, 8, 0, tzinfo=timezone.utc)


def demand(connector_id: int = 1, **changes) -> ConnectorDemand:
    values = dict(connector_id=connector_id, started_at=STARTED, caps={"connector": 32.0, "cable": 20.0},
                  grid=frozenset({1, 2, 3}), phases=3, draw_a=15.8, offered_a=16.0, paused_since=None,
                  current_a={1: 15.8, 2: 15.7, 3: 15.8})
    values.update(changes)
    return ConnectorDemand(**values)


def good_report() -> dict:
    return report_json("TE-0002", "AC10", [demand(1), demand(2, started_at=None, draw_a=None, offered_a=None,
                                                              phases=None, current_a={})])


def text(message) -> str:
    return json.dumps(message)


# ---------------------------------------------------------------------------- messages
def test_a_report_survives_the_wire_unchanged():
    report = parse(text(good_report()), Report)
    assert report.boxId == "TE-0002" and report.privilege == "AC10"
    assert report.demands() == [demand(1), demand(2, started_at=None, draw_a=None, offered_a=None, phases=None,
                                                   current_a={})]


def test_an_allocation_survives_the_wire_unchanged():
    message = parse(text(allocation_json({1: (16.0, "cluster limit 32 A"), 2: (0.0, "cluster: no session")})),
                    AllocationMessage)
    assert {cid: (c.limit, c.reason) for cid, c in message.connectors.items()} == {
        1: (16.0, "cluster limit 32 A"), 2: (0.0, "cluster: no session")}


def _with(path: tuple, value, message: dict | None = None) -> str:
    message = message or good_report()
    target = message
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return text(message)


BAD_REPORTS = [
    ("not json", "{\"type\": \"report\",", "not JSON"),
    ("plain text", "hello", "not JSON"),
    ("array", "[1, 2]", "not a JSON object"),
    ("number", "42", "not a JSON object"),
    ("no type", text({"boxId": "TE-0002"}), "no message type"),
    ("unknown type", text({"type": "shutdown"}), "unknown message type 'shutdown'"),
    ("the other side's type", text(allocation_json({1: (6.0, "x")})), "unexpected message type 'allocation'"),
    ("extra field", _with(("extra",), 1), "extra: Extra inputs are not permitted"),
    ("missing field", text({k: v for k, v in good_report().items() if k != "privilege"}), "privilege: Field required"),
    ("box id of wrong type", _with(("boxId",), 7), "boxId: Input should be a valid string"),
    ("box id with a slash", _with(("boxId",), "../etc"), "boxId: String should match pattern"),
    ("unknown privilege", _with(("privilege",), "AC99"), "privilege: Input should be 'AC05' or 'AC10'"),
    ("connectors not a list", _with(("connectors",), {"1": {}}), "connectors: Input should be a valid array"),
    ("connector id as text", _with(("connectors", 0, "connector_id"), "1"), "connectors.0.connector_id"),
    ("connector id 0", _with(("connectors", 0, "connector_id"), 0), "greater than or equal to 1"),
    ("connector twice", _with(("connectors", 1, "connector_id"), 1), "connector ids must be distinct"),
    ("negative offer", _with(("connectors", 0, "offered_a"), -6), "connectors.0.offered_a: Input should be greater"),
    ("negative cap", _with(("connectors", 0, "caps", "cable"), -1), "connectors.0.caps.cable"),
    ("negative measured current", _with(("connectors", 0, "current_a", "1"), -3.0), "connectors.0.current_a.1"),
    ("huge cap", _with(("connectors", 0, "caps", "cable"), 1e12), "less than or equal to 10000"),
    ("infinite draw", _with(("connectors", 0, "draw_a"), 1e400), "connectors.0.draw_a: Input should be a finite"),
    ("NaN draw", _with(("connectors", 0, "draw_a"), 1.0).replace("1.0", "NaN", 1), "finite number"),
    ("Infinity offer", _with(("connectors", 0, "offered_a"), 16.0).replace("16.0,", "Infinity,", 1), "finite number"),
    ("number as text", _with(("connectors", 0, "offered_a"), "16"), "connectors.0.offered_a: Input should be a valid"),
    ("bool as number", _with(("connectors", 0, "draw_a"), True), "connectors.0.draw_a: Input should be a valid"),
    ("grid phase 4", _with(("connectors", 0, "grid"), [1, 4]), "connectors.0.grid.1"),
    ("grid phase twice", _with(("connectors", 0, "grid"), [1, 1]), "grid phase is listed twice"),
    ("no grid phase", _with(("connectors", 0, "grid"), []), "connectors.0.grid"),
    ("current on phase 7", _with(("connectors", 0, "current_a"), {"7": 1.0}), "connectors.0.current_a.7"),
    ("start without zone", _with(("connectors", 0, "started_at"), "2024-05-01T08:00:00"), "timezone"),
    ("start not a time", _with(("connectors", 0, "started_at"), "yesterday"), "connectors.0.started_at"),
    ("huge integer", _with(("connectors", 0, "phases"), 10 ** 30), "connectors.0.phases"),
    ("too many connectors", _with(("connectors",), [dict(good_report()["connectors"][0], connector_id=i)
                                                    for i in range(1, 40)]),
     "connectors: List should have at most 32 items"),
    ("deep nesting", "[" * 5000 + "]" * 5000, "not JSON"),
    ("huge", _with(("boxId",), "x" * (MAX_MESSAGE_BYTES + 10)), f"larger than the limit of {MAX_MESSAGE_BYTES} bytes"),
    ("binary", b'{"type": "report"}', "binary frame"),
]


@pytest.mark.parametrize("frame,reason", [(f, r) for _, f, r in BAD_REPORTS], ids=[n for n, _, _ in BAD_REPORTS])
def test_a_bad_report_is_refused_with_a_specific_reason(frame, reason):
    with pytest.raises(ProtocolError) as refused:
        parse(frame, Report)
    assert reason in str(refused.value)
    assert len(str(refused.value)) < 300  # a reason for a log line, not the frame echoed back


BAD_ALLOCATIONS = [
    ("limit above the PWM range", {"1": {"limit": 81, "reason": ""}}, "connectors.1.limit"),
    ("negative limit", {"1": {"limit": -6, "reason": ""}}, "connectors.1.limit"),
    ("limit as text", {"1": {"limit": "16", "reason": ""}}, "connectors.1.limit"),
    ("limit null", {"1": {"limit": None, "reason": ""}}, "connectors.1.limit"),
    ("connector not a number", {"one": {"limit": 6, "reason": ""}}, "connectors.one"),
    ("no reason", {"1": {"limit": 6}}, "connectors.1.reason: Field required"),
    ("long reason", {"1": {"limit": 6, "reason": "x" * 500}}, "connectors.1.reason"),
]


@pytest.mark.parametrize("connectors,reason", [(c, r) for _, c, r in BAD_ALLOCATIONS],
                         ids=[n for n, _, _ in BAD_ALLOCATIONS])
def test_a_bad_allocation_is_refused_with_a_specific_reason(connectors, reason):
    with pytest.raises(ProtocolError) as refused:
        parse(text({"type": "allocation", "connectors": connectors}), AllocationMessage)
    assert reason in str(refused.value)
    nan = text({"type": "allocation", "connectors": {"1": {"limit": 6.0, "reason": ""}}}).replace("6.0", "NaN")
    with pytest.raises(ProtocolError, match="finite number"):
        parse(nan, AllocationMessage)


# ---------------------------------------------------------------------------- settings
def test_member_urls_and_the_masters_listening_address():
    assert member_url("wss://eatongm:8443/{BoxId}", "TE-2") == "wss://eatongm:8443/TE-2"
    assert member_url("ws://10.0.0.5:9000/cluster/", "TE-2") == "ws://10.0.0.5:9000/cluster/TE-2"
    assert box_id_of("/cluster/TE-2") == "TE-2" and box_id_of("/TE%2A2?x=1") == "TE*2"
    default = listen_address("wss://eatongm:8443/{BoxId}")
    assert (default.host, default.port, default.tls) == (None, 8443, True)  # a name: every interface
    local = listen_address("ws://127.0.0.1:9000/{BoxId}")
    assert (local.host, local.port, local.tls) == ("127.0.0.1", 9000, False)
    assert listen_address("ws://[::1]/{BoxId}").port == 80 and listen_address("wss://[::1]/x").port == 443
    with pytest.raises(ValueError):
        listen_address("http://host/{BoxId}")


def test_the_building_meter_address_and_type():
    assert parse_address("192.0.2.7") == parse_address("192.0.2.7:502")
    assert parse_address("192.0.2.7:1502").port == 1502
    assert parse_address("[2001:db8::1]:5020").host == "2001:db8::1"
    assert parse_address("2001:db8::1").port == 502
    for bad in ("meter.local", "192.0.2.7:0", "192.0.2.7:x", "[::1]x"):
        with pytest.raises(ValueError):
            parse_address(bad)
    assert meter_model("Janitza") == "JANITZA_UMG96RM" and meter_model("CarloGavazzi") == "EM24"
    assert {meter_model(t) for t in ("Janitza", "CarloGavazzi")} <= set(METER_MAPS)
    with pytest.raises(ValueError):
        meter_model("Siemens")


@pytest.mark.parametrize("meter_type", ["Janitza", "CarloGavazzi"])
async def test_the_building_meter_reads_the_current_per_phase_and_none_when_silent(meter_type):
    from firmware_sim.meters import SimMeter, serve_tcp

    sim = SimMeter(meter_model(meter_type))
    sim.set_load((20.0, 10.0, 5.0))
    server = await serve_tcp({1: sim}, "127.0.0.1", 0)
    meter = BuildingMeter.from_settings(f"127.0.0.1:{server.port}", meter_type, device_id=1, interval=0.1)
    task = asyncio.create_task(meter.run())
    try:
        await until(lambda: meter.reading is not None)
        assert meter.reading == pytest.approx((20.0, 10.0, 5.0), abs=0.01)
        sim.set_load(30.0)
        await until(lambda: meter.reading == pytest.approx((30.0, 30.0, 30.0), abs=0.01))
        sim.online = False  # it stops answering
        await until(lambda: meter.reading is None, timeout=5)
        sim.online = True
        await until(lambda: meter.reading is not None, timeout=5)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await server.stop()
    assert meter.reading is None


async def until(condition, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


# ---------------------------------------------------------------------------- over a WebSocket, real cores
BAD_FRAMES = [f for name, f, _ in BAD_REPORTS if name != "the other side's type"] + [
    "x" * (MAX_MESSAGE_BYTES + 1),  # over the message limit, under websockets' frame limit: refused, link kept
]


def lb_limit(rig: Rig, connector: int = 1) -> float | None:
    return rig.core.connectors[connector].limits.get("load balancing")


def refusals(caplog, who: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith(f"cluster: message from {who} refused")]


@pytest.fixture
def master_rig(tmp_path: Path) -> Rig:
    return Rig(tmp_path / "master", connectors=1, BoxId="TE-M", LoadBalancingEnabled="true",
               LoadBalancingMode="Master", LoadBalancingMaxCluster="20", LoadBalancingAlgo="UNIFORM",
               GridMaxPower="0", GridMaxCurrentPerPhase="32")


async def test_the_master_refuses_bad_reports_logs_why_and_keeps_the_link(master_rig: Rig, caplog):
    caplog.set_level(logging.INFO, "stationd.load_balancing")
    master = ClusterMaster(master_rig.core, master_rig.store, ListenAddress("127.0.0.1", 0, False), tick_s=0.1)
    task = asyncio.create_task(master.run())
    try:
        await until(lambda: master.port is not None)
        url = f"ws://127.0.0.1:{master.port}"
        for path, status in (("/", 404), ("/TE-M", 409), ("/a%2Fb", 404)):  # no BoxId, the master's own, bad
            with pytest.raises(InvalidStatus) as refused:
                async with connect(url + path):
                    pass
            assert refused.value.response.status_code == status
        async with connect(url + "/TE-0002") as ws:
            for frame in BAD_FRAMES:
                await ws.send(frame)
            await until(lambda: len(refusals(caplog, "TE-0002")) == len(BAD_FRAMES))
            assert master.slaves["TE-0002"].report is None  # nothing of them was taken
            reasons = refusals(caplog, "TE-0002")
            assert any("finite number" in r for r in reasons) and any("larger than the limit" in r for r in reasons)
            await ws.send(text(dict(good_report(), boxId="TE-0003")))  # another station's report on this link
            await until(lambda: any("is not the BoxId it connected with" in r for r in refusals(caplog, "TE-0002")))
            assert master.slaves["TE-0002"].report is None

            await ws.send(text(good_report()))  # the link still works: a good report gets its allocation
            allocation = parse(await asyncio.wait_for(ws.recv(), 5), AllocationMessage)
            assert allocation.connectors[1].limit > 0 and allocation.connectors[2].limit == 0
            report = master.slaves["TE-0002"].report
            caplog.clear()
            for frame in BAD_FRAMES:
                await ws.send(frame)
            await until(lambda: len(refusals(caplog, "TE-0002")) == len(BAD_FRAMES))
            assert master.slaves["TE-0002"].report is report
            assert not task.done()
        await until(lambda: "TE-0002" not in master.slaves)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


class FakeMaster:
    """A WebSocket server on 127.0.0.1 that plays the master with scripted frames."""

    def __init__(self):
        self.reports: list[dict] = []
        self.outbox: asyncio.Queue = asyncio.Queue()
        self.connections = 0
        self.server = None

    async def handler(self, ws):
        self.connections += 1
        sender = asyncio.create_task(self._send(ws))
        try:
            async for frame in ws:
                self.reports.append(json.loads(frame))
        except Exception:
            pass
        finally:
            sender.cancel()

    async def _send(self, ws):
        while True:
            frame = await self.outbox.get()
            if frame is None:
                await ws.close()
                return
            await ws.send(frame)

    async def start(self, port: int = 0) -> int:
        self.server = await serve(self.handler, "127.0.0.1", port)
        return self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self.server.close()
        await self.server.wait_closed()


async def test_a_slave_applies_allocations_refuses_bad_ones_and_falls_back_when_the_master_goes(tmp_path, caplog):
    caplog.set_level(logging.INFO, "stationd.load_balancing")
    rig = Rig(tmp_path, connectors=2, BoxId="TE-0002", LoadBalancingEnabled="true",
              LoadBalancingStartCurrent="8", LoadBalancingFallbackCurrent="7")
    fake = FakeMaster()
    port = await fake.start()
    slave = ClusterSlave(rig.core, rig.store, f"ws://127.0.0.1:{port}/TE-0002", fallback_hold_s=0.5,
                         allocation_timeout_s=3, backoff_min_s=0.05, backoff_max_s=0.1)
    task = asyncio.create_task(slave.run())
    try:
        await until(lambda: lb_limit(rig, 1) == 8)  # the start current until the master answers
        assert lb_limit(rig, 2) == 8
        await until(lambda: fake.reports)
        report = parse(text(fake.reports[0]), Report)  # what the slave sends is a valid report
        assert report.boxId == "TE-0002" and [c.connector_id for c in report.connectors] == [1, 2]
        assert all("load balancing" not in name for c in report.connectors for name in c.caps)

        await fake.outbox.put(text(allocation_json({1: (10.0, "cluster limit 20 A")})))
        await until(lambda: lb_limit(rig, 1) == 10)
        assert lb_limit(rig, 2) == 0  # a connector the allocation does not name gets nothing
        assert rig.core.connectors[1].limit_notes["load balancing"] == "cluster limit 20 A"

        bad = ["{", "[]", text({"type": "allocation", "connectors": {"1": {"limit": -6, "reason": ""}}}),
               text({"type": "allocation", "connectors": {"1": {"limit": 6.0, "reason": ""}}}).replace("6.0", "NaN"),
               text({"type": "allocation", "connectors": {"1": {"limit": "32", "reason": ""}}}),
               text({"type": "allocation", "connectors": {"1": {"limit": 99, "reason": ""}}}),
               text({"type": "reboot"}), text(good_report()), "x" * (MAX_MESSAGE_BYTES + 1)]
        for frame in bad:
            await fake.outbox.put(frame)
        await until(lambda: len(refusals(caplog, "the master")) == len(bad))
        assert (lb_limit(rig, 1), lb_limit(rig, 2)) == (10, 0) and slave.state == "allocated"
        assert fake.connections == 1  # the link survived them

        await fake.outbox.put(None)  # the master closes the link and refuses new ones
        await fake.stop()
        await until(lambda: lb_limit(rig, 1) == 7)
        assert lb_limit(rig, 2) == 7 and slave.state == "fallback"
        await until(lambda: lb_limit(rig, 1) == 0, timeout=2)  # after the 0.5 s hold
        assert slave.state == "cut"

        port_again = await fake.start(port)  # the master is back
        assert port_again == port
        await fake.outbox.put(text(allocation_json({1: (12.0, "back"), 2: (6.0, "back")})))
        await until(lambda: lb_limit(rig, 1) == 12)
        assert lb_limit(rig, 2) == 6 and slave.state == "allocated"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await fake.stop()


async def test_a_slave_that_gets_no_allocation_falls_back(tmp_path):
    rig = Rig(tmp_path, connectors=1, BoxId="TE-0002", LoadBalancingFallbackCurrent="9")
    fake = FakeMaster()
    port = await fake.start()
    slave = ClusterSlave(rig.core, rig.store, f"ws://127.0.0.1:{port}/TE-0002", fallback_hold_s=30,
                         allocation_timeout_s=0.5, backoff_min_s=0.05, backoff_max_s=0.1)
    task = asyncio.create_task(slave.run())
    try:
        await until(lambda: lb_limit(rig) == 0)  # LoadBalancingStartCurrent 0: nothing until the master answers
        await fake.outbox.put(text(allocation_json({1: (16.0, "ok")})))
        await until(lambda: lb_limit(rig) == 16)
        await until(lambda: lb_limit(rig) == 9, timeout=3)  # connected, but silent: the link counts as lost
        await until(lambda: fake.connections >= 2)  # it hung up and called again
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await fake.stop()


def test_the_reconnect_waits_grow_from_1_to_30_s_with_jitter():
    slave = ClusterSlave(None, None, "ws://127.0.0.1:1/x", rng=random.Random(7))
    waits = [slave.backoff(n) for n in range(1, 9)]
    for n, wait in enumerate(waits, start=1):
        base = min(30.0, 2.0 ** (n - 1))
        assert 0.75 * base <= wait <= base
    assert waits[-1] > 20 and max(waits) <= 30
    assert len({round(slave.backoff(3), 6) for _ in range(20)}) > 1  # random, so slaves spread out


# ---------------------------------------------------------------------------- pure helpers
def test_no_session_goes_up_while_another_still_has_to_come_down():
    members = {"TE-M": ("AC05", [demand(1, offered_a=16.0)]),
               "TE-S": ("AC05", [demand(1, offered_a=0.0), demand(2, started_at=None, offered_a=0.0)])}
    allocation = {("TE-M", 1): Allocation(10.0, "cluster limit L1"), ("TE-S", 1): Allocation(10.0, "cluster limit L1")}
    limits = decreases_first(members, allocation)
    assert limits["TE-M"] == {1: (10.0, "cluster limit L1")}  # down at once
    assert limits["TE-S"] == {1: (0.0, WAITING), 2: (0.0, "cluster: no session")}  # up only once it is down
    members["TE-M"] = ("AC05", [demand(1, offered_a=10.0)])  # the next report shows it applied
    assert decreases_first(members, allocation)["TE-S"][1] == (10.0, "cluster limit L1")


def test_the_rest_of_the_building_is_held_while_the_offers_settle():
    now = [0.0]
    rest = RestOfBuilding(settle_s=5, max_hold_s=15, clock=lambda: now[0])
    assert rest.building(None, (0, 0, 0)) is None
    assert rest.building((70.0, 70.0, 70.0), (30.0, 30.0, 30.0)) == (70.0, 70.0, 70.0)
    assert rest.other == (40.0, 40.0, 40.0)
    rest.offers_changed()  # offers go down to 20 A; the meter still shows the old draw, reports the new
    now[0] = 1.0
    assert rest.building((70.0, 70.0, 70.0), (20.0, 20.0, 20.0)) == (60.0, 60.0, 60.0)  # rest held at 40
    now[0] = 5.0
    assert rest.building((65.0, 65.0, 65.0), (20.0, 20.0, 20.0)) == (65.0, 65.0, 65.0)  # settled: 45 now
    for t in range(6, 21):  # offers changing all the time: a fresh estimate every 15 s all the same
        now[0] = float(t)
        rest.offers_changed()
        rest.building((80.0, 80.0, 80.0), (20.0, 20.0, 20.0))
    assert rest.other == (60.0, 60.0, 60.0)
    assert rest.building((10.0, 0.0, 5.0), (20.0, 0.0, 0.0)) == (80.0, 60.0, 60.0)  # never below the cluster's own


# ---------------------------------------------------------------------------- the service's roles
async def test_the_service_picks_its_role_from_the_keys_and_follows_their_changes(tmp_path, caplog):
    caplog.set_level(logging.INFO, "stationd.load_balancing")
    port = free_port()
    rig = Rig(tmp_path, connectors=1, BoxId="TE-0002", LoadBalancingStartCurrent="8", LoadBalancingFallbackCurrent="7",
              LoadBalancingMasterURI=f"ws://127.0.0.1:{port}/{{BoxId}}")
    rig.core.set_limit(1, "load balancing", 5)  # left over from before: off means no such limit
    service = LoadBalancingService(rig.core, rig.store, backoff_max_s=0.2)
    task = asyncio.create_task(service.run())
    try:
        await until(lambda: lb_limit(rig) is None)  # LoadBalancingEnabled FALSE (the default)
        assert rig.store.set("LoadBalancingEnabled", "true").ok  # a slave (the default mode)
        await until(lambda: isinstance(service.role, ClusterSlave) and lb_limit(rig) == 8)
        assert service.role.url == f"ws://127.0.0.1:{port}/TE-0002"

        assert rig.store.set("LoadBalancingMode", "Master").ok  # the master, on the URI's port
        await until(lambda: isinstance(service.role, ClusterMaster) and service.role.port == port)
        await until(lambda: lb_limit(rig) == 0)  # no session: nothing
        rig.state(1, CpState.C)  # a session: the master's own share (no cluster limit set: its caps)
        await until(lambda: lb_limit(rig) == 32)
        assert rig.store.set("LoadBalancingMaxCluster", "20").ok  # read live, no restart
        master = service.role
        await until(lambda: lb_limit(rig) == 20)
        assert service.role is master

        assert rig.store.set("LoadBalancingEnergyMeterEnabled", "true").ok  # no address: never answers
        await until(lambda: service.role is not master and service.meter is not None)
        await until(lambda: lb_limit(rig) == 0)  # meter offline, MinCluster 0: the safe side
        assert any("cannot be used" in r.getMessage() for r in caplog.records)

        assert rig.store.set("LoadBalancingEnabled", "false").ok
        await until(lambda: lb_limit(rig) is None and service.role is None)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_role_that_cannot_run_leaves_the_fallback_current(tmp_path, caplog):
    rig = Rig(tmp_path, connectors=1, LoadBalancingEnabled="true", LoadBalancingFallbackCurrent="7",
              LoadBalancingMasterURI="ws://127.0.0.1:9/{BoxId}")  # a slave without a BoxId
    task = asyncio.create_task(LoadBalancingService(rig.core, rig.store).run())
    try:
        await until(lambda: lb_limit(rig) == 7)
        assert any("BoxId is not set" in r.getMessage() for r in caplog.records)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert lb_limit(rig) is None  # the service stopped: its limit goes with it


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_the_master_keeps_since_when_each_session_charges_or_waits(master_rig: Rig):
    master = ClusterMaster(master_rig.core, master_rig.store, ListenAddress("127.0.0.1", 0, False))
    a, b = ("TE-M", 1, STARTED), ("TE-S", 1, STARTED)
    master._keep_turn_clocks({a[:2]: Allocation(10.0, "cluster limit L1"),
                              b[:2]: Allocation(0.0, "paused: not enough current")}, {a, b}, 100.0)
    master._keep_turn_clocks({a[:2]: Allocation(12.0, "cluster limit L1"),
                              b[:2]: Allocation(0.0, "paused: not enough current")}, {a, b}, 101.0)
    assert master._charging_since == {a: 100.0} and master._paused_since == {b: 100.0}
    master._keep_turn_clocks({a[:2]: Allocation(0.0, "paused: not enough current"),
                              b[:2]: Allocation(10.0, "cluster limit L1")}, {a, b}, 1000.0)  # their turns swap
    assert master._charging_since == {b: 1000.0} and master._paused_since == {a: 1000.0}
    master._keep_turn_clocks({b[:2]: Allocation(10.0, "cluster limit L1")}, {b}, 1001.0)  # a's session ended
    assert master._charging_since == {b: 1000.0} and master._paused_since == {}
