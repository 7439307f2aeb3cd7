"""Helpers the benchmarks share: free ports, /proc readers, percentiles, child processes.

Every child process a benchmark starts goes through :class:`Child`: it runs in its own process
group (``start_new_session``), and ``stop()`` — called from a ``finally`` and, as a last resort,
at interpreter exit — sends SIGTERM to the whole group, waits, then SIGKILLs what is left.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import math
import os
import platform
import selectors
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any, Self

__all__ = [
    "LOOPBACK",
    "REPO",
    "Child",
    "CpuSample",
    "LogCapture",
    "cpu_percent",
    "cpu_sample",
    "free_port",
    "machine",
    "percentile",
    "read_lines",
    "rss_bytes",
    "sim_api",
    "summarize_problems",
]

LOOPBACK = "127.0.0.1"
REPO = Path(__file__).resolve().parent.parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# Loopback traffic never goes through a proxy, whatever http_proxy says.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (never interpolates below an observed value)."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def machine() -> dict[str, str | int]:
    """What the figures were measured on: CPU count, CPU model, Python version."""
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {"cpus": os.cpu_count() or 0, "cpu_model": model, "python": platform.python_version()}


def summarize_problems(lines: Sequence[str], who: str, show: int = 5) -> str:
    """"<who> logged N warnings/errors" with the first ``show`` distinct lines ("" if none)."""
    if not lines:
        return ""
    distinct = list(dict.fromkeys(lines))
    shown = "\n".join(f"  {line}" for line in distinct[:show])
    more = f"\n  … and {len(distinct) - show} more distinct lines" if len(distinct) > show else ""
    return f"bench: note: {who} logged {len(lines)} warning(s)/error(s):\n{shown}{more}"


class LogCapture(logging.Handler):
    """Collects WARNING and above of a logger tree (an in-process daemon's) instead of printing
    each line; ``with LogCapture("stationd") as capture: …`` then ``capture.lines``."""

    def __init__(self, logger: str) -> None:
        super().__init__(logging.WARNING)
        self.logger = logging.getLogger(logger)
        self.lines: list[str] = []
        self._propagate = self.logger.propagate

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.levelname} {record.name}: {record.getMessage()}")

    def __enter__(self) -> Self:
        self.logger.addHandler(self)
        self.logger.propagate = False
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.logger.removeHandler(self)
        self.logger.propagate = self._propagate


# --------------------------------------------------------------------------- /proc readers
class CpuSample:
    """CPU time (user + system, all threads) of a process at a wall-clock instant."""

    def __init__(self, cpu_s: float, wall_s: float) -> None:
        self.cpu_s, self.wall_s = cpu_s, wall_s


def cpu_sample(pid: int) -> CpuSample:
    """utime + stime of ``pid`` from /proc/<pid>/stat, in seconds, with time.monotonic()."""
    wall = time.monotonic()
    stat = Path(f"/proc/{pid}/stat").read_text()
    # The command name (field 2) may contain spaces and parentheses: split after the last ")".
    fields = stat[stat.rindex(")") + 2:].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    return CpuSample((utime + stime) / CLOCK_TICKS, wall)


def cpu_percent(before: CpuSample, after: CpuSample) -> float:
    """CPU used between two samples, in percent of one core."""
    return 100.0 * (after.cpu_s - before.cpu_s) / (after.wall_s - before.wall_s)


def rss_bytes(pid: int) -> int:
    """Resident memory (VmRSS of /proc/<pid>/status) in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            value, unit = line.split()[1:3]
            if unit != "kB":
                raise ValueError(f"unexpected VmRSS unit {unit!r}")
            return int(value) * 1024
    raise ValueError(f"no VmRSS in /proc/{pid}/status (a zombie?)")


# --------------------------------------------------------------------------- child processes
_RUNNING: set[Child] = set()


class Child:
    """A child process in its own process group, stopped for sure (see the module docstring)."""

    def __init__(self, argv: Sequence[str], *, name: str, cwd: Path = REPO, stdout: Any = subprocess.DEVNULL,
                 stderr: Any = subprocess.DEVNULL, env: dict[str, str] | None = None) -> None:
        self.name = name
        environment = dict(os.environ if env is None else env)
        environment.pop("NOTIFY_SOCKET", None)  # never talk to the systemd that may run us
        self.proc = subprocess.Popen(list(argv), cwd=cwd, stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL,
                                     env=environment, start_new_session=True)
        _RUNNING.add(self)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def check_alive(self) -> None:
        code = self.proc.poll()
        if code is not None:
            raise RuntimeError(f"{self.name} exited early with status {code}")

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM the process group, wait up to ``timeout`` s, then SIGKILL it. Returns the exit code."""
        _RUNNING.discard(self)
        try:
            if self.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGTERM)
                try:
                    self.proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    pass
        finally:
            # The group may outlive its leader (a grandchild); kill whatever is left either way.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=5)
            for stream in (self.proc.stdout, self.proc.stderr):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()
        return self.proc.returncode

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


@atexit.register
def _stop_leftovers() -> None:
    for child in list(_RUNNING):
        child.stop(timeout=5)


def read_lines(stream: IO[bytes], count: int, timeout: float, child: Child) -> list[str]:
    """Exactly ``count`` lines from a child's stdout pipe within ``timeout`` seconds."""
    lines: list[str] = []
    buffer = b""
    deadline = time.monotonic() + timeout
    fd = stream.fileno()
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while len(lines) < count:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{child.name} printed {lines} within {timeout:g} s, expected {count} lines")
            if not selector.select(left):
                continue
            chunk = os.read(fd, 4096)
            if not chunk:
                raise RuntimeError(f"{child.name} ended its output after {lines} "
                                   f"(exit status {child.proc.poll()})")
            buffer += chunk
            while b"\n" in buffer and len(lines) < count:
                line, buffer = buffer.split(b"\n", 1)
                lines.append(line.decode().strip())
    return lines


# --------------------------------------------------------------------------- firmware_sim API
def sim_api(port: int, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """One request to the firmware_sim control API on 127.0.0.1 (DESIGN.md §5.2)."""
    data = json.dumps(body).encode() if body is not None else (b"" if method == "POST" else None)
    request = urllib.request.Request(f"http://{LOOPBACK}:{port}{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        with _OPENER.open(request, timeout=5) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        raise RuntimeError(f"sim API {method} {path}: HTTP {error.code} {error.read()!r}") from None
