"""The station's security log: every security event the OCPP client records, one JSON line each
(``security-events.log`` in the data directory, the older half dropped beyond MAX_BYTES).
GetLog SecurityLog uploads the events of a time window from it."""

from __future__ import annotations

import json
import logging
from datetime import datetime
from pathlib import Path

from .timestamps import parse_ocpp_time

log = logging.getLogger("stationd.ocpp.security_log")

SECURITY_LOG_FILE = "security-events.log"
MAX_BYTES = 1_000_000


def record(path: Path, event: dict) -> None:
    """Append one SecurityEventNotification payload (type, timestamp, techInfo); never raises."""
    try:
        if path.exists() and path.stat().st_size > MAX_BYTES:
            lines = path.read_text(errors="replace").splitlines(keepends=True)
            path.write_text("".join(lines[len(lines) // 2:]))
        with path.open("a") as out:
            out.write(json.dumps(event, separators=(",", ":")) + "\n")
    except OSError as exc:
        log.warning("security log %s not written: %s", path, exc)


def events(path: Path, start: datetime | None = None, stop: datetime | None = None) -> list[dict]:
    """The recorded events with start <= timestamp <= stop (None: open end), oldest first."""
    found = []
    try:
        lines = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return []
    for line in lines:
        try:
            event = json.loads(line)
            moment = parse_ocpp_time(event["timestamp"])
        except (ValueError, KeyError, TypeError):
            continue
        if (start is None or moment >= start) and (stop is None or moment <= stop):
            found.append(event)
    return found


def write_report(path: Path, dest: Path, start: datetime | None, stop: datetime | None) -> Path:
    """The events of the window as text lines ``timestamp type techInfo`` into ``dest``."""
    rows = [f"{e['timestamp']} {e['type']} {e.get('techInfo', '')}".rstrip() + "\n" for e in events(path, start, stop)]
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text("".join(rows))
    return dest
