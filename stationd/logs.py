"""Logging: one line per event on stderr, journald priorities, secrets never written.

Under systemd (``JOURNAL_STREAM`` set) each line starts with the syslog priority, ``<6>``, so
journald files it at the right level, and carries no timestamp (journald adds one). On a
terminal each line starts with a UTC timestamp. Extra fields passed as
``log.info("...", extra={"fields": {"connector": 1}})`` are appended as ``connector=1``.

The vendor keys LogLevelAppService, LogLevelAuth and LogLevelCan set the levels at run time.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from typing import Any, TextIO

ROOT = "stationd"
REDACTED = "***"

_SYSLOG_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}

# Vendor key -> (logger, level for each key value). LogLevelAppService: 0 Warning, 1 Info,
# 2 Debug. LogLevelAuth/Can: 0 None, 1 Receive frame, 2 Msg data, 3 Command description.
LEVEL_KEYS: dict[str, tuple[str, tuple[int, ...]]] = {
    "LogLevelAppService": (ROOT, (logging.WARNING, logging.INFO, logging.DEBUG)),
    "LogLevelAuth": (f"{ROOT}.auth", (logging.WARNING, logging.INFO, logging.DEBUG, logging.DEBUG)),
    "LogLevelCan": (f"{ROOT}.hw.can", (logging.WARNING, logging.INFO, logging.DEBUG, logging.DEBUG)),
}


class LineFormatter(logging.Formatter):
    def __init__(self, journal: bool):
        super().__init__()
        self.journal = journal

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        fields = getattr(record, "fields", None)
        if fields:
            message += " " + " ".join(f"{k}={_field(v)}" for k, v in fields.items())
        if record.exc_info:
            message += " | " + self.formatException(record.exc_info).replace("\n", " | ")
        message = message.replace("\n", " ")
        if self.journal:
            return f"<{_SYSLOG_PRIORITY.get(record.levelno, 6)}>{record.name}: {message}"
        stamp = datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds")
        return f"{stamp.replace('+00:00', 'Z')} {record.levelname} {record.name}: {message}"


class SecretFilter(logging.Filter):
    """Replaces every known secret in a log line by ``***`` before it is written."""

    def __init__(self, secrets: Callable[[], Iterable[str]]):
        super().__init__()
        self._secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = [s for s in self._secrets() if len(s) >= 4]
        if not secrets:
            if "://" in str(record.msg) or any("://" in str(a) for a in _args(record)):
                record.msg, record.args = mask_url_passwords(record.getMessage()), None
            return True
        # Case-insensitive: a hex key may arrive in upper case while the store keeps lower case.
        pattern = re.compile("|".join(re.escape(s) for s in sorted(secrets, key=len, reverse=True)), re.IGNORECASE)
        try:
            text = record.getMessage()
        except Exception as exc:  # a broken log call must not raise here, nor print its args
            text = f"{record.msg} (bad log call, arguments withheld: {type(exc).__name__}: {exc})"
        text = mask_url_passwords(pattern.sub(REDACTED, text))
        fields = getattr(record, "fields", None)
        if fields:
            fields = {k: _redact(v, pattern) for k, v in fields.items()}
        record.msg, record.args = text, None
        if fields is not None:
            record.fields = fields
        if record.exc_info and pattern.search(logging.Formatter().formatException(record.exc_info)):
            record.msg += f" ({record.exc_info[0].__name__}, details withheld: they contain a secret)"
            record.exc_info = None
        return True


_URL_PASSWORD_RE = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://[^/@\s\"':]*:)[^/@\s\"]*@")


def mask_url_passwords(text: str) -> str:
    """``ftp://user:password@host/`` → ``ftp://user:***@host/`` (UpdateFirmware, GetDiagnostics
    and GetLog locations carry their credentials in the URL)."""
    return _URL_PASSWORD_RE.sub(lambda m: m.group(1) + REDACTED + "@", text) if "://" in text else text


def _args(record: logging.LogRecord) -> tuple:
    args = record.args
    if isinstance(args, dict):
        return tuple(args.values())
    return args if isinstance(args, tuple) else ()


_secret_sources: list[Callable[[], Iterable[str]]] = []


def add_secret_source(source: Callable[[], Iterable[str]]) -> Callable[[], None]:
    """Register where current secrets come from; returns the function that removes it."""
    _secret_sources.append(source)
    return lambda: _secret_sources.remove(source) if source in _secret_sources else None


def _all_secrets() -> list[str]:
    return [secret for source in list(_secret_sources) for secret in source()]


def configure(stream: TextIO = sys.stderr, journal: bool | None = None) -> logging.Handler:
    """Install the station's one handler on the ``stationd`` logger tree."""
    if journal is None:
        journal = bool(os.environ.get("JOURNAL_STREAM"))
    handler = logging.StreamHandler(stream)
    handler.setFormatter(LineFormatter(journal))
    handler.addFilter(SecretFilter(_all_secrets))
    root = logging.getLogger(ROOT)
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.propagate = False
    root.setLevel(logging.INFO)
    return handler


def apply_level_key(key: str, value: int) -> None:
    logger_name, levels = LEVEL_KEYS[key]
    logging.getLogger(logger_name).setLevel(levels[max(0, min(value, len(levels) - 1))])


def _field(value: Any) -> str:
    text = str(value)
    return f'"{text}"' if (not text or any(c.isspace() for c in text)) else text


def _redact(value: Any, secret: re.Pattern[str]) -> Any:
    """The value with secrets replaced; a non-text value is written as str(value), so check that."""
    text = value if isinstance(value, str) else str(value)
    return secret.sub(REDACTED, text) if secret.search(text) else value
