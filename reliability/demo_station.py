"""``stationd demo`` as a child process against a central system in the runner's own event loop.

Used by the power-cut and backend-outage categories: the demo runs in its own process group
(``bench.common.Child``) on a temporary data directory, with free ports for the control API,
the WebUI and the Modbus server, and ``--backend`` pointing at the runner's
:class:`firmware_sim.central_system.CentralSystem`. ``kill()`` is the power cut (SIGKILL to the
whole group), ``stop()`` the clean end (SIGTERM, then SIGKILL of what is left).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import LOOPBACK, REPO, Child, free_port, sim_api

__all__ = ["DemoStation", "config_set", "keep_for_inspection", "read_db"]


def config_set(data_dir: Path, key: str, value: str) -> None:
    """``stationd config set --data-dir DIR KEY VALUE`` (before the first start: settings on disk)."""
    done = subprocess.run([sys.executable, "-m", "stationd", "config", "set", "--data-dir", str(data_dir), key, value],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    if done.returncode != 0 or "Accepted" not in done.stdout:
        raise RuntimeError(f"stationd config set {key} {value}: {done.stdout.strip()} {done.stderr.strip()}")


def read_db(data_dir: Path, sql: str, params: tuple = ()) -> list[tuple]:
    """One read-only query on the station database (also while the daemon runs: WAL readers)."""
    connection = sqlite3.connect(f"file:{data_dir / 'station.db'}?mode=ro", uri=True, timeout=10)
    try:
        return connection.execute(sql, params).fetchall()
    finally:
        connection.close()


def keep_for_inspection(data_dir: Path, what: str) -> Path:
    """A copy of a (stopped) station's data directory and demo log in a new temporary directory,
    for a person to look at after a failed run."""
    kept = Path(tempfile.mkdtemp(prefix=f"reliability-{what}-kept-"))
    shutil.copytree(data_dir, kept / data_dir.name, dirs_exist_ok=True)
    log = data_dir.parent / f"{data_dir.name}-demo.log"
    if log.exists():
        shutil.copy2(log, kept / log.name)
    return kept


class DemoStation:
    """One station (one data directory) that may be started, killed and restarted many times."""

    def __init__(self, data_dir: Path, backend_url: str, chargebox_id: str, *, connectors: int = 2) -> None:
        self.data_dir = data_dir
        self.backend_url = backend_url
        self.chargebox_id = chargebox_id
        self.connectors = connectors
        self.child: Child | None = None
        self.api_port = 0
        self.starts = 0
        self.log_path = data_dir.parent / f"{data_dir.name}-demo.log"

    @property
    def running(self) -> bool:
        return self.child is not None and self.child.proc.poll() is None

    def start(self) -> None:
        self.api_port = free_port()
        argv = [sys.executable, "-m", "stationd", "demo", "--backend", self.backend_url,
                "--chargebox-id", self.chargebox_id, "--security-profile", "0",
                "--connectors", str(self.connectors), "--data-dir", str(self.data_dir),
                "--sim-api", f"{LOOPBACK}:{self.api_port}", "--webui", f"{LOOPBACK}:{free_port()}",
                "--modbus", f"{LOOPBACK}:{free_port()}"]
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child; closed by Child.stop
        log.write(f"\n===== start {self.starts + 1} =====\n".encode())
        log.flush()
        self.child = Child(argv, name=f"stationd demo ({self.chargebox_id})", stdout=log, stderr=log)
        log.close()  # the child has its own copy of the descriptor
        self.starts += 1

    async def wait_api(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert self.child is not None
            self.child.check_alive()
            try:
                await self.api("GET", "/state")
                return
            except (OSError, RuntimeError):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the control API did not answer within {timeout:g} s") from None
                await asyncio.sleep(0.05)

    async def api(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        return await asyncio.to_thread(sim_api, self.api_port, method, path, body)

    def kill(self) -> None:
        """The power cut: SIGKILL to the whole process group, at once."""
        child, self.child = self.child, None
        if child is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)
        child.stop(timeout=5)  # reaps it (and whatever is left of the group)

    def stop(self) -> int | None:
        """A clean stop (SIGTERM; the daemon ends its sessions and closes the database)."""
        child, self.child = self.child, None
        return child.stop(timeout=20) if child is not None else None

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""
