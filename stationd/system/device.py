"""The real device: configuration files written atomically, commands run through one
injectable runner (docs/system-edge.md lists each action's files and command lines).

Read-only questions (``ip -j addr``, ``mmcli -J``, ``timedatectl show``) are logged at debug
level; every change (a file or a command) at info level, secrets masked. A failing command
is logged with its own error text and the action answers False; wrong input raises a
``...Error`` (a ValueError) before anything is changed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from ..firmware.package import PackageError, extract_payloads, read_manifest, verify_package
from . import modem, network, timesync, watchdog, wifi
from .files import PRIVATE, atomic_write, read_text
from .modem import MobileSettings, ModemInfo, ModemOutputError, SignalReading
from .network import NetworkConfigError, WanConfig
from .network_status import StatusOutputError, parse_ip_addr
from .options import DeviceOptions
from .runner import CommandResult, CommandRunner, Secret, SubprocessRunner, mask, secrets_of, shown
from .shared import SharedBehaviour, VendorAccessListener
from .timesync import TimeStatus
from .vendor_access import KINDS, off_timer_command, off_timer_unit
from .wifi import PskSecrets, WifiSettings

log = logging.getLogger("stationd.system")

TIMEDATECTL_TIMEOUT_S = 10
QUERY_TIMEOUT_S = 15
MOBILE_FILE = "mobile.json"
MAX_REASON = 200


class DeviceSystem(SharedBehaviour):
    def __init__(self, options: DeviceOptions | None = None, *, runner: CommandRunner | None = None,
                 on_vendor_access_off: VendorAccessListener | None = None):
        super().__init__(on_vendor_access_off)
        self.options = options or DeviceOptions()
        self.runner: CommandRunner = runner or SubprocessRunner()
        self._signal_setup_sent = False
        self._psks = PskSecrets()  # the Wi-Fi keys seen, redacted from every log line

    def close(self) -> None:
        self._psks.close()
        super().close()

    # ---- plumbing ----------------------------------------------------------------------------

    async def _run(self, *argv: str, timeout: float = 30.0, expect_failure: bool = False) -> CommandResult:
        """One change: a command line, logged (secrets masked)."""
        line = shown(argv)
        log.info("running: %s", line)
        result = await self.runner(argv, timeout=timeout)
        if not result.ok:
            text = mask(result.error_text(), secrets_of(argv))
            (log.debug if expect_failure else log.error)("%s failed (exit %d): %s", line, result.returncode, text)
        return result

    async def _query(self, *argv: str, timeout: float = QUERY_TIMEOUT_S) -> str | None:
        """A question: the command's output, None when it failed (logged at debug level)."""
        result = await self.runner(argv, timeout=timeout)
        if not result.ok:
            log.debug("%s failed (exit %d): %s", shown(argv), result.returncode, result.error_text())
            return None
        return result.stdout

    def _write(self, path: Path, text: str, what: str, mode: int = 0o644) -> bool | None:
        """Write atomically: True written, False already so, None failed (logged)."""
        try:
            written = atomic_write(path, text, mode)
        except OSError as exc:
            log.error("cannot write %s (%s): %s", path, what, exc)
            return None
        if written:
            log.info("wrote %s (%s)", path, what)
        return written

    # ---- daemon start ---------------------------------------------------------------------------

    async def startup(self) -> None:
        """Once per daemon start: vendor access off (whatever an earlier run left on), the
        stored mobile settings applied again (the SIM needs its PIN after every power-up)."""
        for kind in KINDS:
            self._vendor.stop(kind)
            await self._switch_off(kind, "daemon start")
        if read_text(self._mobile_path()) is not None:
            await self._apply_mobile(self.mobile_settings())

    # ---- firmware and power -------------------------------------------------------------------

    async def install_firmware(self, package: Path, version: str) -> bool:
        """Take the OS images (the system payloads, docs/firmware-package.md) out of the update
        package into a temporary directory next to it and hand each, in manifest order, to the
        OS updater (default ``rauc install FILE``); the extracted files are removed afterwards.
        True when the updater installed every one (active at the next reboot)."""
        package = Path(package)
        try:
            work = Path(tempfile.mkdtemp(prefix=f".{package.name}.", dir=package.parent))
        except OSError as exc:
            log.error("firmware %s: cannot make a directory next to %s for the image: %s", version, package, exc)
            return False
        try:
            try:
                images = await asyncio.to_thread(_extract_images, package, work)
            except PackageError as exc:
                log.error("firmware %s: cannot take the image out of %s: %s", version, package, exc)
                return False
            if not images:
                log.info("firmware %s carries no system image: nothing for the OS updater", version)
            for image in images:
                argv = [part.replace("{file}", str(image)).replace("{version}", version)
                        for part in self.options.firmware_command]
                log.info("installing firmware %s: %s from %s", version, image.name, package)
                if not (await self._run(*argv, timeout=self.options.firmware_timeout_s)).ok:
                    return False
            return True
        finally:
            shutil.rmtree(work, ignore_errors=True)

    async def reboot(self, reason: str) -> None:
        """Reboot the system; the EVSE controllers reboot with it."""
        log.warning("rebooting the system: %s", reason)
        await self._run("systemctl", "reboot", f"--message=stationd: {_one_line(reason)}")

    async def restart_daemon(self, reason: str) -> None:
        """systemd stops the daemon (SIGTERM: a graceful shutdown) and starts it again."""
        log.warning("restarting the daemon: %s", reason)
        await self._run("systemctl", "--no-block", "restart", self.options.daemon_unit)

    # ---- network --------------------------------------------------------------------------------

    def _network_path(self, name: str) -> Path:
        return self.options.path(self.options.network_dir) / name

    def _supplicant_path(self, interface: str) -> Path:
        return self.options.path(wifi.supplicant_file(interface))

    def wan_config(self) -> WanConfig:
        """The WAN settings as the station's .network file (and, for a Wi-Fi WAN, its
        wpa_supplicant file) says; DHCP on the configured interface when there is none."""
        text = read_text(self._network_path(network.WAN_FILE))
        if text is not None:
            try:
                return network.parse_wan(text, self._wifi)
            except NetworkConfigError as exc:
                log.warning("%s is not readable (%s); showing DHCP", self._network_path(network.WAN_FILE), exc)
        return WanConfig(interface=self.options.wan_interface)

    def _wifi(self, interface: str) -> WifiSettings | None:
        path = self._supplicant_path(interface)
        text = read_text(path)
        if text is None:
            return None
        try:
            settings = wifi.parse_supplicant(text)
        except ValueError as exc:
            log.warning("%s is not readable: %s", path, exc)
            return None
        self._psks.remember(settings)
        return settings

    async def set_wan_config(self, config: WanConfig) -> bool:
        """Write the WAN .network file, then ``networkctl reload`` (networkd reconfigures the
        interface). A Wi-Fi WAN first gets its wpa_supplicant file (0600: it holds the PSK) and
        afterwards ``systemctl try-restart`` (the file changed) and ``enable --now`` of its
        wpa_supplicant@ unit; leaving a Wi-Fi WAN stops that unit and removes its file.
        NetworkConfigError before anything is written when the settings cannot work."""
        _check_not_usb(config, self.options.usb_interface)
        previous = self.wan_config()
        supplicant: bool | None = False
        if config.wifi is not None:
            self._psks.remember(config.wifi)
            supplicant = self._write(self._supplicant_path(config.interface), wifi.render_supplicant(config.wifi),
                                     f"Wi-Fi {config.interface}: {config.wifi.describe()}", PRIVATE)
            if supplicant is None:
                return False
        path = self._network_path(network.WAN_FILE)
        written = self._write(path, network.render_wan(config), f"WAN: {config.describe()}")
        if written is None or (written and not (await self._run("networkctl", "reload")).ok):
            return False
        ok = True
        if config.wifi is not None and (supplicant or written):
            unit = wifi.supplicant_unit(config.interface)
            if supplicant:  # a running wpa_supplicant reads its file only when it starts
                ok = (await self._run("systemctl", "try-restart", unit)).ok
            ok = (await self._run("systemctl", "enable", "--now", unit)).ok and ok
        if previous.wifi is not None and previous.interface != config.interface:
            ok = await self._leave_wifi(previous.interface) and ok
        return ok

    async def _leave_wifi(self, interface: str) -> bool:
        """The WAN is no longer ``interface``: its wpa_supplicant stops and its key leaves the disk."""
        ok = (await self._run("systemctl", "disable", "--now", wifi.supplicant_unit(interface))).ok
        path = self._supplicant_path(interface)
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            log.error("cannot remove %s (the Wi-Fi key of %s): %s", path, interface, exc)
            return False
        log.info("removed %s (the WAN is no longer %s)", path, interface)
        return ok

    async def configure_usb_gadget(self) -> bool:
        """The installer's USB network file (192.168.32.1/24 with a DHCP server); reloads
        networkd when the file changed."""
        text = network.render_usb_gadget(self.options.usb_interface)
        written = self._write(self._network_path(network.USB_FILE), text, "the installer's USB network")
        if written is None:
            return False
        return not written or (await self._run("networkctl", "reload")).ok

    def network_config(self) -> list[dict[str, Any]]:
        """The NetworkConfig key's value (SPEC §4.3)."""
        return network.network_config_json(self.wan_config(), self.options.usb_interface)

    async def network_status(self) -> list[dict[str, Any]]:
        """The NetworkStatus key's value (SPEC §4.3), from ``ip -j addr show``; [] when unknown."""
        output = await self._query("ip", "-j", "addr", "show")
        if output is None:
            return []
        try:
            return parse_ip_addr(output)
        except StatusOutputError as exc:
            log.warning("network status: %s", exc)
            return []

    # ---- mobile modem ---------------------------------------------------------------------------

    async def _modem(self) -> ModemInfo | None:
        try:
            listing = await self._query("mmcli", "-J", "-L")
            paths = modem.parse_modem_list(listing) if listing is not None else []
            if not paths:
                return None
            output = await self._query("mmcli", "-J", "-m", paths[0])
            if output is None:
                return None
            info = modem.parse_modem(output)
        except ModemOutputError as exc:
            log.warning("modem: %s", exc)
            return None
        return info if info.path else replace(info, path=paths[0])

    async def modem_info(self) -> ModemInfo | None:
        """The first modem ModemManager knows, with its SIM's iccid and imsi; None without one."""
        info = await self._modem()
        if info is None or not info.sim_path:
            return info
        output = await self._query("mmcli", "-J", "-i", info.sim_path)
        try:
            iccid, imsi = modem.parse_sim(output) if output is not None else (None, None)
        except ModemOutputError as exc:
            log.warning("modem SIM: %s", exc)
            return info
        return replace(info, iccid=iccid, imsi=imsi)

    async def modem_signal(self) -> SignalReading:
        """The RSSI: from the extended signal values when the modem gives them, else from the
        signal quality percentage. Switches the modem's signal refresh on once when it is off."""
        info = await self._modem()
        if info is None:
            return SignalReading()
        output = await self._query("mmcli", "-J", "-m", info.path, "--signal-get")
        reading, polling = SignalReading(), False
        if output is not None:
            try:
                reading, polling = modem.parse_signal(output)
            except ModemOutputError as exc:
                log.warning("modem signal: %s", exc)
        if not polling and not self._signal_setup_sent:
            self._signal_setup_sent = True
            await self._run("mmcli", "-m", info.path, f"--signal-setup={modem.SIGNAL_REFRESH_S}", expect_failure=True)
        return reading if reading.rssi_dbm is not None else modem.rssi_from_quality(info.signal_quality)

    def _mobile_path(self) -> Path:
        return self.options.path(self.options.state_dir) / MOBILE_FILE

    def mobile_settings(self) -> MobileSettings:
        """The stored SIM settings (secrets included: show :meth:`MobileSettings.public`)."""
        text = read_text(self._mobile_path())
        if text is None:
            return MobileSettings()
        try:
            return MobileSettings.from_dict(json.loads(text))
        except ValueError as exc:  # JSONDecodeError, MobileSettingsError
            log.warning("%s is not readable (%s); using empty mobile settings", self._mobile_path(), type(exc).__name__)
            return MobileSettings()

    async def set_mobile_settings(self, settings: MobileSettings) -> bool:
        """Store the settings (a 0600 file in the state directory; a PIN/password not given is
        kept), then unlock the SIM if it asks for its PIN and connect. False when the modem is
        missing or refused; the stored settings are applied again at the next start."""
        merged = settings.with_secrets_from(self.mobile_settings())
        text = json.dumps(merged.stored(), indent=2) + "\n"
        if self._write(self._mobile_path(), text, f"mobile settings: {merged.describe()}", PRIVATE) is None:
            return False
        return await self._apply_mobile(merged)

    async def _apply_mobile(self, settings: MobileSettings) -> bool:
        info = await self._modem()
        if info is None:
            log.warning("no modem found; the mobile settings apply when there is one")
            return False
        if info.unlock_required == "sim-pin":
            left = info.unlock_retries.get("sim-pin")
            if not settings.pin or not info.sim_path:
                log.error("the SIM asks for its PIN and none is set (Network > Mobile)")
                return False
            if left is not None and left < 2:
                log.error("the SIM has %d PIN attempt left: not trying (a wrong PIN would lock it); "
                          "unlock it in a phone", left)
                return False
            result = await self._run("mmcli", "-i", info.sim_path, Secret(f"--pin={settings.pin}", [settings.pin]))
            if not result.ok:
                return False
        elif info.unlock_required in ("sim-puk", "sim-puk2"):
            log.error("the SIM is locked with its PUK; unlock it in a phone")
            return False
        if not (await self._run("mmcli", "-m", info.path,
                                f"--set-allowed-modes={settings.allowed_modes_argument()}")).ok:
            log.error("the modem refused service mode %s", settings.service_mode)
            return False
        hidden = [settings.password] if settings.password else []
        return (await self._run("mmcli", "-m", info.path,
                                Secret(f"--simple-connect={settings.connect_argument()}", hidden),
                                timeout=120)).ok

    # ---- time -----------------------------------------------------------------------------------

    async def set_time(self, moment: datetime) -> bool:
        """The clock through systemd-timedated (``timedatectl``), which the service may use
        although its unit forbids setting the clock itself (ProtectClock)."""
        local = moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")
        if not (await self._run("timedatectl", "set-time", local, timeout=TIMEDATECTL_TIMEOUT_S)).ok:
            return False
        log.info("system clock set to %s", local)
        return True

    async def set_timezone(self, name: str) -> bool:
        zone = timesync.check_timezone(name)
        return (await self._run("timedatectl", "set-timezone", zone, timeout=TIMEDATECTL_TIMEOUT_S)).ok

    async def set_ntp(self, enabled: bool, servers: Sequence[str] = ()) -> bool:
        """The servers into the timesyncd drop-in, NTP on or off (``timedatectl set-ntp``);
        timesyncd restarts when it runs and its servers changed."""
        servers = timesync.check_ntp_servers(servers)
        path = self.options.path(self.options.timesyncd_dropin)
        written = self._write(path, timesync.render_timesyncd_dropin(servers),
                              f"NTP servers: {' '.join(servers) or 'the distribution default'}")
        if written is None:
            return False
        if not (await self._run("timedatectl", "set-ntp", "true" if enabled else "false",
                                timeout=TIMEDATECTL_TIMEOUT_S)).ok:
            return False
        if enabled and written:
            return (await self._run("systemctl", "try-restart", "systemd-timesyncd.service")).ok
        return True

    def ntp_servers(self) -> tuple[str, ...]:
        return timesync.parse_timesyncd_dropin(read_text(self.options.path(self.options.timesyncd_dropin)))

    async def time_status(self) -> TimeStatus:
        output = await self._query("timedatectl", "show", timeout=TIMEDATECTL_TIMEOUT_S)
        return timesync.parse_timedatectl_show(output) if output is not None else TimeStatus()

    # ---- vendor access ----------------------------------------------------------------------------

    async def _switch_on(self, kind: str, duration_s: float) -> bool:
        units = self.options.vendor_units[kind]
        await self._run("systemctl", "stop", f"{off_timer_unit(kind)}.timer", expect_failure=True)  # an earlier one
        if not (await self._run(*off_timer_command(kind, duration_s))).ok:
            await self._switch_off(kind, "no switch-off timer")  # an earlier grant lost its timer above
            return False
        if not (await self._run("systemctl", "start", *units)).ok:
            await self._switch_off(kind, "could not be switched on")
            return False
        return True

    async def _switch_off(self, kind: str, reason: str) -> bool:
        ok = (await self._run("systemctl", "stop", *self.options.vendor_units[kind])).ok
        await self._run("systemctl", "stop", f"{off_timer_unit(kind)}.timer", expect_failure=True)
        log.warning("vendor access %s off (%s)", kind, reason)
        return ok

    # ---- hardware watchdog ----------------------------------------------------------------------

    async def set_hardware_watchdog(self, enabled: bool) -> bool:
        """The RuntimeWatchdogSec drop-in; applies at the next reboot."""
        text = watchdog.render_watchdog_dropin(enabled, self.options.hardware_watchdog_s)
        what = f"hardware watchdog {'on' if enabled else 'off'} from the next boot"
        return self._write(self.options.path(self.options.watchdog_dropin), text, what) is not None

    def hardware_watchdog(self) -> bool | None:
        return watchdog.parse_watchdog_dropin(read_text(self.options.path(self.options.watchdog_dropin)))


def _extract_images(package: Path, directory: Path) -> list[Path]:
    """The package's system payloads, checked again, as files in ``directory`` (PackageError)."""
    manifest = read_manifest(package)  # the updater checked the model before it asked to install
    verified = verify_package(package, expected_model=manifest.model)
    return extract_payloads(verified, directory, kind="system")


def _check_not_usb(config: WanConfig, usb_interface: str) -> None:
    if config.interface == usb_interface:
        raise NetworkConfigError([f"interface: {usb_interface} is the installer's USB network, not a WAN"])


def _one_line(text: str) -> str:
    return "".join(c if c.isprintable() else " " for c in str(text))[:MAX_REASON]
