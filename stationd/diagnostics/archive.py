"""The diagnostics archive GetDiagnostics uploads (layout: docs/diagnostics.md).

``<SerialNumber>-<UTC YYYYmmddTHHMMSSZ>-diagnostics.tar.gz``, one directory of the same name
(without ``.tar.gz``) holding:

==================  =========================================================================
``manifest.json``   what is in the archive: station identity, time window, log source, each
                    file's size, line count, SHA-256 and whether older lines were left out
``logs.txt``        the daemon's log lines in [startTime, stopTime]
``ocpp-journal.txt``  the OCPP frames (both directions) in [startTime, stopTime]
``settings.json``   every configuration key; secret keys without their value (only "set")
``hardware.json``   connectors (status, faults, controller state and firmware, meter), station
==================  =========================================================================

Size-bounded: the newest :data:`LOG_BYTES` of log lines and :data:`JOURNAL_BYTES` of journal
lines in the window are kept (older ones are dropped and the manifest says so).

No secret leaves in it: settings carry no secret value, the journal and the log lines were
masked when they were written, and every file is passed through the log redaction once more
(with every form of every secret the station knows: plain, hex, base64, the Basic token) just
before it is written.

Building has two halves: :func:`take_snapshot` reads the store, the core and the OCPP client
(on the event loop), :func:`write_archive` reads logs and journal files and writes the archive
(in any thread). :func:`build_archive` does both; :func:`build_archive_async` runs the second
half in a worker thread.

Streamed, so memory does not grow with the archive: log lines and journal frames are read one
at a time, each line masked, encoded and written to a temporary file in ``dest_dir`` (the
manifest, which comes first in the tar, needs every file's size and SHA-256), and the tar
members are copied from those files in small blocks. A line is masked by itself, which gives
the same text as masking the whole file (no secret form and no URL password spans a newline).
Temporary disk space in ``dest_dir`` while building: the log lines kept (up to
:data:`LOG_BYTES`) plus every journal frame of the window (at most the journal files, about
10 MB), gone once the archive is written; journald's lines wait in a temporary file there too.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import logging
import re
import tarfile
import tempfile
from array import array
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .. import logs
from ..config.keys import REGISTRY
from ..config.registry import Registry
from ..ocpp_client.journal import JournalEntry, SecretMasker, secret_forms
from . import sections
from .log_sources import LogSource, NoLogs, default_log_source, stream_of, text_size

log = logging.getLogger("stationd.diagnostics")

ARCHIVE_SUFFIX = "-diagnostics.tar.gz"
COPY_CHUNK = 64 * 1024
FORMAT = "stationd-diagnostics/1"
LOG_BYTES = 8 * 1024 * 1024
JOURNAL_BYTES = 8 * 1024 * 1024
_UNSAFE_NAME_RE = re.compile(r"[^A-Za-z0-9._-]+")


def archive_name(serial_number: str, moment: datetime) -> str:
    """``<SerialNumber>-<UTC time YYYYmmddTHHMMSSZ>-diagnostics.tar.gz`` (characters a file
    name cannot carry safely become ``_``)."""
    serial = _UNSAFE_NAME_RE.sub("_", str(serial_number or "")).strip("._")[:64] or "station"
    return f"{serial}-{moment.astimezone(timezone.utc):%Y%m%dT%H%M%SZ}{ARCHIVE_SUFFIX}"


@dataclass
class Snapshot:
    """What the archive needs from the running station, read on the event loop."""

    name: str
    created: datetime
    identity: dict[str, Any]
    settings: Any
    hardware: Any
    ocpp: dict[str, Any]
    secrets: list[str]
    registry: Registry = field(default_factory=lambda: REGISTRY)
    journal: Any = None  # MessageJournal: its files are read in write_archive
    journal_entries: list[JournalEntry] | None = None  # a journal without files: its memory
    problems: list[str] = field(default_factory=list)


def take_snapshot(station: Any, *, now: datetime | None = None, file_name: str | None = None) -> Snapshot:
    """Read the station (on the event loop). ``station``: the daemon's Station, or anything with
    ``store`` and ``core`` (``hardware``, ``ocpp``, ``boot_id`` when there)."""
    store = station.store
    created = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    problems: list[str] = []

    def part(name: str, read, default):
        try:
            return read()
        except Exception as exc:  # noqa: BLE001 - the archive goes out with what could be read
            log.exception("diagnostics: could not collect %s", name)
            problems.append(f"{name}: {type(exc).__name__}: {exc}")
            return default

    ident = part("identity", lambda: sections.identity(store), {})
    client = getattr(station, "ocpp", None)
    journal = getattr(client, "journal", None)
    registered = part("secrets", lambda: list(logs._all_secrets()) + list(store.secret_values()), [])
    return Snapshot(
        name=file_name or archive_name(ident.get("serialNumber") or "", created),
        created=created,
        identity=ident,
        settings=part("settings", lambda: sections.settings(store), {"error": "not readable"}),
        hardware=part("hardware", lambda: sections.hardware(station), {"error": "not readable"}),
        ocpp=part("ocpp", lambda: sections.ocpp(client), {}),
        secrets=secret_forms(registered),
        registry=getattr(store, "registry", REGISTRY),
        journal=journal,
        journal_entries=journal.recent() if journal is not None and not journal.files() else None,
        problems=problems,
    )


def write_archive(snapshot: Snapshot, start: datetime | None, stop: datetime | None, dest_dir: Path, *,
                  log_source: LogSource | None = None, log_bytes: int = LOG_BYTES,
                  journal_bytes: int = JOURNAL_BYTES) -> Path:
    """Write the archive into ``dest_dir`` (atomically: a ``.part`` file renamed at the end)."""
    source = log_source if log_source is not None else NoLogs()
    stop = stop or snapshot.created
    masker = SecretMasker(snapshot.registry, secrets=lambda: snapshot.secrets, include_registered=False)
    problems = list(snapshot.problems)
    files: dict[str, dict[str, Any]] = {}
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryFile(dir=dest_dir, prefix=".logs-") as log_file, \
            tempfile.TemporaryFile(dir=dest_dir, prefix=".journal-") as journal_file:
        stream = stream_of(source, start, stop, log_bytes, spool_dir=dest_dir)
        log_part = _Part(log_file)
        log_part.write_lines((line.line() for line in stream), masker)
        if stream.problem:
            problems.append(f"logs: {stream.problem}")
        files["logs.txt"] = {"lines": log_part.lines, "truncated": stream.truncated, "source": source.description}

        journal_part, journal_truncated = _journal_part(snapshot, start, stop, journal_bytes, masker, journal_file)
        files["ocpp-journal.txt"] = {"lines": journal_part.lines, "truncated": journal_truncated}

        parts = {
            "logs.txt": log_part,
            "ocpp-journal.txt": journal_part,
            "settings.json": _Part.of(masker.redact(_json({"keys": snapshot.settings}))),
            "hardware.json": _Part.of(masker.redact(
                _json({**snapshot.hardware, "ocpp": snapshot.ocpp}) if isinstance(snapshot.hardware, dict)
                else _json(snapshot.hardware))),
        }
        for name, part in parts.items():
            files.setdefault(name, {}).update({"bytes": part.size, "sha256": part.sha256.hexdigest()})
        manifest = {
            "format": FORMAT,
            "fileName": snapshot.name,
            "created": _iso(snapshot.created),
            "station": snapshot.identity,
            "window": {"startTime": _iso(start) if start else None, "stopTime": _iso(stop)},
            "logSource": source.description,
            "files": files,
            "secrets": "removed: settings carry no secret value; journal and log lines are masked (***)",
            "problems": problems,
        }
        parts = {"manifest.json": _Part.of(masker.redact(_json(manifest)), encoding_errors="strict"), **parts}
        return _write_tar(dest_dir, snapshot.name, parts, snapshot.created)


def build_archive(station: Any, start: datetime | None, stop: datetime | None, dest_dir: Path, *,
                  log_source: LogSource | None = None, now: datetime | None = None, file_name: str | None = None,
                  log_bytes: int = LOG_BYTES, journal_bytes: int = JOURNAL_BYTES) -> Path:
    """The diagnostics archive of ``station`` for [start, stop] (None: open end; stop defaults
    to now), written into ``dest_dir``; returns its path. ``log_source``: where the log lines
    come from (default: :func:`default_log_source`)."""
    snapshot = take_snapshot(station, now=now, file_name=file_name)
    return write_archive(snapshot, start, stop, dest_dir, log_source=_source(log_source),
                         log_bytes=log_bytes, journal_bytes=journal_bytes)


async def build_archive_async(station: Any, start: datetime | None, stop: datetime | None, dest_dir: Path, *,
                              log_source: LogSource | None = None, now: datetime | None = None,
                              file_name: str | None = None, log_bytes: int = LOG_BYTES,
                              journal_bytes: int = JOURNAL_BYTES) -> Path:
    """:func:`build_archive` without blocking the event loop: reading logs and files,
    compressing and writing happen in a worker thread."""
    snapshot = take_snapshot(station, now=now, file_name=file_name)
    return await asyncio.to_thread(write_archive, snapshot, start, stop, dest_dir, log_source=_source(log_source),
                                   log_bytes=log_bytes, journal_bytes=journal_bytes)


def prune(dest_dir: Path, keep: int = 1) -> None:
    """Remove all but the newest ``keep`` archives (and leftover ``.part`` files) in ``dest_dir``."""
    directory = Path(dest_dir)
    if not directory.is_dir():
        return
    for part in directory.glob(f"*{ARCHIVE_SUFFIX}.part"):
        part.unlink(missing_ok=True)
    archives = sorted(directory.glob(f"*{ARCHIVE_SUFFIX}"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in archives[max(0, keep):]:
        old.unlink(missing_ok=True)


def _source(log_source: LogSource | None) -> LogSource:
    return log_source if log_source is not None else default_log_source()


class _Part:
    """One file of the archive: its bytes in ``file`` from ``offset`` on (``size`` of them),
    their SHA-256 and how many lines they hold."""

    def __init__(self, file: Any):
        self.file, self.offset, self.size, self.lines = file, 0, 0, 0
        self.sha256 = hashlib.sha256()

    @classmethod
    def of(cls, text: str, encoding_errors: str = "replace") -> _Part:
        """A small file (settings, hardware, manifest), in memory."""
        part = cls(io.BytesIO(text.encode("utf-8", encoding_errors)))
        part.size = len(part.file.getvalue())
        part.sha256.update(part.file.getvalue())
        return part

    def write_lines(self, lines: Iterable[str], masker: SecretMasker) -> None:
        """Each line masked, encoded and appended (with its newline)."""
        for line in lines:
            blob = _encoded(line, masker)
            self.file.write(blob)
            self.sha256.update(blob)
            self.size += len(blob)
            self.lines += 1

    def rehash(self) -> None:
        """The SHA-256 of the bytes from ``offset`` on, read back in small blocks."""
        self.sha256 = hashlib.sha256()
        self.file.seek(self.offset)
        while chunk := self.file.read(COPY_CHUNK):
            self.sha256.update(chunk)

    def rewind(self) -> None:
        self.file.flush()
        self.file.seek(self.offset)


def _encoded(line: str, masker: SecretMasker) -> bytes:
    return f"{masker.redact(line)}\n".encode("utf-8", "replace")


def _journal_part(snapshot: Snapshot, start: datetime | None, stop: datetime | None, max_bytes: int,
                  masker: SecretMasker, file: Any) -> tuple[_Part, bool]:
    """The journal frames of the window, newest that fit ``max_bytes`` (as :func:`newest_within`
    counts): every frame of the window is written to ``file``, then the part starts at the
    first one kept. Memory: two numbers a frame."""
    part = _Part(file)
    if snapshot.journal_entries is not None:
        entries: Iterable[JournalEntry] = (e for e in snapshot.journal_entries
                                           if (start is None or e.time >= start) and e.time <= stop)
    elif snapshot.journal is not None:
        entries = snapshot.journal.read(start, stop)
    else:
        return part, False
    budget, written = array("L"), array("L")  # per frame: its size as the budget counts it, its bytes here
    for entry in entries:
        text = entry.line()
        budget.append(text_size(text))
        blob = _encoded(text, masker)
        file.write(blob)
        written.append(len(blob))
    left, dropped = sum(budget), 0
    while dropped < len(budget) and left > max_bytes:  # the oldest out until the newest fit
        left -= budget[dropped]
        part.offset += written[dropped]
        dropped += 1
    part.lines = len(budget) - dropped
    part.size = file.tell() - part.offset
    file.flush()
    part.rehash()
    return part, dropped > 0


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str) + "\n"


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _write_tar(dest_dir: Path, name: str, parts: dict[str, _Part], created: datetime) -> Path:
    dest_dir.mkdir(parents=True, exist_ok=True)
    final = dest_dir / name
    partial = dest_dir / f"{name}.part"
    base = name.removesuffix(".tar.gz")
    try:
        with tarfile.open(partial, "w:gz", format=tarfile.PAX_FORMAT) as archive:
            for member, part in parts.items():
                info = tarfile.TarInfo(f"{base}/{member}")
                info.size, info.mtime, info.mode = part.size, int(created.timestamp()), 0o644
                info.uname = info.gname = "stationd"
                part.rewind()
                archive.addfile(info, part.file)  # copied in blocks of tarfile's buffer size
        partial.replace(final)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return final
