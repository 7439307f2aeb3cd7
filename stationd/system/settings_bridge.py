"""Settings that act on the operating system: a key change becomes a system-edge action.

* ``HWatchdog`` 0/1 → the hardware watchdog drop-in (takes effect at the next boot);
* ``/Security/enableLocalVendorAccess`` / ``/Security/enableRemoteVendorAccess`` → vendor access
  on for a limited time (the edge switches it off at expiry and the key follows), off at once;
* ``TimeZone`` / ``TimeSource`` → the system time zone and NTP on (NTP) or off (HeartBeat: the
  backend's Heartbeat sets the clock).

At start the vendor-access keys are set false (access never survives a restart) and the other
settings are applied once. Store listeners are synchronous, so each change schedules the edge
call as a task; a failed action is logged by the edge and the key keeps what was asked for.
"""

from __future__ import annotations

import asyncio
from ..config.store import Change, ConfigStore
from ..config.value_types import Source
from .edge import SystemEdge
from .timesync import TimeSettings

VENDOR_ACCESS_KEYS = {"local": "/Security/enableLocalVendorAccess", "remote": "/Security/enableRemoteVendorAccess"}
TIME_KEYS = ("TimeZone", "TimeSource")
WATCHDOG_KEY = "HWatchdog"
VENDOR_ACCESS_S = 3600.0  # how long vendor access stays on


class SystemSettings:
    def __init__(self, store: ConfigStore, edge: SystemEdge, vendor_access_s: float = VENDOR_ACCESS_S):
        self.store, self.edge = store, edge
        self.vendor_access_s = vendor_access_s
        edge.on_vendor_access_off = self.vendor_access_ended  # the edge ends access at expiry
        self._tasks: set[asyncio.Task] = set()

    def vendor_access_ended(self, kind: str) -> None:
        """The edge switched ``kind`` off (expiry): the key follows."""
        self.store.set(VENDOR_ACCESS_KEYS[kind], "false", Source.LOCAL)

    async def run(self) -> None:
        for key in VENDOR_ACCESS_KEYS.values():
            self.store.set(key, "false", Source.LOCAL)
        unsubscribe = self.store.subscribe(self._changed, names=(*VENDOR_ACCESS_KEYS.values(), *TIME_KEYS, WATCHDOG_KEY))
        try:
            await self.edge.set_hardware_watchdog(bool(self.store.get(WATCHDOG_KEY)))
            await self._apply_time()
            await asyncio.Event().wait()
        finally:
            unsubscribe()
            for task in list(self._tasks):
                task.cancel()

    def _changed(self, change: Change) -> None:
        if change.key == WATCHDOG_KEY:
            self._spawn(self.edge.set_hardware_watchdog(bool(change.new)))
        elif change.key in TIME_KEYS:
            self._spawn(self._apply_time())
        else:
            kind = next(k for k, key in VENDOR_ACCESS_KEYS.items() if key == change.key)
            if change.new and not change.old:
                self._spawn(self._enable(kind))
            elif not change.new:
                self._spawn(self.edge.disable_vendor_access(kind))  # harmless when already off

    async def _enable(self, kind: str) -> None:
        if await self.edge.enable_vendor_access(kind, self.vendor_access_s) is None:
            self.store.set(VENDOR_ACCESS_KEYS[kind], "false", Source.LOCAL)  # it could not be switched on

    async def _apply_time(self) -> None:
        settings = TimeSettings(str(self.store.get("TimeZone")), str(self.store.get("TimeSource")))
        await self.edge.apply_time_settings(settings)

    def _spawn(self, action) -> None:
        task = asyncio.get_running_loop().create_task(action)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
