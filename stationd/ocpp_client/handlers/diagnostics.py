"""Firmware Management profile: GetDiagnostics.

The .conf answers at once with the ``fileName`` the station will upload
(``<SerialNumber>-<UTC time>-diagnostics.tar.gz``); then, in the background:
DiagnosticsStatusNotification Uploading, the archive of [startTime, stopTime]
(:mod:`stationd.diagnostics`), the upload to ``location`` (:func:`stationd.transfer.upload`:
http(s) PUT to location + fileName or a multipart POST, ftp(s) STOR), tried 1 + ``retries``
times ``retryInterval`` seconds apart, and Uploaded — only once the server confirmed the whole
file — or UploadFailed. Afterwards ``client.diagnostics_status`` is Idle again, which is sent
only in answer to a TriggerMessage.

Refused with a CALLERROR PropertyConstraintViolation: a location whose scheme the
SupportedFileTransferProtocols key does not list, or a startTime after the stopTime. While an
upload is under way a new GetDiagnostics is answered without a fileName (nothing more will be
uploaded for it).
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from ... import diagnostics
from ..errors import CallError
from ..rpc import HandlerResult
from ..timestamps import parse_ocpp_time

log = logging.getLogger("stationd.ocpp.diagnostics")

DIAGNOSTICS_DIR = "diagnostics"  # in the data directory; the latest archive stays there
DEFAULT_RETRIES = 2  # when the backend does not say: 3 attempts
DEFAULT_RETRY_INTERVAL_S = 30
MAX_RETRIES = 10
MAX_RETRY_INTERVAL_S = 3600
UPLOAD_TIMEOUT_S = 60.0
ANSWER_WAIT_S = 30.0  # the upload starts once the .conf went out; if it never does, not at all
NOTIFY_WAIT_S = 300.0  # how long a status notification waits for the backend to be reachable

_uploads: weakref.WeakKeyDictionary[Any, asyncio.Task] = weakref.WeakKeyDictionary()


async def get_diagnostics(client, payload: dict) -> dict | HandlerResult:
    # The transfer clients (aiohttp, ftplib) load only when a transfer is asked for.
    from ... import transfer

    location = payload["location"]
    if not transfer.allowed(location, client.store):
        raise CallError("PropertyConstraintViolation",
                        f"location: protocol not supported (SupportedFileTransferProtocols: "
                        f"{','.join(client.store.get('SupportedFileTransferProtocols') or ())})")
    start, stop = _time(payload.get("startTime")), _time(payload.get("stopTime"))
    if start is not None and stop is not None and start > stop:
        raise CallError("PropertyConstraintViolation", "startTime is after stopTime")
    running = _uploads.get(client)
    if running is not None and not running.done():
        log.warning("GetDiagnostics while an upload is under way: answered without a fileName")
        return {}
    retries = min(max(int(payload.get("retries", DEFAULT_RETRIES)), 0), MAX_RETRIES)
    interval = min(max(int(payload.get("retryInterval", DEFAULT_RETRY_INTERVAL_S)), 0), MAX_RETRY_INTERVAL_S)
    now = client.clock()
    file_name = diagnostics.archive_name(str(client.store.get("SerialNumber") or ""), now)
    upload = Upload(client, location, file_name, start, stop, retries, interval, now)
    _uploads[client] = start_upload(client, upload, "ocpp-diagnostics-upload")
    return HandlerResult({"fileName": file_name}, after=upload.answered.set)


def start_upload(client, upload: Upload, name: str) -> asyncio.Task:
    """Run ``upload`` in the background (the client cancels it at shutdown)."""
    task = asyncio.get_running_loop().create_task(upload.run(), name=name)
    background = getattr(client, "_background", None)
    if background is not None:
        background.add(task)
        task.add_done_callback(background.discard)
    return task


class Upload:
    """One GetDiagnostics: archive, upload with retries, status notifications.

    GetLog (:mod:`.get_log`) reuses it: a subclass overrides :meth:`build` (what is uploaded)
    and :meth:`_notify` (LogStatusNotification)."""

    kind = "diagnostics"

    def __init__(self, client, location: str, file_name: str, start: datetime | None, stop: datetime | None,
                 retries: int, interval: float, now: datetime):
        self.client, self.location, self.file_name = client, location, file_name
        self.start, self.stop, self.retries, self.interval, self.now = start, stop, retries, interval, now
        self.answered = asyncio.Event()  # set once the GetDiagnostics.conf went out
        self.problem: Exception | None = None  # the last failed attempt's TransferError

    async def run(self) -> str:
        from ... import transfer

        client = self.client
        shown = transfer.redact(self.location)
        try:
            async with asyncio.timeout(ANSWER_WAIT_S):
                await self.answered.wait()
        except TimeoutError:
            log.warning("GetDiagnostics.conf could not be sent: nothing uploaded")
            return "NotStarted"
        final = "UploadFailed"
        try:
            await self._notify("Uploading")
            archive = await self.build()
            log.info("%s archive %s: %d bytes; uploading to %s", self.kind, archive.name, archive.stat().st_size,
                     shown)
            for attempt in range(1, self.retries + 2):
                try:
                    await transfer.upload(self.location, archive, self.file_name, timeout_s=UPLOAD_TIMEOUT_S,
                                          ca_file=client.certificates.trust_file())
                    final = "Uploaded"
                    break
                except transfer.TransferError as problem:
                    self.problem = problem
                    last = attempt > self.retries or not problem.retry
                    log.warning("%s upload to %s, attempt %d of %d, failed: %s%s", self.kind, shown, attempt,
                                self.retries + 1, problem.reason, "" if last else f"; again in {self.interval} s")
                    if last:
                        break
                    await asyncio.sleep(self.interval)
        except asyncio.CancelledError:
            self._idle()
            raise
        except Exception:  # noqa: BLE001 - the station's own failure still ends in UploadFailed
            log.exception("%s for %s failed", self.kind, shown)
        log.info("%s %s: %s", self.kind, self.file_name, final)
        await self._notify(final)
        self._idle()  # not busy any more: what a TriggerMessage reports
        return final

    async def build(self) -> Path:
        """The file to upload: the diagnostics archive of [start, stop]."""
        dest_dir = Path(self.client.config.data_dir) / DIAGNOSTICS_DIR
        await asyncio.to_thread(diagnostics.prune, dest_dir, 0)
        return await diagnostics.build_archive_async(_station(self.client), self.start, self.stop, dest_dir,
                                                     now=self.now, file_name=self.file_name)

    def _idle(self) -> None:
        self.client.diagnostics_status = "Idle"

    async def _notify(self, status: str) -> None:
        """DiagnosticsStatusNotification, once the backend is reachable (waits up to NOTIFY_WAIT_S)."""
        client = self.client
        client.diagnostics_status = status
        try:
            async with asyncio.timeout(NOTIFY_WAIT_S):
                while not client.online():
                    await asyncio.sleep(0.5)
                await client.call("DiagnosticsStatusNotification", {"status": status})
        except TimeoutError:
            log.warning("DiagnosticsStatusNotification %s not sent: the backend was not reachable", status)
        except asyncio.CancelledError:
            raise
        except Exception as problem:  # noqa: BLE001 - a lost notification must not stop the upload
            log.warning("DiagnosticsStatusNotification %s not delivered: %s", status, problem)


def _time(text: str | None) -> datetime | None:
    return parse_ocpp_time(text) if text else None


def _station(client) -> Any:
    """The daemon's Station when the daemon handed it over, else what the client itself knows."""
    station = getattr(client, "station", None)
    if station is not None:
        return station
    return SimpleNamespace(store=client.store, core=client.core, config=client.config, hardware=None,
                           ocpp=client, boot_id=None)


HANDLERS = {"GetDiagnostics": get_diagnostics}
