"""StatusNotification: connector 0 and each connector, after acceptance and on every change.

While the backend is unreachable only the latest status of each connector is kept; after
reconnecting the station sends the current status where it differs from what the backend last
heard, never the history. A status must last MinimumStatusDuration seconds before it is sent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

from ..config.store import ConfigStore
from ..core.events import StatusChanged
from ..core.station import StationCore
from .timestamps import ocpp_time

log = logging.getLogger("stationd.ocpp")

Call = Callable[[str, dict], Awaitable[dict]]


def status_payload(event: StatusChanged, vendor_id: str) -> dict:
    payload = {"connectorId": event.connector_id, "errorCode": event.error_code, "status": event.status,
               "timestamp": ocpp_time(event.timestamp)}
    if event.info:
        payload["info"] = event.info[:50]
    if event.vendor_error_code:
        payload["vendorId"] = vendor_id[:255]
        payload["vendorErrorCode"] = event.vendor_error_code[:50]
    return payload


class StatusReporter:
    def __init__(self, core: StationCore, store: ConfigStore, clock: Callable[[], datetime]):
        self.core, self.store, self.clock = core, store, clock
        self.latest: dict[int, StatusChanged] = {}
        self._sent: dict[int, tuple] = {}
        self._changed = asyncio.Event()
        core.bus.subscribe(self._on_status, StatusChanged)

    def _on_status(self, event: StatusChanged) -> None:
        self.latest[event.connector_id] = event
        self._changed.set()

    async def run(self, call: Call) -> None:
        """Send what changed, for as long as the connection lasts (cancelled when it ends)."""
        while True:
            self._changed.clear()
            wait = await self._send_due(call)
            try:
                async with asyncio.timeout(wait):
                    await self._changed.wait()
            except TimeoutError:
                pass

    async def send_now(self, call: Call, connector_id: int | None = None) -> None:
        """TriggerMessage StatusNotification: the current status, whether it changed or not."""
        for cid in sorted(self.latest) if connector_id is None else [connector_id]:
            event = self.latest.get(cid)
            if event is not None:
                await self._send(call, event)

    async def _send_due(self, call: Call) -> float | None:
        """Send every status that changed and lasted long enough; the seconds until the next is due."""
        minimum = int(self.store.get("MinimumStatusDuration"))
        now = self.clock()
        next_due = None
        for cid in sorted(self.latest):
            event = self.latest[cid]
            if self._sent.get(cid) == _key(event):
                continue
            age = (now - event.timestamp).total_seconds()
            if age < minimum:
                due = minimum - age
                next_due = due if next_due is None else min(next_due, due)
                continue
            await self._send(call, event)
        return next_due

    async def _send(self, call: Call, event: StatusChanged) -> None:
        await call("StatusNotification", status_payload(event, str(self.store.get("VendorId"))))
        self._sent[event.connector_id] = _key(event)


def _key(event: StatusChanged) -> tuple:
    return (event.status, event.error_code, event.vendor_error_code)
