"""Storage faults: a full disk under a running station, a full or read-only disk at a start, a
corrupt database before a start — a clear error, the safe state of the policy, no crash loop,
recovery, no transaction lost.

Policy (stationd.core.station, stationd.daemon): while nothing can be recorded a running session
goes on (its records kept in memory and written once storage works again), no new session starts
and the free connectors report Faulted with vendorErrorCode "StorageFailure"; the daemon never
exits on a write error. A start the storage refuses (full, read-only) is not an exit either: the
daemon stays up out of service (no charging, no backend link), logs why, and starts once the data
directory takes a write. A corrupt database at start is moved aside (``station.db.corrupt-<time>``),
logged critical, reported on connector 0 (DatabaseReplaced) and the station starts with a fresh one.

The disks are real: ``stationd demo`` runs in a user + mount namespace on a small tmpfs
(``unshare``). The full disk is a file written next to the database (through ``/proc/<pid>/root``)
and released again; the read-only disk is the tmpfs remounted read-only before the start and
read-write again from inside the namespace (``nsenter``). Remounting read-only under a running
daemon is refused by the kernel (EBUSY: SQLite holds its files open for writing), so that case is
not tried; the running station checks the same read-only flag as it does free space. Where unshare
is missing the category cannot run (the test skips, or fails with CI=true).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from bench.common import REPO, Child, free_port, sim_api

from .tally import Tally

CATEGORY, UNIT = "storage_faults", "faults"
STATIOND = REPO / ".venv" / "bin" / "stationd"
TMPFS_SIZE = "8m"
CORRUPTIONS = ("header", "middle page", "truncated", "stale WAL")


def namespaces_work() -> str | None:
    """None when unshare can mount a tmpfs here, else why not."""
    for program in ("unshare", "nsenter"):
        if shutil.which(program) is None:
            return f"{program} not installed"
    with tempfile.TemporaryDirectory() as directory:
        result = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
                                 f"mount -t tmpfs -o size=1m tmpfs {shlex.quote(directory)}"],
                                capture_output=True, text=True, timeout=10)
    return None if result.returncode == 0 else f"unshare cannot mount a tmpfs: {result.stderr.strip()}"


class Demo:
    """``stationd demo`` as a child process, optionally in its own mount namespace on a tmpfs."""

    def __init__(self, directory: Path, *, tmpfs: bool, log_name: str = "", prepare: str = ""):
        """``prepare``: shell commands run in the namespace after the tmpfs is mounted, before the
        demo starts (fill it, copy a data directory in, remount it read-only)."""
        self.directory, self.tmpfs = directory, tmpfs
        self.api, self.webui = free_port(), free_port()
        self.log_path = directory.parent / f"{directory.name}{log_name}.log"
        data = directory / "data"
        argv = [str(STATIOND), "demo", "--data-dir", str(data), "--sim-api", f"127.0.0.1:{self.api}",
                "--webui", f"127.0.0.1:{self.webui}", "--modbus", f"127.0.0.1:{free_port()}", "--connectors", "2"]
        if tmpfs:
            script = (f"mount -t tmpfs -o size={TMPFS_SIZE} tmpfs {shlex.quote(str(directory))} && "
                      f"{prepare + ' && ' if prepare else ''}exec " + " ".join(shlex.quote(a) for a in argv))
            argv = ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script]
        self.log = open(self.log_path, "wb")
        self.child = Child(argv, name="stationd demo", stdout=self.log, stderr=subprocess.STDOUT)

    @property
    def root(self) -> Path:
        """The tmpfs as the daemon sees it."""
        return Path(f"/proc/{self.child.pid}/root{self.directory}") if self.tmpfs else self.directory

    def in_namespace(self, command: str) -> None:
        """Run a shell command in the demo's user and mount namespace (as its root)."""
        subprocess.run(["nsenter", "--target", str(self.child.pid), "--user", "--mount", "--preserve-credentials",
                        "sh", "-c", command], check=True, capture_output=True, timeout=10)

    def kill(self) -> None:
        """A power cut: SIGKILL to the demo's whole process group."""
        os.killpg(self.child.pid, signal.SIGKILL)
        self.child.proc.wait(timeout=10)
        self.log.close()

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.child.check_alive()
            if "StatusNotification" in self.text() and self.statuses(2):
                return
            time.sleep(0.2)
        raise RuntimeError(f"the demo did not come up:\n{self.text()[-2000:]}")

    def text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def statuses(self, connector: int) -> list[tuple[str, str, str | None]]:
        """The StatusNotifications the built-in central system logged for ``connector``."""
        found = []
        for payload in re.findall(r"<- \S+ StatusNotification (\{.*\})", self.text()):
            data = json.loads(payload)
            if data["connectorId"] == connector:
                found.append((data["status"], data["errorCode"], data.get("vendorErrorCode")))
        return found

    def stops(self) -> list[dict]:
        return [json.loads(p) for p in re.findall(r"<- \S+ StopTransaction (\{.*\})", self.text())]

    def starts(self) -> int:
        return len(re.findall(r"<- \S+ StartTransaction ", self.text()))

    def sim(self, method: str, path: str, body: dict | None = None):
        return sim_api(self.api, method, path, body)

    def charge(self, connector: int, what: str) -> None:
        """A vehicle plugs in and charges on ``connector``; returns once the station reports Charging."""
        self.sim("POST", f"/connectors/{connector}/plug", {})
        self.sim("POST", f"/connectors/{connector}/charge", {})
        until(lambda: last(self, connector) == ("Charging", "NoError", None), 15, what, self)

    def stop(self) -> None:
        self.child.stop()
        self.log.close()


def until(condition, timeout: float, what: str, demo: Demo) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        demo.child.check_alive()
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g} s: {what}")
        time.sleep(0.2)


def last(demo: Demo, connector: int):
    sent = demo.statuses(connector)
    return sent[-1] if sent else None


# ---- a running station loses its storage ------------------------------------------------------

def try_full_disk(directory: Path, how: str = "full disk") -> str:
    """Connector 1 charges through a full disk; connector 2 is refused while it lasts and charges
    after; the session of connector 1 is stopped once, after recovery."""
    demo = Demo(directory, tmpfs=True)
    try:
        demo.wait_ready()
        demo.charge(1, "connector 1 Charging")
        filler = demo.root / "filler"
        try:
            with open(filler, "wb") as file:
                while True:
                    file.write(b"\0" * 65536)
        except OSError:  # ENOSPC: the disk is full
            pass
        until(lambda: "storage: cannot record anything" in demo.text(), 15, "a clear log line", demo)
        until(lambda: last(demo, 2) == ("Faulted", "OtherError", "StorageFailure"), 10,
              "connector 2 Faulted / StorageFailure", demo)
        demo.sim("POST", "/connectors/2/plug", {})
        demo.sim("POST", "/connectors/2/charge", {})
        time.sleep(3)
        state = demo.sim("GET", "/state")["connectors"]
        if state[1]["contactor"] or demo.starts() != 1:
            raise AssertionError("a new session started while nothing could be recorded")
        if not state[0]["contactor"] or last(demo, 1)[0] != "Charging":
            raise AssertionError("the running session did not go on")
        filler.unlink()
        until(lambda: "storage: the data directory is writable again" in demo.text(), 20, "recovery", demo)
        demo.sim("POST", "/connectors/2/unplug", {})
        demo.charge(2, "connector 2 charges after recovery")
        demo.sim("POST", "/connectors/1/unplug", {})
        demo.sim("POST", "/connectors/2/unplug", {})
        until(lambda: len(demo.stops()) >= 2, 15, "both sessions stopped", demo)
        time.sleep(1)
        ids = [s["transactionId"] for s in demo.stops()]
        if len(ids) != 2 or len(set(ids)) != 2:
            raise AssertionError(f"StopTransaction ids {ids}: each session must stop exactly once")
        demo.child.check_alive()
        return f"{how}: session went on, new one refused, recovered"
    finally:
        demo.stop()


# ---- a start on a full or read-only disk --------------------------------------------------------

def try_start_refused(directory: Path, how: str) -> str:
    """A power cut during a session; the station restarts on a full or read-only disk: it stays up
    out of service (no backend link, contactors open), starts once the disk is writable again and
    stops the cut session exactly once."""
    before = directory.parent / f"{directory.name}-before"
    before.mkdir()
    first = Demo(before, tmpfs=False)
    try:
        first.wait_ready()
        first.charge(1, "a session to cut")
        until(lambda: first.starts() == 1, 15, "its StartTransaction", first)
        first.kill()
    finally:
        first.stop()
    started = re.findall(r"-> \S+ StartTransaction\.conf (\{.*\})", first.text())
    transaction = json.loads(started[-1])["transactionId"] if started else None
    data = shlex.quote(str(directory / "data"))
    prepare = f"cp -a {shlex.quote(str(before / 'data'))} {data}"
    if how == "full disk at start":
        prepare += f" && (dd if=/dev/zero of={shlex.quote(str(directory / 'filler'))} bs=64k 2>/dev/null || true)"
    else:
        prepare += f" && mount -o remount,ro {shlex.quote(str(directory))}"
    demo = Demo(directory, tmpfs=True, prepare=prepare, log_name="-2")
    try:
        until(lambda: "storage: the station cannot start" in demo.text(), 30, "a clear log line", demo)
        time.sleep(3)
        demo.child.check_alive()  # up, out of service: not an exit (a systemd restart loop)
        if "StatusNotification" in demo.text() or demo.stops():
            raise AssertionError("the station talked to the backend although it could not record anything")
        if any(c["contactor"] or c["pwm_current_a"] for c in demo.sim("GET", "/state")["connectors"]):
            raise AssertionError("a contactor closed or a PWM was offered while the station was out of service")
        status, page = webui_page(demo, before / "data" / "webui" / "self-signed.pem")
        if status != 503 or "cannot start" not in page:
            raise AssertionError(f"the WebUI does not say why the station is out of service: {status} {page[:200]}")
        if how == "full disk at start":
            (demo.root / "filler").unlink()
        else:
            demo.in_namespace(f"mount -o remount,rw {shlex.quote(str(directory))}")
        until(lambda: "stationd ready" in demo.text(), 30, "the start after recovery", demo)
        until(lambda: demo.stops(), 20, "the cut session's StopTransaction", demo)
        time.sleep(1)
        stops = demo.stops()
        if [s["transactionId"] for s in stops] != [transaction] or stops[0].get("reason") != "PowerLoss":
            raise AssertionError(f"the cut session {transaction} must stop once (PowerLoss); stops: {stops}")
        if demo.text().count("storage: the station cannot start") != 1:
            raise AssertionError("the refusal was logged more than once")
        demo.child.check_alive()
        return f"{how}: out of service (the WebUI says why), started after recovery, the cut session stopped once"
    finally:
        demo.stop()


def webui_page(demo: Demo, ca: Path) -> tuple[int, str]:
    context = ssl.create_default_context(cafile=str(ca))
    try:
        with urllib.request.urlopen(f"https://127.0.0.1:{demo.webui}/", context=context, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


# ---- a corrupt database before a start -----------------------------------------------------------

def corrupt(db: Path, how: str) -> None:
    data = bytearray(db.read_bytes())
    if how == "header":
        data[:100] = os.urandom(100)
    elif how == "middle page":
        page = 4096
        middle = max(1, len(data) // page // 2) * page
        data[middle:middle + page] = os.urandom(page)
    elif how == "truncated":
        del data[len(data) // 3:]
    db.write_bytes(bytes(data))
    if how == "stale WAL":
        Path(f"{db}-wal").write_bytes(os.urandom(8192))
        Path(f"{db}-shm").unlink(missing_ok=True)


def try_corrupt_database(directory: Path, how: str) -> str:
    first = Demo(directory, tmpfs=False)
    try:
        first.wait_ready()
        first.charge(1, "a session to record")
    finally:
        first.stop()
    db = directory / "data" / "station.db"
    corrupt(db, how)
    second = Demo(directory, tmpfs=False, log_name="-2")
    try:
        second.wait_ready()
        time.sleep(2)
        second.child.check_alive()  # no exit (a systemd restart loop): one start, running
        text = second.text()
        moved = list(db.parent.glob("station.db.corrupt-*"))
        if how in ("header", "truncated", "middle page") and ("was corrupt: moved aside" not in text or not moved):
            raise AssertionError(f"{how}: no clear log line / nothing moved aside")
        if "Traceback" in text:
            raise AssertionError(f"{how}: a traceback in the log")
        return f"corrupt database ({how}): {'moved aside' if moved else 'still readable'}, started once"
    finally:
        second.stop()


def run(long: bool) -> Tally:
    tally = Tally(CATEGORY, UNIT)
    why = namespaces_work()
    rounds = 5 if long else 1
    with tempfile.TemporaryDirectory(prefix="stationd-storage-") as base:
        tries = [("corrupt", how) for how in CORRUPTIONS] * rounds
        if why is None:
            tries = ([("lost", "full disk"), ("refused", "full disk at start"), ("refused", "read-only at start")]
                     * rounds + tries)
        else:
            tally.notes.append(f"full disk not tried: {why}")
        noted: set[str] = set()  # each kind's note once, however many rounds
        for index, (kind, how) in enumerate(tries):
            directory = Path(base) / f"try-{index}"
            directory.mkdir()
            try:
                attempt = {"lost": try_full_disk, "refused": try_start_refused, "corrupt": try_corrupt_database}[kind]
                note = attempt(directory, how)
            except Exception as exc:  # noqa: BLE001 - counted, the others go on
                tally.failed(f"{how}: {exc}")
            else:
                tally.ok(note if how not in noted else None)
                noted.add(how)
    return tally


if __name__ == "__main__":
    result = run("--long" in sys.argv)
    print(result.as_json())
