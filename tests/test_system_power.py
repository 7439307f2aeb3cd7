"""System edge: firmware, reboot, daemon restart, the hardware watchdog drop-in, and both
implementations following one Protocol."""

from __future__ import annotations

import inspect
import stat
from pathlib import Path

import pytest

from stationd.system import (
    DeviceOptions,
    DeviceSystem,
    DryRunSystem,
    RecordingRunner,
    SystemEdge,
    system_edge,
)

WATCHDOG_DROPIN = "etc/systemd/system.conf.d/stationd-watchdog.conf"
IMAGE = Path("/var/lib/stationd/firmware/rootfs-1.4.0.raucb")


@pytest.fixture
def runner() -> RecordingRunner:
    return RecordingRunner()


@pytest.fixture
def device(tmp_path: Path, runner: RecordingRunner) -> DeviceSystem:
    return DeviceSystem(DeviceOptions(root=tmp_path), runner=runner)


# ---- firmware ----------------------------------------------------------------------------------


async def test_firmware_goes_to_rauc(device: DeviceSystem, runner):
    assert await device.install_firmware(IMAGE, "1.4.0") is True
    assert runner.lines == [f"rauc install {IMAGE}"]
    assert runner.timeouts == [1800]  # an image takes minutes to write


async def test_firmware_failure_is_false(device: DeviceSystem, runner):
    runner.answer("rauc", returncode=1, stderr="Failed to check bundle: signature verification failed")
    assert await device.install_firmware(IMAGE, "1.4.0") is False


async def test_the_updater_command_is_configurable(tmp_path: Path, runner):
    device = DeviceSystem(DeviceOptions(root=tmp_path, firmware_command=("swupdate", "-v", "-i", "{file}",
                                                                         "-e", "stable,{version}")), runner=runner)
    await device.install_firmware(IMAGE, "1.4.0")
    assert runner.calls == [("swupdate", "-v", "-i", str(IMAGE), "-e", "stable,1.4.0")]
    with pytest.raises(ValueError, match="firmware_command"):
        DeviceOptions(firmware_command=("rauc", "install"))


async def test_dry_run_firmware_remembers_the_version():
    dry = DryRunSystem()
    assert dry.installed_version is None
    assert await dry.install_firmware(IMAGE, "1.4.0") is True
    assert dry.actions == [("install_firmware", f"1.4.0 from {IMAGE}")]
    assert dry.installed_version == "1.4.0"


# ---- reboot and restart ------------------------------------------------------------------------


async def test_device_reboot_and_restart(device: DeviceSystem, runner):
    await device.reboot("firmware 1.4.0 installed\n(UpdateFirmware)")
    await device.restart_daemon("Restart Daemon (WebUI)")
    assert runner.calls == [
        ("systemctl", "reboot", "--message=stationd: firmware 1.4.0 installed (UpdateFirmware)"),
        ("systemctl", "--no-block", "restart", "stationd.service"),
    ]


async def test_dry_run_reboot_restarts_the_daemon_in_place():
    requests: list[tuple[str, str]] = []
    dry = system_edge("dry-run", on_reboot=lambda why: requests.append(("reboot", why)),
                      on_restart=lambda why: requests.append(("restart", why)))
    assert isinstance(dry, DryRunSystem)
    await dry.reboot("firmware 1.4.0 installed")
    await dry.restart_daemon("Restart Daemon (WebUI)")
    assert requests == [("reboot", "firmware 1.4.0 installed"), ("restart", "Restart Daemon (WebUI)")]
    assert dry.actions == [("reboot", "firmware 1.4.0 installed"), ("restart_daemon", "Restart Daemon (WebUI)")]
    await DryRunSystem().reboot("no callback given")  # records only


# ---- hardware watchdog -------------------------------------------------------------------------


async def test_hardware_watchdog_dropin(device: DeviceSystem, runner, tmp_path: Path):
    assert device.hardware_watchdog() is None  # no drop-in: the image's default
    assert await device.set_hardware_watchdog(True)
    path = tmp_path / WATCHDOG_DROPIN
    assert path.read_text() == ("# Written by stationd (key HWatchdog). Do not edit: stationd replaces this file.\n"
                                "[Manager]\nRuntimeWatchdogSec=30s\n")
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert device.hardware_watchdog() is True
    assert await device.set_hardware_watchdog(False)
    assert path.read_text().endswith("[Manager]\nRuntimeWatchdogSec=off\n")
    assert device.hardware_watchdog() is False
    assert runner.calls == []  # PID 1 reads it at the next boot (HWatchdog takes effect after a reboot)


async def test_dry_run_watchdog():
    dry = DryRunSystem()
    await dry.set_hardware_watchdog(True)
    assert dry.actions == [("set_hardware_watchdog", "RuntimeWatchdogSec=30s from the next boot")]
    assert dry.hardware_watchdog() is True


# ---- one protocol, two implementations ---------------------------------------------------------


def _members(cls) -> dict[str, inspect.Signature]:
    return {name: inspect.signature(member) for name, member in inspect.getmembers(cls, callable)
            if not name.startswith("_")}


@pytest.mark.parametrize("implementation", [DeviceSystem, DryRunSystem])
def test_both_implementations_follow_the_protocol(implementation):
    wanted = _members(SystemEdge)
    have = _members(implementation)
    for name, signature in wanted.items():
        assert name in have, f"{implementation.__name__} lacks {name}"
        assert list(have[name].parameters) == list(signature.parameters), name
        assert inspect.iscoroutinefunction(getattr(implementation, name)) == \
            inspect.iscoroutinefunction(getattr(SystemEdge, name)), name


def test_the_firmware_signatures_stay_as_agreed():
    assert str(inspect.signature(SystemEdge.install_firmware)) == "(self, package: 'Path', version: 'str') -> 'bool'"
    assert str(inspect.signature(SystemEdge.reboot)) == "(self, reason: 'str') -> 'None'"
    assert str(inspect.signature(SystemEdge.restart_daemon)) == "(self, reason: 'str') -> 'None'"


def test_factory():
    assert isinstance(system_edge("device"), DeviceSystem)
    assert isinstance(system_edge("dry-run"), DryRunSystem)
