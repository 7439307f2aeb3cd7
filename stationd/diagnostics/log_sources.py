"""Where the diagnostics archive takes the daemon's log lines from.

The daemon writes its log to stderr (:mod:`stationd.logs`); what keeps it depends on where it
runs, so there are three sources, all giving :class:`LogLine` objects in a time window:

* :class:`JournaldLogs` — on the device, under systemd: ``journalctl -u stationd -o json
  --reverse --since @START --until @STOP`` (newest first, so reading stops once the size budget
  is spent; the lines are put back in time order). The command runs through an injectable
  ``runner`` (tests give a fake one).
* :class:`LogFileLogs` — a file with the terminal line format
  (``2024-05-01T12:00:00.123Z INFO stationd.ocpp: …``), e.g. where the demo's output is
  redirected, and its rotated copy ``FILE.1``.
* :class:`LogRing` — a :class:`logging.Handler` on the ``stationd`` logger that keeps the
  latest lines in memory (:data:`RING_LINES` lines, :data:`RING_CHARS` characters). The daemon
  installs it at start (:func:`install_log_ring`); it serves the demo and the tests, and any
  station not under systemd. It knows only this process's lines, since the start of the process.

:func:`default_log_source` picks journald when the daemon runs under systemd (``JOURNAL_STREAM``
set) and ``journalctl`` exists, else the ring. Every source applies the log redaction of
:mod:`stationd.logs`; the archive redacts everything once more before writing it.

Two ways to read a source: :meth:`~LogSource.stream` gives a :class:`LogStream`, the lines read
one at a time as it is iterated (what the archive uses: its memory does not grow with the
window), :meth:`~LogSource.excerpt` a :class:`LogExcerpt` holding them all in a list. A log file
is read twice (once to size the window, once for the newest lines that fit); journald's lines,
which come newest first, wait in a temporary file (``spool_dir``) to be given oldest first.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import os
import re
import shutil
import subprocess
import tempfile
import threading
from array import array
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol

from .. import logs

RING_LINES = 5000
RING_CHARS = 2_000_000
JOURNALCTL_TIMEOUT_S = 30.0
UNIT = "stationd"

_PRIORITY_NAMES = {0: "EMERGENCY", 1: "ALERT", 2: "CRITICAL", 3: "ERROR", 4: "WARNING", 5: "NOTICE", 6: "INFO",
                   7: "DEBUG"}
_STAMP_RE = re.compile(r"^(\d{4}-\d{2}-\d{2}T\S+) (.*)$")


@dataclass(frozen=True)
class LogLine:
    time: datetime
    text: str  # "LEVEL logger: message"

    def line(self) -> str:
        stamp = self.time.astimezone(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")
        return f"{stamp} {self.text}"


@dataclass
class LogExcerpt:
    """The lines of a window, oldest first; ``truncated``: older lines were left out (budget)."""

    lines: list[LogLine]
    truncated: bool = False
    problem: str | None = None  # the source could not be read (fully)


class LogStream:
    """The lines of a window within the size budget, oldest first, read as they are iterated
    (once). ``truncated`` (older lines were left out) and ``problem`` are final once the
    iteration has ended."""

    def __init__(self, produce: Callable[[LogStream], Iterator[LogLine]] | None = None, *,
                 truncated: bool = False, problem: str | None = None):
        self.truncated, self.problem = truncated, problem
        self._produce = produce

    def __iter__(self) -> Iterator[LogLine]:
        produce, self._produce = self._produce, None
        if produce is not None:
            yield from produce(self)

    @classmethod
    def of(cls, excerpt: LogExcerpt) -> LogStream:
        lines = excerpt.lines
        return cls(lambda _stream: iter(lines), truncated=excerpt.truncated, problem=excerpt.problem)

    def excerpt(self) -> LogExcerpt:
        lines = list(self)
        return LogExcerpt(lines, self.truncated, self.problem)


class LogSource(Protocol):
    description: str

    def excerpt(self, start: datetime | None, stop: datetime | None, max_bytes: int) -> LogExcerpt: ...


def stream_of(source: LogSource, start: datetime | None, stop: datetime | None, max_bytes: int, *,
              spool_dir: Path | None = None) -> LogStream:
    """``source.stream(...)``; for a source that only has ``excerpt`` (all lines in a list), that."""
    stream = getattr(source, "stream", None)
    if stream is not None:
        return stream(start, stop, max_bytes, spool_dir=spool_dir)
    return LogStream.of(source.excerpt(start, stop, max_bytes))


def _inside(moment: datetime, start: datetime | None, stop: datetime | None) -> bool:
    return (start is None or moment >= start) and (stop is None or moment <= stop)


def text_size(text: str) -> int:
    """What a line of ``text`` counts against the size budget."""
    return len(text.encode("utf-8", "replace")) + 29  # the time stamp, a space, the newline


def _size(line: LogLine) -> int:
    return text_size(line.text)


def newest_within(lines: Iterable[LogLine], max_bytes: int) -> tuple[list[LogLine], bool]:
    """The newest lines (given oldest first) whose size fits ``max_bytes``; True when some were dropped."""
    kept: deque[LogLine] = deque()
    used, dropped = 0, False
    for line in lines:
        kept.append(line)
        used += _size(line)
        while kept and used > max_bytes:
            used -= _size(kept.popleft())
            dropped = True
    return list(kept), dropped


# ---- journald ---------------------------------------------------------------------------

Runner = Callable[[list[str]], Iterable[bytes]]


def run_command(argv: list[str], timeout_s: float = JOURNALCTL_TIMEOUT_S) -> Iterator[bytes]:
    """The command's standard output, line by line; killed after ``timeout_s`` or when the
    reader stops early."""
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    timer = threading.Timer(timeout_s, process.kill)
    timer.start()
    try:
        assert process.stdout is not None
        yield from process.stdout
    finally:
        timer.cancel()
        if process.poll() is None:
            process.kill()
        process.wait()
        if process.stdout is not None:
            process.stdout.close()


class JournaldLogs:
    def __init__(self, unit: str = UNIT, runner: Runner = run_command, journalctl: str = "journalctl"):
        self.unit, self.runner, self.journalctl = unit, runner, journalctl
        self.description = f"journald (journalctl -u {unit})"

    def command(self, start: datetime | None, stop: datetime | None) -> list[str]:
        argv = [self.journalctl, "-u", self.unit, "-o", "json", "--no-pager", "--reverse"]
        if start is not None:
            argv.append(f"--since=@{math.floor(start.timestamp())}")
        if stop is not None:
            argv.append(f"--until=@{math.ceil(stop.timestamp())}")
        return argv

    def excerpt(self, start: datetime | None, stop: datetime | None, max_bytes: int) -> LogExcerpt:
        return self.stream(start, stop, max_bytes).excerpt()

    def stream(self, start: datetime | None, stop: datetime | None, max_bytes: int, *,
               spool_dir: Path | None = None) -> LogStream:
        """The lines come newest first: they wait in a temporary file in ``spool_dir`` (at most
        ``max_bytes`` of them) and are given back from its end."""
        return LogStream(lambda stream: self._lines(stream, start, stop, max_bytes, spool_dir))

    def _lines(self, stream: LogStream, start: datetime | None, stop: datetime | None, max_bytes: int,
               spool_dir: Path | None) -> Iterator[LogLine]:
        lengths = array("L")  # of the records in the spool, newest first
        used = 0
        with tempfile.TemporaryFile(dir=spool_dir, prefix=".journald-") as spool:
            try:
                output = self.runner(self.command(start, stop))
                try:
                    for raw in output:
                        line = _journal_line(raw)
                        if line is None or not _inside(line.time, start, stop):
                            continue
                        if used + _size(line) > max_bytes:
                            stream.truncated = True
                            break
                        lengths.append(spool.write(_spooled(line)))
                        used += _size(line)
                finally:
                    close = getattr(output, "close", None)
                    if close is not None:
                        close()
            except (OSError, subprocess.SubprocessError) as exc:
                stream.problem = f"journalctl failed: {exc}"
            end = spool.tell()
            for length in reversed(lengths):
                end -= length
                spool.seek(end)
                yield _unspooled(spool.read(length))


def _spooled(line: LogLine) -> bytes:
    return f"{line.time.isoformat()} {line.text}".encode("utf-8", "surrogatepass")


def _unspooled(record: bytes) -> LogLine:
    stamp, _, text = record.decode("utf-8", "surrogatepass").partition(" ")
    return LogLine(datetime.fromisoformat(stamp), text)


def _journal_line(raw: bytes) -> LogLine | None:
    try:
        record = json.loads(raw)
        moment = datetime.fromtimestamp(int(record["__REALTIME_TIMESTAMP"]) / 1e6, timezone.utc)
    except (ValueError, KeyError, TypeError):
        return None
    message = record.get("MESSAGE", "")
    if isinstance(message, list):  # journald gives non-UTF-8 messages as a byte array
        message = bytes(b for b in message if isinstance(b, int) and 0 <= b < 256).decode("utf-8", "replace")
    try:
        priority = _PRIORITY_NAMES.get(int(record.get("PRIORITY", 6)), "INFO")
    except (TypeError, ValueError):
        priority = "INFO"
    return LogLine(moment, f"{priority} {str(message).replace(chr(10), ' ')}")


# ---- a log file -----------------------------------------------------------------------------

class LogFileLogs:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.description = f"log file {self.path}"

    def excerpt(self, start: datetime | None, stop: datetime | None, max_bytes: int) -> LogExcerpt:
        return self.stream(start, stop, max_bytes).excerpt()

    def stream(self, start: datetime | None, stop: datetime | None, max_bytes: int, *,
               spool_dir: Path | None = None) -> LogStream:
        """Two passes over the files, kept open in between (a rotation meanwhile renames, it
        does not change them; lines appended meanwhile are left out): the first adds up the
        window's size, the second skips the oldest lines until the rest fits ``max_bytes``."""
        files = [p for p in (self.path.with_name(self.path.name + ".1"), self.path) if p.exists()]
        if not files:
            return LogStream(problem=f"{self.path} does not exist")
        return LogStream(lambda stream: self._lines(stream, files, start, stop, max_bytes))

    def _lines(self, stream: LogStream, files: list[Path], start: datetime | None, stop: datetime | None,
               max_bytes: int) -> Iterator[LogLine]:
        handles = []
        try:
            for path in files:
                try:
                    handles.append(open(path, encoding="utf-8", errors="replace"))  # noqa: SIM115 - closed below
                except FileNotFoundError:  # rotated away since
                    continue
            counts, total = [], 0
            for handle in handles:
                raw_lines = _Counted(handle)
                total += sum(_size(line) for line in self._parse(raw_lines) if _inside(line.time, start, stop))
                counts.append(raw_lines.count)
            for handle, count in zip(handles, counts):
                handle.seek(0)
                for line in self._parse(itertools.islice(handle, count)):
                    if not _inside(line.time, start, stop):
                        continue
                    if total > max_bytes:  # what is left from here on does not fit: older than kept
                        total -= _size(line)
                        stream.truncated = True
                        continue
                    yield line
        finally:
            for handle in handles:
                handle.close()

    @staticmethod
    def _read(path: Path) -> Iterator[LogLine]:
        with open(path, encoding="utf-8", errors="replace") as source:
            yield from LogFileLogs._parse(source)

    @staticmethod
    def _parse(source: Iterable[str]) -> Iterator[LogLine]:
        last: datetime | None = None
        for raw in source:
            raw = raw.rstrip("\n")
            match = _STAMP_RE.match(raw)
            moment = None
            if match:
                try:
                    moment = datetime.fromisoformat(match.group(1).replace("Z", "+00:00"))
                except ValueError:
                    moment = None
            if moment is not None:
                last = moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
                yield LogLine(last, match.group(2))
            elif last is not None and raw:  # a line without a time stamp continues the one before
                yield LogLine(last, raw)


class _Counted:
    """The lines of a text file, counting how many were read."""

    def __init__(self, lines: Iterable[str]):
        self._lines, self.count = iter(lines), 0

    def __iter__(self) -> Iterator[str]:
        for line in self._lines:
            self.count += 1
            yield line


# ---- in memory -----------------------------------------------------------------------------

class LogRing(logging.Handler):
    """The latest log lines of this process, redacted like the log output."""

    description = "in-process log ring (lines since the daemon process started)"

    def __init__(self, max_lines: int = RING_LINES, max_chars: int = RING_CHARS):
        super().__init__()
        self.max_lines, self.max_chars = max_lines, max_chars
        self._lines: deque[LogLine] = deque()
        self._chars = 0
        self._formatter = logs.LineFormatter(journal=False)
        self.addFilter(logs.SecretFilter(logs._all_secrets))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self._formatter.format(record)
            _stamp, _, rest = text.partition(" ")
            line = LogLine(datetime.fromtimestamp(record.created, timezone.utc), rest)
        except Exception:  # noqa: BLE001 - logging must never fail the caller
            self.handleError(record)
            return
        self._lines.append(line)  # emit() runs under the handler's lock
        self._chars += len(line.text)
        while self._lines and (len(self._lines) > self.max_lines or self._chars > self.max_chars):
            self._chars -= len(self._lines.popleft().text)

    def snapshot(self) -> list[LogLine]:
        with self.lock:  # type: ignore[union-attr]
            return list(self._lines)

    def excerpt(self, start: datetime | None, stop: datetime | None, max_bytes: int) -> LogExcerpt:
        lines, truncated = newest_within((line for line in self.snapshot() if _inside(line.time, start, stop)),
                                         max_bytes)
        return LogExcerpt(lines, truncated)

    def stream(self, start: datetime | None, stop: datetime | None, max_bytes: int, *,
               spool_dir: Path | None = None) -> LogStream:
        """The ring is in memory already (at most :data:`RING_CHARS`): its excerpt, one line at a time."""
        return LogStream.of(self.excerpt(start, stop, max_bytes))


_ring: LogRing | None = None


def install_log_ring() -> LogRing:
    """The process's log ring, attached to the ``stationd`` logger (again, if someone removed
    it, e.g. :func:`stationd.logs.configure`)."""
    global _ring
    if _ring is None:
        _ring = LogRing()
    root = logging.getLogger(logs.ROOT)
    if _ring not in root.handlers:
        root.addHandler(_ring)
    return _ring


def installed_log_ring() -> LogRing | None:
    return _ring


class NoLogs:
    description = "none (no log source available)"

    def excerpt(self, start: datetime | None, stop: datetime | None, max_bytes: int) -> LogExcerpt:
        return LogExcerpt([], problem="no log source available")

    def stream(self, start: datetime | None, stop: datetime | None, max_bytes: int, *,
               spool_dir: Path | None = None) -> LogStream:
        return LogStream(problem="no log source available")


def default_log_source(environ: Mapping[str, str] = os.environ,
                       which: Callable[[str], str | None] = shutil.which) -> LogSource:
    """journald under systemd, else the process's log ring (see the module docstring)."""
    if environ.get("JOURNAL_STREAM") and which("journalctl"):
        return JournaldLogs()
    return installed_log_ring() or NoLogs()
