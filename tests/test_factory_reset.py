"""FactoryReset (Eaton special key, SPEC.md §4.3): the key over OCPP with a real station and
central system, and what a reset keeps and wipes (docs/factory-reset.md)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from firmware_sim.central_system import CentralSystem
from firmware_sim.world import SimConnectorSpec, SimWorld
from stationd import factory_reset
from stationd.auth.id_tag_info import IdTagInfo
from stationd.config.store import ConfigStore
from stationd.config.value_types import Source
from stationd.storage import Database
from test_ocpp_client import BOX, Station, config_for, until

PROFILE = {"chargingProfileId": 7, "stackLevel": 0, "chargingProfilePurpose": "ChargePointMaxProfile",
           "chargingProfileKind": "Relative",
           "chargingSchedule": {"chargingRateUnit": "A", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 20}]}}


def payloads(cs: CentralSystem, action: str) -> list[dict]:
    return [r.payload for r in cs.messages(BOX) if r.action == action and r.direction == "in"
            and r.message_type_id == 2]


@pytest.fixture
async def world(tmp_path: Path):
    sim = SimWorld([SimConnectorSpec(1), SimConnectorSpec(2)], tmp_path / "sim", vehicle_reaction_s=0)
    await sim.start()
    yield sim
    await sim.stop()


async def start(tmp_path: Path, cs: CentralSystem, world: SimWorld) -> Station:
    running = Station(config_for(tmp_path / "data", cs.url), world)
    await cs.wait_for("StatusNotification", predicate=lambda r: r.payload["connectorId"] == 2, timeout=15)
    await until(lambda: running.boots == 1)
    return running


async def change(cs: CentralSystem, key: str, value: str) -> str:
    return (await cs.call(BOX, "ChangeConfiguration", {"key": key, "value": value}))["status"]


async def get(cs: CentralSystem, key: str) -> str:
    return (await cs.call(BOX, "GetConfiguration", {"key": [key]}))["configurationKey"][0]["value"]


def boots(cs: CentralSystem) -> int:
    return len(payloads(cs, "BootNotification"))


def rows(data_dir: Path, sql: str) -> list[tuple]:
    db = Database.open(data_dir)
    try:
        return [tuple(row) for row in db.query(sql)]
    finally:
        db.close()


async def test_active_resets_at_the_next_start_and_keeps_identity_and_undelivered_messages(
        tmp_path: Path, cs: CentralSystem, world: SimWorld):
    data = tmp_path / "data"
    station = await start(tmp_path, cs, world)
    # ---- what an installer, a technician and the backend changed
    for key, value in {"MeterValueSampleInterval": "7", "MasterSerial": "22222222",
                       "/WebUi/password/reset": "n3w-Passw0rd"}.items():
        assert await change(cs, key, value) == "Accepted"
    assert factory_reset.webui_password_matches(station.store, "n3w-Passw0rd")
    assert not factory_reset.webui_password_matches(station.store, "IT0001")
    local_list = {"listVersion": 5, "updateType": "Full",
                  "localAuthorizationList": [{"idTag": "AEC78085", "idTagInfo": {"status": "Accepted"}}]}
    assert (await cs.call(BOX, "SendLocalList", local_list))["status"] == "Accepted"
    assert (await cs.call(BOX, "SetChargingProfile", {"connectorId": 0, "csChargingProfiles": PROFILE}))[
        "status"] == "Accepted"
    assert (await cs.call(BOX, "ChangeAvailability", {"connectorId": 2, "type": "Inoperative"}))[
        "status"] == "Accepted"
    station.station.whitelist.add("4B13B318")
    station.station.ocpp.auth_cache.update("CAFE0001", IdTagInfo("Accepted"))
    world.plug(1)  # a finished session (history) ...
    world.charge(1, 16, 3)
    await cs.wait_for("StartTransaction", timeout=10)
    world.unplug(1)
    await cs.wait_for("StopTransaction", timeout=10)
    world.plug(1)  # ... and one still charging when the station goes down
    world.charge(1, 16, 3)
    await cs.wait_for("StartTransaction", predicate=lambda r: r.payload["meterStart"] >= 0 and len(
        payloads(cs, "StartTransaction")) == 2, timeout=10)
    await until(lambda: len([r for r in cs.messages(BOX) if r.action == "StartTransaction"
                             and r.direction == "out" and r.message_type_id == 3]) == 2)
    # ---- the backend asks for a reset at the next start
    assert await change(cs, "FactoryReset", "Active") == "Accepted"
    assert await get(cs, "FactoryReset") == "Active"
    await asyncio.sleep(0.5)
    assert station.boots == 1  # Active alone does not restart
    await station.stop()  # e.g. a power cut: the open session's StopTransaction stays undelivered
    world.unplug(1)
    queued = rows(data, "SELECT action FROM outbox")
    assert ("StopTransaction",) in queued
    assert factory_reset.pending(data)  # the flag survived the stop

    station = Station(config_for(data, cs.url), world)
    try:
        await cs.wait_for("BootNotification", predicate=lambda r: boots(cs) == 2, timeout=15)
        stop = (await cs.wait_for("StopTransaction", predicate=lambda r: r.payload["transactionId"] == 2,
                                  timeout=15)).payload  # kept, delivered with its transactionId
        assert stop["reason"] == "Reboot"
        # kept: the station's identity (config file)
        boot = payloads(cs, "BootNotification")[-1]
        assert boot["chargePointSerialNumber"] == "IT0001" and cs.connected(BOX)
        # wiped: every changed key, the password, the lists, cache, profiles, history, availability
        assert await get(cs, "FactoryReset") == "Inactive"
        assert await get(cs, "MeterValueSampleInterval") == "10"
        assert await get(cs, "MasterSerial") == "11111111"
        assert factory_reset.webui_password_matches(station.store, "IT0001")
        assert not factory_reset.webui_password_matches(station.store, "n3w-Passw0rd")
        assert await cs.call(BOX, "GetLocalListVersion", {}) == {"listVersion": 0}
        assert station.station.whitelist.count() == 0
        assert station.station.ocpp.auth_cache.count() == 0
        assert station.station.ocpp.profiles.all() == []
        await cs.wait_for("StatusNotification", predicate=lambda r: r.payload["connectorId"] == 2
                          and r.payload["status"] == "Available" and boots(cs) == 2, timeout=10)
        assert rows(data, "SELECT count(*) FROM sessions WHERE stopped_at IS NOT NULL") == [(0,)]
        assert [r[0] for r in rows(data, "SELECT reason FROM boot_log ORDER BY boot_id")] == [
            None, factory_reset.BOOT_REASON]
        assert not factory_reset.pending(data)
    finally:
        await station.stop()


async def test_active_now_ends_the_session_restarts_and_resets(tmp_path: Path, cs: CentralSystem, world: SimWorld):
    station = await start(tmp_path, cs, world)
    assert await change(cs, "MeterValueSampleInterval", "7") == "Accepted"
    world.plug(1)
    world.charge(1, 16, 3)
    await cs.wait_for("StartTransaction", timeout=10)
    try:
        assert await change(cs, "FactoryReset", "Active-now") == "Accepted"
        assert await get(cs, "FactoryReset") == "Active"  # until the restart
        stop = (await cs.wait_for("StopTransaction", timeout=15)).payload
        assert stop["reason"] == "Reboot"  # delivered before the restart
        await cs.wait_for("BootNotification", predicate=lambda r: boots(cs) == 2, timeout=20)
        assert station.boots == 2
        assert await get(cs, "FactoryReset") == "Inactive"
        assert await get(cs, "MeterValueSampleInterval") == "10"
        events = [p.get("techInfo", "") for p in payloads(cs, "SecurityEventNotification")
                  if p["type"] == "ResetOrReboot"]
        assert any("FactoryReset Active-now" in info for info in events)
    finally:
        world.unplug(1)
        await station.stop()


async def test_inactive_cancels_a_pending_reset(tmp_path: Path, cs: CentralSystem, world: SimWorld):
    station = await start(tmp_path, cs, world)
    try:
        assert await change(cs, "MeterValueSampleInterval", "7") == "Accepted"
        assert await change(cs, "FactoryReset", "Active") == "Accepted"
        assert await change(cs, "FactoryReset", "Inactive") == "Accepted"
        assert await get(cs, "FactoryReset") == "Inactive"
        assert (await cs.call(BOX, "Reset", {"type": "Soft"}))["status"] == "Accepted"
        await cs.wait_for("BootNotification", predicate=lambda r: boots(cs) == 2, timeout=20)
        assert station.boots == 2
        assert await get(cs, "MeterValueSampleInterval") == "7"  # nothing was wiped
        assert [r[0] for r in rows(tmp_path / "data", "SELECT reason FROM boot_log ORDER BY boot_id")] == [None, None]
    finally:
        await station.stop()


async def test_bad_values_are_rejected_and_change_nothing(tmp_path: Path, cs: CentralSystem, world: SimWorld):
    station = await start(tmp_path, cs, world)
    try:
        for bad in ("Now", "", "Active now", "true", "Activ"):
            assert await change(cs, "FactoryReset", bad) == "Rejected", bad
        assert await get(cs, "FactoryReset") == "Inactive"
        assert await change(cs, "FactoryReset", "active") == "Accepted"  # a CiString: any case
        assert await get(cs, "FactoryReset") == "Active"
        assert await change(cs, "FactoryReset", "Yes") == "Rejected"
        assert await get(cs, "FactoryReset") == "Active"
        assert await change(cs, "FactoryReset", "Inactive") == "Accepted"
        names = [k["key"] for k in (await cs.call(BOX, "GetConfiguration", {}))["configurationKey"]]
        assert "FactoryReset" not in names  # a special key: only when asked by name
        assert station.boots == 1
    finally:
        await station.stop()


async def test_a_technician_s_active_now_restarts_the_running_station(tmp_path: Path, cs: CentralSystem,
                                                                      world: SimWorld):
    station = await start(tmp_path, cs, world)
    try:
        assert await change(cs, "MasterSerial", "22222222") == "Accepted"
        cli = ConfigStore.open(tmp_path / "data")  # stationd config set FactoryReset Active-now
        assert cli.set("FactoryReset", "Active-now", Source.LOCAL).ok
        await cs.wait_for("BootNotification", predicate=lambda r: boots(cs) == 2, timeout=20)
        assert station.boots == 2 and await get(cs, "MasterSerial") == "11111111"
        assert await get(cs, "FactoryReset") == "Inactive"
    finally:
        await station.stop()


# ---- the reset on a data directory, without a daemon ------------------------------------------


def test_a_technician_s_active_now_while_the_daemon_is_stopped_runs_at_the_next_start(tmp_path: Path):
    store = ConfigStore.open(tmp_path, installation={"SerialNumber": "SN1"})
    assert store.set("FactoryReset", "Active-now", Source.LOCAL).ok  # stationd config set FactoryReset Active-now
    assert store.set("HeartbeatInterval", "60", Source.LOCAL).ok
    assert factory_reset.pending(tmp_path)
    report = factory_reset.run_pending(tmp_path)
    assert report is not None and "settings.json" in report.files and "settings.json.bak" in report.files
    assert factory_reset.run_pending(tmp_path) is None  # the flag went with the settings
    again = ConfigStore.open(tmp_path, installation={"SerialNumber": "SN1"})
    assert again.get("FactoryReset") == "Inactive" and again.get("HeartbeatInterval") == 600
    assert again.get("SerialNumber") == "SN1"


def test_a_reset_cut_short_runs_again_and_is_idempotent(tmp_path: Path):
    store = ConfigStore.open(tmp_path)
    assert store.set("FactoryReset", "Active", Source.OCPP).ok
    (tmp_path / "settings.json").unlink()  # as if a power cut hit between the two settings files
    assert factory_reset.pending(tmp_path)  # the good copy still holds the flag
    first = factory_reset.perform(tmp_path)
    second = factory_reset.perform(tmp_path)
    assert set(first.rows) == set(second.rows) and all(count == 0 for count in second.rows.values())
    assert second.files == [] and not factory_reset.pending(tmp_path)
