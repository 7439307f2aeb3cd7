"""Transaction messages: a real StationCore (settings and database in tmp_path), a real Outbox on
the same database, a fake backend ``send`` (StartTransaction.conf transactionId 42), and a fake
clock whose ``sleep`` only returns when the test moves the clock on (timers run in ms)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import zoneinfo
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from stationd.config.store import ConfigStore
from stationd.config.value_types import Source
from stationd.core.connector import ControllerState
from stationd.core.iec61851 import CpState
from stationd.core.sessions import SessionStore
from stationd.core.station import ConnectorSpec, StationCore
from stationd.hw.meters.reader import MeterSample
from stationd.ocpp_client.errors import ConnectionLost
from stationd.ocpp_client.outbox import Outbox
from stationd.ocpp_client.transactions import PENDING_STOPS_META, Transactions, _Thinned, aligned_interval
from stationd.storage import Database

A, B, C = CpState.A, CpState.B, CpState.C
TID = 42
T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def schema(action: str) -> dict | None:
    ocpp = pytest.importorskip("ocpp")
    path = Path(ocpp.__file__).parent / "v16" / "schemas" / f"{action}.json"
    return json.loads(path.read_text()) if path.exists() else None


class Clock:
    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


class Timers:
    """``sleep`` for the code under test: returns when ``advance`` moves the clock past it."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.sleepers: list[tuple[datetime, asyncio.Future]] = []

    async def sleep(self, seconds: float) -> None:
        future = asyncio.get_running_loop().create_future()
        entry = (self.clock.now + timedelta(seconds=seconds), future)
        self.sleepers.append(entry)
        try:
            await future
        finally:
            self.sleepers.remove(entry)

    @staticmethod
    async def settle() -> None:
        for _ in range(10):
            await asyncio.sleep(0)

    async def advance(self, seconds: float, then: Any = None) -> None:
        target = self.clock.now + timedelta(seconds=seconds)
        await self.settle()
        while True:
            due = [when for when, future in self.sleepers if when <= target and not future.done()]
            if not due:
                break
            self.clock.now = max(self.clock.now, min(due))
            for when, future in list(self.sleepers):
                if when <= self.clock.now and not future.done():
                    future.set_result(None)
            await self.settle()
        self.clock.now = target
        await self.settle()


class Backend:
    """A fake ``send``: answers like a central system and checks every payload's schema."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict]] = []
        self.start_status = "Accepted"
        self.online = True

    async def send(self, action: str, payload: dict) -> dict:
        if not self.online:
            raise ConnectionLost("offline")
        checked = schema(action)
        if checked is not None:
            import jsonschema
            jsonschema.validate(payload, checked)
        self.calls.append((action, payload))
        if action == "StartTransaction":
            assert "transactionId" not in payload
            return {"transactionId": TID, "idTagInfo": {"status": self.start_status}}
        assert payload.get("transactionId") == TID, (action, payload)
        if action == "StopTransaction":
            return {"idTagInfo": {"status": "Accepted"}}
        return {}

    def of(self, action: str) -> list[dict]:
        return [payload for name, payload in self.calls if name == action]

    @property
    def actions(self) -> list[str]:
        return [name for name, _ in self.calls]


def sample(wh: float, amps: float = 16.0, volts: float = 230.0, at: datetime = T0) -> MeterSample:
    return MeterSample(energy_import_wh=wh, energy_export_wh=0.0, power_w=3 * amps * volts,
                       power_w_phases=(amps * volts,) * 3, current_a=(amps,) * 3, voltage_v=(volts,) * 3,
                       frequency_hz=50.0, timestamp=at)


class Rig:
    """Core + outbox + Transactions, wired like the daemon (Transactions before core.start())."""

    def __init__(self, data_dir: Path, connectors: int = 1, *, clock: Clock | None = None, transactions: bool = True,
                 signed: Any = None, direct: bool = False, reporting: bool = True, **settings: str):
        self.clock = clock or Clock()
        self.timers = Timers(self.clock)
        self.store = ConfigStore.open(data_dir, installation={"NumberOfConnectors": str(connectors)})
        for name, value in settings.items():
            assert self.store.set(name, value, Source.LOCAL).ok, name
        self.db = Database.open(data_dir)
        self.core = StationCore(self.store, SessionStore(self.db),
                                [ConnectorSpec(i, 32, 3) for i in range(1, connectors + 1)], clock=self.clock)
        self.outbox = Outbox(self.db, attempts=lambda: 5, retry_interval=lambda: 0.0, clock=self.clock)
        self.backend = Backend()
        self.direct: list[tuple[datetime, str, dict]] = []
        self.tx = None
        if transactions:
            self.tx = Transactions(self.core, self.store, self.outbox, clock=self.clock, sleep=self.timers.sleep,
                                   signed=signed, send_direct=self._direct if direct else None,
                                   reporting=lambda: reporting)
        self.core.start()
        for i in range(1, connectors + 1):
            self.core.controller_link(i, True)
            self.core.meter_sample(i, sample(1000.0 * i, amps=0.0))
        self._task: asyncio.Task | None = None

    async def _direct(self, action: str, payload: dict) -> None:
        self.direct.append((self.clock.now, action, payload))

    def state(self, connector: int, cp: CpState, **fields: Any) -> None:
        self.core.controller_state(connector, ControllerState(cp_state=cp, **fields))

    def meter(self, connector: int, wh: float, amps: float = 16.0) -> None:
        self.core.meter_sample(connector, sample(wh, amps, at=self.clock.now))

    async def charge(self, seconds: int, connector: int = 1, watts: float = 11040.0, every: int = 5) -> None:
        """Advance the clock, feeding meter samples every ``every`` seconds (like the poller)."""
        for _ in range(seconds // every):
            await self.timers.advance(every)
            energy = self.core.connectors[connector].last_energy_wh + watts * every / 3600
            self.meter(connector, energy)

    async def deliver(self) -> bool:
        return await self.outbox.deliver(self.backend.send, self.tx.on_answer if self.tx else None)

    @contextlib.asynccontextmanager
    async def running(self):
        task = asyncio.create_task(self.tx.run())
        await self.timers.settle()
        try:
            yield
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def queued(self, action: str | None = None) -> list:
        return [m for m in self.outbox.pending() if action is None or m.action == action]

    def close(self) -> None:
        self.outbox.close()
        self.db.close()


@pytest.fixture
def rigs():
    made: list[Rig] = []

    def make(*args: Any, **kwargs: Any) -> Rig:
        made.append(Rig(*args, **kwargs))
        return made[-1]

    yield make
    for rig in made:
        with contextlib.suppress(Exception):
            rig.close()


def registers(meter_values: list[dict]) -> list[tuple[str, str, str]]:
    """(timestamp, context, value) of the Energy.Active.Import.Register Raw values."""
    return [(mv["timestamp"], sv["context"], sv["value"]) for mv in meter_values for sv in mv["sampledValue"]
            if sv["measurand"] == "Energy.Active.Import.Register" and sv["format"] == "Raw"]


# ---- a whole session -------------------------------------------------------------------------

async def test_a_session_start_periodic_values_and_stop(tmp_path: Path, rigs):
    rig = rigs(tmp_path, MeterValueSampleInterval="60",
               MeterValuesSampledData="Energy.Active.Import.Register,Current.Import,Energy.Active.Import.Interval")
    async with rig.running():
        rig.state(1, C)  # free charging: the session starts at 12:00:00
        assert await rig.deliver()
        assert rig.backend.of("StartTransaction") == [{
            "connectorId": 1, "idTag": "FREECHARGING", "meterStart": 1000, "timestamp": "2026-11-22T12:00:00Z"}]
        await rig.charge(185)  # 11.04 kW: 15.33 Wh every 5 s
        assert await rig.deliver()
        rig.state(1, A)  # the vehicle leaves: EVDisconnected
        assert await rig.deliver()
    meter_values = rig.backend.of("MeterValues")
    assert [mv["meterValue"][0]["timestamp"] for mv in meter_values] == [
        "2026-11-22T12:01:00Z", "2026-11-22T12:02:00Z", "2026-11-22T12:03:00Z"]
    first = meter_values[0]
    assert first["connectorId"] == 1 and first["transactionId"] == TID
    values = {(sv["measurand"], sv.get("phase")): sv for sv in first["meterValue"][0]["sampledValue"]}
    assert values["Energy.Active.Import.Register", None]["value"] == "1169"  # the 12:00:55 sample: 1000 + 11 x 15.33
    assert values["Energy.Active.Import.Interval", None]["value"] == "169"
    assert values["Current.Import", "L2"] == {"value": "16.0", "context": "Sample.Periodic", "format": "Raw",
                                              "measurand": "Current.Import", "phase": "L2", "location": "Outlet",
                                              "unit": "A"}
    second = {sv["measurand"]: sv["value"] for sv in meter_values[1]["meterValue"][0]["sampledValue"]
              if "phase" not in sv}
    assert second == {"Energy.Active.Import.Register": "1353", "Energy.Active.Import.Interval": "184"}
    [stop] = rig.backend.of("StopTransaction")
    assert stop["transactionId"] == TID and stop["reason"] == "EVDisconnected" and "idTag" not in stop
    assert stop["meterStop"] == 1567 and stop["timestamp"] == "2026-11-22T12:03:05Z"
    # StopTxnSampledData (default: the register): Begin, every periodic tick, End
    assert registers(stop["transactionData"]) == [
        ("2026-11-22T12:00:00Z", "Transaction.Begin", "1000"), ("2026-11-22T12:01:00Z", "Sample.Periodic", "1169"),
        ("2026-11-22T12:02:00Z", "Sample.Periodic", "1353"), ("2026-11-22T12:03:00Z", "Sample.Periodic", "1537"),
        ("2026-11-22T12:03:05Z", "Transaction.End", "1567")]
    assert rig.backend.actions == ["StartTransaction", "MeterValues", "MeterValues", "MeterValues",
                                   "StopTransaction"]


async def test_a_card_stop_is_local_reason_omitted_idtag_sent(tmp_path: Path, rigs):
    rig = rigs(tmp_path, CsMode="0", MeterValueSampleInterval="0", StopTxnSampledData="")
    rig.state(1, B)
    assert rig.core.authorize(1, "aec78085").started
    rig.meter(1, 1500.0)
    assert rig.core.stop_session(1, "Local", "AEC78085")
    assert await rig.deliver()
    assert rig.backend.actions == ["StartTransaction", "StopTransaction"]
    start, stop = rig.backend.calls[0][1], rig.backend.calls[1][1]
    assert start["idTag"] == "aec78085"
    assert stop == {"meterStop": 1500, "timestamp": "2026-11-22T12:00:00Z", "idTag": "AEC78085",
                    "transactionId": TID}  # no reason (Local), no transactionData (both lists empty)


async def test_a_reservation_id_goes_into_start_transaction(tmp_path: Path, rigs):
    rig = rigs(tmp_path, CsMode="0")
    assert rig.core.reserve(7, 1, "aec78085", T0 + timedelta(minutes=10)) == "Accepted"
    rig.state(1, B)
    rig.core.authorize(1, "aec78085")
    assert rig.queued("StartTransaction")[0].payload["reservationId"] == 7


async def test_transaction_data_follows_the_stop_txn_keys(tmp_path: Path, rigs):
    rig = rigs(tmp_path, MeterValueSampleInterval="30", MeterValuesSampledData="Power.Active.Import",
               StopTxnSampledData="Energy.Active.Import.Register,Voltage", StopTxnAlignedData="")
    async with rig.running():
        rig.state(1, C)
        await rig.charge(60)
        assert rig.store.set("StopTxnSampledData", "Current.Offered", Source.OCPP).ok  # applies at once
        await rig.charge(30)
        rig.state(1, A)
    [stop] = [m.payload for m in rig.queued("StopTransaction")]
    data = stop["transactionData"]
    assert [mv["timestamp"][11:19] for mv in data] == ["12:00:00", "12:00:30", "12:01:00", "12:01:30", "12:01:30"]
    assert [sorted({sv["measurand"] for sv in mv["sampledValue"]}) for mv in data] == [
        ["Current.Offered"], ["Energy.Active.Import.Register", "Voltage"],
        ["Energy.Active.Import.Register", "Voltage"], ["Current.Offered"], ["Current.Offered"]]
    begin = data[0]["sampledValue"][0]
    assert begin["context"] == "Transaction.Begin" and begin["value"] == "15.9"  # the core's first offer (GridMaxPower 11 kW)
    voltages = [sv for sv in data[1]["sampledValue"] if sv["measurand"] == "Voltage"]
    assert [sv["phase"] for sv in voltages] == ["L1-N", "L2-N", "L3-N"]
    # the periodic MeterValues themselves carry MeterValuesSampledData only
    periodic = [m.payload for m in rig.queued("MeterValues")]
    assert {sv["measurand"] for mv in periodic for sv in mv["meterValue"][0]["sampledValue"]} == {
        "Power.Active.Import"}


async def test_transaction_data_is_bounded_first_spread_last(tmp_path: Path, rigs):
    rig = rigs(tmp_path, MeterValueSampleInterval="10", MeterValuesSampledData="")
    rig.tx._max_data_entries = 6
    async with rig.running():
        rig.state(1, C)
        await rig.charge(300, every=10)  # 30 periodic ticks
        rig.state(1, A)
    stop = rig.queued("StopTransaction")[0].payload
    stamps = [ts[14:19] for ts, _, _ in registers(stop["transactionData"])]
    assert len(stamps) <= 6 + 1 + 2
    assert stamps[0] == "00:00" and stamps[1] == "00:10" and stamps[-2] == "05:00" and stamps[-1] == "05:00"
    assert stamps == sorted(stamps)
    assert not rig.queued("MeterValues")  # an empty MeterValuesSampledData sends no MeterValues


def test_thinning_keeps_the_first_an_even_spread_and_the_latest():
    thinned = _Thinned(4)
    for i in range(1, 101):
        thinned.add(i)
        items = thinned.items()
        assert items[0] == 1 and items[-1] == i and len(items) <= 5 and items == sorted(items)
    steps = {b - a for a, b in zip(thinned.items(), thinned.items()[1:-1])}
    assert len(steps) == 1  # evenly spread


# ---- clock-aligned data ----------------------------------------------------------------------

async def test_clock_aligned_values_are_stamped_with_the_interval_start_and_sent_at_its_end(tmp_path: Path, rigs):
    rig = rigs(tmp_path, 2, clock=Clock(datetime(2026, 11, 22, 12, 7, tzinfo=UTC)), direct=True,
               MeterValueSampleInterval="0", ClockAlignedDataInterval="900",
               MeterValuesAlignedData="Energy.Active.Import.Register,Energy.Active.Import.Interval",
               StopTxnAlignedData="Energy.Active.Import.Interval", StopTxnSampledData="")
    async with rig.running():
        rig.state(1, C)  # a session on connector 1; connector 2 stays idle
        await rig.charge(480 - 5)  # 12:14:55
        assert not rig.queued("MeterValues") and not rig.direct
        await rig.charge(5)  # 12:15:00: the interval 12:00-12:15 is over
        [first] = rig.queued("MeterValues")
        assert first.created_at == "2026-11-22T12:15:00+00:00"  # sent at the end ...
        assert first.payload["meterValue"][0]["timestamp"] == "2026-11-22T12:00:00Z"  # ... stamped at the start
        assert [sv["measurand"] for sv in first.payload["meterValue"][0]["sampledValue"]] == [
            "Energy.Active.Import.Register"]  # no interval energy: 12:00 was not seen
        assert {sv["context"] for sv in first.payload["meterValue"][0]["sampledValue"]} == {"Sample.Clock"}
        [(sent_at, action, idle)] = rig.direct
        assert sent_at == datetime(2026, 11, 22, 12, 15, tzinfo=UTC) and action == "MeterValues"
        assert idle == {"connectorId": 2, "meterValue": [{"timestamp": "2026-11-22T12:00:00Z", "sampledValue": [
            {"value": "2000", "context": "Sample.Clock", "format": "Raw", "measurand": "Energy.Active.Import.Register",
             "location": "Outlet", "unit": "Wh"}]}]}
        assert "transactionId" not in idle
        await rig.charge(900)  # 12:30
        second = rig.queued("MeterValues")[1]
        assert second.created_at == "2026-11-22T12:30:00+00:00"
        assert [(sv["measurand"], sv["value"]) for sv in second.payload["meterValue"][0]["sampledValue"]] == [
            ("Energy.Active.Import.Register", "5217"), ("Energy.Active.Import.Interval", "2760")]
        assert rig.direct[1][2]["meterValue"][0]["sampledValue"][1]["value"] == "0"  # idle: 0 Wh
        assert rig.direct[1][2]["meterValue"][0]["timestamp"] == "2026-11-22T12:15:00Z"
        await rig.charge(120)
        rig.state(1, A)
        assert await rig.deliver()
    assert rig.backend.actions == ["StartTransaction", "MeterValues", "MeterValues", "StopTransaction"]
    assert [mv["transactionId"] for mv in rig.backend.of("MeterValues")] == [TID, TID]
    stop = rig.backend.of("StopTransaction")[0]
    assert [(mv["timestamp"], [sv["value"] for sv in mv["sampledValue"]]) for mv in stop["transactionData"]] == [
        ("2026-11-22T12:15:00Z", ["2760"])]  # StopTxnAlignedData only (StopTxnSampledData is empty)


def test_the_clock_grid_starts_at_local_midnight():
    berlin = zoneinfo.ZoneInfo("Europe/Berlin")
    now = datetime(2026, 11, 22, 12, 7, tzinfo=UTC)  # 13:07 in Berlin
    assert aligned_interval(now, 900, berlin) == (datetime(2026, 11, 22, 12, 0, tzinfo=UTC),
                                                  datetime(2026, 11, 22, 12, 15, tzinfo=UTC))
    # 7 hours do not divide the day: 21:00-24:00 local is the last, shorter interval
    assert aligned_interval(now, 7 * 3600, berlin) == (datetime(2026, 11, 22, 6, 0, tzinfo=UTC),
                                                       datetime(2026, 11, 22, 13, 0, tzinfo=UTC))
    late = datetime(2026, 11, 22, 22, 30, tzinfo=UTC)  # 23:30 Berlin
    assert aligned_interval(late, 7 * 3600, berlin) == (datetime(2026, 11, 22, 20, 0, tzinfo=UTC),
                                                        datetime(2026, 11, 22, 23, 0, tzinfo=UTC))
    # the day clocks go forward (23 h): the grid still starts at midnight
    spring = datetime(2026, 3, 29, 5, 0, tzinfo=UTC)  # 07:00 CEST
    assert aligned_interval(spring, 3600, berlin)[0] == datetime(2026, 3, 29, 5, 0, tzinfo=UTC)
    four_hours_after_midnight_cet = datetime(2026, 3, 29, 3, 0, tzinfo=UTC)
    assert aligned_interval(spring, 4 * 3600, berlin)[0] == four_hours_after_midnight_cet


async def test_the_time_zone_key_moves_the_grid(tmp_path: Path, rigs):
    rig = rigs(tmp_path, clock=Clock(datetime(2026, 11, 22, 12, 7, tzinfo=UTC)), MeterValueSampleInterval="0",
               ClockAlignedDataInterval="7200", MeterValuesAlignedData="Energy.Active.Import.Register",
               TimeZone="Asia/Kolkata")  # UTC+05:30: boundaries at xx:30 UTC
    async with rig.running():
        rig.state(1, C)
        await rig.charge(1380)  # 12:30 UTC = 18:00 Kolkata
        [mv] = rig.queued("MeterValues")
        assert mv.created_at == "2026-11-22T12:30:00+00:00"
        assert mv.payload["meterValue"][0]["timestamp"] == "2026-11-22T10:30:00Z"


# ---- offline, refusal, settings, power loss ----------------------------------------------------

async def test_a_session_while_offline_is_delivered_in_order_after_reconnect(tmp_path: Path, rigs):
    rig = rigs(tmp_path, MeterValueSampleInterval="20")
    rig.backend.online = False
    async with rig.running():
        rig.state(1, C)
        assert not await rig.deliver()
        await rig.charge(70)
        assert not await rig.deliver()
        rig.state(1, A)
        assert not await rig.deliver()
    assert rig.backend.calls == []
    rig.backend.online = True  # reconnect
    assert await rig.deliver()
    assert rig.backend.actions == ["StartTransaction", "MeterValues", "MeterValues", "MeterValues",
                                   "StopTransaction"]
    assert [mv["meterValue"][0]["timestamp"][14:19] for mv in rig.backend.of("MeterValues")] == [
        "00:20", "00:40", "01:00"]
    assert all(p["transactionId"] == TID for a, p in rig.backend.calls if a != "StartTransaction")


async def test_a_blocked_idtag_is_deauthorized_and_stopped(tmp_path: Path, rigs):
    rig = rigs(tmp_path, CsMode="0", MeterValueSampleInterval="0")
    rig.backend.start_status = "Blocked"
    rig.state(1, C)
    rig.core.authorize(1, "aec78085")
    rig.meter(1, 1200.0)
    assert await rig.deliver()  # Start -> Blocked -> deauthorize -> the core stops -> Stop goes out too
    assert rig.core.connectors[1].session is None
    ended = rig.core.sessions.recent(1)[0]
    assert ended.stop_reason == "DeAuthorized"
    assert rig.backend.actions == ["StartTransaction", "StopTransaction"]
    stop = rig.backend.of("StopTransaction")[0]
    assert stop["reason"] == "DeAuthorized" and stop["transactionId"] == TID and stop["meterStop"] == 1200
    assert rig.core.connectors[1].outputs.locked  # the cable stays locked for its owner


@pytest.mark.parametrize("status", ["ConcurrentTx", "Expired", "Invalid"])
async def test_every_refusal_counts(tmp_path: Path, rigs, status):
    rig = rigs(tmp_path, CsMode="0", StopTransactionOnInvalidId="false")
    rig.backend.start_status = status
    rig.state(1, C)
    rig.core.authorize(1, "aec78085")
    assert await rig.deliver()
    assert rig.core.connectors[1].session is not None  # StopTransactionOnInvalidId false: energy stops only
    assert rig.core.connectors[1].outputs.offer_a == 0


async def test_a_refusal_for_a_session_that_already_ended_changes_nothing(tmp_path: Path, rigs):
    rig = rigs(tmp_path, CsMode="0")
    rig.backend.start_status = "Invalid"
    rig.state(1, C)
    rig.core.authorize(1, "aec78085")
    rig.core.stop_session(1, "Local", "aec78085")
    rig.core.authorize(1, "bb11")  # a new session on the same connector
    rig.backend.start_status = "Accepted"
    calls = []
    original = rig.backend.send

    async def send(action: str, payload: dict) -> dict:
        calls.append(action)
        if action == "StartTransaction" and payload["idTag"] == "aec78085":
            return {"transactionId": TID, "idTagInfo": {"status": "Invalid"}}
        return await original(action, payload)

    await rig.outbox.deliver(send, rig.tx.on_answer)
    assert rig.core.connectors[1].session.id_tag == "bb11"
    assert rig.core.connectors[1].deauthorized_at_wh is None


async def test_key_changes_apply_at_once(tmp_path: Path, rigs):
    rig = rigs(tmp_path, MeterValueSampleInterval="60")
    async with rig.running():
        rig.state(1, C)
        await rig.charge(30)
        assert rig.store.set("MeterValueSampleInterval", "10", Source.OCPP).ok  # 12:00:30: next at 12:00:40
        await rig.charge(30)
        assert [m.payload["meterValue"][0]["timestamp"][14:19] for m in rig.queued("MeterValues")] == [
            "00:40", "00:50", "01:00"]
        assert rig.store.set("MeterValuesSampledData", "Voltage", Source.OCPP).ok
        await rig.charge(10)
        last = rig.queued("MeterValues")[-1].payload["meterValue"][0]["sampledValue"]
        assert [sv["measurand"] for sv in last] == ["Voltage"] * 3
        assert rig.store.set("MeterValueSampleInterval", "0", Source.OCPP).ok
        await rig.charge(120)
        assert len(rig.queued("MeterValues")) == 4
        assert rig.store.set("ClockAlignedDataInterval", "60", Source.OCPP).ok  # 12:03:10
        assert rig.store.set("MeterValuesAlignedData", "Energy.Active.Import.Interval", Source.OCPP).ok
        await rig.charge(50)  # 12:04:00: first boundary (no interval energy: 12:03 not seen)
        assert len(rig.queued("MeterValues")) == 4
        await rig.charge(60)  # 12:05:00
        [aligned] = rig.queued("MeterValues")[4:]
        assert aligned.payload["meterValue"][0]["timestamp"] == "2026-11-22T12:04:00Z"
        assert aligned.payload["meterValue"][0]["sampledValue"][0]["value"] == "184"
        assert rig.store.set("ClockAlignedDataInterval", "0", Source.OCPP).ok
        await rig.charge(300)
        assert len(rig.queued("MeterValues")) == 5


async def test_a_session_closed_by_a_power_cut_gets_its_stop_transaction(tmp_path: Path, rigs):
    rig = rigs(tmp_path, MeterValueSampleInterval="0")
    rig.state(1, C)
    rig.meter(1, 4321.0)
    rig.db.close()  # the process dies: no StopTransaction was made, the Start is still queued
    again = rigs(tmp_path, MeterValueSampleInterval="0")
    assert await again.deliver()
    assert again.backend.actions == ["StartTransaction", "StopTransaction"]
    stop = again.backend.of("StopTransaction")[0]
    assert stop["reason"] == "PowerLoss" and stop["meterStop"] == 4321 and stop["transactionId"] == TID
    assert registers(stop["transactionData"]) == [("2026-11-22T12:00:00Z", "Transaction.Begin", "1000"),
                                                  ("2026-11-22T12:00:00Z", "Transaction.End", "4321")]


async def test_a_power_cut_after_the_start_was_confirmed(tmp_path: Path, rigs):
    rig = rigs(tmp_path)
    rig.state(1, C)
    assert await rig.deliver()
    rig.db.close()
    again = rigs(tmp_path)
    assert await again.deliver()
    assert again.backend.actions == ["StopTransaction"]
    assert again.backend.of("StopTransaction")[0]["transactionId"] == TID


async def test_a_stop_without_a_queued_start_queues_the_start_first(tmp_path: Path, rigs):
    rig = rigs(tmp_path, transactions=False)  # the process died before the StartTransaction was queued
    rig.state(1, C)
    rig.db.close()
    again = rigs(tmp_path)
    assert await again.deliver()
    assert again.backend.actions == ["StartTransaction", "StopTransaction"]
    assert again.backend.of("StartTransaction")[0]["timestamp"] == "2026-11-22T12:00:00Z"


# ---- TriggerMessage, signed readings -------------------------------------------------------------

async def test_triggered_meter_values(tmp_path: Path, rigs):
    rig = rigs(tmp_path, 2, MeterValuesSampledData="Energy.Active.Import.Register,Current.Offered")
    rig.state(1, C)
    rig.meter(1, 1100.0)
    assert rig.tx.triggered_meter_values(1)[0].get("transactionId") is None  # not confirmed yet
    assert await rig.deliver()
    payloads = rig.tx.triggered_meter_values(None)
    assert [(p["connectorId"], p.get("transactionId")) for p in payloads] == [(1, TID), (2, None)]
    sampled = payloads[0]["meterValue"][0]["sampledValue"]
    assert [(sv["measurand"], sv["value"], sv["context"]) for sv in sampled] == [
        ("Energy.Active.Import.Register", "1100", "Trigger"), ("Current.Offered", "15.9", "Trigger")]
    rig.core.meter_online(2, False)
    assert [(sv["measurand"], sv["value"]) for sv in rig.tx.triggered_meter_values(2)[0]["meterValue"][0][
        "sampledValue"]] == [("Current.Offered", "0.0")]  # the meter is offline: no register


class FakeSigned:
    def __init__(self) -> None:
        self.asked: list[tuple[int, str]] = []
        self.gate: asyncio.Event | None = None

    def signs(self, connector_id: int) -> bool:
        return True

    async def signed_reading(self, connector_id: int, context: str) -> str | None:
        self.asked.append((connector_id, context))
        if self.gate is not None:
            await self.gate.wait()
        return f"OCMF|{{\"TX\":\"{context[12]}\"}}|{{\"SD\":\"30\"}}"

    def public_key(self, connector_id: int) -> str | None:
        return None


async def test_signed_readings_go_into_transaction_data(tmp_path: Path, rigs):
    signed = FakeSigned()
    rig = rigs(tmp_path, signed=signed, MeterValueSampleInterval="0")
    async with rig.running():
        rig.state(1, C)
        await rig.charge(10)
        rig.state(1, A)
        await rig.timers.settle()
        assert await rig.deliver()
    assert signed.asked == [(1, "Transaction.Begin"), (1, "Transaction.End")]
    stop = rig.backend.of("StopTransaction")[0]
    begin, end = stop["transactionData"]
    assert begin["sampledValue"][1] == {"value": 'OCMF|{"TX":"B"}|{"SD":"30"}', "format": "SignedData",
                                        "context": "Transaction.Begin", "measurand": "Energy.Active.Import.Register",
                                        "unit": "Wh"}
    assert end["sampledValue"][1]["value"] == 'OCMF|{"TX":"E"}|{"SD":"30"}'
    assert end["sampledValue"][0]["format"] == "Raw"


async def test_a_stop_waiting_for_its_signature_is_never_lost(tmp_path: Path, rigs):
    signed = FakeSigned()
    rig = rigs(tmp_path, signed=signed, MeterValueSampleInterval="0")
    async with rig.running():
        rig.state(1, C)
        await rig.timers.settle()
        signed.gate = asyncio.Event()  # the meter does not answer the End reading
        rig.state(1, A)
        await rig.timers.settle()
        assert not rig.queued("StopTransaction")
        assert list(rig.core.meta.get(PENDING_STOPS_META)) == ["1"]  # journaled
        # the daemon stops (run() is cancelled): the StopTransaction goes out unsigned
    [stop] = rig.queued("StopTransaction")
    assert [sv["format"] for mv in stop.payload["transactionData"] for sv in mv["sampledValue"]] == [
        "Raw", "SignedData", "Raw"]
    assert rig.core.meta.get(PENDING_STOPS_META) == {}


async def test_a_journaled_stop_is_queued_at_the_next_start(tmp_path: Path, rigs):
    signed = FakeSigned()
    rig = rigs(tmp_path, signed=signed, MeterValueSampleInterval="0")
    async with rig.running():
        rig.state(1, C)
        await rig.timers.settle()
        signed.gate = asyncio.Event()
        rig.state(1, A)
        await rig.timers.settle()
        rig.tx._enqueue_stop = lambda session, payload: None  # kill -9 while waiting for the meter
    rig.close()
    again = rigs(tmp_path, signed=FakeSigned())
    assert await again.deliver()
    assert again.backend.actions == ["StartTransaction", "StopTransaction"]
    assert again.backend.of("StopTransaction")[0]["reason"] == "EVDisconnected"


async def test_a_meter_that_does_not_sign_has_its_stop_queued_with_the_close(tmp_path: Path, rigs):
    """No signature to wait for: the StopTransaction is in the outbox the moment the session is
    closed (the same commit), not a few milliseconds later through the journal."""
    signed = FakeSigned()
    signed.signs = lambda connector_id: False
    rig = rigs(tmp_path, signed=signed, MeterValueSampleInterval="0")
    async with rig.running():
        rig.state(1, C)
        await rig.timers.settle()
        rig.state(1, A)  # no await between the close and the check
        assert [m.action for m in rig.queued("StopTransaction")] == ["StopTransaction"]
        assert not rig.core.meta.get(PENDING_STOPS_META)
    assert signed.asked == []  # nothing was asked of a meter that cannot sign


async def test_missed_periodic_ticks_are_skipped_not_replayed(tmp_path: Path, rigs):
    rig = rigs(tmp_path, MeterValueSampleInterval="10")
    async with rig.running():
        rig.state(1, C)
        await rig.charge(20)
        rig.clock.now += timedelta(hours=2)  # the clock was set (NTP) while the timer slept
        await rig.timers.advance(60)
        stamps = [m.payload["meterValue"][0]["timestamp"][11:19] for m in rig.queued("MeterValues")]
    assert stamps == ["12:00:10", "12:00:20",  # then the clock jumps: one value at once, not 720
                      "14:00:20", "14:00:30", "14:00:40", "14:00:50", "14:01:00", "14:01:10", "14:01:20"]


async def test_an_answer_without_id_tag_info_deauthorizes_nothing(tmp_path: Path, rigs):
    rig = rigs(tmp_path, CsMode="0")
    rig.state(1, C)
    rig.core.authorize(1, "aec78085")
    rig.tx.on_answer("StartTransaction", {"connectorId": 1, "idTag": "aec78085"}, {"transactionId": TID})
    rig.tx.on_answer("MeterValues", {"connectorId": 1}, {})
    assert rig.core.connectors[1].deauthorized_at_wh is None


async def test_a_stand_alone_station_queues_no_transaction_messages(tmp_path: Path, rigs, caplog):
    rig = rigs(tmp_path, reporting=False)  # ServerMode Offline: no backend to tell
    async with rig.running():
        rig.state(1, CpState.C)
        await rig.charge(30)
        rig.state(1, CpState.A)
    assert rig.queued() == []
    assert "no StartTransaction" not in caplog.text
