"""System edge, vendor access: on for a limited time only (a systemd switch-off timer on the
device, an in-process timer in both), off again at expiry and after a restart."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from stationd.system import DeviceOptions, DeviceSystem, DryRunSystem, RecordingRunner, VendorAccessError
from stationd.system.vendor_access import render_off_service

REMOTE_UNITS = "ssh.service openvpn-client@vendor.service"
LOCAL_UNITS = "serial-getty@ttyS0.service"


def switch_off_timer(kind: str, seconds: int) -> str:
    """Only a timer: it triggers the image's static stationd-vendor-access-KIND-off.service."""
    return (f"systemd-run --unit=stationd-vendor-access-{kind}-off --on-active={seconds}s "
            "--timer-property=AccuracySec=1s --timer-property=RemainAfterElapse=no "
            f"'--description=stationd: end {kind} vendor access'")


@pytest.fixture
def runner() -> RecordingRunner:
    return RecordingRunner()


@pytest.fixture
def ended() -> list[str]:
    return []


@pytest.fixture
async def device(tmp_path: Path, runner: RecordingRunner, ended: list[str]):
    system = DeviceSystem(DeviceOptions(root=tmp_path), runner=runner, on_vendor_access_off=ended.append)
    yield system
    system.close()


async def test_enable_creates_the_switch_off_timer_before_starting_the_services(device: DeviceSystem, runner):
    before = datetime.now(timezone.utc)
    expiry = await device.enable_vendor_access("remote", 3600)
    assert runner.lines == [
        "systemctl stop stationd-vendor-access-remote-off.timer",  # an earlier timer, if any
        switch_off_timer("remote", 3600),
        f"systemctl start {REMOTE_UNITS}",
    ]
    assert expiry is not None and before + timedelta(seconds=3598) <= expiry <= before + timedelta(seconds=3601)
    assert device.vendor_access() == {"local": None, "remote": expiry}


async def test_local_access_units_and_custom_units(tmp_path: Path, runner):
    options = DeviceOptions(root=tmp_path, vendor_units={"local": ("getty@tty1.service",), "remote": ("ssh.service",)})
    device = DeviceSystem(options, runner=runner)
    await device.enable_vendor_access("local", 90.2)
    assert runner.lines[1:] == [switch_off_timer("local", 91),
                                "systemctl start getty@tty1.service"]
    device.close()


async def test_no_timer_no_access(device: DeviceSystem, runner):
    runner.answer("systemd-run", returncode=1, stderr="Failed to start transient timer unit: Access denied")
    assert await device.enable_vendor_access("remote", 60) is None
    assert not any(line.startswith("systemctl start") for line in runner.lines)
    assert f"systemctl stop {REMOTE_UNITS}" in runner.lines  # an earlier grant ends too: it lost its timer
    assert device.vendor_access()["remote"] is None


async def test_services_that_do_not_start_are_switched_off_again(device: DeviceSystem, runner):
    runner.answer("systemctl", "start", returncode=5, stderr="Failed to start ssh.service: Unit not found.")
    assert await device.enable_vendor_access("remote", 60) is None
    assert runner.lines[-2:] == [f"systemctl stop {REMOTE_UNITS}",
                                 "systemctl stop stationd-vendor-access-remote-off.timer"]
    assert device.vendor_access()["remote"] is None


async def test_disable_now(device: DeviceSystem, runner, ended):
    await device.enable_vendor_access("remote", 60)
    runner.calls.clear()
    assert await device.disable_vendor_access("remote") is True
    assert runner.lines == [f"systemctl stop {REMOTE_UNITS}", "systemctl stop stationd-vendor-access-remote-off.timer"]
    assert device.vendor_access()["remote"] is None
    await asyncio.sleep(0.05)
    assert ended == []  # the callback reports expiries only


async def test_device_switches_off_at_expiry(device: DeviceSystem, runner, ended):
    await device.enable_vendor_access("remote", 0.05)
    await device.enable_vendor_access("local", 30)
    runner.calls.clear()
    await asyncio.sleep(0.2)
    assert ended == ["remote"]
    assert device.vendor_access()["remote"] is None and device.vendor_access()["local"] is not None
    assert runner.lines == [f"systemctl stop {REMOTE_UNITS}", "systemctl stop stationd-vendor-access-remote-off.timer"]


async def test_enabling_again_restarts_the_time(device: DeviceSystem, ended):
    first = await device.enable_vendor_access("remote", 0.1)
    second = await device.enable_vendor_access("remote", 600)
    await asyncio.sleep(0.25)
    assert ended == [] and device.vendor_access()["remote"] == second and second > first


async def test_after_a_restart_it_is_off(tmp_path: Path, runner):
    first = DeviceSystem(DeviceOptions(root=tmp_path), runner=runner)
    await first.enable_vendor_access("remote", 3600)
    first.close()  # the daemon stops; the systemd timer would still end access on time
    runner.calls.clear()
    second = DeviceSystem(DeviceOptions(root=tmp_path), runner=runner)
    await second.startup()
    assert runner.lines == [
        f"systemctl stop {LOCAL_UNITS}", "systemctl stop stationd-vendor-access-local-off.timer",
        f"systemctl stop {REMOTE_UNITS}", "systemctl stop stationd-vendor-access-remote-off.timer",
    ]
    assert second.vendor_access() == {"local": None, "remote": None}


async def test_close_forgets_the_timers(device: DeviceSystem, runner, ended):
    await device.enable_vendor_access("remote", 0.05)
    device.close()
    runner.calls.clear()
    await asyncio.sleep(0.15)
    assert ended == [] and runner.calls == []


@pytest.mark.parametrize(("kind", "duration", "message"), [
    ("ssh", 60, "kind: must be one of local, remote"),
    ("remote", 0, "duration: more than 0"),
    ("remote", -5, "duration: more than 0"),
    ("remote", 86401, "at most 86400 s"),
    ("remote", float("inf"), "duration"),
    ("remote", True, "duration"),
])
async def test_refused_requests_change_nothing(device: DeviceSystem, runner, kind, duration, message):
    with pytest.raises(VendorAccessError, match=message):
        await device.enable_vendor_access(kind, duration)
    assert runner.calls == []


# ---- the dry run ------------------------------------------------------------------------------


async def test_dry_run_expiry():
    ended: list[str] = []
    dry = DryRunSystem(on_vendor_access_off=ended.append)
    expiry = await dry.enable_vendor_access("local", 0.05)
    assert dry.vendor_access()["local"] == expiry
    await asyncio.sleep(0.2)
    assert ended == ["local"] and dry.vendor_access()["local"] is None
    assert dry.actions == [("vendor_access_on", "local for 0.05 s"), ("vendor_access_off", "local (expired)")]


async def test_dry_run_startup_switches_off_only_what_is_on():
    dry = DryRunSystem()
    await dry.startup()
    assert dry.actions == []
    await dry.enable_vendor_access("remote", 60)
    await dry.startup()
    assert dry.actions[-1] == ("vendor_access_off", "remote (daemon start)")
    assert dry.vendor_access()["remote"] is None
    await dry.disable_vendor_access("local")
    assert dry.actions[-1] == ("vendor_access_off", "local (switched off)")


# ---- the image's static switch-off units --------------------------------------------------------


def test_static_switch_off_unit(tmp_path: Path):
    text = render_off_service("remote", ("ssh.service", "openvpn-client@vendor.service"))
    assert "[Service]\nType=oneshot\nExecStart=/usr/bin/systemctl stop ssh.service openvpn-client@vendor.service\n" \
        in text
    analyze = shutil.which("systemd-analyze")
    systemctl = shutil.which("systemctl")
    assert analyze and systemctl, "systemd-analyze comes from Debian's systemd package (scripts/setup.sh --test)"
    unit = tmp_path / "stationd-vendor-access-remote-off.service"
    unit.write_text(render_off_service("remote", ("ssh.service",), systemctl=systemctl))
    result = subprocess.run([analyze, "verify", "--no-pager", str(unit)], capture_output=True, text=True,
                            timeout=60, env={"SYSTEMD_LOG_LEVEL": "info", "LC_ALL": "C", "PATH": "/usr/bin:/bin"})
    ours = [line for line in (result.stdout + result.stderr).splitlines() if unit.name in line]
    assert result.returncode == 0 and not ours, result.stdout + result.stderr
