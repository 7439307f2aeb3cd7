"""Where the device edge writes and what it runs: every path and program name in one place.

Paths are absolute paths *on the device*; ``root`` is prepended to each (tests use a
temporary directory; on the device it is ``/``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from .watchdog import DEFAULT_TIMEOUT_S

DEFAULT_VENDOR_UNITS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "local": ("serial-getty@ttyS0.service",),  # a login on the debug serial console
    "remote": ("ssh.service", "openvpn-client@vendor.service"),
})


@dataclass(frozen=True)
class DeviceOptions:
    root: Path = Path("/")
    network_dir: str = "/etc/systemd/network"
    timesyncd_dropin: str = "/etc/systemd/timesyncd.conf.d/stationd.conf"
    watchdog_dropin: str = "/etc/systemd/system.conf.d/stationd-watchdog.conf"
    state_dir: str = "/var/lib/stationd/system"  # the daemon's own files (mobile settings, mode 0600)
    wan_interface: str = "eth0"
    usb_interface: str = "usb0"
    # The OS updater: {file} is the image, {version} the package's version.
    firmware_command: tuple[str, ...] = ("rauc", "install", "{file}")
    firmware_timeout_s: float = 1800.0
    daemon_unit: str = "stationd.service"
    vendor_units: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: DEFAULT_VENDOR_UNITS)
    hardware_watchdog_s: int = DEFAULT_TIMEOUT_S

    def __post_init__(self) -> None:
        if not any("{file}" in part for part in self.firmware_command):
            raise ValueError("firmware_command: must name the image as {file}")
        for path in (self.network_dir, self.timesyncd_dropin, self.watchdog_dropin, self.state_dir):
            if not path.startswith("/"):
                raise ValueError(f"{path!r}: must be an absolute path on the device")

    def path(self, absolute: str) -> Path:
        """A device path under ``root``."""
        return Path(self.root) / absolute.lstrip("/")
