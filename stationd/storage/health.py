"""Can the data directory take records? Asked by the core while the station runs (no new
session on a full or read-only disk) and by the daemon when its start fails (wait for the
storage instead of exiting into a systemd restart loop)."""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path

MIN_FREE_BYTES = 512 * 1024  # below this the data directory counts as full: no new session
PROBE_NAME = ".stationd-write-probe"
PROBE_BYTES = 4096

# What the operating system and SQLite say when the disk, not the program, is at fault.
STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO})
STORAGE_SQLITE_ERRORS = ("SQLITE_FULL", "SQLITE_READONLY", "SQLITE_IOERR")


def storage_problem(directory: str | os.PathLike[str]) -> str | None:
    """Why the data directory cannot take new records (read-only, nearly full), or None."""
    stat, problem = _file_system(directory)
    if stat is None or problem is not None:
        return problem
    free = stat.f_bavail * stat.f_frsize
    if free < MIN_FREE_BYTES:
        return f"{directory} is full ({free // 1024} KiB free)"
    return None


def write_problem(directory: str | os.PathLike[str]) -> str | None:
    """Why nothing can be written in the data directory, or None: a small file is written,
    synced and removed again (free space alone does not show a file system gone bad)."""
    directory = Path(directory)
    if not directory.exists():
        directory = directory.parent  # not made yet: its parent must take it
    _, problem = _file_system(directory)
    if problem is not None:
        return problem
    probe = directory / PROBE_NAME
    try:
        descriptor = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(descriptor, b"\0" * PROBE_BYTES)
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
    except OSError as exc:
        reason = "full" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else exc.strerror or str(exc)
        return f"cannot write in {directory}: {reason}"
    finally:
        try:
            probe.unlink()
        except OSError:
            pass
    return None


def _file_system(directory: str | os.PathLike[str]) -> tuple[os.statvfs_result | None, str | None]:
    """The directory's file system, and why it takes nothing at all (unreadable, read-only)."""
    try:
        stat = os.statvfs(directory)
    except OSError as exc:
        return None, f"cannot check {directory}: {exc.strerror or exc}"
    if stat.f_flag & os.ST_RDONLY:
        return stat, f"{directory} is on a read-only file system"
    return stat, None


def is_storage_error(error: BaseException) -> bool:
    """True when ``error`` (or what caused it) is the disk refusing: full, read-only, I/O error."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in STORAGE_ERRNOS:
            return True
        if isinstance(current, sqlite3.Error) and getattr(current, "sqlite_errorname", "").startswith(
                STORAGE_SQLITE_ERRORS):
            return True
        current = current.__cause__ or current.__context__
    return False
