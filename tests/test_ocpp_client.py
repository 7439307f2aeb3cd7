"""The station's OCPP client end to end: the daemon with simulated hardware, a real central
system on 127.0.0.1, every backend-initiated message of Core, Remote Trigger and Reservation."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from pathlib import Path

from firmware_sim.central_system import CentralSystem
from firmware_sim.world import SimWorld
from stationd.config.station_file import parse_station_config
from stationd.daemon import Daemon
from stationd.sdnotify import SystemdNotifier

BOX = "TE-IT0001"


def config_for(data_dir: Path, url: str, connectors: int = 2):
    rows = "\n".join(f"    - {{id: {i}, controller: {{transport: sim}}, meter: {{model: sim}}}}"
                     for i in range(1, connectors + 1))
    return parse_station_config(
        f"identity: {{serial_number: IT0001, chargebox_id_template: 'TE-{{serial}}'}}\n"
        f"ocpp: {{endpoint: '{url}', security_profile: 0}}\n"
        f"hardware:\n  connectors:\n{rows}\n  rfid: {{transport: sim}}\n"
        f"modbus_server: {{enabled: false, bind: '127.0.0.1:0'}}\n"
        f"webui: {{bind: '127.0.0.1:0'}}\n"
        f"data_dir: {data_dir}\n")


class Station:
    """The daemon running in this event loop (restarted in place after a Reset, like the demo).
    A stop is remembered: one asked for while the station restarts ends it instead of reaching
    the daemon that is already gone and leaving the next one running."""

    def __init__(self, config, world):
        self.config, self.world = config, world
        self.daemon: Daemon | None = None
        self.boots = 0
        self.stopping = False
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> int:
        while not self.stopping:
            self.daemon = Daemon(self.config, world=self.world, notifier=SystemdNotifier.from_env({}),
                                 handle_signals=False, component_factories=[self._capture])
            code = await self.daemon.run()
            if not self.daemon.restart_requested:
                return code
        return 0

    def _capture(self, station):
        self.boots += 1
        self.station = station
        return []

    @property
    def store(self):
        return self.station.store

    async def stop(self) -> None:
        self.stopping = True
        if self.daemon is not None:
            self.daemon.request_stop("test over")
        assert await asyncio.wait_for(self.task, 15) == 0


async def until(condition, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


def payloads(cs: CentralSystem, action: str) -> list[dict]:
    return [r.payload for r in cs.messages(BOX) if r.action == action and r.direction == "in"
            and r.message_type_id == 2]


async def test_boot_then_status_of_every_connector(station: Station, cs: CentralSystem):
    boot = payloads(cs, "BootNotification")[0]
    assert boot["chargePointVendor"] == "stationd" and boot["chargePointModel"] == "stationd AC22"
    assert boot["chargePointSerialNumber"] == "IT0001" and boot["firmwareVersion"]
    assert boot["meterType"] and boot["meterSerialNumber"]  # read from connector 1's meter
    statuses = {p["connectorId"]: p["status"] for p in payloads(cs, "StatusNotification")}
    assert statuses == {0: "Available", 1: "Available", 2: "Available"}
    actions = [r.action for r in cs.messages(BOX) if r.direction == "in" and r.message_type_id == 2]
    assert actions[0] == "BootNotification"  # nothing before the boot
    assert station.store.get("HeartbeatInterval") == 300  # the backend's interval
    assert await cs.call(BOX, "ChangeConfiguration", {"key": "HeartbeatInterval", "value": "1"}) == {
        "status": "Accepted"}
    await cs.wait_for("Heartbeat", timeout=5)


async def test_a_free_session_start_meter_values_stop(station: Station, cs: CentralSystem, world: SimWorld):
    assert (await cs.call(BOX, "ChangeConfiguration", {"key": "MeterValueSampleInterval", "value": "1"}))[
        "status"] == "Accepted"
    world.plug(1)
    world.charge(1, 16, 3)
    start = (await cs.wait_for("StartTransaction", timeout=10)).payload
    assert start["connectorId"] == 1 and start["idTag"] == "FREECHARGING" and isinstance(start["meterStart"], int)
    await cs.wait_for("StatusNotification", predicate=lambda r: r.payload["status"] == "Charging")
    values = (await cs.wait_for("MeterValues", timeout=10)).payload
    assert values["transactionId"] == 1  # the id the backend gave in StartTransaction.conf
    sampled = values["meterValue"][0]["sampledValue"]
    assert sampled[0]["measurand"] == "Energy.Active.Import.Register" and sampled[0]["context"] == "Sample.Periodic"
    world.unplug(1)
    stop = (await cs.wait_for("StopTransaction", timeout=10)).payload
    assert stop["transactionId"] == 1 and stop["reason"] == "EVDisconnected"
    assert stop["meterStop"] >= start["meterStart"]
    assert any(v["sampledValue"][0]["context"] == "Transaction.End" for v in stop.get("transactionData", []))


async def test_pending_boot_answers_calls_but_starts_nothing(tmp_path: Path, cs: CentralSystem, world: SimWorld):
    now = datetime.now(timezone.utc).isoformat()
    cs.respond("BootNotification", {"status": "Pending", "interval": 1, "currentTime": now}, times=1)
    running = Station(config_for(tmp_path / "data", cs.url), world)
    try:
        await cs.wait_for("BootNotification", timeout=15)
        answer = await cs.call(BOX, "GetConfiguration", {"key": ["HeartbeatInterval"]})
        assert answer["configurationKey"][0]["key"] == "HeartbeatInterval"
        assert (await cs.call(BOX, "RemoteStartTransaction", {"connectorId": 1, "idTag": "x"}))["status"] == "Rejected"
        await cs.wait_for("BootNotification", timeout=5)  # again after the interval: Accepted now
        await cs.wait_for("StatusNotification", timeout=5)
    finally:
        await running.stop()


async def test_remote_start_and_stop(station: Station, cs: CentralSystem, world: SimWorld):
    assert (await cs.call(BOX, "ChangeConfiguration", {"key": "CsMode", "value": "0"}))["status"] == "Accepted"
    world.plug(2)
    world.charge(2, 16, 3)
    await cs.wait_for("StatusNotification", predicate=lambda r: r.payload == {**r.payload, "connectorId": 2,
                                                                                 "status": "Preparing"})
    assert (await cs.call(BOX, "RemoteStartTransaction", {"connectorId": 0, "idTag": "x"}))["status"] == "Rejected"
    assert (await cs.call(BOX, "RemoteStartTransaction", {"connectorId": 2, "idTag": "aec78085"}))[
        "status"] == "Accepted"
    start = (await cs.wait_for("StartTransaction")).payload
    assert start["idTag"] == "aec78085" and start["connectorId"] == 2
    await cs.wait_for("StatusNotification", predicate=lambda r: r.payload["status"] == "Charging")
    assert (await cs.call(BOX, "RemoteStopTransaction", {"transactionId": 99}))["status"] == "Rejected"
    assert (await cs.call(BOX, "RemoteStopTransaction", {"transactionId": 1}))["status"] == "Accepted"
    stop = (await cs.wait_for("StopTransaction")).payload
    assert stop["reason"] == "Remote" and stop["transactionId"] == 1


async def test_cards_start_and_stop_in_authenticated_mode(station: Station, cs: CentralSystem, world: SimWorld):
    await cs.call(BOX, "ChangeConfiguration", {"key": "CsMode", "value": "0"})
    world.present_card("AEC78085")
    assert (await cs.wait_for("Authorize")).payload == {"idTag": "aec78085"}
    world.plug(1)
    start = (await cs.wait_for("StartTransaction")).payload
    assert start["idTag"] == "aec78085"
    await asyncio.sleep(2.5)  # the reader reports a card held on it once
    world.present_card("AEC78085")
    stop = (await cs.wait_for("StopTransaction")).payload
    assert "reason" not in stop and stop["idTag"] == "aec78085"  # Local: the reason is left out


async def test_configuration_over_ocpp(station: Station, cs: CentralSystem):
    everything = await cs.call(BOX, "GetConfiguration", {})
    names = {k["key"] for k in everything["configurationKey"]}
    assert {"HeartbeatInterval", "BoxId", "/power/station/mainsMaxCurrent", "AuthorizationKey"} <= names
    assert "FactoryReset" not in names  # hidden unless asked by name
    secret = next(k for k in everything["configurationKey"] if k["key"] == "AuthorizationKey")
    assert "value" not in secret and secret["readonly"] is False
    asked = await cs.call(BOX, "GetConfiguration", {"key": ["FactoryReset", "heartbeatinterval", "Testing"]})
    assert [k["key"] for k in asked["configurationKey"]] == ["FactoryReset", "heartbeatinterval"]
    assert asked["unknownKey"] == ["Testing"]
    change = lambda key, value: cs.call(BOX, "ChangeConfiguration", {"key": key, "value": value})  # noqa: E731
    assert (await change("Testing", "1"))["status"] == "NotSupported"
    assert (await change("NumberOfConnectors", "3"))["status"] == "Rejected"
    assert (await change("HeartbeatInterval", "-3"))["status"] == "Rejected"
    assert (await change("RfidType", "2"))["status"] == "RebootRequired"
    assert (await change("GridMaxCurrentPerPhase", "25"))["status"] == "Accepted"
    assert station.store.get("/power/station/mainsMaxCurrent") == 25000


async def test_trigger_message_answers_first_then_sends(station: Station, cs: CentralSystem, world: SimWorld):
    for message in ("BootNotification", "Heartbeat", "StatusNotification", "MeterValues",
                    "DiagnosticsStatusNotification", "FirmwareStatusNotification"):
        before = len(cs.messages(BOX))
        answer = await cs.call(BOX, "TriggerMessage", {"requestedMessage": message, "connectorId": 1}
                               if message in ("StatusNotification", "MeterValues") else {"requestedMessage": message})
        assert answer == {"status": "Accepted"}
        triggered = await cs.wait_for(message, predicate=lambda r, b=before: r.seq > b)
        result_sent = next(r for r in cs.messages(BOX)[before:] if r.action == "TriggerMessage" and r.direction == "in")
        assert result_sent.seq < triggered.seq  # the .conf came before the message
    assert (await cs.call(BOX, "TriggerMessage", {"requestedMessage": "StatusNotification", "connectorId": 7}))[
        "status"] == "Rejected"
    idle = payloads(cs, "DiagnosticsStatusNotification")[-1]
    assert idle == {"status": "Idle"}


async def test_reservation_unlock_availability_and_vendor_messages(station: Station, cs: CentralSystem):
    expiry = (datetime.now(timezone.utc) + timedelta(minutes=5)).isoformat()
    assert (await cs.call(BOX, "ReserveNow", {"connectorId": 1, "expiryDate": expiry, "idTag": "aec78085",
                                              "reservationId": 5}))["status"] == "Accepted"
    await cs.wait_for("StatusNotification", predicate=lambda r: r.payload["status"] == "Reserved")
    assert (await cs.call(BOX, "CancelReservation", {"reservationId": 5}))["status"] == "Accepted"
    assert (await cs.call(BOX, "CancelReservation", {"reservationId": 5}))["status"] == "Rejected"
    assert (await cs.call(BOX, "UnlockConnector", {"connectorId": 1}))["status"] == "Unlocked"
    assert (await cs.call(BOX, "ChangeAvailability", {"connectorId": 2, "type": "Inoperative"}))[
        "status"] == "Accepted"
    await cs.wait_for("StatusNotification", predicate=lambda r: r.payload == {**r.payload, "connectorId": 2,
                                                                                 "status": "Unavailable"})
    assert (await cs.call(BOX, "ChangeAvailability", {"connectorId": 9, "type": "Operative"}))["status"] == "Rejected"
    assert (await cs.call(BOX, "DataTransfer", {"vendorId": "someone-else"}))["status"] == "UnknownVendorId"
    assert (await cs.call(BOX, "DataTransfer", {"vendorId": "stationd", "messageId": "x"}))[
        "status"] == "UnknownMessageId"


async def test_hostile_frames_are_answered_and_the_station_keeps_going(station: Station, cs: CentralSystem):
    for frame in ("not json", "[2, null, \"Reset\", {}]", "[3, \"nobody-asked\", {}]", "[9]",
                  "[2, \"a1\", \"NoSuchAction\", {}]", "[2, \"a2\", \"Reset\", {\"type\": \"Sideways\"}]",
                  "[2, \"a3\", \"ChangeConfiguration\", {\"key\": \"HeartbeatInterval\"}]",
                  "[2, \"a4\", \"UnlockConnector\", {\"connectorId\": 1e400}]", "[" * 5000 + "]" * 5000):
        await cs.send_raw(BOX, frame)
    await cs.send_raw(BOX, b"\x00\xff binary")
    errors = {}
    async with asyncio.timeout(5):
        while len(errors) < 4:
            await asyncio.sleep(0.05)
            errors = {r.unique_id: r.error_code for r in cs.messages(BOX) if r.message_type_id == 4}
    assert errors == {"a1": "NotImplemented", "a2": "PropertyConstraintViolation",
                      "a3": "OccurenceConstraintViolation", "a4": "TypeConstraintViolation"}
    assert (await cs.call(BOX, "GetConfiguration", {"key": ["BoxId"]}))["configurationKey"][0]["value"] == BOX


async def test_a_backend_outage_loses_nothing(station: Station, cs: CentralSystem, world: SimWorld):
    for key, value in (("MeterValueSampleInterval", "1"), ("RetryBackoffWaitMinimum", "0"),
                       ("RetryBackoffRandomRange", "0")):
        assert (await cs.call(BOX, "ChangeConfiguration", {"key": key, "value": value}))["status"] == "Accepted"
    world.plug(1)
    world.charge(1, 16, 3)
    await cs.wait_for("MeterValues", timeout=10)
    cs.refuse_status = 503  # the backend goes away for a while
    await cs.disconnect(BOX)
    await asyncio.sleep(3)
    world.unplug(1)
    await asyncio.sleep(0.5)
    cs.refuse_status = None
    stop = (await cs.wait_for("StopTransaction", timeout=20)).payload
    assert stop["transactionId"] == 1
    values = [p for p in payloads(cs, "MeterValues") if p.get("transactionId") == 1]
    stamps = [p["meterValue"][0]["timestamp"] for p in values]
    assert stamps == sorted(stamps)  # chronological, also across the outage
    assert len(stamps) - len(set(stamps)) <= 1  # at most the one in flight twice
    assert len(values) >= 4  # the ones sampled during the outage arrived afterwards


async def test_soft_reset_stops_the_session_and_boots_again(station: Station, cs: CentralSystem, world: SimWorld):
    world.plug(1)
    world.charge(1, 16, 3)
    await cs.wait_for("StartTransaction")
    assert (await cs.call(BOX, "Reset", {"type": "Soft"}))["status"] == "Accepted"
    stop = (await cs.wait_for("StopTransaction", timeout=15)).payload
    assert stop["reason"] == "SoftReset"
    await cs.wait_for("BootNotification", timeout=20)  # the second boot
    assert station.boots == 2
    events = [p["type"] for p in payloads(cs, "SecurityEventNotification")]
    assert "ResetOrReboot" in events and "StartupOfTheDevice" in events


async def test_eaton_vendor_messages_follow_enabled_data_transfer(station: Station, cs: CentralSystem,
                                                                   world: SimWorld):
    import json

    assert (await cs.call(BOX, "ChangeConfiguration", {"key": "EnabledDataTransfer",
                                                       "value": "PlugType,StopSource"}))["status"] == "Accepted"
    world.plug(1)
    world.charge(1, 16, 3)
    plug = (await cs.wait_for("DataTransfer", predicate=lambda r: r.payload.get("messageId") == "PlugType")).payload
    assert plug["vendorId"] == "stationd" and json.loads(plug["data"]) == {"connectorId": 1, "plugType": "Type2Socket"}
    world.set_fault(1, "GroundFailure", True)  # ChargeStopError is not enabled: not sent
    await cs.wait_for("StatusNotification", predicate=lambda r: r.payload["status"] == "Faulted")
    world.unplug(1)
    stop = (await cs.wait_for("DataTransfer", predicate=lambda r: r.payload.get("messageId") == "StopSource")).payload
    assert json.loads(stop["data"]) == {"connectorId": 1, "reason": "EVDisconnected", "stopSource": "EV"}
    sent = {r.payload.get("messageId") for r in cs.messages(BOX) if r.action == "DataTransfer" and r.direction == "in"}
    assert "ChargeStopError" not in sent


async def test_local_list_management(station: Station, cs: CentralSystem):
    entry = lambda tag, status="Accepted": {"idTag": tag, "idTagInfo": {"status": status}}  # noqa: E731
    assert await cs.call(BOX, "GetLocalListVersion", {}) == {"listVersion": 0}
    full = {"listVersion": 1, "updateType": "Full", "localAuthorizationList": [entry("AEC78085"), entry("4b13b318")]}
    assert (await cs.call(BOX, "SendLocalList", full))["status"] == "Accepted"
    assert await cs.call(BOX, "GetLocalListVersion", {}) == {"listVersion": 1}
    stale = {"listVersion": 1, "updateType": "Differential", "localAuthorizationList": [entry("x1")]}
    assert (await cs.call(BOX, "SendLocalList", stale))["status"] == "VersionMismatch"
    twice = {"listVersion": 2, "updateType": "Differential", "localAuthorizationList": [entry("x1"), entry("X1")]}
    assert (await cs.call(BOX, "SendLocalList", twice))["status"] == "Failed"
    assert station.station.ocpp.local_list.lookup("x1") is None  # a failed update changes nothing
    delta = {"listVersion": 2, "updateType": "Differential",
             "localAuthorizationList": [entry("x1", "Blocked"), {"idTag": "4b13b318"}]}
    assert (await cs.call(BOX, "SendLocalList", delta))["status"] == "Accepted"
    local_list = station.station.ocpp.local_list
    assert local_list.lookup("X1").status == "Blocked" and local_list.lookup("4b13b318") is None
    assert (await cs.call(BOX, "GetConfiguration", {"key": ["LocalListVersion"]}))["configurationKey"][0][
        "value"] == "2"
    assert (await cs.call(BOX, "ClearCache", {}))["status"] == "Accepted"
    await cs.call(BOX, "ChangeConfiguration", {"key": "LocalAuthListEnabled", "value": "false"})
    assert await cs.call(BOX, "GetLocalListVersion", {}) == {"listVersion": -1}
    assert (await cs.call(BOX, "SendLocalList", full))["status"] == "NotSupported"


async def test_a_listed_card_starts_offline_and_the_transaction_arrives_later(station: Station, cs: CentralSystem,
                                                                               world: SimWorld):
    for key, value in (("CsMode", "0"), ("RetryBackoffWaitMinimum", "0"), ("RetryBackoffRandomRange", "0")):
        await cs.call(BOX, "ChangeConfiguration", {"key": key, "value": value})
    await cs.call(BOX, "SendLocalList", {"listVersion": 1, "updateType": "Full", "localAuthorizationList": [
        {"idTag": "aec78085", "idTagInfo": {"status": "Accepted"}}]})
    cs.refuse_status = 503  # the backend goes away
    await cs.disconnect(BOX)
    await until(lambda: not station.station.ocpp.connected)
    world.present_card("AEC78085")
    world.plug(1)
    await until(lambda: station.station.core.connectors[1].session is not None)
    assert station.station.core.connectors[1].session.id_tag == "aec78085"
    cs.refuse_status = None
    start = (await cs.wait_for("StartTransaction", timeout=20)).payload
    assert start["idTag"] == "aec78085"
    assert not [r for r in cs.messages(BOX) if r.action == "Authorize" and r.direction == "in"]


async def test_the_master_card_enrolls_the_next_cards(station: Station, world: SimWorld):
    await asyncio.sleep(0.3)  # the reader is up
    world.present_card("11111111")  # MasterSerial's default
    await until(lambda: station.station.ocpp.online())
    world.present_card("DEADBEEF")
    whitelist = station.station.whitelist
    await until(lambda: (whitelist.refresh_if_changed() or True) and whitelist.lookup("deadbeef") is not None)
    assert whitelist.lookup("deadbeef").authorization == "accepted"
    assert whitelist.lookup("11111111") is None


async def test_heartbeat_time_sets_the_clock_when_time_source_is_heartbeat(station: Station, cs: CentralSystem):
    off = (datetime.now(timezone.utc) + timedelta(hours=2)).isoformat()
    cs.respond("Heartbeat", {"currentTime": off}, times=1)
    await cs.call(BOX, "ChangeConfiguration", {"key": "TimeSource", "value": "HeartBeat"})
    await cs.call(BOX, "TriggerMessage", {"requestedMessage": "Heartbeat"})
    event = await cs.wait_for("SecurityEventNotification", predicate=lambda r: r.payload["type"] == "SettingSystemTime")
    assert "+7200 s" in event.payload["techInfo"]
    def clock_settings() -> list:
        return [action for action in station.station.ocpp.system.actions if action[0] == "set_time"]

    assert len(clock_settings()) == 1  # dry run: recorded, not done
    cs.respond("Heartbeat", {"currentTime": off}, times=1)
    await cs.call(BOX, "ChangeConfiguration", {"key": "TimeSource", "value": "NTP"})
    await cs.call(BOX, "TriggerMessage", {"requestedMessage": "Heartbeat"})
    await cs.wait_for("Heartbeat", predicate=lambda r: r.seq > event.seq)
    await asyncio.sleep(0.2)
    assert len(clock_settings()) == 1  # NTP keeps the clock: nothing set
    await until(lambda: [a[1] for a in station.station.ocpp.system.actions if a[0] == "set_ntp"][-2:] == ["off", "on"])
    # the time source reached the OS: NTP off while the Heartbeat sets the clock, on again


async def test_server_mode_offline_disconnects_and_online_connects_again(station: Station, cs: CentralSystem):
    assert (await cs.call(BOX, "ChangeConfiguration", {"key": "ServerMode", "value": "Offline"}))[
        "status"] == "Accepted"
    await until(lambda: not cs.connected(BOX))
    station.store.set("ServerMode", "Online")
    await cs.wait_connected(BOX, timeout=20)


def tx_default(limit: float, *, profile_id: int = 1, stack: int = 0, unit: str = "A") -> dict:
    return {"chargingProfileId": profile_id, "stackLevel": stack, "chargingProfilePurpose": "TxDefaultProfile",
            "chargingProfileKind": "Relative",
            "chargingSchedule": {"chargingRateUnit": unit, "chargingSchedulePeriod": [{"startPeriod": 0,
                                                                                        "limit": limit}]}}


async def test_a_charging_profile_lowers_the_pwm_and_clearing_it_restores(station: Station, cs: CentralSystem,
                                                                           world: SimWorld):
    world.plug(1)
    world.charge(1, 16, 3)
    await until(lambda: world.state()["connectors"][0]["pwm_current_a"] == 15.9)  # GridMaxPower 11 kW
    answer = await cs.call(BOX, "SetChargingProfile", {"connectorId": 1, "csChargingProfiles": tx_default(10.27)},
                           validate=False)  # a backend sending a limit that is no multiple of 0.1
    assert answer == {"status": "Accepted"}
    await until(lambda: world.state()["connectors"][0]["pwm_current_a"] == 10.2, timeout=5)  # within a second
    composite = await cs.call(BOX, "GetCompositeSchedule", {"connectorId": 1, "duration": 3600})
    assert composite["status"] == "Accepted"
    assert composite["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"] == 10.2
    in_watts = await cs.call(BOX, "GetCompositeSchedule", {"connectorId": 1, "duration": 60, "chargingRateUnit": "W"})
    assert in_watts["chargingSchedule"]["chargingRateUnit"] == "W"
    assert (await cs.call(BOX, "SetChargingProfile", {"connectorId": 1, "csChargingProfiles": tx_default(4, profile_id=2,
                                                                                                          stack=1)}))[
        "status"] == "Accepted"
    await cs.wait_for("StatusNotification", predicate=lambda r: r.payload["status"] == "SuspendedEVSE")
    await until(lambda: world.state()["connectors"][0]["pwm_current_a"] == 0)  # below 6 A: paused, no illegal PWM
    assert (await cs.call(BOX, "ClearChargingProfile", {}))["status"] == "Accepted"
    await until(lambda: world.state()["connectors"][0]["pwm_current_a"] == 15.9, timeout=5)
    assert (await cs.call(BOX, "ClearChargingProfile", {"id": 99}))["status"] == "Unknown"
    bad = tx_default(10)
    bad["chargingProfilePurpose"] = "TxProfile"  # no transaction id given: bound to the running one
    assert (await cs.call(BOX, "SetChargingProfile", {"connectorId": 2, "csChargingProfiles": bad}))[
        "status"] == "Rejected"  # no transaction on connector 2


async def test_remote_start_with_a_tx_profile(station: Station, cs: CentralSystem, world: SimWorld):
    await cs.call(BOX, "ChangeConfiguration", {"key": "CsMode", "value": "0"})
    world.plug(1)
    world.charge(1, 16, 3)
    profile = tx_default(8)
    profile["chargingProfilePurpose"] = "TxProfile"
    answer = await cs.call(BOX, "RemoteStartTransaction", {"connectorId": 1, "idTag": "aec78085",
                                                           "chargingProfile": profile})
    assert answer == {"status": "Accepted"}
    await cs.wait_for("StartTransaction")
    await until(lambda: world.state()["connectors"][0]["pwm_current_a"] == 8.0, timeout=5)
    world.unplug(1)
    await cs.wait_for("StopTransaction")
    await until(lambda: station.station.ocpp.profiles.all() == [], timeout=5)  # it ended with its transaction


async def test_a_backend_contradicting_its_local_list_is_reported_on_connector_0(station: Station,
                                                                                  cs: CentralSystem, world: SimWorld):
    await cs.call(BOX, "ChangeConfiguration", {"key": "CsMode", "value": "0"})
    await cs.call(BOX, "SendLocalList", {"listVersion": 1, "updateType": "Full", "localAuthorizationList": [
        {"idTag": "aec78085", "idTagInfo": {"status": "Accepted"}}]})
    cs.respond("Authorize", {"idTagInfo": {"status": "Blocked"}})
    world.present_card("AEC78085")
    conflict = await cs.wait_for("StatusNotification", predicate=lambda r: r.payload["errorCode"] == "LocalListConflict")
    assert conflict.payload["connectorId"] == 0
    world.plug(1)
    await asyncio.sleep(0.5)
    assert station.station.core.connectors[1].session is None  # the backend's answer decides
    await cs.call(BOX, "SendLocalList", {"listVersion": 2, "updateType": "Differential", "localAuthorizationList": [
        {"idTag": "aec78085", "idTagInfo": {"status": "Blocked"}}]})
    cleared = await cs.wait_for("StatusNotification", predicate=lambda r: r.payload["connectorId"] == 0
                                and r.seq > conflict.seq)
    assert cleared.payload["errorCode"] == "NoError"  # the backend fixed its list


async def test_a_stop_asked_for_while_the_station_restarts_ends_it(station: Station):
    """The stop reaches the daemon that is already going away for the restart; the next one must
    not start and run on (this hung a CI run after a firmware reboot)."""
    station.daemon.request_restart("test: restart in place")
    await station.stop()
    assert station.task.done() and station.boots == 1
