"""The hardware watchdog (key HWatchdog 0/1) as a systemd drop-in.

systemd (PID 1) drives the board's hardware watchdog: with ``RuntimeWatchdogSec=`` set it
opens /dev/watchdog0, programs the timeout and pings it at half that interval; a frozen
system is reset by the hardware. The drop-in ``/etc/systemd/system.conf.d/stationd-watchdog.conf``
sets it; PID 1 reads it at boot, so a change applies at the next reboot (HWatchdog's effect
is "reboot"). ``off`` is written explicitly so a vendor default cannot switch it back on.

The daemon's own watchdog is separate and always on: the unit's ``WatchdogSec=`` (systemd
kills and restarts a daemon whose event loop stops pinging).
"""

from __future__ import annotations

DEFAULT_TIMEOUT_S = 30
DROPIN_HEADER = "# Written by stationd (key HWatchdog). Do not edit: stationd replaces this file.\n"


def render_watchdog_dropin(enabled: bool, timeout_s: int = DEFAULT_TIMEOUT_S) -> str:
    value = f"{int(timeout_s)}s" if enabled else "off"
    return DROPIN_HEADER + f"[Manager]\nRuntimeWatchdogSec={value}\n"


def parse_watchdog_dropin(text: str | None) -> bool | None:
    """True/False as the drop-in says; None without a drop-in (the image's default applies)."""
    for line in (text or "").splitlines():
        if line.startswith("RuntimeWatchdogSec="):
            return line.partition("=")[2].strip() not in ("off", "0", "")
    return None
