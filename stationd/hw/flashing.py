"""Flash Firmware: a new application image into the EVSE controllers (SPEC.md §9, Station > Components).

The image file (docs/evse-protocol.md §11.1) is a 32-byte header — magic, version, size and CRC-32
of the image — followed by the image itself. The station sends the image through the
controller protocol (BootBegin, BootChunk …, BootCommit, §11) and leaves the whole-image check to
the controller's bootloader: it verifies what it actually wrote (size, CRC-32, version rule)
before it switches, so a corrupted file is refused there and the running firmware stays.

    flasher = ControllerFlasher(core, hardware.drivers)       # the daemon builds one: Station.flasher
    flasher.subscribe(lambda p: print(p.percent, p.state, p.detail))
    report = await flasher.flash(Path("controller.img"))      # every controller; connector_id=1: one
    report.ok, report.results[0].version_after

Rules:

* One flash at a time (a second request is refused with FlashRefused while one runs).
* A request is refused (FlashRefused, nothing changed) when the image file is invalid, a
  connector is unknown or its controller is not connected, or a session is open on a connector
  to be flashed — unless ``force=True``: then those sessions end first with StopTransaction
  reason ``Other`` (none of OCPP's reasons names a maintenance stop).
* While the request runs, every connector to be flashed is held at 0 A (limit source
  "firmware update"): a vehicle that plugs in meanwhile waits (SuspendedEVSE) and charges after.
* Per controller: wait for the contactor to open, BootBegin, the chunks in order (each one
  only after the BootStatus of the previous; CHUNK_CRC resends, OFFSET_MISMATCH resumes where
  the controller says), BootCommit (the bootloader's verification), then the controller
  restarts (a Reset HARD if it does not by itself) and its Hello must report the new version.
* A refusal by the bootloader or a lost link ends that controller's update with BootAbort
  (repeated until the link is back, at most ``reconnect_timeout``): the old firmware keeps
  running. The driver also sends BootAbort whenever it (re)connects, so a partial image left by a
  link that never came back, or by a station restart, never keeps the controller busy.
  When flashing every controller, the first failure stops the rest (same image, same result).
* Progress (``FlashProgress``: state, percent of the request, connector percent, detail) goes to
  every subscriber and stays readable as ``flasher.progress``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from .controller_driver import ControllerDriver
from .evse_protocol import (
    MAX_CHUNK_SIZE,
    BootAbort,
    BootBegin,
    BootChunk,
    BootCommit,
    BootError,
    BootState,
    BootStatus,
    Hello,
    LinkError,
    RequestHello,
    Reset,
    ResetKind,
    crc32,
)

log = logging.getLogger("stationd.hw.flashing")

Version = tuple[int, int, int]

#: Image file header (little-endian): magic, format, header size, version (3 × u16), image size,
#: image CRC-32, 8 reserved bytes (0), CRC-32 of the 28 bytes before it.
IMAGE_MAGIC = b"SCFW"
IMAGE_FORMAT = 1
_HEADER = struct.Struct("<4sBB3HII8s")
HEADER_SIZE = _HEADER.size + 4
assert HEADER_SIZE == 32
MAX_IMAGE_SIZE = 16 * 1024 * 1024  # far above any controller's slot; a bigger file is no image

LIMIT_SOURCE = "firmware update"  # the core limit that holds the connectors at 0 A meanwhile
STOP_REASON = "Other"  # StopTransaction reason of a session ended by force=True

# States of FlashProgress.state
PREPARING, STOPPING, TRANSFERRING, VERIFYING, RESTARTING, DONE, FAILED = (
    "preparing", "stopping sessions", "transferring", "verifying", "restarting", "done", "failed")
# Outcomes of ConnectorResult.outcome
UPDATED, NOT_UPDATED, SKIPPED = "updated", "failed", "skipped"


class ImageError(ValueError):
    """The file is not a valid controller image (the message says what is wrong)."""


class FlashRefused(Exception):
    """The request was refused before anything was sent or changed."""


class _Failed(Exception):
    """One controller's update failed; the message is for people."""


def _version_text(version: Version | None) -> str:
    return "?" if version is None else ".".join(str(part) for part in version)


@dataclass(frozen=True)
class ControllerImage:
    """A controller application image with the version its bootloader checks."""

    version: Version
    crc32: int  # CRC-32 the header states for the image (the bootloader verifies it)
    data: bytes

    @property
    def size(self) -> int:
        return len(self.data)

    @classmethod
    def parse(cls, blob: bytes) -> ControllerImage:
        """Check the header of an image file; ImageError says what is wrong. The image's CRC-32
        is not checked here: that is the bootloader's verification (§11, BootCommit)."""
        blob = bytes(blob)
        if len(blob) < HEADER_SIZE:
            raise ImageError(f"not a controller image: {len(blob)} bytes, the header alone is {HEADER_SIZE}")
        magic, fmt, header_size, major, minor, patch, size, image_crc, reserved = _HEADER.unpack_from(blob)
        if magic != IMAGE_MAGIC:
            raise ImageError(f"not a controller image (magic {magic!r}, expected {IMAGE_MAGIC!r})")
        if int.from_bytes(blob[_HEADER.size:HEADER_SIZE], "little") != crc32(blob[:_HEADER.size]):
            raise ImageError("the image header is damaged (header CRC-32 mismatch)")
        if fmt != IMAGE_FORMAT or header_size != HEADER_SIZE or any(reserved):
            raise ImageError(f"unknown image format {fmt} (header {header_size} bytes); this station reads "
                             f"format {IMAGE_FORMAT}")
        if size == 0 or size > MAX_IMAGE_SIZE:
            raise ImageError(f"image size {size} bytes is out of range (1 to {MAX_IMAGE_SIZE})")
        if len(blob) != HEADER_SIZE + size:
            raise ImageError(f"the file has {len(blob) - HEADER_SIZE} image bytes, the header says {size} "
                             "(truncated or padded)")
        return cls((major, minor, patch), image_crc, blob[HEADER_SIZE:])

    @classmethod
    def load(cls, path: str | Path) -> ControllerImage:
        path = Path(path)
        try:
            if path.stat().st_size > HEADER_SIZE + MAX_IMAGE_SIZE:
                raise ImageError(f"{path}: too large for a controller image")
            return cls.parse(path.read_bytes())
        except OSError as exc:
            raise ImageError(f"{path}: cannot read it: {exc.strerror or exc}") from None


def build_image(version: Version, data: bytes) -> bytes:
    """The image file for an application image ``data`` of firmware ``version`` (the format's
    reference writer; firmware_sim.controller.make_controller_image uses it)."""
    if not data or len(data) > MAX_IMAGE_SIZE:
        raise ValueError(f"image size must be 1 to {MAX_IMAGE_SIZE} bytes")
    if len(version) != 3 or not all(0 <= part <= 0xFFFF for part in version):
        raise ValueError(f"version must be three numbers 0-65535, got {version!r}")
    header = _HEADER.pack(IMAGE_MAGIC, IMAGE_FORMAT, HEADER_SIZE, *version, len(data), crc32(data), bytes(8))
    return header + crc32(header).to_bytes(4, "little") + bytes(data)


@dataclass(frozen=True)
class FlashProgress:
    """Where a flash request is, for the WebUI's progress bar."""

    connector_id: int
    state: str  # preparing | stopping sessions | transferring | verifying | restarting | done | failed
    percent: int  # 0-100 of the whole request (all its connectors)
    connector_percent: int  # 0-100 of this connector
    detail: str = ""


@dataclass(frozen=True)
class ConnectorResult:
    connector_id: int
    outcome: str  # updated | failed | skipped
    version_before: Version | None
    version_after: Version | None  # what the controller runs now (None: not known, link down)
    error: str = ""


@dataclass(frozen=True)
class FlashReport:
    version: Version  # of the image
    results: tuple[ConnectorResult, ...]

    @property
    def ok(self) -> bool:
        return all(r.outcome == UPDATED for r in self.results)


ProgressListener = Callable[[FlashProgress], None]


class ControllerFlasher:
    def __init__(self, core, drivers: Mapping[int, ControllerDriver], *, chunk_size: int = MAX_CHUNK_SIZE,
                 answer_timeout: float = 3.0, begin_timeout: float = 15.0, commit_timeout: float = 10.0,
                 safe_timeout: float = 10.0, restart_timeout: float = 10.0, reconnect_timeout: float = 15.0,
                 max_resends: int = 3):
        if not 1 <= chunk_size <= MAX_CHUNK_SIZE:
            raise ValueError(f"chunk_size must be 1 to {MAX_CHUNK_SIZE}")
        self.core, self.drivers = core, drivers
        self.chunk_size, self.max_resends = chunk_size, max_resends
        self.answer_timeout, self.begin_timeout, self.commit_timeout = answer_timeout, begin_timeout, commit_timeout
        self.safe_timeout, self.restart_timeout, self.reconnect_timeout = (
            safe_timeout, restart_timeout, reconnect_timeout)
        self.progress: FlashProgress | None = None  # the latest, also after the request ended
        self.last_report: FlashReport | None = None
        self._listeners: list[ProgressListener] = []
        self._busy = False
        self._aborts: dict[int, asyncio.Task] = {}  # BootAbort retried after a link loss

    @property
    def busy(self) -> bool:
        return self._busy

    def subscribe(self, listener: ProgressListener) -> Callable[[], None]:
        """Call ``listener(progress)`` at every step; returns the unsubscribe function."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def versions(self) -> dict[int, Version | None]:
        """The firmware each controller reported in its latest Hello (None: not connected yet)."""
        return {cid: (d.hello.firmware_version if d.hello else None) for cid, d in sorted(self.drivers.items())}

    async def flash(self, image: ControllerImage | bytes | str | Path, connector_id: int | None = None, *,
                    force: bool = False, allow_downgrade: bool = False) -> FlashReport:
        """Flash ``image`` (a ControllerImage, the file's bytes or its path) into one controller
        or, with ``connector_id`` None, into every one. Raises FlashRefused when the request is
        refused as a whole; otherwise the report says per connector what happened."""
        if self._busy:
            raise FlashRefused("a firmware flash is already running; one at a time")
        try:
            if not isinstance(image, ControllerImage):
                image = ControllerImage.load(image) if isinstance(image, (str, Path)) else ControllerImage.parse(image)
        except ImageError as exc:
            raise FlashRefused(str(exc)) from None
        targets = sorted(self.drivers) if connector_id is None else [connector_id]
        self._check(targets, force)
        self._busy = True
        try:
            return await self._run(image, targets, force, allow_downgrade)
        finally:
            self._busy = False

    def _check(self, targets: list[int], force: bool) -> None:
        if not targets:
            raise FlashRefused("this station has no EVSE controllers")
        for cid in targets:
            driver = self.drivers.get(cid)
            if driver is None:
                raise FlashRefused(f"there is no connector {cid}; connectors: {', '.join(map(str, sorted(self.drivers)))}")
            if driver.hello is None:
                raise FlashRefused(f"connector {cid}: the controller is not connected")
            if self.core.connectors[cid].session is not None and not force:
                status = self.core.status(cid).status.value
                raise FlashRefused(f"connector {cid}: a session is in progress ({status}); "
                                   "flash with force to end it first")

    async def _run(self, image: ControllerImage, targets: list[int], force: bool, allow_downgrade: bool) -> FlashReport:
        total = len(targets)
        results: list[ConnectorResult] = []
        log.warning("flashing EVSE controller firmware %s (%d bytes) on connector %s%s", _version_text(image.version),
                    image.size, ", ".join(map(str, targets)), " (ending sessions)" if force else "")
        try:
            for cid in targets:  # no energy on these connectors until the request is over
                self.core.set_limit(cid, LIMIT_SOURCE, 0.0, "controller firmware update")
            for cid in targets:
                if self.core.connectors[cid].session is not None:
                    self._report(cid, STOPPING, 0, 0, total, "ending the session (reason Other)")
                    self.core.stop_session(cid, STOP_REASON)
            failed = False
            for index, cid in enumerate(targets):
                driver = self.drivers[cid]
                before = driver.hello.firmware_version if driver.hello else None
                if failed:
                    results.append(ConnectorResult(cid, SKIPPED, before, before, "not flashed: an earlier one failed"))
                    continue
                try:
                    after = await self._flash_one(driver, image, index, total, allow_downgrade)
                except _Failed as problem:
                    failed = True
                    now = driver.hello.firmware_version if driver.hello else None
                    results.append(ConnectorResult(cid, NOT_UPDATED, before, now, str(problem)))
                    self._report(cid, FAILED, index, 100, total, str(problem))
                    log.error("connector %d: controller firmware not updated: %s", cid, problem)
                    continue
                results.append(ConnectorResult(cid, UPDATED, before, after))
                log.warning("connector %d: controller firmware %s → %s", cid, _version_text(before),
                            _version_text(after))
            last = results[-1]
            if not failed:
                self._report(last.connector_id, DONE, total - 1, 100, total,
                             f"firmware {_version_text(image.version)} runs on connector "
                             f"{', '.join(str(r.connector_id) for r in results)}")
        finally:
            for cid in targets:
                self.core.set_limit(cid, LIMIT_SOURCE, None)
        self.last_report = FlashReport(image.version, tuple(results))
        return self.last_report

    # ---- one controller ----------------------------------------------------------------------

    async def _flash_one(self, driver: ControllerDriver, image: ControllerImage, index: int, total: int,
                         allow_downgrade: bool) -> Version:
        cid = driver.connector_id
        pending_abort = self._aborts.pop(cid, None)
        if pending_abort is not None:
            pending_abort.cancel()
        self._report(cid, PREPARING, index, 0, total, "waiting for the contactor to open")
        await self._until_safe(driver)
        try:
            await self._begin(driver, image, index, total, allow_downgrade)
            await self._transfer(driver, image, index, total)
            self._report(cid, VERIFYING, index, 92, total, "the controller verifies the image")
            before = driver.hello
            answer = await self._exchange(driver, BootCommit(), self.commit_timeout)
        except (LinkError, TimeoutError) as exc:
            reason = str(exc) or "no answer from the controller"
            raise _Failed(await self._abort(driver, f"link lost during the update ({reason})")) from None
        except _Failed as problem:
            raise _Failed(await self._abort(driver, str(problem))) from None
        except asyncio.CancelledError:  # the request itself was cancelled: do not leave it RECEIVING
            self._abort_in_background(driver)
            raise
        if answer.state is not BootState.COMPLETE:
            raise _Failed(await self._abort(driver, f"the controller refused the image: {_boot_error(answer)}"))
        self._report(cid, RESTARTING, index, 96, total, "the controller restarts into the new firmware")
        hello = await self._new_hello(driver, before, image.version)
        if hello is None or hello.firmware_version != image.version:
            running = _version_text(hello.firmware_version) if hello else "unknown"
            raise _Failed(f"the controller did not come back with firmware {_version_text(image.version)} "
                          f"(it reports {running})")
        return hello.firmware_version

    async def _until_safe(self, driver: ControllerDriver) -> None:
        """The bootloader refuses while the contactor is closed or commanded (BUSY)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.safe_timeout
        while True:
            status = driver.last_status
            if status is not None and not status.contactor_closed and not status.contactor_commanded:
                return
            if loop.time() >= deadline:
                raise _Failed("the contactor did not open; nothing was sent")
            await asyncio.sleep(0.05)

    async def _begin(self, driver: ControllerDriver, image: ControllerImage, index: int, total: int,
                     allow_downgrade: bool) -> None:
        begin = BootBegin(image.size, image.crc32, image.version, allow_downgrade)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.safe_timeout
        while True:
            answer = await self._exchange(driver, begin, self.begin_timeout)
            if answer.state is BootState.RECEIVING and answer.error is BootError.NONE:
                self._report(driver.connector_id, TRANSFERRING, index, 2, total, f"0 of {image.size} bytes")
                return
            if answer.error is BootError.BUSY and loop.time() < deadline:
                await asyncio.sleep(0.5)  # the contactor is still opening
                continue
            hint = " (a lower version needs allow_downgrade)" if answer.error is BootError.DOWNGRADE else ""
            raise _Failed(f"the controller refused the update: {_boot_error(answer)}{hint}")

    async def _transfer(self, driver: ControllerDriver, image: ControllerImage, index: int, total: int) -> None:
        offset, resends, reported = 0, 0, -1
        while offset < image.size:
            data = image.data[offset:offset + self.chunk_size]
            chunk = BootChunk(offset, crc32(data), data)
            try:
                answer = await self._exchange(driver, chunk, self.answer_timeout)
            except TimeoutError:  # acknowledged but not answered: the same chunk again is answered again
                answer = None
            if answer is not None and answer.error is BootError.NONE and answer.offset == offset + len(data):
                offset, resends = answer.offset, 0
                percent = 2 + 88 * offset // image.size
                if percent != reported:
                    reported = percent
                    self._report(driver.connector_id, TRANSFERRING, index, percent, total,
                                 f"{offset} of {image.size} bytes")
                continue
            resends += 1
            if resends > self.max_resends:
                if answer is None:
                    raise TimeoutError(f"no answer to the chunk at offset {offset}")
                raise _Failed(f"the controller keeps refusing the chunk at offset {offset}: {_boot_error(answer)}")
            if answer is not None and answer.error is BootError.OFFSET_MISMATCH and 0 <= answer.offset <= image.size:
                log.info("connector %d: the controller expects offset %d, not %d; resuming there",
                         driver.connector_id, answer.offset, offset)
                offset = answer.offset
            elif answer is not None and answer.error not in (BootError.NONE, BootError.CHUNK_CRC):
                raise _Failed(f"the controller stopped the update: {_boot_error(answer)}")

    async def _abort(self, driver: ControllerDriver, why: str) -> str:
        """Discard the partial image (BootAbort until it is answered, at most reconnect_timeout);
        the text says what happened and what runs now."""
        log.warning("connector %d: firmware update aborted: %s", driver.connector_id, why)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.reconnect_timeout
        while True:
            try:
                answer = await self._exchange(driver, BootAbort(), self.answer_timeout)
                if answer.state is BootState.IDLE:
                    hello = await self._fresh_hello(driver)
                    running = _version_text(hello.firmware_version) if hello else "unknown"
                    return f"{why}; update aborted, firmware {running} keeps running"
            except (LinkError, TimeoutError):
                pass
            if loop.time() >= deadline:
                self._abort_in_background(driver)
                return (f"{why}; the controller does not answer: the station sends BootAbort until it does, "
                        "and its old firmware keeps running")
            await asyncio.sleep(1.0)

    def _abort_in_background(self, driver: ControllerDriver) -> None:
        """Keep sending BootAbort until the controller answers (a link back before the driver
        noticed it was gone); a new flash of the connector ends this (its BootBegin discards)."""
        cid = driver.connector_id

        async def keep_trying() -> None:
            while True:
                await asyncio.sleep(1.0)
                try:
                    await self._exchange(driver, BootAbort(), self.answer_timeout)
                except (LinkError, TimeoutError):
                    continue
                log.info("connector %d: the controller answered again; the partial image is discarded", cid)
                return

        previous = self._aborts.get(cid)
        if previous is not None:
            previous.cancel()
        task = asyncio.get_running_loop().create_task(keep_trying(), name=f"flash-abort-{cid}")
        self._aborts[cid] = task
        task.add_done_callback(lambda done: self._aborts.pop(cid) if self._aborts.get(cid) is done else None)

    async def _exchange(self, driver: ControllerDriver, message, timeout: float) -> BootStatus:
        """Send one Boot* message and return the BootStatus answering it. BootStatus carries no
        reference to what it answers; IDLE without an error answers only BootAbort, so such a
        late answer (the driver's BootAbort at connect) is not taken for another's, and the
        other way round."""
        _drain(driver.boot_status)
        await driver.send(message)
        abort = isinstance(message, BootAbort)
        async with asyncio.timeout(timeout):
            while True:
                answer = await driver.boot_status.get()
                if abort == (answer.state is BootState.IDLE and answer.error is BootError.NONE):
                    return answer
                log.debug("connector %d: %s is no answer to %s; ignored", driver.connector_id, answer,
                          type(message).__name__)

    async def _new_hello(self, driver: ControllerDriver, before: Hello | None, version: Version) -> Hello | None:
        """The Hello of the restarted controller: it restarts by itself after COMPLETE (§11);
        halfway through ``restart_timeout`` without one, ask (RequestHello), then Reset HARD."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        nudges = [(0.4, RequestHello()), (0.6, Reset(ResetKind.HARD))]
        while True:
            hello = driver.hello
            if hello is not None and hello is not before and hello.firmware_version == version:
                return hello
            elapsed = (loop.time() - start) / self.restart_timeout
            if elapsed >= 1.0:
                return hello
            if nudges and elapsed >= nudges[0][0]:
                _, message = nudges.pop(0)
                log.info("connector %d: no Hello with the new firmware yet; sending %s", driver.connector_id,
                         type(message).__name__)
                with contextlib.suppress(LinkError):
                    await driver.send(message)
            await asyncio.sleep(0.05)

    async def _fresh_hello(self, driver: ControllerDriver) -> Hello | None:
        before = driver.hello
        with contextlib.suppress(LinkError):
            await driver.send(RequestHello())
            async with asyncio.timeout(self.answer_timeout):
                while driver.hello is before:
                    await asyncio.sleep(0.02)
        return driver.hello

    # ---- progress ----------------------------------------------------------------------------

    def _report(self, cid: int, state: str, index: int, connector_percent: int, total: int, detail: str) -> None:
        overall = (index * 100 + connector_percent) // total
        self.progress = FlashProgress(cid, state, overall, connector_percent, detail)
        for listener in list(self._listeners):
            try:
                listener(self.progress)
            except Exception:  # a broken progress bar must not break the flash
                log.exception("flash progress listener failed")


def _drain(queue: asyncio.Queue) -> None:
    while not queue.empty():
        queue.get_nowait()


def _boot_error(answer: BootStatus) -> str:
    return f"{answer.error.name} ({answer.error.doc})"
