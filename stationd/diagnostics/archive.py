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
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import logging
import re
import tarfile
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
from .log_sources import LogLine, LogSource, NoLogs, default_log_source, newest_within

log = logging.getLogger("stationd.diagnostics")

ARCHIVE_SUFFIX = "-diagnostics.tar.gz"
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

    excerpt = source.excerpt(start, stop, log_bytes)
    if excerpt.problem:
        problems.append(f"logs: {excerpt.problem}")
    log_text = _lines_text(line.line() for line in excerpt.lines)
    files["logs.txt"] = {"lines": len(excerpt.lines), "truncated": excerpt.truncated, "source": source.description}

    entries, journal_truncated = _journal_lines(snapshot, start, stop, journal_bytes)
    files["ocpp-journal.txt"] = {"lines": len(entries), "truncated": journal_truncated}
    journal_text = _lines_text(entries)

    contents = {
        "logs.txt": log_text,
        "ocpp-journal.txt": journal_text,
        "settings.json": _json({"keys": snapshot.settings}),
        "hardware.json": _json({**snapshot.hardware, "ocpp": snapshot.ocpp}) if isinstance(snapshot.hardware, dict)
        else _json(snapshot.hardware),
    }
    data = {name: masker.redact(text).encode("utf-8", "replace") for name, text in contents.items()}
    for name, blob in data.items():
        files.setdefault(name, {}).update({"bytes": len(blob), "sha256": hashlib.sha256(blob).hexdigest()})
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
    data = {"manifest.json": masker.redact(_json(manifest)).encode(), **data}
    return _write_tar(Path(dest_dir), snapshot.name, data, snapshot.created)


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


def _journal_lines(snapshot: Snapshot, start: datetime | None, stop: datetime | None,
                   max_bytes: int) -> tuple[list[str], bool]:
    if snapshot.journal_entries is not None:
        entries: Iterable[JournalEntry] = [e for e in snapshot.journal_entries
                                           if (start is None or e.time >= start) and e.time <= stop]
    elif snapshot.journal is not None:
        entries = snapshot.journal.read(start, stop)
    else:
        return [], False
    # Reuse the log budget helper: a journal line is a LogLine of the same shape.
    kept, truncated = newest_within((LogLine(e.time, e.line()) for e in entries), max_bytes)
    return [line.text for line in kept], truncated


def _lines_text(lines: Iterable[str]) -> str:
    return "".join(f"{line}\n" for line in lines)


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str) + "\n"


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _write_tar(dest_dir: Path, name: str, files: dict[str, bytes], created: datetime) -> Path:
    dest_dir.mkdir(parents=True, exist_ok=True)
    final = dest_dir / name
    partial = dest_dir / f"{name}.part"
    base = name.removesuffix(".tar.gz")
    try:
        with tarfile.open(partial, "w:gz", format=tarfile.PAX_FORMAT) as archive:
            for member, blob in files.items():
                info = tarfile.TarInfo(f"{base}/{member}")
                info.size, info.mtime, info.mode = len(blob), int(created.timestamp()), 0o644
                info.uname = info.gname = "stationd"
                archive.addfile(info, io.BytesIO(blob))
        partial.replace(final)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return final
