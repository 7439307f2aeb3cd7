"""System edge: firmware, reboot, daemon restart, the hardware watchdog drop-in, and both
implementations following one Protocol."""

from __future__ import annotations

import inspect
import os
import stat
from dataclasses import dataclass, field
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
from stationd.firmware.package import build_package

WATCHDOG_DROPIN = "etc/systemd/system.conf.d/stationd-watchdog.conf"
IMAGE = Path("/var/lib/stationd/firmware/rootfs-1.4.0.raucb")


@pytest.fixture
def runner() -> RecordingRunner:
    return RecordingRunner()


@pytest.fixture
def device(tmp_path: Path, runner: RecordingRunner) -> DeviceSystem:
    return DeviceSystem(DeviceOptions(root=tmp_path), runner=runner)


# ---- firmware ----------------------------------------------------------------------------------

MODEL = "stationd AC22"


@dataclass
class ImageReadingRunner(RecordingRunner):
    """Also keeps, per command, the content of the files it names (read while it runs)."""

    contents: list[dict[str, bytes]] = field(default_factory=list)

    async def __call__(self, argv, *, timeout: float = 30.0):
        self.contents.append({a: Path(a).read_bytes() for a in map(str, argv) if Path(a).is_file()})
        return await super().__call__(argv, timeout=timeout)


def make_package(tmp_path: Path, *payloads: tuple[str, bytes]) -> Path:
    sources = tmp_path / "sources"
    sources.mkdir(exist_ok=True)
    for name, content in payloads:
        (sources / name).write_bytes(content)
    package = tmp_path / "firmware" / "0123abcd.pkg"
    package.parent.mkdir(exist_ok=True)
    build_package(MODEL, "1.4.0", [sources / name for name, _ in payloads], package)
    return package


@pytest.fixture
def reader() -> ImageReadingRunner:
    return ImageReadingRunner()


async def test_firmware_image_is_extracted_next_to_the_package_for_rauc(tmp_path: Path, reader):
    device = DeviceSystem(DeviceOptions(root=tmp_path), runner=reader)
    image = os.urandom(100_000)
    package = make_package(tmp_path, ("rootfs.img", image), ("controller-AC22.bin", b"controller image"))
    assert await device.install_firmware(package, "1.4.0") is True
    [(program, verb, extracted)] = reader.calls  # the controller image is no OS image
    assert (program, verb) == ("rauc", "install")
    extracted = Path(extracted)
    assert extracted.name == "rootfs.img" and extracted.parent.parent == package.parent
    assert extracted.parent.name.startswith(".0123abcd.pkg.")  # a temporary directory next to the package
    assert reader.contents == [{str(extracted): image}]  # the image itself, not the package
    assert reader.timeouts == [1800]  # an image takes minutes to write
    assert list(package.parent.iterdir()) == [package]  # cleaned up; the package stays for the updater


async def test_every_system_payload_goes_to_rauc_in_manifest_order(tmp_path: Path, reader):
    device = DeviceSystem(DeviceOptions(root=tmp_path), runner=reader)
    package = make_package(tmp_path, ("rootfs.img", b"root file system"), ("appfs.img", b"applications"))
    assert await device.install_firmware(package, "1.4.0") is True
    assert [Path(call[2]).name for call in reader.calls] == ["rootfs.img", "appfs.img"]
    assert [list(c.values()) for c in reader.contents] == [[b"root file system"], [b"applications"]]


async def test_firmware_failure_is_false_and_cleans_up(tmp_path: Path, reader):
    reader.answer("rauc", returncode=1, stderr="Failed to check bundle: signature verification failed")
    device = DeviceSystem(DeviceOptions(root=tmp_path), runner=reader)
    package = make_package(tmp_path, ("rootfs.img", b"root file system"), ("appfs.img", b"applications"))
    assert await device.install_firmware(package, "1.4.0") is False
    assert len(reader.calls) == 1  # the second image is not tried after the first failed
    assert list(package.parent.iterdir()) == [package]


async def test_a_damaged_package_runs_no_command(tmp_path: Path, runner):
    device = DeviceSystem(DeviceOptions(root=tmp_path), runner=runner)
    package = make_package(tmp_path, ("rootfs.img", b"root file system " * 1000))
    data = bytearray(package.read_bytes())
    data[data.find(b"root file system") + 5] ^= 0xFF
    package.write_bytes(bytes(data))
    assert await device.install_firmware(package, "1.4.0") is False
    assert runner.calls == [] and list(package.parent.iterdir()) == [package]


async def test_the_updater_command_is_configurable(tmp_path: Path, runner):
    device = DeviceSystem(DeviceOptions(root=tmp_path, firmware_command=("swupdate", "-v", "-i", "{file}",
                                                                         "-e", "stable,{version}")), runner=runner)
    package = make_package(tmp_path, ("rootfs.swu", b"swupdate image"))
    await device.install_firmware(package, "1.4.0")
    [call] = runner.calls
    assert call[:3] == ("swupdate", "-v", "-i") and call[4:] == ("-e", "stable,1.4.0")
    assert Path(call[3]).name == "rootfs.swu" and Path(call[3]).parent.parent == package.parent
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
