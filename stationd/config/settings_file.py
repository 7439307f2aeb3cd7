"""The settings file: changed configuration values, persisted atomically with a good copy.

Layout in the data directory::

    settings.json       current values, with a SHA-256 of its own content
    settings.json.bak   the same content, written after settings.json (the last good copy)
    settings.lock       taken (flock) around every read-modify-write, so the CLI and the
                        daemon can change settings at the same time

Every write goes to a temporary file, is fsync'ed and renamed over the old one; the directory
is fsync'ed too. A file that is truncated, not JSON, or whose checksum does not match is
moved aside as ``settings.json.corrupt`` and the good copy is used, with a log line that says so.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

FORMAT = 1
log = logging.getLogger("stationd.config")


@dataclass
class Settings:
    values: dict[str, str] = field(default_factory=dict)  # storage name -> canonical text
    installation: dict[str, str] = field(default_factory=dict)  # config file values (secrets: digest)
    saved_at: str = ""


class CorruptSettings(Exception):
    pass


class SettingsFile:
    def __init__(self, path: Path):
        self.path = path
        self.backup = path.with_name(path.name + ".bak")
        self.corrupt = path.with_name(path.name + ".corrupt")
        self._lock_path = path.with_name("settings.lock")

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Exclusive lock across processes for a read-modify-write."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def signature(self) -> tuple[int, int, int] | None:
        """Identifies the file's current version cheaply (inode, mtime, size)."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def load(self) -> Settings:
        """Read the settings; fall back to the good copy when the file is damaged."""
        if not self.path.exists() and not self.backup.exists():
            return Settings()
        try:
            return _read(self.path)
        except CorruptSettings as problem:
            return self._recover(str(problem))

    def _recover(self, problem: str) -> Settings:
        if self.path.exists():
            os.replace(self.path, self.corrupt)
            where = f"; the damaged file was kept as {self.corrupt.name}"
        else:
            where = ""
        try:
            settings = _read(self.backup)
        except CorruptSettings as backup_problem:
            log.error(
                "settings file %s is unusable (%s) and so is its good copy (%s); "
                "starting from the default configuration%s", self.path, problem, backup_problem, where,
            )
            return Settings()
        log.error(
            "settings file %s is unusable (%s); using the last good copy %s saved at %s%s",
            self.path, problem, self.backup.name, settings.saved_at or "an unknown time", where,
        )
        self.save(settings)
        return settings

    def save(self, settings: Settings) -> None:
        settings.saved_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        body = {"format": FORMAT, "saved_at": settings.saved_at, "values": settings.values,
                "installation": settings.installation}
        document = dict(body, sha256=_digest(body))
        data = (json.dumps(document, indent=1, sort_keys=True) + "\n").encode()
        _write_atomically(self.path, data)
        _write_atomically(self.backup, data)


def _digest(body: dict) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _read(path: Path) -> Settings:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise CorruptSettings("file is missing") from None
    except OSError as exc:
        raise CorruptSettings(f"cannot read it: {exc.strerror}") from None
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError):
        raise CorruptSettings(f"not valid JSON, {len(raw)} bytes; truncated?") from None
    if not isinstance(document, dict):
        raise CorruptSettings("not a settings document")
    if document.get("format") != FORMAT:
        raise CorruptSettings(f"unknown format {document.get('format')!r}")
    stated = document.pop("sha256", None)
    if stated != _digest(document):
        raise CorruptSettings("checksum mismatch")
    values, installation = document.get("values"), document.get("installation", {})
    if not (_str_map(values) and _str_map(installation)):
        raise CorruptSettings("values are not a map of texts")
    return Settings(values=values, installation=installation, saved_at=str(document.get("saved_at", "")))


def _str_map(value: object) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
