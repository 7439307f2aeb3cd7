"""Firmware updates on the station: wait, download, verify, wait for the sessions, install, reboot.

One update at a time, owned by :class:`FirmwareUpdater` (a daemon component, ``run()``), for
both UpdateFirmware and the security whitepaper's SignedUpdateFirmware: the job
(:mod:`.job`) knows which it is. The OCPP handlers only check the request and hand it over
(:meth:`FirmwareUpdater.submit`) once their .conf went out. The flow, with the status each step
reports — FirmwareStatusNotification for a plain update, SignedFirmwareStatusNotification with
the requestId for a signed one (statuses only a signed update knows are marked *signed*):

1. wait until ``retrieveDate``/``retrieveDateTime`` (*signed*: ``DownloadScheduled`` when it is
   in the future; a plain update sends nothing before it);
2. ``Downloading`` — download into ``<data dir>/firmware/`` with 1 + ``retries`` attempts,
   ``retryInterval`` seconds apart, each continuing the part already there (HTTP Range, FTP
   REST) → ``Downloaded``, or ``DownloadFailed`` when the last attempt failed. TLS servers are
   checked against the system's CA store plus the installed CentralSystemRootCertificates and
   ``ocpp.ca_file`` (the CertificateStore's trust file);
3. *signed*: the signature over the downloaded file, with the signing certificate's key
   (:mod:`.signature`) → ``SignatureVerified``, or ``InvalidSignature`` and a
   SecurityEventNotification ``InvalidFirmwareSignature``; nothing is installed;
4. verify the package (:func:`stationd.firmware.package.verify_package`) against the
   station's chargePointModel: a package for another model → DataTransfer ``MachineMismatch``
   (if EnabledDataTransfer lists it), then ``InstallationFailed`` (*signed*:
   ``InstallVerificationFailed``); a corrupted, unsafe or too large one → the same status.
   The running version stays;
5. *signed*: ``InstallScheduled`` and a wait while ``installDateTime`` is in the future;
6. wait until no connector has an open session — sessions always end on their own, the
   station never ends one to install (the download itself may run during charging);
7. ``Installing`` → the system edge's ``install_firmware(package, version)`` (or
   ``InstallationFailed``); the installed version is kept (station_meta) and is the
   FirmwareVersion key from now on, so the next BootNotification reports it. A
   SecurityEventNotification ``FirmwareUpdated`` is queued;
8. plain: ``Installed``, then the system edge's ``reboot(reason)`` — after sessions that began
   during the installation have ended too. *signed*: ``InstallRebooting`` before that reboot,
   and ``Installed`` once the station runs again (the job waits in the phase ``rebooting``).

The request and its progress (phase, download attempts) are kept in station_meta, so a
restart of the daemon (a power cut) continues where it stopped: the wait for retrieveDate
goes on, a download resumes, a downloaded package is checked again (signature included) and
installed.

A second request replaces a pending update that has not started installing (its wait or
download stops, its files are deleted; SignedUpdateFirmware answers ``AcceptedCanceled``). One
that arrives while a package is installing (or a signed one waits for its reboot) waits and
starts once that has ended (after the reboot when it succeeded).

While the backend is unreachable the latest status is kept and sent once it is back
(:mod:`.notifications`: the current state, not the history).

``client.firmware_status`` follows the notifications as FirmwareStatusNotification names them
(what a TriggerMessage reports), :meth:`FirmwareUpdater.signed_status` as a
SignedFirmwareStatusNotification (ExtendedTriggerMessage); after the end of an update they are
``Idle`` again (only a trigger ever sends Idle).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .. import __version__, logs
from ..core.events import SessionEnded
from ..transfer import DEFAULT_MAX_BYTES, TransferError, download, redact
from ..transfer.urls import parse as parse_url
from .job import (
    BUSY,
    DOWNLOADED,
    DOWNLOADING,
    INSTALLING,
    REBOOTING,
    WAITING,
    SignedRequest,
    UpdateJob,
)
from .notifications import StatusNotifications
from .package import WRONG_MODEL, PackageError, read_manifest, verify_package
from .signature import SignatureRefused, verify_signature

log = logging.getLogger("stationd.firmware")

UPDATE_META = "firmware_update"  # {"job": {...} | None, "next": {...} | None, "report": {...} | None}
INSTALLED_META = "firmware_installed"  # {"version": "1.2.0", "installed_at": "…Z"}
DEFAULT_RETRIES = 3  # when the request has no retries: 4 attempts in all
DEFAULT_RETRY_INTERVAL_S = 60
TRANSFER_TIMEOUT_S = 60.0
MAX_NAP_S = 60.0  # a wait for retrieveDate / installDateTime looks at the clock at least this often
SESSION_POLL_S = 1.0
FLUSH_S = 10.0  # how long Installing waits for the ended transactions' messages to be delivered

Send = Callable[[str, dict], Awaitable[Any]]
CaFile = Path | None | Callable[[], Path | None]

__all__ = ["INSTALLED_META", "UPDATE_META", "FirmwareUpdater", "SignedRequest", "UpdateJob"]


class FirmwareUpdater:
    def __init__(self, *, store, core, meta, system, directory: Path, send: Send,
                 on_status: Callable[[str], None], security_event: Callable[[str, str], None],
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep, ca_file: CaFile = None,
                 transfer_timeout_s: float = TRANSFER_TIMEOUT_S, max_bytes: int = DEFAULT_MAX_BYTES,
                 delivered: Callable[[], Awaitable[None]] | None = None):
        self.store, self.core, self.meta, self.system = store, core, meta, system
        self._delivered = delivered  # returns once queued transaction messages went out (or cannot now)
        self.directory = Path(directory)
        self._send, self._security_event = send, security_event
        self.statuses = StatusNotifications(send, on_status, lambda: self._save())
        self.clock, self._sleep = clock, sleep
        self.ca_file = ca_file  # the TLS trust file, or a function giving the current one
        self.transfer_timeout_s, self.max_bytes = transfer_timeout_s, max_bytes
        self._job: UpdateJob | None = None
        self._next: UpdateJob | None = None  # arrived while a package was installing
        self._awaiting_reboot: UpdateJob | None = None  # a signed job that asked for the reboot in this run
        self._wake = asyncio.Event()
        self._restored = False
        installed = meta.get(INSTALLED_META) or {}
        self._installed_version: str | None = installed.get("version") if isinstance(installed, dict) else None
        store.provide("FirmwareVersion", self.firmware_version)

    @classmethod
    def for_client(cls, client) -> FirmwareUpdater:
        """The updater of an OcppClient: its store, core, system edge, clock, connection and
        the CertificateStore's trust file for TLS downloads."""

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
                   security_event=client.security_event, clock=client.clock, ca_file=client.certificates.trust_file,
                   delivered=delivered)

    # ---- what others ask ----------------------------------------------------------------

    def firmware_version(self) -> str:
        """The FirmwareVersion key: the version last installed by an update, else the version
        of the running stationd."""
        return self._installed_version or __version__

    @property
    def pending(self) -> UpdateJob | None:
        return self._job

    def replaces_pending(self) -> bool:
        """Whether a request now would cancel an update that has not started installing
        (SignedUpdateFirmware answers AcceptedCanceled)."""
        self._restore()
        return self._next is not None or (self._job is not None and self._job.phase not in BUSY)

    def signed_status(self) -> dict:
        """The SignedFirmwareStatusNotification of the update under way (ExtendedTriggerMessage):
        its latest status, with the requestId of a signed update; ``Idle`` when none runs."""
        self._restore()
        return self.statuses.signed_status()

    def submit(self, location: str, retrieve_date: datetime, retries: int | None = None,
               retry_interval: float | None = None, *, signed: SignedRequest | None = None) -> UpdateJob:
        """A new request, already checked by the OCPP handler (a supported scheme, no negative
        retries or interval; a signed one's certificate). Kept in station_meta before this returns."""
        job = UpdateJob(uuid.uuid4().hex[:16], location, _utc(retrieve_date).isoformat(),
                        DEFAULT_RETRIES if retries is None else int(retries),
                        DEFAULT_RETRY_INTERVAL_S if retry_interval is None else float(retry_interval), signed=signed)
        self._restore()
        what = "SignedUpdateFirmware" if signed else "UpdateFirmware"
        if self._job is not None and self._job.phase in BUSY:
            log.info("%s of %s arrived while a package is installing; it starts once that is done", what,
                     redact(location))
            self._next = job
        else:
            if self._job is not None:
                log.info("%s of %s replaces the pending update of %s (it was %s)", what, redact(location),
                         redact(self._job.location), self._job.phase)
            self._job = job
        self._save()
        self._wake.set()
        log.info("%s: %s from %s, %d retries %g s apart", what, _when(job.retrieve_at), redact(location),
                 job.retries, job.retry_interval)
        return job

    def install_local(self, package: Path, name: str) -> UpdateJob:
        """A package already on the station (the WebUI's upload, ``name`` its file name): moved
        into the update directory and taken on from ``downloaded`` like a downloaded plain
        update — verified, installed once no session is open, then the reboot — with its status
        notifications. Replaces a pending update that has not started installing; RuntimeError
        (nothing moved) while one installs."""
        self._restore()
        if self._job is not None and self._job.phase in BUSY:
            raise RuntimeError("an update is being installed; upload again once it has ended")
        job = UpdateJob(uuid.uuid4().hex[:16], f"local:{name}", _utc(self.clock()).isoformat(), 0, 0.0,
                        phase=DOWNLOADED)
        self.directory.mkdir(parents=True, exist_ok=True)
        shutil.move(package, self.directory / job.package_name)
        if self._job is not None:
            log.info("the uploaded package %s replaces the pending update of %s (it was %s)", name,
                     redact(self._job.location), self._job.phase)
        self._job = job
        self._save()
        self._wake.set()
        log.info("firmware package %s uploaded on the station; installing it", name)
        return job

    async def send_unsent(self) -> None:
        """After (re)connecting: the latest status notification, if the backend has not had it."""
        self._restore()
        await self.statuses.deliver()

    # ---- the component ----------------------------------------------------------------------

    async def run(self) -> None:
        self._restore()
        remove_secrets = logs.add_secret_source(self._secrets)
        try:
            self._discard_stale_files()
            while True:
                job = self._job
                if job is None or job is self._awaiting_reboot:
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
                if not task.done() and self._job is not job and job.phase not in BUSY:
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
            if job.phase == REBOOTING:  # installed: Installed follows the next start
                self._awaiting_reboot = job
                return
            await self._fail(job, "DownloadFailed" if job.phase in (WAITING, DOWNLOADING) else "InstallationFailed")

    async def _steps(self, job: UpdateJob) -> None:
        package = self.directory / job.package_name
        if job.phase == REBOOTING:  # this start follows the reboot that the signed update asked for
            log.info("firmware %s runs after the reboot", self.firmware_version())
            self._finish(job)
            await self.statuses.tell(job, "Installed", final=True)
            return
        if job.phase == WAITING:
            if job.signed and job.retrieve_at > self.clock():
                await self.statuses.tell(job, "DownloadScheduled")
            await self._wait_until(job.retrieve_at, "retrieveDate")
            self._advance(job, DOWNLOADING)
        if job.phase == DOWNLOADING:
            await self.statuses.tell(job, "Downloading")
            if not await self._download(job, package):
                await self._fail(job, "DownloadFailed")
                return
            self._advance(job, DOWNLOADED)
            await self.statuses.tell(job, "Downloaded")
        if job.signed:
            if not await self._signature_verified(job.signed, package):
                self._security_event("InvalidFirmwareSignature", f"firmware from {redact(job.location)}: "
                                                                 "the signature does not verify")
                await self._fail(job, "InvalidSignature")
                return
            await self.statuses.tell(job, "SignatureVerified")
        version = await self._verify(package)
        if version is None:
            await self._fail(job, "InstallVerificationFailed")  # plain: InstallationFailed
            return
        install_at = job.signed.install_at if job.signed else None
        if install_at is not None and install_at > self.clock():
            await self.statuses.tell(job, "InstallScheduled")
            await self._wait_until(install_at, "installDateTime")
        await self._until_no_session("installing")
        self._advance(job, INSTALLING)
        await self.statuses.tell(job, "Installing")
        if not await self._install(package, version):
            await self._fail(job, "InstallationFailed")
            return
        self._installed_version = version
        self.meta.set(INSTALLED_META, {"version": version, "installed_at": _utc(self.clock()).isoformat()})
        self._security_event("FirmwareUpdated", f"firmware {version} installed")
        if job.signed is None:
            self._finish(job)
            await self.statuses.tell(job, "Installed")
        else:
            self._discard_files(job)
            self._advance(job, REBOOTING)
        await self._until_no_session("the reboot")
        if job.signed is not None:
            await self.statuses.tell(job, "InstallRebooting")
            self._awaiting_reboot = job
        log.info("firmware %s installed; rebooting", version)
        await self.system.reboot(f"firmware {version} installed")

    async def _fail(self, job: UpdateJob, status: str) -> None:
        self._finish(job)
        await self.statuses.tell(job, status, final=True)

    # ---- the steps ----------------------------------------------------------------------------

    async def _wait_until(self, moment: datetime, what: str) -> None:
        if moment > self.clock():
            log.info("firmware update: waiting until %s %s", what, _when(moment))
        while (remaining := (moment - self.clock()).total_seconds()) > 0:
            await self._sleep(min(remaining, MAX_NAP_S))

    async def _download(self, job: UpdateJob, package: Path) -> bool:
        attempts = 1 + max(0, job.retries)
        while True:
            job.attempts += 1
            self._save()
            try:
                await download(job.location, package, timeout_s=self.transfer_timeout_s, resume=True,
                               ca_file=self.ca_file() if callable(self.ca_file) else self.ca_file,
                               max_bytes=self.max_bytes)
                return True
            except TransferError as problem:
                if not problem.retry or job.attempts >= attempts:
                    log.warning("firmware download of %s failed after %d attempt(s): %s", redact(job.location),
                                job.attempts, problem.reason)
                    return False
                log.warning("firmware download attempt %d of %d failed (%s); next attempt in %g s",
                            job.attempts, attempts, problem.reason, job.retry_interval)
            await self._sleep(job.retry_interval)

    async def _signature_verified(self, signed: SignedRequest, package: Path) -> bool:
        try:
            await asyncio.to_thread(verify_signature, package, signed.signature, signed.signing_certificate)
        except SignatureRefused as problem:
            log.warning("firmware signature refused: %s", problem)
            return False
        except OSError as problem:
            log.warning("firmware package cannot be read: %s", problem)
            return False
        log.info("firmware signature verified")
        return True

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
                                    "next": asdict(self._next) if self._next else None,
                                    "report": self.statuses.report})

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
        self.statuses.restore(saved.get("report"), self._job)
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
