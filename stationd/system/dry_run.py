"""The dry run (demo, development machines, tests): changes nothing, records every action.

``actions`` is a list of ``(action, detail)`` pairs in the order they happened, e.g.
``("set_time", "2025-01-01T12:00:00+00:00")``, ``("set_wan_config", "eth0 ipv4=dhcp ipv6=dhcp")``,
``("set_mobile_settings", "apn=internet auth=chap username=u password=**** pin=****")``,
``("set_wan_config", 'wlan0 ipv4=dhcp ipv6=dhcp wifi ssid="Depot" security=WPA2-Personal psk=****')``.
Secrets are recorded masked (a Wi-Fi PSK is also registered with the log redaction). Settings are remembered, so reading them back shows what was
set; the network status and the modem are simulated (no modem unless one is given).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .modem import MobileSettings, ModemInfo, SignalReading
from .network import USB_ADDRESS, NetworkConfigError, WanConfig, network_config_json
from .shared import SharedBehaviour, VendorAccessListener
from .timesync import TimeStatus, check_ntp_servers, check_timezone
from .watchdog import DEFAULT_TIMEOUT_S
from .wifi import PskSecrets, is_wifi_interface

log = logging.getLogger("stationd.system")

Listener = Callable[[str], None]
SIMULATED_MACS = ("02:00:00:00:00:01", "02:00:00:00:00:02")  # locally administered


def simulated_modem() -> ModemInfo:
    """The dry run's LTE modem (``hardware.modem: sim``): registered, SIM unlocked; test
    ICCID/IMSI numbers (the 001-01 test network), so nothing resembles a real subscriber."""
    return ModemInfo(path="/org/freedesktop/ModemManager1/Modem/0", manufacturer="Simulated", model="LTE Cat 4",
                     revision="SIM-1.0", imei="000000000000000", state="registered", operator="Test Network",
                     access_technologies=("lte",), signal_quality=64, sim_path="/org/freedesktop/ModemManager1/SIM/0",
                     iccid="8900101000000000001", imsi="001010000000001")


SIMULATED_SIGNAL_DBM = -71


class DryRunSystem(SharedBehaviour):
    def __init__(self, *, on_reboot: Listener | None = None, on_restart: Listener | None = None,
                 on_vendor_access_off: VendorAccessListener | None = None, modem: ModemInfo | None = None,
                 signal_dbm: int | None = None, wan: WanConfig | None = None, usb_interface: str = "usb0"):
        super().__init__(on_vendor_access_off)
        self.actions: list[tuple[str, str]] = []
        self.on_reboot = on_reboot  # the daemon passes request_restart: the demo restarts in place
        self.on_restart = on_restart
        self.installed_version: str | None = None  # the version install_firmware last "installed"
        self.modem = modem
        self.signal_dbm = signal_dbm
        self.usb_interface = usb_interface
        self._wan = wan or WanConfig()
        self._psks = PskSecrets()  # the Wi-Fi keys set, redacted from every log line
        self._psks.remember(self._wan.wifi)
        self._mobile = MobileSettings()
        self._timezone, self._ntp, self._ntp_servers = "UTC", True, ()
        self._hardware_watchdog: bool | None = None

    def close(self) -> None:
        self._psks.close()
        super().close()

    def _record(self, action: str, detail: str) -> None:
        self.actions.append((action, detail))
        log.info("dry run: %s %s", action, detail)

    async def startup(self) -> None:
        """Vendor access off (only what this object switched on: the dry run has nothing else)."""
        for kind in self._vendor_kinds_on():
            self._vendor.stop(kind)
            await self._switch_off(kind, "daemon start")

    # ---- firmware and power -------------------------------------------------------------------

    async def install_firmware(self, package: Path, version: str) -> bool:
        self._record("install_firmware", f"{version} from {package}")
        self.installed_version = version
        return True

    async def reboot(self, reason: str) -> None:
        self._record("reboot", reason)
        if self.on_reboot is not None:
            self.on_reboot(reason)

    async def restart_daemon(self, reason: str) -> None:
        self._record("restart_daemon", reason)
        if self.on_restart is not None:
            self.on_restart(reason)

    # ---- network --------------------------------------------------------------------------------

    def wan_config(self) -> WanConfig:
        return self._wan

    async def set_wan_config(self, config: WanConfig) -> bool:
        if config.interface == self.usb_interface:
            raise NetworkConfigError([f"interface: {self.usb_interface} is the installer's USB network, not a WAN"])
        self._psks.remember(config.wifi)
        self._record("set_wan_config", config.describe())  # psk=****
        self._wan = config
        return True

    async def configure_usb_gadget(self) -> bool:
        self._record("configure_usb_gadget", f"{self.usb_interface} {USB_ADDRESS} with a DHCP server")
        return True

    def network_config(self) -> list[dict[str, Any]]:
        return network_config_json(self._wan, self.usb_interface)

    async def network_status(self) -> list[dict[str, Any]]:
        """Simulated: the WAN up (connected with its manual address), the USB network connected."""
        wan: dict[str, Any] = {"link": self._wan.interface, "state": "up"}
        if self._wan.ipv4.manual:
            interface = self._wan.ipv4.interface()
            wan.update(state="connected", ipv4=str(interface.ip), mask=str(interface.netmask))
        wan["mac"] = SIMULATED_MACS[0]
        if is_wifi_interface(self._wan.interface):  # the keys parse_ip_addr gives a Wi-Fi link
            wan.update({"enabled": True, "rx-quality": 0, "rx-level": 0, "rx-noise": 0})
        else:
            wan.update(bridge=False, enabled=True)
        usb = {"link": self.usb_interface, "state": "connected", "ipv4": str(USB_ADDRESS.ip),
               "mask": str(USB_ADDRESS.netmask), "mac": SIMULATED_MACS[1], "bridge": False, "enabled": True}
        return [wan, usb]

    # ---- mobile modem ---------------------------------------------------------------------------

    async def modem_info(self) -> ModemInfo | None:
        return self.modem

    async def modem_signal(self) -> SignalReading:
        if self.modem is None or self.signal_dbm is None:
            return SignalReading()
        return SignalReading(self.signal_dbm, "simulated")

    def mobile_settings(self) -> MobileSettings:
        return self._mobile

    async def set_mobile_settings(self, settings: MobileSettings) -> bool:
        merged = settings.with_secrets_from(self._mobile)
        self._record("set_mobile_settings", merged.describe())
        self._mobile = merged
        return True

    # ---- time -----------------------------------------------------------------------------------

    async def set_time(self, moment: datetime) -> bool:
        text = moment.astimezone(timezone.utc).isoformat(timespec="seconds")
        self.actions.append(("set_time", text))
        log.info("dry run: would set the system clock to %s", text)
        return True

    async def set_timezone(self, name: str) -> bool:
        self._timezone = check_timezone(name)
        self._record("set_timezone", self._timezone)
        return True

    async def set_ntp(self, enabled: bool, servers: Sequence[str] = ()) -> bool:
        servers = check_ntp_servers(servers)
        self._record("set_ntp", ("on" if enabled else "off") + (f" servers {' '.join(servers)}" if servers else ""))
        self._ntp, self._ntp_servers = enabled, servers
        return True

    def ntp_servers(self) -> tuple[str, ...]:
        return self._ntp_servers

    async def time_status(self) -> TimeStatus:
        return TimeStatus(self._timezone, self._ntp, False)

    # ---- vendor access ----------------------------------------------------------------------------

    async def _switch_on(self, kind: str, duration_s: float) -> bool:
        self._record("vendor_access_on", f"{kind} for {duration_s:g} s")
        return True

    async def _switch_off(self, kind: str, reason: str) -> bool:
        self._record("vendor_access_off", f"{kind} ({reason})")
        return True

    # ---- hardware watchdog ----------------------------------------------------------------------

    async def set_hardware_watchdog(self, enabled: bool) -> bool:
        self._record("set_hardware_watchdog", f"RuntimeWatchdogSec={f'{DEFAULT_TIMEOUT_S}s' if enabled else 'off'}"
                                              " from the next boot")
        self._hardware_watchdog = enabled
        return True

    def hardware_watchdog(self) -> bool | None:
        return self._hardware_watchdog

