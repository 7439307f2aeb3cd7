"""System edge, time: set_time (as before), time zone, NTP on/off and servers (the timesyncd
drop-in), the time source NTP / HeartBeat / Browser as data."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from stationd.system import (
    DeviceOptions,
    DeviceSystem,
    DryRunSystem,
    RecordingRunner,
    TimeConfigError,
    TimeSettings,
    TimeStatus,
)

DROPIN = "etc/systemd/timesyncd.conf.d/stationd.conf"
MOMENT = datetime(2025, 3, 30, 0, 59, 58, tzinfo=timezone.utc)


@pytest.fixture
def runner() -> RecordingRunner:
    return RecordingRunner()


@pytest.fixture
def device(tmp_path: Path, runner: RecordingRunner) -> DeviceSystem:
    return DeviceSystem(DeviceOptions(root=tmp_path), runner=runner)


# ---- set_time (kept as it was) -----------------------------------------------------------------


async def test_device_sets_the_clock_through_timedatectl(device: DeviceSystem, runner):
    assert await device.set_time(MOMENT) is True
    assert runner.calls == [("timedatectl", "set-time", MOMENT.astimezone().strftime("%Y-%m-%d %H:%M:%S"))]
    assert runner.timeouts == [10]


@pytest.mark.parametrize("returncode", [1, 124, 127])
async def test_device_set_time_failure_is_false(device: DeviceSystem, runner, returncode: int):
    runner.answer("timedatectl", "set-time", returncode=returncode, stderr="Failed to set time: Access denied")
    assert await device.set_time(MOMENT) is False


async def test_dry_run_records_set_time_in_utc():
    dry = DryRunSystem()
    assert await dry.set_time(MOMENT) is True
    assert dry.actions == [("set_time", "2025-03-30T00:59:58+00:00")]


# ---- time zone ----------------------------------------------------------------------------------


async def test_timezone(device: DeviceSystem, runner):
    assert await device.set_timezone("Europe/Berlin")
    assert await device.set_timezone("utc")
    assert runner.lines == ["timedatectl set-timezone Europe/Berlin", "timedatectl set-timezone UTC"]


@pytest.mark.parametrize("name", ["Europe/Atlantis", "", "../../etc/passwd", "Europe/Berlin; reboot"])
async def test_unknown_timezone_is_refused(device: DeviceSystem, runner, name: str):
    with pytest.raises(TimeConfigError, match="timezone: unknown time zone"):
        await device.set_timezone(name)
    with pytest.raises(TimeConfigError):
        await DryRunSystem().set_timezone(name)
    assert runner.calls == []


# ---- NTP --------------------------------------------------------------------------------------


async def test_ntp_on_with_servers(device: DeviceSystem, runner, tmp_path: Path):
    assert await device.set_ntp(True, ["ntp1.example.com", "2001:db8::123"])
    assert (tmp_path / DROPIN).read_text() == (
        "# Written by stationd (WebUI Station > Date/Time). Do not edit: stationd replaces it.\n"
        "[Time]\nNTP=ntp1.example.com 2001:db8::123\n")
    assert runner.lines == ["timedatectl set-ntp true", "systemctl try-restart systemd-timesyncd.service"]
    assert device.ntp_servers() == ("ntp1.example.com", "2001:db8::123")
    runner.calls.clear()
    assert await device.set_ntp(True, ["ntp1.example.com", "2001:db8::123"])  # unchanged: no restart
    assert runner.lines == ["timedatectl set-ntp true"]


async def test_ntp_off_and_default_servers(device: DeviceSystem, runner, tmp_path: Path):
    assert await device.set_ntp(False)
    assert "\nNTP=" not in (tmp_path / DROPIN).read_text()
    assert runner.lines == ["timedatectl set-ntp false"]
    assert device.ntp_servers() == ()


async def test_ntp_failure_is_false(device: DeviceSystem, runner):
    runner.answer("timedatectl", "set-ntp", returncode=1, stderr="Failed to set ntp: NTP not supported")
    assert await device.set_ntp(True) is False
    assert runner.lines == ["timedatectl set-ntp true"]


@pytest.mark.parametrize("servers", [["bad host"], ["-x.example.com"], ["a" * 64 + ".example.com"], ["x"] * 6, [""]])
async def test_bad_ntp_servers_change_nothing(device: DeviceSystem, runner, tmp_path: Path, servers):
    with pytest.raises(TimeConfigError, match="ntp_servers"):
        await device.set_ntp(True, servers)
    assert runner.calls == [] and not (tmp_path / DROPIN).exists()


# ---- time source as data ------------------------------------------------------------------------


@pytest.mark.parametrize(("source", "expected"), [
    ("NTP", [("set_timezone", "Europe/Berlin"), ("set_ntp", "on servers pool.ntp.org")]),
    ("HeartBeat", [("set_timezone", "Europe/Berlin"), ("set_ntp", "off servers pool.ntp.org")]),
    ("Browser", [("set_timezone", "Europe/Berlin"), ("set_ntp", "off servers pool.ntp.org"),
                 ("set_time", "2025-03-30T00:59:58+00:00")]),
])
async def test_time_sources(source: str, expected):
    dry = DryRunSystem()
    settings = TimeSettings(timezone="Europe/Berlin", source=source, ntp_servers=("pool.ntp.org",))
    assert await dry.apply_time_settings(settings, browser_time=MOMENT)
    assert dry.actions == expected
    assert await dry.time_status() == TimeStatus("Europe/Berlin", source == "NTP", False)


async def test_device_time_settings_heartbeat(device: DeviceSystem, runner):
    assert await device.apply_time_settings(TimeSettings("Europe/Oslo", "HeartBeat"))
    assert runner.lines == ["timedatectl set-timezone Europe/Oslo", "timedatectl set-ntp false"]


@pytest.mark.parametrize(("kwargs", "message"), [({"source": "GPS"}, "source: must be one of NTP, HeartBeat, Browser"),
                                                 ({"timezone": "Mars/Olympus"}, "timezone:"),
                                                 ({"ntp_servers": ("a b",)}, "ntp_servers:")])
def test_time_settings_are_validated(kwargs, message):
    with pytest.raises(TimeConfigError, match=message):
        TimeSettings(**kwargs)


async def test_time_status_from_timedatectl_show(device: DeviceSystem, runner):
    runner.answer("timedatectl", "show", stdout="Timezone=Europe/Berlin\nLocalRTC=no\nCanNTP=yes\nNTP=yes\n"
                                                 "NTPSynchronized=no\nTimeUSec=Sun 2025-03-30 02:59:58 CEST\n")
    assert await device.time_status() == TimeStatus("Europe/Berlin", True, False)
    runner.answer("timedatectl", "show", returncode=1)
    assert await device.time_status() == TimeStatus()
