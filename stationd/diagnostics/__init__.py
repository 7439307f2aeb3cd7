"""Diagnostics: the archive GetDiagnostics uploads (docs/diagnostics.md).

``build_archive(station, start, stop, dest_dir) -> Path`` writes
``<SerialNumber>-<UTC YYYYmmddTHHMMSSZ>-diagnostics.tar.gz`` with the log lines and the OCPP
message journal of the window, the settings without secrets, the hardware status and a
manifest. Log lines come from journald on the device, else from the daemon's in-process ring
or a log file (:mod:`stationd.diagnostics.log_sources`).
"""

from __future__ import annotations

from .archive import (
    ARCHIVE_SUFFIX,
    Snapshot,
    archive_name,
    build_archive,
    build_archive_async,
    prune,
    take_snapshot,
    write_archive,
)
from .log_sources import (
    JournaldLogs,
    LogExcerpt,
    LogFileLogs,
    LogLine,
    LogRing,
    LogSource,
    NoLogs,
    default_log_source,
    install_log_ring,
    installed_log_ring,
)

__all__ = [
    "ARCHIVE_SUFFIX", "JournaldLogs", "LogExcerpt", "LogFileLogs", "LogLine", "LogRing", "LogSource", "NoLogs",
    "Snapshot", "archive_name", "build_archive", "build_archive_async", "default_log_source", "install_log_ring",
    "installed_log_ring", "prune", "take_snapshot", "write_archive",
]
