"""Vendor access for maintenance (WebUI User Management > Security; keys
/Security/enableLocalVendorAccess and /Security/enableRemoteVendorAccess), on for a limited
time only.

Two kinds: ``local`` (a login on the local terminal: a getty on the debug serial console)
and ``remote`` (ssh and the vendor's OpenVPN tunnel). Enabling returns the expiry.

How it ends, on the device: *before* the services are started, a transient systemd timer is
created with ``systemd-run --on-active=`` (no command: only the timer) that triggers the
static unit ``stationd-vendor-access-KIND-off.service`` of the image at expiry, which stops
the services (:func:`render_off_service`). The timer lives in PID 1, so access ends on time
even when the daemon has crashed, hangs or is being restarted; and because the switch-off is
a fixed unit, the daemon never needs the right to run an arbitrary command as root. The
services are started (``systemctl start``), never enabled, so a reboot ends access too; and
the daemon switches both kinds off when it starts
(:meth:`~stationd.system.device.DeviceSystem.startup`). In-process, :class:`ExpiryTimers`
(an asyncio task per kind) knows what is on until when, switches it off at expiry as well and
tells the daemon (``on_vendor_access_off``), so the keys read false again.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta, timezone

KINDS = ("local", "remote")
DEFAULT_DURATION_S = 3600.0
MAX_DURATION_S = 24 * 3600.0

log = logging.getLogger("stationd.system")


class VendorAccessError(ValueError):
    """A vendor-access request that is refused; nothing was changed."""


def check_request(kind: str, duration_s: float = DEFAULT_DURATION_S) -> float:
    check_kind(kind)
    if isinstance(duration_s, bool) or not isinstance(duration_s, (int, float)) or not math.isfinite(duration_s) \
            or not 0 < duration_s <= MAX_DURATION_S:
        raise VendorAccessError(f"duration: more than 0 and at most {MAX_DURATION_S:.0f} s (got {duration_s!r})")
    return float(duration_s)


def check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise VendorAccessError(f"kind: must be one of {', '.join(KINDS)} (got {kind!r})")
    return kind


def off_timer_unit(kind: str) -> str:
    """NAME.timer (transient, made by systemd-run) triggers NAME.service (static, in the image)."""
    return f"stationd-vendor-access-{kind}-off"


def off_timer_command(kind: str, duration_s: float) -> list[str]:
    return ["systemd-run", f"--unit={off_timer_unit(kind)}", f"--on-active={max(1, math.ceil(duration_s))}s",
            "--timer-property=AccuracySec=1s", "--timer-property=RemainAfterElapse=no",
            f"--description=stationd: end {kind} vendor access"]


def render_off_service(kind: str, units: Sequence[str], systemctl: str = "/usr/bin/systemctl") -> str:
    """The image's /etc/systemd/system/stationd-vendor-access-KIND-off.service: stops ``units``
    (the same units as DeviceOptions.vendor_units[kind])."""
    return (f"# Installed with stationd: ends {kind} vendor access when stationd's timer elapses.\n"
            f"[Unit]\nDescription=stationd: end {kind} vendor access\n\n"
            f"[Service]\nType=oneshot\nExecStart={systemctl} stop {' '.join(units)}\n")


class ExpiryTimers:
    """Which kind of vendor access is on until when; ``on_expired(kind)`` runs at expiry."""

    def __init__(self, on_expired: Callable[[str], Awaitable[None]],
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)):
        self._on_expired = on_expired
        self._clock = clock
        self._expiries: dict[str, datetime] = {}
        self._tasks: dict[str, asyncio.Task] = {}

    def start(self, kind: str, duration_s: float) -> datetime:
        self.stop(kind)
        expiry = (self._clock() + timedelta(seconds=duration_s)).replace(microsecond=0)
        self._expiries[kind] = expiry
        self._tasks[kind] = asyncio.get_running_loop().create_task(
            self._expire(kind, duration_s), name=f"vendor-access-{kind}")
        return expiry

    def stop(self, kind: str) -> bool:
        """Forget ``kind`` (cancelling its timer); True when it was on."""
        task = self._tasks.pop(kind, None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()
        return self._expiries.pop(kind, None) is not None

    def expiry(self, kind: str) -> datetime | None:
        return self._expiries.get(kind)

    def status(self) -> dict[str, datetime | None]:
        return {kind: self._expiries.get(kind) for kind in KINDS}

    def close(self) -> None:
        for kind in list(self._tasks):
            self.stop(kind)

    async def _expire(self, kind: str, duration_s: float) -> None:
        await asyncio.sleep(duration_s)
        self._tasks.pop(kind, None)
        self._expiries.pop(kind, None)
        try:
            await self._on_expired(kind)
        except Exception:  # noqa: BLE001 - a failing switch-off is logged; the systemd timer still ends it
            log.exception("vendor access %s: switching off at expiry failed", kind)
