"""The Eaton DataTransfer messages an AC station sends (SPEC.md §5), as EnabledDataTransfer says.

vendorId is the VendorId key; data is a JSON object as text. They tell the backend what the
standard messages do not: the plug type of a transaction (PlugType), what stopped a session
(StopSource), a session aborted by a fault (ChargeStopError) and the outcome of a remote stop
(RemoteShutOff). They are informational: sent while connected and registered, not queued.
MachineMismatch comes with firmware updates.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable

from ..config.store import ConfigStore
from ..core.events import FaultChanged, SessionEnded, SessionStarted
from ..core.faults import fault
from ..core.station import StationCore

log = logging.getLogger("stationd.ocpp")

SendDirect = Callable[[str, dict], Awaitable[object]]

# What stopped a session, by StopTransaction reason.
STOP_SOURCES = {
    "EVDisconnected": "EV", "Local": "Local", "Remote": "Remote", "UnlockCommand": "Remote",
    "DeAuthorized": "Backend", "SoftReset": "Backend", "HardReset": "Backend", "Reboot": "Station",
    "PowerLoss": "Station", "EmergencyStop": "Station", "Other": "Station",
}


class VendorMessages:
    def __init__(self, core: StationCore, store: ConfigStore, send_direct: SendDirect):
        self.core, self.store, self._send = core, store, send_direct
        self._tasks: set[asyncio.Task] = set()
        core.bus.subscribe(self._session_started, SessionStarted)
        core.bus.subscribe(self._session_ended, SessionEnded)
        core.bus.subscribe(self._fault, FaultChanged)

    def remote_shut_off(self, connector_id: int, status: str) -> None:
        self._queue("RemoteShutOff", {"connectorId": connector_id, "status": status})

    def _session_started(self, event: SessionStarted) -> None:
        connector = self.core.connectors.get(event.session.connector_id)
        plug = connector.connector_type if connector is not None else "Unknown"
        self._queue("PlugType", {"connectorId": event.session.connector_id, "plugType": plug})

    def _session_ended(self, event: SessionEnded) -> None:
        reason = event.session.stop_reason or "Other"
        self._queue("StopSource", {"connectorId": event.session.connector_id, "reason": reason,
                                   "stopSource": STOP_SOURCES.get(reason, "Station")})

    def _fault(self, event: FaultChanged) -> None:
        connector = self.core.connectors.get(event.connector_id)
        if event.active and connector is not None and connector.session is not None and fault(event.code).faulted:
            self._queue("ChargeStopError", {"connectorId": event.connector_id, "error": event.code,
                                            "evseStatus": "Faulted"})

    def _queue(self, message_id: str, data: dict) -> None:
        if message_id not in self.store.get("EnabledDataTransfer"):
            return
        payload = {"vendorId": str(self.store.get("VendorId"))[:255], "messageId": message_id,
                   "data": json.dumps(data, separators=(",", ":"))}
        try:
            task = asyncio.get_running_loop().create_task(self._deliver(payload))
        except RuntimeError:  # no loop (a test driving the core by hand): nothing to tell
            return
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, payload: dict) -> None:
        try:
            await self._send("DataTransfer", payload)
        except Exception as exc:  # noqa: BLE001 - informational: a failure is logged, never fatal
            log.info("DataTransfer %s not delivered: %s", payload["messageId"], exc)
