"""The SystemEdge protocol, and the factory that picks an implementation.

Conventions of every action: wrong input raises a ``ValueError`` subclass
(NetworkConfigError, MobileSettingsError, TimeConfigError, VendorAccessError) before anything
changes; a failure of the machine (a command's exit status, a file that cannot be written)
is logged and answered False (None where a value is expected). docs/system-edge.md says what
each action does on the device and what the dry run records.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from .device import DeviceSystem
from .dry_run import SIMULATED_SIGNAL_DBM, DryRunSystem, simulated_modem
from .modem import MobileSettings, ModemInfo, SignalReading
from .network import WanConfig
from .options import DeviceOptions
from .runner import CommandRunner
from .timesync import TimeSettings, TimeStatus
from .vendor_access import DEFAULT_DURATION_S


class SystemEdge(Protocol):
    on_vendor_access_off: Callable[[str], None] | None

    async def startup(self) -> None:
        """Once per daemon start: vendor access off; stored mobile settings applied again."""

    def close(self) -> None:
        """The daemon stops: in-process timers end."""

    # ---- firmware and power (the firmware engineer codes against these) ------------------------
    async def install_firmware(self, package: Path, version: str) -> bool:
        """Hand an OS image to the updater; True when installed (active after the reboot)."""

    async def reboot(self, reason: str) -> None:
        """Reboot the system (and with it the EVSE controllers)."""

    async def restart_daemon(self, reason: str) -> None:
        """Restart the station daemon."""

    # ---- network --------------------------------------------------------------------------------
    def wan_config(self) -> WanConfig:
        """The WAN interface's settings (WebUI Network > Interfaces)."""

    async def set_wan_config(self, config: WanConfig) -> bool:
        """Apply WAN settings (raises NetworkConfigError for the USB interface)."""

    async def configure_usb_gadget(self) -> bool:
        """The installer's USB network: 192.168.32.1/24 with a DHCP server."""

    def network_config(self) -> list[dict[str, Any]]:
        """The NetworkConfig key's JSON value (SPEC §4.3)."""

    async def network_status(self) -> list[dict[str, Any]]:
        """The NetworkStatus key's JSON value (SPEC §4.3)."""

    # ---- mobile modem ---------------------------------------------------------------------------
    async def modem_info(self) -> ModemInfo | None:
        """The modem with its SIM's iccid/imsi (BootNotification); None without a modem."""

    async def modem_signal(self) -> SignalReading:
        """The RSSI (key RSSI; WeakSignal below -95 dBm)."""

    def mobile_settings(self) -> MobileSettings:
        """The stored SIM settings (show ``.public()``: secrets masked)."""

    async def set_mobile_settings(self, settings: MobileSettings) -> bool:
        """Store and apply APN/PIN/authentication; a PIN/password left None keeps the stored one."""

    # ---- time -----------------------------------------------------------------------------------
    async def set_time(self, moment: datetime) -> bool:
        """Set the system clock; True when it was set."""

    async def set_timezone(self, name: str) -> bool:
        """Set the time zone (an IANA name; TimeConfigError otherwise)."""

    async def set_ntp(self, enabled: bool, servers: Sequence[str] = ()) -> bool:
        """NTP on or off, with these servers (none: the distribution's defaults)."""

    async def apply_time_settings(self, settings: TimeSettings, browser_time: datetime | None = None) -> bool:
        """Time zone and source (NTP / HeartBeat / Browser once) together."""

    def ntp_servers(self) -> tuple[str, ...]:
        """The NTP servers last set."""

    async def time_status(self) -> TimeStatus:
        """Time zone, NTP on/off, synchronized."""

    # ---- vendor access --------------------------------------------------------------------------
    async def enable_vendor_access(self, kind: str, duration_s: float = DEFAULT_DURATION_S) -> datetime | None:
        """Switch ``local`` or ``remote`` vendor access on; the expiry (UTC), None on failure."""

    async def disable_vendor_access(self, kind: str) -> bool:
        """Switch it off now."""

    def vendor_access(self) -> dict[str, datetime | None]:
        """Each kind's expiry while on, else None."""

    # ---- hardware watchdog ----------------------------------------------------------------------
    async def set_hardware_watchdog(self, enabled: bool) -> bool:
        """Key HWatchdog: systemd's hardware watchdog on/off from the next boot."""

    def hardware_watchdog(self) -> bool | None:
        """What the watchdog drop-in says; None without one (the image's default)."""


def system_edge(backend: str, *, on_reboot: Callable[[str], None] | None = None,
                on_restart: Callable[[str], None] | None = None,
                on_vendor_access_off: Callable[[str], None] | None = None,
                options: DeviceOptions | None = None, runner: CommandRunner | None = None,
                simulate_modem: bool = False) -> SystemEdge:
    """``device``: :class:`DeviceSystem` (``on_reboot``/``on_restart`` are not used: systemd
    reboots and restarts); anything else: :class:`DryRunSystem`, which calls them, with
    :func:`simulated_modem` when ``simulate_modem``."""
    if backend == "device":
        return DeviceSystem(options, runner=runner, on_vendor_access_off=on_vendor_access_off)
    if simulate_modem:
        return DryRunSystem(on_reboot=on_reboot, on_restart=on_restart, on_vendor_access_off=on_vendor_access_off,
                            modem=simulated_modem(), signal_dbm=SIMULATED_SIGNAL_DBM)
    return DryRunSystem(on_reboot=on_reboot, on_restart=on_restart, on_vendor_access_off=on_vendor_access_off)
