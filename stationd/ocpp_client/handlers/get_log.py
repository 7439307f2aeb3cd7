"""Security whitepaper GetLog (DiagnosticsLog, SecurityLog) and its LogStatusNotifications.

The upload is GetDiagnostics' (:class:`.diagnostics.Upload`: retries, the transfer clients,
SupportedFileTransferProtocols): a DiagnosticsLog is the diagnostics archive of
[oldestTimestamp, latestTimestamp], a SecurityLog the security events the station recorded in
that window (:mod:`stationd.ocpp_client.security_log`), one line each. The .conf says Accepted
with the ``filename``; then LogStatusNotification Uploading, and Uploaded, UploadFailure,
PermissionDenied (the server refused the credentials) or NotSupportedOperation, each with the
GetLog's ``requestId``; afterwards the state is Idle again (what an ExtendedTriggerMessage
LogStatusNotification reports). A GetLog while one runs cancels that one (AcceptedCanceled).
Rejected: a remoteLocation whose scheme SupportedFileTransferProtocols does not list, or an
oldestTimestamp after the latestTimestamp.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from pathlib import Path
from typing import Any

from ... import diagnostics
from ..rpc import HandlerResult
from ..security_log import SECURITY_LOG_FILE, write_report
from .diagnostics import (DEFAULT_RETRIES, DEFAULT_RETRY_INTERVAL_S, MAX_RETRIES, MAX_RETRY_INTERVAL_S, NOTIFY_WAIT_S,
                          Upload, _time, start_upload)

log = logging.getLogger("stationd.ocpp.get_log")

LOGS_DIR = "logs"  # in the data directory; the latest upload stays there
_uploads: weakref.WeakKeyDictionary[Any, asyncio.Task] = weakref.WeakKeyDictionary()
_states: weakref.WeakKeyDictionary[Any, dict] = weakref.WeakKeyDictionary()


def log_status(client) -> dict:
    """The LogStatusNotification payload of the current state (Idle when no upload runs)."""
    return dict(_states.get(client) or {"status": "Idle"})


async def get_log(client, payload: dict) -> dict | HandlerResult:
    from ... import transfer

    kind, request_id, params = payload["logType"], payload["requestId"], payload["log"]
    location = params["remoteLocation"]
    if not transfer.allowed(location, client.store):
        log.warning("GetLog %s rejected: the location's protocol is not in SupportedFileTransferProtocols", kind)
        return {"status": "Rejected"}
    start, stop = _time(params.get("oldestTimestamp")), _time(params.get("latestTimestamp"))
    if start is not None and stop is not None and start > stop:
        return {"status": "Rejected"}
    status = "Accepted"
    running = _uploads.get(client)
    if running is not None and not running.done():
        running.cancel()
        status = "AcceptedCanceled"
    retries = min(max(int(payload.get("retries", DEFAULT_RETRIES)), 0), MAX_RETRIES)
    interval = min(max(int(payload.get("retryInterval", DEFAULT_RETRY_INTERVAL_S)), 0), MAX_RETRY_INTERVAL_S)
    now = client.clock()
    name = diagnostics.archive_name(str(client.store.get("SerialNumber") or ""), now)
    if kind == "SecurityLog":
        name = name.replace(diagnostics.ARCHIVE_SUFFIX, "-security.log")
    upload = LogUpload(client, location, name, start, stop, retries, interval, now)
    upload.kind, upload.request_id = kind, request_id
    _uploads[client] = start_upload(client, upload, "ocpp-get-log-upload")
    return HandlerResult({"status": status, "filename": name}, after=upload.answered.set)


class LogUpload(Upload):
    request_id = 0

    async def build(self) -> Path:
        if self.kind == "DiagnosticsLog":
            return await super().build()
        data_dir = Path(self.client.config.data_dir)
        return await asyncio.to_thread(write_report, data_dir / SECURITY_LOG_FILE, data_dir / LOGS_DIR / self.file_name,
                                       self.start, self.stop)

    async def _notify(self, status: str) -> None:
        client = self.client
        if status == "UploadFailed":
            status = _failure(self.problem)
        state = {"status": status, "requestId": self.request_id}
        _states[client] = state
        try:
            async with asyncio.timeout(NOTIFY_WAIT_S):
                while not client.online():
                    await asyncio.sleep(0.5)
                await client.call("LogStatusNotification", state)
        except TimeoutError:
            log.warning("LogStatusNotification %s not sent: the backend was not reachable", status)
        except asyncio.CancelledError:
            raise
        except Exception as problem:  # noqa: BLE001 - a lost notification must not stop the upload
            log.warning("LogStatusNotification %s not delivered: %s", status, problem)

    def _idle(self) -> None:
        if _uploads.get(self.client) is None or _uploads[self.client] is asyncio.current_task():
            _states.pop(self.client, None)


def _failure(problem: Exception | None) -> str:
    reason = str(getattr(problem, "reason", "") or "").lower()
    if any(word in reason for word in ("401", "403", "530", "denied", "forbidden", "login", "unauthori")):
        return "PermissionDenied"
    if "not supported" in reason:
        return "NotSupportedOperation"
    return "UploadFailure"


HANDLERS = {"GetLog": get_log}
