"""The firmware update's status notifications, and what a trigger reports.

Each status goes out at once when the station is connected: FirmwareStatusNotification for a
plain update, SignedFirmwareStatusNotification with the requestId for a signed one
(:meth:`stationd.firmware.job.UpdateJob.notification`).

**While the backend is unreachable** the latest notification is kept (``report``, saved in
station_meta with the update) until the backend answered it; one that could not be delivered
(offline, no answer) is sent again once the station is connected and registered again
(:meth:`StatusNotifications.deliver`, called by the OCPP client after each connect) — only the
latest, never the history, as StatusNotification does. The statuses are a state the backend
wants to know, not a record to replay like the transaction messages the outbox queues: a
backend that missed ``Downloading`` learns ``Downloaded`` (or whatever is current) when it is
back. Kept in the database, so even ``Installed`` of a station that rebooted while offline
reaches it. A CALLERROR answer counts as delivered (the backend heard it; sending it again
cannot help).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from ..ocpp_client.errors import CallError
from .job import PLAIN_STATUS, UpdateJob

log = logging.getLogger("stationd.firmware")

REPORT_KEYS = {"job", "action", "payload", "delivered"}


class StatusNotifications:
    """``send(action, payload)`` raises when the backend cannot be reached; ``on_status`` gets
    the status in FirmwareStatusNotification's words (``client.firmware_status``, what a
    TriggerMessage reports); ``save()`` persists :attr:`report` with the update."""

    def __init__(self, send: Callable[[str, dict], Awaitable[Any]], on_status: Callable[[str], None],
                 save: Callable[[], None]):
        self._send, self._on_status, self._save = send, on_status, save
        self.report: dict | None = None  # the latest notification: {"job", "action", "payload", "delivered"}
        self._shown: tuple[str, int | None] = ("Idle", None)  # the status and requestId a trigger reports
        self._delivering = asyncio.Lock()

    def signed_status(self) -> dict:
        """A SignedFirmwareStatusNotification of the update under way (ExtendedTriggerMessage):
        its latest status, with the requestId of a signed update; ``Idle`` when none runs."""
        status, request_id = self._shown
        return {"status": status} if request_id is None else {"status": status, "requestId": request_id}

    async def tell(self, job: UpdateJob, status: str, *, final: bool = False) -> None:
        """Tell the backend ``status`` of ``job`` (kept until delivered); ``final``: the update is
        over, a trigger reports Idle from now on."""
        action, payload = job.notification(status)
        self.report = {"job": job.id, "action": action, "payload": payload, "delivered": False}
        self._show("Idle" if final else status, None if final else job.request_id)
        self._save()
        log.info("firmware update: %s", status)
        await self.deliver()

    async def deliver(self) -> None:
        """Send the latest notification unless the backend has it; kept when it cannot be now."""
        async with self._delivering:
            report = self.report
            if report is None or report["delivered"]:
                return
            action, status = report["action"], report["payload"]["status"]
            try:
                await self._send(action, report["payload"])
            except CallError as refused:
                log.warning("%s %s refused by the backend: %s", action, status, refused)
            except Exception as problem:  # noqa: BLE001 - sent again after the next reconnect
                log.warning("%s %s not delivered (%s); it is sent once the backend is reachable again", action,
                            status, problem or type(problem).__name__)
                return
            report["delivered"] = True
            self._save()

    def restore(self, report: Any, job: UpdateJob | None) -> None:
        """The saved report, at start; a trigger reports its status while ``job`` is the one it is of."""
        if not isinstance(report, dict) or not REPORT_KEYS <= report.keys():
            return
        self.report = report
        if job is not None and report["job"] == job.id:
            self._show(report["payload"]["status"], job.request_id)

    def _show(self, status: str, request_id: int | None) -> None:
        self._shown = (status, request_id)
        self._on_status(PLAIN_STATUS.get(status, status))
