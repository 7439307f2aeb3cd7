"""download() and upload(): one call per transfer, whatever the scheme."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path

from . import ftp, http
from .errors import TransferError
from .files import PartFile
from .urls import parse

log = logging.getLogger("stationd.transfer")

DEFAULT_MAX_BYTES = 512 * 1024 * 1024


async def download(url: str, dest: Path, *, timeout_s: float = 60.0, resume: bool = True,
                   ca_file: Path | None = None, progress: Callable[[int, int | None], None] | None = None,
                   max_bytes: int = DEFAULT_MAX_BYTES) -> Path:
    """Fetch ``url`` (ftp, ftps, http, https) into ``dest``; returns ``dest``.

    The bytes go to ``<dest>.part`` first, which is renamed to ``dest`` once complete. With
    ``resume`` a ``.part`` left by an earlier attempt is continued (HTTP Range, FTP REST) when
    the server allows it, else the file starts over; the ``.part`` stays after a failure for the
    next attempt. ``timeout_s`` bounds every wait for the server (connecting, each read), not
    the whole transfer. ``progress(bytes_so_far, total_or_None)`` is called in the event loop.
    A file larger than ``max_bytes`` is refused. Raises TransferError."""
    target = parse(url)
    dest = Path(dest)
    loop = asyncio.get_running_loop()
    report = progress
    if progress is not None and target.scheme in ("ftp", "ftps"):  # called from the worker thread
        def report(received: int, total: int | None) -> None:
            loop.call_soon_threadsafe(progress, received, total)
    part = PartFile(dest, resume=resume, max_bytes=max_bytes, progress=report)
    resumed_at = part.size
    started = time.monotonic()
    log.info("download of %s to %s starting%s", target.shown, dest,
             f" (resuming after {resumed_at} bytes)" if resumed_at else "")
    try:
        if target.scheme in ("http", "https"):
            await http.download(target, part, timeout_s=timeout_s, ca_file=ca_file)
        else:
            await ftp.download(target, part, timeout_s=timeout_s, ca_file=ca_file)
        part.finish()
    except TransferError as problem:
        part.close()
        if not problem.retry:
            part.discard()
        log.warning("download of %s failed: %s", target.shown, problem.reason)
        raise
    except OSError as problem:  # the station's own disk
        part.close()
        log.warning("download of %s failed: %s", target.shown, problem)
        raise TransferError(f"cannot write {dest}: {problem.strerror or problem}") from None
    except BaseException:
        part.close()
        raise
    log.info("download of %s done: %d bytes in %.1f s", target.shown, part.received, time.monotonic() - started)
    return dest


async def upload(url: str, source: Path, file_name: str, *, timeout_s: float = 60.0,
                 ca_file: Path | None = None) -> None:
    """Send ``source`` to the location ``url`` under ``file_name``: http(s) PUT to
    location + "/" + file_name (a multipart POST to the location when PUT answers 405),
    ftp(s) STOR into the location's directory. Returns only when the server confirmed the
    whole file (HTTP 2xx, FTP 226/250); raises TransferError."""
    target = parse(url)
    source = Path(source)
    if not file_name or "/" in file_name or file_name in (".", ".."):
        raise TransferError(f"the file name {file_name!r} is not usable", retry=False)
    started = time.monotonic()
    log.info("upload of %s to %s as %s starting", source, target.shown, file_name)
    try:
        if target.scheme in ("http", "https"):
            await http.upload(target, source, file_name, timeout_s=timeout_s, ca_file=ca_file)
        else:
            await ftp.upload(target, source, file_name, timeout_s=timeout_s, ca_file=ca_file)
    except TransferError as problem:
        log.warning("upload to %s failed: %s", target.shown, problem.reason)
        raise
    log.info("upload to %s done in %.1f s", target.shown, time.monotonic() - started)
