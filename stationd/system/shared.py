"""What the device and the dry-run edge do alike: the time modes and the vendor-access timers.

Each implementation supplies the primitives (set_timezone, set_ntp, set_time, and
``_switch_on``/``_switch_off`` for vendor access); the rules that combine them live here once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime

from .timesync import TimeSettings
from .vendor_access import DEFAULT_DURATION_S, KINDS, ExpiryTimers, check_kind, check_request

log = logging.getLogger("stationd.system")

VendorAccessListener = Callable[[str], None]


class SharedBehaviour:
    def __init__(self, on_vendor_access_off: VendorAccessListener | None = None):
        # Called with the kind when access ended by itself (expiry), e.g. to set the key false.
        self.on_vendor_access_off = on_vendor_access_off
        self._vendor = ExpiryTimers(self._vendor_access_expired)

    # ---- primitives each implementation provides -------------------------------------------

    async def set_time(self, moment: datetime) -> bool:
        raise NotImplementedError

    async def set_timezone(self, name: str) -> bool:
        raise NotImplementedError

    async def set_ntp(self, enabled: bool, servers: Sequence[str] = ()) -> bool:
        raise NotImplementedError

    async def _switch_on(self, kind: str, duration_s: float) -> bool:
        raise NotImplementedError

    async def _switch_off(self, kind: str, reason: str) -> bool:
        raise NotImplementedError

    # ---- time ----------------------------------------------------------------------------------

    async def apply_time_settings(self, settings: TimeSettings, browser_time: datetime | None = None) -> bool:
        """Time zone, then the source: NTP on (with the servers) for ``NTP``; NTP off for
        ``HeartBeat`` (the OCPP client sets the clock) and ``Browser`` (``browser_time``
        sets it now, once). True when every step succeeded."""
        ok = await self.set_timezone(settings.timezone)
        ok = await self.set_ntp(settings.source == "NTP", settings.ntp_servers) and ok
        if settings.source == "Browser" and browser_time is not None:
            ok = await self.set_time(browser_time) and ok
        return ok

    # ---- vendor access -------------------------------------------------------------------------

    def vendor_access(self) -> dict[str, datetime | None]:
        """Each kind's expiry (UTC) while it is on, else None."""
        return self._vendor.status()

    async def enable_vendor_access(self, kind: str, duration_s: float = DEFAULT_DURATION_S) -> datetime | None:
        """Switch ``kind`` on for ``duration_s``; the expiry (UTC), or None when it could not
        be switched on (then it is off). Enabling again restarts the time."""
        duration = check_request(kind, duration_s)
        if not await self._switch_on(kind, duration):
            self._vendor.stop(kind)
            return None
        expiry = self._vendor.start(kind, duration)
        log.warning("vendor access %s on until %s", kind, expiry.isoformat())
        return expiry

    async def disable_vendor_access(self, kind: str) -> bool:
        check_kind(kind)
        self._vendor.stop(kind)
        return await self._switch_off(kind, "switched off")

    async def _vendor_access_expired(self, kind: str) -> None:
        await self._switch_off(kind, "expired")
        if self.on_vendor_access_off is not None:
            self.on_vendor_access_off(kind)

    def close(self) -> None:
        """The daemon stops: forget the in-process timers (on the device the systemd timer
        still ends access on time, and the next start switches it off)."""
        self._vendor.close()

    def _vendor_kinds_on(self) -> list[str]:
        return [kind for kind in KINDS if self._vendor.expiry(kind) is not None]
