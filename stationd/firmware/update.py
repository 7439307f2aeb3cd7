"""UpdateFirmware on the station: wait, download, verify, wait for the sessions, install, reboot.

One update at a time, owned by :class:`FirmwareUpdater` (a daemon component, ``run()``); the
OCPP handler only hands it the request (:meth:`FirmwareUpdater.submit`) after the empty
UpdateFirmware.conf went out. The flow, with the FirmwareStatusNotification each step sends:

1. wait until ``retrieveDate`` (nothing is sent before it);
2. ``Downloading`` — download into ``<data dir>/firmware/`` with 1 + ``retries`` attempts,
   ``retryInterval`` seconds apart, each continuing the part already there (HTTP Range, FTP
   REST) → ``Downloaded``, or ``DownloadFailed`` when the last attempt failed;
3. verify the package (:func:`stationd.firmware.package.verify_package`) against the
   station's chargePointModel: a package for another model → DataTransfer ``MachineMismatch``
   (if EnabledDataTransfer lists it), then ``InstallationFailed``; a corrupted, unsafe or too
   large one → ``InstallationFailed``. The running version stays;
4. wait until no connector has an open session — sessions always end on their own, the
   station never ends one to install (the download itself may run during charging);
5. ``Installing`` → the system edge's ``install_firmware(package, version)`` → ``Installed``
   (or ``InstallationFailed``); the installed version is kept (station_meta) and is the
   FirmwareVersion key from now on, so the next BootNotification reports it. A
   SecurityEventNotification ``FirmwareUpdated`` is queued;
6. the system edge's ``reboot(reason)`` — after sessions that began during the installation
   have ended too.

The request and its progress (phase, download attempts) are kept in station_meta, so a
restart of the daemon (a power cut) continues where it stopped: the wait for retrieveDate
goes on, a download resumes, a verified package is checked again and installed.

A second UpdateFirmware replaces a pending update that has not started installing (its wait or
download stops, its files are deleted). One that arrives while a package is installing waits
and starts once that installation has ended (after the reboot when it succeeded).

``client.firmware_status`` follows the notifications; after a final failure it is ``Idle``
again (only a TriggerMessage ever sends Idle).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .. import __version__, logs
from ..core.events import SessionEnded
from ..transfer import DEFAULT_MAX_BYTES, TransferError, download, redact
from ..transfer.urls import parse as parse_url
from .package import WRONG_MODEL, PackageError, read_manifest, verify_package

log = logging.getLogger("stationd.firmware")

UPDATE_META = "firmware_update"  # {"job": {...} | None, "next": {...} | None}
INSTALLED_META = "firmware_installed"  # {"version": "1.2.0", "installed_at": "…Z"}
DEFAULT_RETRIES = 3  # when UpdateFirmware.req has no retries: 4 attempts in all
DEFAULT_RETRY_INTERVAL_S = 60
TRANSFER_TIMEOUT_S = 60.0
MAX_NAP_S = 60.0  # the wait for retrieveDate looks at the clock at least this often
SESSION_POLL_S = 1.0
FLUSH_S = 10.0  # how long Installing waits for the ended transactions' messages to be delivered

WAITING, DOWNLOADING, DOWNLOADED, INSTALLING = "waiting", "downloading", "downloaded", "installing"
PHASES = (WAITING, DOWNLOADING, DOWNLOADED, INSTALLING)

Send = Callable[[str, dict], Awaitable[Any]]


@dataclass
class UpdateJob:
    """One UpdateFirmware request and how far it got (persisted as JSON)."""

    id: str
    location: str
    retrieve_date: str  # ISO 8601, UTC
    retries: int
    retry_interval: float
    phase: str = WAITING
    attempts: int = 0  # download attempts made so far

    @property
    def retrieve_at(self) -> datetime:
        return datetime.fromisoformat(self.retrieve_date)

    @property
    def package_name(self) -> str:
        return f"{self.id}.pkg"

    @classmethod
    def from_json(cls, data: dict) -> UpdateJob:
        job = cls(**{name: data[name] for name in ("id", "location", "retrieve_date", "retries",
                                                    "retry_interval", "phase", "attempts")})
        if job.phase not in PHASES:
            raise ValueError(f"unknown phase {job.phase!r}")
        job.retrieve_at  # noqa: B018 - must parse
        return job


class FirmwareUpdater:
    def __init__(self, *, store, core, meta, system, directory: Path, send: Send,
                 on_status: Callable[[str], None], security_event: Callable[[str, str], None],
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep, ca_file: Path | None = None,
                 transfer_timeout_s: float = TRANSFER_TIMEOUT_S, max_bytes: int = DEFAULT_MAX_BYTES,
                 delivered: Callable[[], Awaitable[None]] | None = None):
        self.store, self.core, self.meta, self.system = store, core, meta, system
        self._delivered = delivered  # returns once queued transaction messages went out (or cannot now)
        self.directory = Path(directory)
        self._send, self._on_status, self._security_event = send, on_status, security_event
        self.clock, self._sleep, self.ca_file = clock, sleep, ca_file
        self.transfer_timeout_s, self.max_bytes = transfer_timeout_s, max_bytes
        self._job: UpdateJob | None = None
        self._next: UpdateJob | None = None  # arrived while a package was installing
        self._wake = asyncio.Event()
        self._restored = False
        installed = meta.get(INSTALLED_META) or {}
        self._installed_version: str | None = installed.get("version") if isinstance(installed, dict) else None
        store.provide("FirmwareVersion", self.firmware_version)

    @classmethod
    def for_client(cls, client) -> FirmwareUpdater:
        """The updater of an OcppClient: its store, core, system edge, clock and connection."""

        async def send(action: str, payload: dict) -> Any:
            if not client.online():
                raise ConnectionError("not connected to the backend")
            return await client.call(action, payload)

        async def delivered() -> None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(FLUSH_S):
                    while client.outbox.pending_count() and client.online():
                        await asyncio.sleep(0.1)

        return cls(store=client.store, core=client.core, meta=client.core.meta, system=client.system,
                   directory=Path(client.config.data_dir) / "firmware", send=send,
                   on_status=lambda status: setattr(client, "firmware_status", status),
                   security_event=client.security_event, clock=client.clock, ca_file=client.config.ocpp.ca_file,
                   delivered=delivered)

    # ---- what others ask ----------------------------------------------------------------

    def firmware_version(self) -> str:
        """The FirmwareVersion key: the version last installed by UpdateFirmware, else the
        version of the running stationd."""
        return self._installed_version or __version__

    @property
    def pending(self) -> UpdateJob | None:
        return self._job

    def submit(self, location: str, retrieve_date: datetime, retries: int | None = None,
               retry_interval: float | None = None) -> UpdateJob:
        """A new UpdateFirmware request, already checked by the OCPP handler (a supported
        scheme, no negative retries or interval). Kept in station_meta before this returns."""
        job = UpdateJob(uuid.uuid4().hex[:16], location, _utc(retrieve_date).isoformat(),
                        DEFAULT_RETRIES if retries is None else int(retries),
                        DEFAULT_RETRY_INTERVAL_S if retry_interval is None else float(retry_interval))
        self._restore()
        if self._job is not None and self._job.phase == INSTALLING:
            log.info("UpdateFirmware of %s arrived while a package is installing; it starts once that is done",
                     redact(location))
            self._next = job
        else:
            if self._job is not None:
                log.info("UpdateFirmware of %s replaces the pending update of %s (it was %s)",
                         redact(location), redact(self._job.location), self._job.phase)
            self._job = job
        self._save()
        self._wake.set()
        log.info("UpdateFirmware: %s from %s, %d retries %g s apart", _when(job.retrieve_at), redact(location),
                 job.retries, job.retry_interval)
        return job

    # ---- the component ----------------------------------------------------------------------

    async def run(self) -> None:
        self._restore()
        remove_secrets = logs.add_secret_source(self._secrets)
        try:
            self._discard_stale_files()
            while True:
                job = self._job
                if job is None:
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                await self._supervise(job)
        finally:
            remove_secrets()

    async def _supervise(self, job: UpdateJob) -> None:
        """Run one job to its end; a replacement (not while installing) cancels it."""
        self._wake.clear()
        task = asyncio.create_task(self._perform(job), name="firmware-update")
        try:
            while not task.done():
                woke = asyncio.create_task(self._wake.wait())
                try:
                    await asyncio.wait({task, woke}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    woke.cancel()
                self._wake.clear()
                if not task.done() and self._job is not job and job.phase != INSTALLING:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
                    self._discard_files(job)
        finally:
            if not task.done():  # the daemon stops: the job stays saved and goes on at the next start
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if not task.cancelled() and task.exception() is not None:
            log.error("firmware update failed: %r", task.exception())

    async def _perform(self, job: UpdateJob) -> None:
        try:
            await self._steps(job)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("firmware update of %s failed unexpectedly", redact(job.location))
            failed = "DownloadFailed" if job.phase in (WAITING, DOWNLOADING) else "InstallationFailed"
            self._finish(job)
            await self._status(failed, final=True)

    async def _steps(self, job: UpdateJob) -> None:
        package = self.directory / job.package_name
        if job.phase == WAITING:
            await self._wait_until(job.retrieve_at)
            self._advance(job, DOWNLOADING)
        if job.phase == DOWNLOADING:
            await self._status("Downloading")
            if not await self._download(job, package):
                self._finish(job)
                await self._status("DownloadFailed", final=True)
                return
            self._advance(job, DOWNLOADED)
            await self._status("Downloaded")
        version = await self._verify(package)
        if version is None:
            self._finish(job)
            await self._status("InstallationFailed", final=True)
            return
        await self._until_no_session("installing")
        self._advance(job, INSTALLING)
        await self._status("Installing")
        if not await self._install(package, version):
            self._finish(job)
            await self._status("InstallationFailed", final=True)
            return
        self._installed_version = version
        self.meta.set(INSTALLED_META, {"version": version, "installed_at": _utc(self.clock()).isoformat()})
        self._security_event("FirmwareUpdated", f"firmware {version} installed")
        self._finish(job)
        await self._status("Installed")
        await self._until_no_session("the reboot")
        log.info("firmware %s installed; rebooting", version)
        await self.system.reboot(f"firmware {version} installed")

    # ---- the steps ----------------------------------------------------------------------------

    async def _wait_until(self, moment: datetime) -> None:
        if moment > self.clock():
            log.info("firmware update: waiting until retrieveDate %s", _when(moment))
        while (remaining := (moment - self.clock()).total_seconds()) > 0:
            await self._sleep(min(remaining, MAX_NAP_S))

    async def _download(self, job: UpdateJob, package: Path) -> bool:
        attempts = 1 + max(0, job.retries)
        while True:
            job.attempts += 1
            self._save()
            try:
                await download(job.location, package, timeout_s=self.transfer_timeout_s, resume=True,
                               ca_file=self.ca_file, max_bytes=self.max_bytes)
                return True
            except TransferError as problem:
                if not problem.retry or job.attempts >= attempts:
                    log.warning("firmware download of %s failed after %d attempt(s): %s", redact(job.location),
                                job.attempts, problem.reason)
                    return False
                log.warning("firmware download attempt %d of %d failed (%s); next attempt in %g s",
                            job.attempts, attempts, problem.reason, job.retry_interval)
            await self._sleep(job.retry_interval)

    def _model(self) -> str:
        return str(self.store.get("ModelId") or "stationd")[:20]  # chargePointModel, as BootNotification says

    async def _verify(self, package: Path) -> str | None:
        """The package's version when it may be installed; else None (after MachineMismatch)."""
        model = self._model()
        try:
            verified = await asyncio.to_thread(verify_package, package, expected_model=model)
        except PackageError as problem:
            log.warning("firmware package refused (%s): %s", problem.kind, problem.message)
            if problem.kind == WRONG_MODEL:
                await self._machine_mismatch(package, model, problem.message)
            return None
        except OSError as problem:
            log.warning("firmware package cannot be read: %s", problem)
            return None
        log.info("firmware package %s for %s verified (%d payloads)", verified.manifest.version, model,
                 len(verified.manifest.payloads))
        return verified.manifest.version

    async def _machine_mismatch(self, package: Path, model: str, message: str) -> None:
        if "MachineMismatch" not in self.store.get("EnabledDataTransfer"):
            return
        try:
            package_model = read_manifest(package).model
        except (PackageError, OSError):
            package_model = None
        data = {"error": message, "packageModel": package_model, "stationModel": model}
        payload = {"vendorId": str(self.store.get("VendorId"))[:255], "messageId": "MachineMismatch",
                   "data": json.dumps(data, separators=(",", ":"))}
        try:
            await self._send("DataTransfer", payload)
        except Exception as problem:  # noqa: BLE001 - informational
            log.info("DataTransfer MachineMismatch not delivered: %s", problem)

    async def _install(self, package: Path, version: str) -> bool:
        try:
            installed = await self.system.install_firmware(package, version)
        except Exception:
            log.exception("the system edge could not install firmware %s", version)
            return False
        if not installed:
            log.warning("the system edge did not install firmware %s", version)
        return bool(installed)

    def _open_sessions(self) -> list[int]:
        return [c.id for c in self.core.connectors.values() if c.session is not None]

    async def _until_no_session(self, purpose: str) -> None:
        """Wait until every open session has ended (by itself: nothing here ends one) and the
        backend has its StopTransaction (while connected; at most FLUSH_S)."""
        if not self._open_sessions():
            return
        log.info("firmware update: %s waits until the sessions on connector(s) %s end", purpose,
                 ", ".join(map(str, self._open_sessions())))
        ended = asyncio.Event()
        unsubscribe = self.core.bus.subscribe(lambda event: ended.set(), SessionEnded)
        try:
            while self._open_sessions():
                ended.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(SESSION_POLL_S):
                        await ended.wait()
        finally:
            unsubscribe()
        if self._delivered is not None:
            await self._delivered()

    async def _status(self, status: str, *, final: bool = False) -> None:
        self._on_status(status)
        log.info("firmware update: %s", status)
        try:
            await self._send("FirmwareStatusNotification", {"status": status})
        except Exception as problem:  # noqa: BLE001 - the flow goes on; TriggerMessage can ask again
            log.warning("FirmwareStatusNotification %s not delivered: %s", status, problem)
        if final:
            self._on_status("Idle")

    # ---- state --------------------------------------------------------------------------------

    def _advance(self, job: UpdateJob, phase: str) -> None:
        job.phase = phase
        self._save()

    def _finish(self, job: UpdateJob) -> None:
        """The job is over (done or failed): its files go; a request that waited comes next."""
        self._discard_files(job)
        if self._job is job:
            self._job, self._next = self._next, None
            self._save()
            if self._job is not None:
                self._wake.set()

    def _save(self) -> None:
        self.meta.set(UPDATE_META, {"job": asdict(self._job) if self._job else None,
                                    "next": asdict(self._next) if self._next else None})

    def _restore(self) -> None:
        if self._restored:
            return
        self._restored = True
        saved = self.meta.get(UPDATE_META) or {}
        try:
            self._job = UpdateJob.from_json(saved["job"]) if saved.get("job") else None
            self._next = UpdateJob.from_json(saved["next"]) if saved.get("next") else None
        except (KeyError, TypeError, ValueError) as problem:
            log.error("the saved firmware update is not usable (%s); it is dropped", problem)
            self._job = self._next = None
            self._save()
            return
        if self._job is not None:
            log.info("firmware update of %s continues (%s, %d download attempts so far)",
                     redact(self._job.location), self._job.phase, self._job.attempts)

    def _discard_files(self, job: UpdateJob) -> None:
        for path in (self.directory / job.package_name, self.directory / f"{job.package_name}.part"):
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)

    def _discard_stale_files(self) -> None:
        """Files of updates that are over (a crash between the end and the clean-up)."""
        keep = {j.package_name for j in (self._job, self._next) if j is not None}
        if not self.directory.is_dir():
            return
        for path in self.directory.iterdir():
            if path.name.removesuffix(".part") not in keep:
                with contextlib.suppress(OSError):
                    path.unlink()

    def _secrets(self) -> list[str]:
        """The passwords in the pending locations, for the log filter."""
        found = []
        for job in (self._job, self._next):
            if job is not None:
                with contextlib.suppress(TransferError):
                    password = parse_url(job.location).password
                    if password:
                        found.append(password)
        return found


def _utc(moment: datetime) -> datetime:
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


def _when(moment: datetime) -> str:
    return _utc(moment).isoformat(timespec="seconds").replace("+00:00", "Z")
