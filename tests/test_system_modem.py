"""System edge, mobile modem: mmcli -J output parsed, RSSI and WeakSignal, SIM settings with the
PIN and password never logged or recorded in clear."""

from __future__ import annotations

import json
import logging
import stat
from pathlib import Path

import pytest
from test_ocpp_client import BOX, Station, config_for

from firmware_sim.central_system import CentralSystem
from firmware_sim.world import SimConnectorSpec, SimWorld
from stationd.system import (
    DeviceOptions,
    DeviceSystem,
    DryRunSystem,
    MobileSettings,
    MobileSettingsError,
    ModemInfo,
    RecordingRunner,
    SignalReading,
)
from stationd.system.dry_run import simulated_modem
from stationd.system.modem import parse_signal, rssi_from_quality

MODEM = "/org/freedesktop/ModemManager1/Modem/0"
SIM = "/org/freedesktop/ModemManager1/SIM/0"
MOBILE_FILE = "var/lib/stationd/system/mobile.json"
PIN, PASSWORD = "4711", "s3cr3t-Pw"

LIST = '{"modem-list":["/org/freedesktop/ModemManager1/Modem/0"]}'
NO_MODEM = '{"modem-list":[]}'


def modem_output(unlock_required: str = "--", retries: tuple[str, ...] = ("sim-pin (3)", "sim-puk (10)"),
                 quality: str = "60", state: str = "registered") -> str:
    """What `mmcli -J -m PATH` prints (ModemManager 1.20), trimmed to the sections we read."""
    return json.dumps({"modem": {
        "3gpp": {"enabled-locks": ["sim"], "imei": "490154203237518", "operator-code": "26201",
                 "operator-name": "Telekom.de", "packet-service-state": "attached", "pco": "--",
                 "registration-state": "home"},
        "dbus-path": MODEM,
        "generic": {"access-technologies": ["lte"], "bearers": [], "carrier-configuration": "--",
                    "device": "/sys/devices/platform/soc/usb1/1-1", "drivers": ["option", "qmi_wwan"],
                    "equipment-identifier": "490154203237518", "manufacturer": "Fibocom Wireless Inc.",
                    "model": "NL668_EU_10", "own-numbers": [], "plugin": "fibocom",
                    "ports": ["cdc-wdm0 (qmi)", "ttyUSB2 (at)", "wwan0 (net)"], "power-state": "on",
                    "primary-port": "cdc-wdm0", "revision": "17000.1000.00.01.00.27",
                    "signal-quality": {"recent": "yes", "value": quality}, "sim": SIM, "state": state,
                    "state-failed-reason": "--", "unlock-required": unlock_required,
                    "unlock-retries": list(retries)}}})


SIM_OUTPUT = json.dumps({"sim": {"dbus-path": SIM, "properties": {
    "active": "yes", "eid": "--", "emergency-numbers": ["112", "911"], "iccid": "89883030000045459887",
    "imsi": "206018037157525", "operator-code": "20601", "operator-name": "--"}}})


def signal_output(lte_rssi: str = "-71.00", rate: str = "30", umts_rssi: str = "--") -> str:
    return json.dumps({"modem": {"signal": {
        "5g": {"error-rate": "--", "rsrp": "--", "rsrq": "--", "snr": "--"},
        "cdma1x": {"ecio": "--", "error-rate": "--", "rssi": "--"},
        "evdo": {"ecio": "--", "error-rate": "--", "io": "--", "rssi": "--", "sinr": "--"},
        "gsm": {"error-rate": "--", "rssi": "--"},
        "lte": {"error-rate": "--", "rsrp": "-101.00", "rsrq": "-11.00", "rssi": lte_rssi, "snr": "12.40"},
        "refresh": {"rate": rate}, "threshold": {"error-rate": "no", "rssi": "0"},
        "umts": {"ecio": "--", "error-rate": "--", "rscp": "--", "rssi": umts_rssi}}}})


@pytest.fixture
def runner() -> RecordingRunner:
    runner = RecordingRunner()
    runner.answer("mmcli", "-J", "-L", stdout=LIST)
    runner.answer("mmcli", "-J", "-m", MODEM, stdout=modem_output())
    runner.answer("mmcli", "-J", "-i", SIM, stdout=SIM_OUTPUT)
    runner.answer("mmcli", "-J", "-m", MODEM, "--signal-get", stdout=signal_output())
    return runner


@pytest.fixture
def device(tmp_path: Path, runner: RecordingRunner) -> DeviceSystem:
    return DeviceSystem(DeviceOptions(root=tmp_path), runner=runner)


# ---- device info, iccid/imsi ------------------------------------------------------------------


async def test_modem_info_with_iccid_and_imsi(device: DeviceSystem, runner):
    info = await device.modem_info()
    assert runner.lines == ["mmcli -J -L", f"mmcli -J -m {MODEM}", f"mmcli -J -i {SIM}"]
    assert info is not None
    assert (info.manufacturer, info.model, info.revision) == ("Fibocom Wireless Inc.", "NL668_EU_10",
                                                              "17000.1000.00.01.00.27")
    assert (info.iccid, info.imsi) == ("89883030000045459887", "206018037157525")  # for BootNotification
    assert info.imei == "490154203237518" and info.operator == "Telekom.de" and info.state == "registered"
    assert info.signal_quality == 60 and info.unlock_required is None
    assert info.unlock_retries == {"sim-pin": 3, "sim-puk": 10}
    assert info.access_technologies == ("lte",)
    assert info.to_dict()["model"] == "NL668_EU_10"


@pytest.mark.parametrize("answer", [{"stdout": NO_MODEM},
                                    {"returncode": 1, "stderr": "error: couldn't find the ModemManager process"},
                                    {"returncode": 127, "stderr": "cannot run mmcli: No such file or directory"},
                                    {"stdout": "not json"}])
async def test_no_modem(device: DeviceSystem, runner, answer: dict):
    runner.answer("mmcli", "-J", "-L", **answer)
    assert await device.modem_info() is None
    reading = await device.modem_signal()
    assert reading == SignalReading() and reading.rssi_key == -999 and not reading.weak()


# ---- signal, RSSI, WeakSignal ----------------------------------------------------------------


async def test_rssi_from_the_extended_signal_values(device: DeviceSystem, runner):
    reading = await device.modem_signal()
    assert reading == SignalReading(-71, "lte")
    assert runner.lines[-1] == f"mmcli -J -m {MODEM} --signal-get"
    assert not any("--signal-setup" in line for line in runner.lines)  # refresh already on


async def test_signal_refresh_is_switched_on_once_then_quality_is_used(device: DeviceSystem, runner):
    runner.answer("mmcli", "-J", "-m", MODEM, "--signal-get", stdout=signal_output(lte_rssi="--", rate="0"))
    first = await device.modem_signal()
    assert first == SignalReading(-76, "quality")  # -113 + 60 % of 62 dB
    assert f"mmcli -m {MODEM} --signal-setup=30" in runner.lines
    await device.modem_signal()
    assert sum("--signal-setup" in line for line in runner.lines) == 1


def test_signal_sources_in_order():
    assert parse_signal(signal_output(lte_rssi="--", umts_rssi="-88.50"))[0] == SignalReading(-88, "umts")
    assert parse_signal(signal_output(lte_rssi="--"))[0] == SignalReading()
    assert parse_signal('{"modem": {}}') == (SignalReading(), False)
    assert rssi_from_quality(0).rssi_dbm == -113 and rssi_from_quality(100).rssi_dbm == -51
    assert rssi_from_quality(None) == SignalReading()


@pytest.mark.parametrize(("dbm", "weak"), [(-80, False), (-95, False), (-96, True), (-113, True), (None, False)])
def test_weak_signal_threshold(dbm, weak):
    assert SignalReading(dbm, "lte").weak() is weak


# ---- SIM settings -------------------------------------------------------------------------------


SETTINGS = MobileSettings(apn="internet.m2m", pin=PIN, auth="chap", username="station", password=PASSWORD)


async def test_locked_sim_is_unlocked_then_connected(device: DeviceSystem, runner, tmp_path: Path, caplog):
    caplog.set_level(logging.DEBUG, logger="stationd")
    runner.answer("mmcli", "-J", "-m", MODEM, stdout=modem_output(unlock_required="sim-pin", state="locked"))
    assert await device.set_mobile_settings(SETTINGS) is True
    changes = [line for line in runner.lines if not line.startswith("mmcli -J")]
    assert changes == [f"mmcli -i {SIM} --pin={PIN}", f"mmcli -m {MODEM} --set-allowed-modes=any",
                       f"mmcli -m {MODEM} --simple-connect=apn=internet.m2m,allowed-auth=chap,user=station,"
                       f"password={PASSWORD}"]
    shown = [line for line in runner.shown_lines if not line.startswith("mmcli -J")]
    assert shown == [f"mmcli -i {SIM} '--pin=****'", f"mmcli -m {MODEM} --set-allowed-modes=any",
                     f"mmcli -m {MODEM} '--simple-connect=apn=internet.m2m,allowed-auth=chap,user=station,"
                     "password=****'"]
    path = tmp_path / MOBILE_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == {"service_mode": "automatic", "apn": "internet.m2m", "pin": PIN, "auth": "chap",
                                            "username": "station", "password": PASSWORD}
    assert PIN not in caplog.text and PASSWORD not in caplog.text
    assert "--pin=****" in caplog.text


async def test_an_unlocked_sim_only_connects(device: DeviceSystem, runner):
    assert await device.set_mobile_settings(MobileSettings(apn="internet"))
    assert [line for line in runner.lines if not line.startswith("mmcli -J")] == [
        f"mmcli -m {MODEM} --set-allowed-modes=any", f"mmcli -m {MODEM} --simple-connect=apn=internet"]


@pytest.mark.parametrize(("mode", "allowed"), [("4g", "4g"), ("3g", "3g"), ("2g", "2g"), ("automatic", "any")])
async def test_the_service_mode_sets_the_allowed_modes_before_connecting(device: DeviceSystem, runner, mode, allowed):
    assert await device.set_mobile_settings(MobileSettings(apn="internet", service_mode=mode))
    assert [line for line in runner.lines if not line.startswith("mmcli -J")] == [
        f"mmcli -m {MODEM} --set-allowed-modes={allowed}", f"mmcli -m {MODEM} --simple-connect=apn=internet"]
    assert device.mobile_settings().service_mode == mode


async def test_a_service_mode_the_modem_refuses_stops_before_connecting(device: DeviceSystem, runner, caplog):
    runner.answer("mmcli", "-m", MODEM, "--set-allowed-modes=2g", returncode=1,
                  stderr="error: couldn't set current modes: Unsupported")
    assert await device.set_mobile_settings(MobileSettings(apn="internet", service_mode="2g")) is False
    assert not any("--simple-connect" in line for line in runner.lines)
    assert "refused service mode 2g" in caplog.text


async def test_the_last_pin_attempt_is_never_used(device: DeviceSystem, runner, caplog):
    runner.answer("mmcli", "-J", "-m", MODEM,
                  stdout=modem_output(unlock_required="sim-pin", retries=("sim-pin (1)",), state="locked"))
    assert await device.set_mobile_settings(SETTINGS) is False
    assert not any("--pin" in line or "--simple-connect" in line for line in runner.lines)
    assert "1 PIN attempt left" in caplog.text


async def test_a_puk_locked_sim_is_reported(device: DeviceSystem, runner):
    runner.answer("mmcli", "-J", "-m", MODEM, stdout=modem_output(unlock_required="sim-puk", state="locked"))
    assert await device.set_mobile_settings(SETTINGS) is False
    assert not any("--pin" in line or "--simple-connect" in line for line in runner.lines)


async def test_a_refused_pin_stops_before_connecting(device: DeviceSystem, runner, caplog):
    runner.answer("mmcli", "-J", "-m", MODEM, stdout=modem_output(unlock_required="sim-pin", state="locked"))
    runner.answer("mmcli", "-i", SIM, returncode=1,
                  stderr=f"error: couldn't send PIN code to the SIM ({PIN}): Incorrect password")
    assert await device.set_mobile_settings(SETTINGS) is False
    assert not any("--simple-connect" in line for line in runner.lines)
    assert PIN not in caplog.text and "Incorrect password" in caplog.text


async def test_secrets_not_given_keep_the_stored_ones(device: DeviceSystem, tmp_path: Path):
    await device.set_mobile_settings(SETTINGS)
    await device.set_mobile_settings(MobileSettings(apn="other", auth="chap", username="station"))
    assert device.mobile_settings() == MobileSettings(apn="other", pin=PIN, auth="chap", username="station",
                                                      password=PASSWORD)
    await device.set_mobile_settings(MobileSettings(apn="other", pin="", auth="pap", username="s", password=""))
    assert device.mobile_settings().pin in ("", None) and not device.mobile_settings().password
    assert device.mobile_settings().public() == {"service_mode": "automatic", "apn": "other", "pin": "", "auth": "pap", "username": "s",
                                                 "password": ""}


async def test_no_modem_keeps_the_settings_for_later(device: DeviceSystem, runner):
    runner.answer("mmcli", "-J", "-L", stdout=NO_MODEM)
    assert await device.set_mobile_settings(SETTINGS) is False
    assert device.mobile_settings() == SETTINGS
    runner.answer("mmcli", "-J", "-L", stdout=LIST)
    runner.calls.clear()
    await device.startup()  # the next daemon start applies them
    assert any("--simple-connect=apn=internet.m2m" in line for line in runner.lines)


@pytest.mark.parametrize(("data", "message"), [
    ({"pin": "12ab"}, "pin: 4 to 8 digits"),
    ({"pin": "123"}, "pin: 4 to 8 digits"),
    ({"apn": "my apn"}, "apn: up to 100 letters"),
    ({"auth": "kerberos"}, "auth: must be one of none, pap, chap, mschapv2"),
    ({"auth": "chap", "password": "a,b"}, "password: up to 64 printable characters without"),
    ({"auth": "chap", "username": "x\ny"}, "username: up to 64 printable characters"),
    ({"username": "station"}, "username: needs an authentication method"),
    ({"apn": "internet", "roaming": True}, "roaming: unknown field"),
    ({"service_mode": "5g"}, "service_mode: must be one of automatic, 4g, 3g, 2g"),
])
async def test_invalid_sim_settings_change_nothing(device: DeviceSystem, runner, tmp_path: Path, data, message):
    with pytest.raises(MobileSettingsError) as raised:
        await device.set_mobile_settings(MobileSettings.from_dict(data))
    assert message in str(raised.value)
    assert runner.calls == [] and not (tmp_path / MOBILE_FILE).exists()


def test_secrets_stay_out_of_repr_and_descriptions():
    text = repr(SETTINGS) + SETTINGS.describe() + str(SETTINGS.public())
    assert PIN not in text and PASSWORD not in text
    assert SETTINGS.describe() == "service_mode=automatic apn=internet.m2m auth=chap username=station password=**** pin=****"


# ---- the dry run ------------------------------------------------------------------------------


async def test_dry_run_records_sim_settings_masked(caplog):
    caplog.set_level(logging.DEBUG, logger="stationd")
    dry = DryRunSystem()
    assert await dry.set_mobile_settings(SETTINGS)
    assert dry.actions == [("set_mobile_settings",
                            "service_mode=automatic apn=internet.m2m auth=chap username=station password=**** pin=****")]
    assert PIN not in str(dry.actions) and PIN not in caplog.text and PASSWORD not in caplog.text
    assert dry.mobile_settings() == SETTINGS


async def test_dry_run_modem_is_simulated():
    assert await DryRunSystem().modem_info() is None
    assert (await DryRunSystem().modem_signal()).rssi_key == -999
    modem = ModemInfo(path=MODEM, manufacturer="Simulated", iccid="89883030000045459887", imsi="206018037157525")
    dry = DryRunSystem(modem=modem, signal_dbm=-101)
    assert (await dry.modem_info()).imsi == "206018037157525"
    assert (await dry.modem_signal()).weak()



async def first_boot_notification(tmp_path: Path, modem: str) -> dict:
    """The BootNotification of a station with ``hardware.modem`` set to ``modem``."""
    async with CentralSystem() as cs:
        world = SimWorld([SimConnectorSpec(1)], tmp_path / "sim", vehicle_reaction_s=0)
        await world.start()
        config = config_for(tmp_path / "data", cs.url, connectors=1)
        config = config.model_copy(update={"hardware": config.hardware.model_copy(update={"modem": modem})})
        station = Station(config, world)
        try:
            return (await cs.wait_for("BootNotification", chargebox_id=BOX, timeout=15)).payload
        finally:
            await station.stop()
            await world.stop()


async def test_a_station_with_a_modem_names_its_sim_in_the_boot_notification(tmp_path: Path):
    boot = await first_boot_notification(tmp_path, "sim")
    modem = simulated_modem()
    assert (boot["iccid"], boot["imsi"]) == (modem.iccid, modem.imsi)


async def test_without_a_modem_the_boot_notification_leaves_iccid_and_imsi_out(tmp_path: Path):
    boot = await first_boot_notification(tmp_path, "none")
    assert "iccid" not in boot and "imsi" not in boot
