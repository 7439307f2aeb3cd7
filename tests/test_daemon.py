"""The daemon's lifecycle: readiness, restarts, bounded shutdown, exit statuses.

Two layers: the ``Daemon`` in this process with injected components and a real sd_notify
socket, then ``python -m stationd run`` as a real process, signalled like systemd does.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import dry_run_station

from stationd import logs
from stationd.config.station_file import StationConfig, load_station_config
from stationd.config.store import ConfigStore
from stationd.config.value_types import Source
from stationd.daemon import EXIT_COMPONENT_FAILED, EXIT_OK, Daemon, Station
from stationd.sdnotify import SystemdNotifier
from stationd.storage import StorageError
from stationd.supervisor import Component

WAIT = 5.0  # upper bound for in-process waits
FAST = {"initial_backoff": 0.01, "max_backoff": 0.05, "max_failures": 3, "window": 60.0}


# ----------------------------------------------------------------------------- helpers
@pytest.fixture
def config(tmp_path: Path) -> StationConfig:
    loaded = load_station_config(dry_run_station(tmp_path))
    assert loaded.data_dir == tmp_path / "data"
    return loaded


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    """A datagram socket standing in for systemd: (NOTIFY_SOCKET value, socket)."""
    directory = tmp_path
    if len(str(tmp_path / "notify.sock")) > 100:  # AF_UNIX paths are limited to 108 bytes
        directory = Path(tempfile.mkdtemp(prefix="sdn-"))
    path = directory / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.setblocking(False)
    yield str(path), sock
    sock.close()
    path.unlink(missing_ok=True)
    if directory != tmp_path:
        directory.rmdir()


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """The daemon sets the LogLevel* loggers' levels; put them back after each test."""
    names = [logs.ROOT] + [name for name, _ in logs.LEVEL_KEYS.values()]
    saved = {name: (logging.getLogger(name).level, logging.getLogger(name).propagate) for name in names}
    sources = list(logs._secret_sources)
    yield
    for name, (level, propagate) in saved.items():
        logging.getLogger(name).setLevel(level)
        logging.getLogger(name).propagate = propagate
    logs._secret_sources[:] = sources


def notifier(address: str, **environ: str) -> SystemdNotifier:
    return SystemdNotifier.from_env({"NOTIFY_SOCKET": address, **environ})


async def next_message(sock: socket.socket, timeout: float = WAIT) -> list[str]:
    data = await asyncio.wait_for(asyncio.get_running_loop().sock_recv(sock, 4096), timeout)
    return data.decode().split("\n")


async def wait_for_line(sock: socket.socket, line: str, timeout: float = WAIT) -> list[str]:
    """Receive datagrams until one carries ``line``; return that datagram's lines."""
    async with asyncio.timeout(timeout):
        while True:
            message = await next_message(sock, timeout)
            if line in message:
                return message


def drain(sock: socket.socket) -> list[list[str]]:
    out = []
    while True:
        try:
            out.append(sock.recv(4096).decode().split("\n"))
        except BlockingIOError:
            return out


async def until(predicate, timeout: float = WAIT) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)


async def finish(task: asyncio.Task, timeout: float = WAIT) -> int:
    return await asyncio.wait_for(task, timeout)


# ----------------------------------------------------------------------------- in-process
async def test_ready_then_stopping_and_request_stop_returns_0_promptly(config, notify):
    address, sock = notify
    daemon = Daemon(config, notifier=notifier(address), supervisor_options=FAST)
    task = asyncio.create_task(daemon.run())

    ready = await wait_for_line(sock, "READY=1")
    status = [line for line in ready if line.startswith("STATUS=")]
    assert status and "running" in status[0], ready
    assert not task.done()

    started = time.monotonic()
    daemon.request_stop("test")
    assert await finish(task) == EXIT_OK
    assert time.monotonic() - started < 1.0
    stopping = await wait_for_line(sock, "STOPPING=1")
    assert "READY=1" not in stopping


async def test_request_stop_before_start_returns_at_once(config, notify):
    address, sock = notify
    daemon = Daemon(config, notifier=notifier(address))
    daemon.request_stop("test")
    assert await finish(asyncio.create_task(daemon.run())) == EXIT_OK
    lines = [line for message in drain(sock) for line in message]
    assert "READY=1" in lines and "STOPPING=1" in lines


async def test_crashing_component_is_restarted_while_the_daemon_stays_up(config, notify, caplog):
    address, sock = notify
    runs = 0
    stopped = asyncio.Event()

    async def flaky() -> None:
        nonlocal runs
        runs += 1
        if runs <= 2:
            raise ConnectionError(f"controller not answering (run {runs})")
        try:
            await asyncio.Event().wait()
        finally:
            stopped.set()

    daemon = Daemon(config, component_factories=[lambda station: [Component("evse", flaky)]],
                    notifier=notifier(address), supervisor_options=FAST)
    task = asyncio.create_task(daemon.run())
    await wait_for_line(sock, "READY=1")
    await until(lambda: runs >= 3)
    await asyncio.sleep(0.05)
    assert runs == 3  # restarted twice, then left running
    assert not task.done()
    assert sum("restarting" in r.getMessage() for r in caplog.records) == 2

    daemon.request_stop("test")
    assert await finish(task) == EXIT_OK
    assert stopped.is_set()


async def test_critical_component_that_keeps_failing_ends_run_with_1(config, notify, caplog):
    address, sock = notify
    runs = 0
    other_stopped = asyncio.Event()

    async def broken() -> None:
        nonlocal runs
        runs += 1
        raise OSError("no such device: /dev/ttyEVSE")

    async def healthy() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            other_stopped.set()

    factory = lambda station: [Component("evse", broken), Component("meters", healthy)]  # noqa: E731
    daemon = Daemon(config, component_factories=[factory], notifier=notifier(address), supervisor_options=FAST)
    assert await finish(asyncio.create_task(daemon.run())) == EXIT_COMPONENT_FAILED
    assert runs == FAST["max_failures"] + 1
    assert other_stopped.is_set()
    lines = [line for message in drain(sock) for line in message]
    assert "READY=1" in lines and "STOPPING=1" in lines
    assert any(r.levelno == logging.CRITICAL and "evse" in r.getMessage() and "stopping the station" in r.getMessage()
               for r in caplog.records)


async def test_non_critical_component_failing_keeps_the_daemon_up_and_stops_watchdog_pings(config, notify):
    address, sock = notify
    runs = 0

    async def modem() -> None:
        nonlocal runs
        runs += 1
        raise OSError("modem gone")

    daemon = Daemon(config, component_factories=[lambda station: [Component("modem", modem, critical=False)]],
                    notifier=notifier(address, WATCHDOG_USEC="100000"), supervisor_options=FAST)
    task = asyncio.create_task(daemon.run())
    await until(lambda: runs == FAST["max_failures"] + 1)
    await asyncio.sleep(0.1)  # a ping already on its way may still arrive
    drain(sock)
    await asyncio.sleep(0.25)  # five watchdog intervals
    assert not task.done()
    assert ["WATCHDOG=1"] not in drain(sock)  # unhealthy: pings withheld, systemd will act
    daemon.request_stop("test")
    assert await finish(task) == EXIT_OK


async def test_watchdog_pings_arrive_at_half_watchdog_usec(config, notify):
    address, sock = notify
    daemon = Daemon(config, notifier=notifier(address, WATCHDOG_USEC="200000"), supervisor_options=FAST)
    task = asyncio.create_task(daemon.run())
    await wait_for_line(sock, "READY=1")
    started = time.monotonic()
    for _ in range(3):
        await wait_for_line(sock, "WATCHDOG=1", timeout=1.0)
    elapsed = time.monotonic() - started
    assert 0.1 <= elapsed < 1.0  # every 0.1 s, not as fast as possible
    daemon.request_stop("test")
    assert await finish(task) == EXIT_OK


async def test_no_watchdog_pings_without_watchdog_usec(config, notify):
    address, sock = notify
    daemon = Daemon(config, notifier=notifier(address), supervisor_options=FAST)
    task = asyncio.create_task(daemon.run())
    await wait_for_line(sock, "READY=1")
    await asyncio.sleep(0.15)
    daemon.request_stop("test")
    assert await finish(task) == EXIT_OK
    assert ["WATCHDOG=1"] not in drain(sock)


async def test_a_component_ignoring_cancellation_does_not_hold_the_shutdown(config, notify, caplog):
    address, sock = notify
    release = asyncio.Event()
    cancelled = asyncio.Event()

    async def stubborn() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            await asyncio.wait_for(release.wait(), 30)  # "cleanup" that takes far too long
            raise

    daemon = Daemon(config, component_factories=[lambda station: [Component("stubborn", stubborn)]],
                    notifier=notifier(address), shutdown_timeout=0.2, supervisor_options=FAST)
    task = asyncio.create_task(daemon.run())
    await wait_for_line(sock, "READY=1")
    started = time.monotonic()
    daemon.request_stop("test")
    try:
        assert await finish(task) == EXIT_OK
        elapsed = time.monotonic() - started
        assert cancelled.is_set()
        assert 0.2 <= elapsed < 1.0
        assert any("did not stop within" in r.getMessage() for r in caplog.records)
    finally:
        release.set()
        await asyncio.sleep(0.01)


async def test_boot_ids_increase_across_runs_on_the_same_data_dir(config, notify):
    address, _ = notify
    stations: list[Station] = []

    async def run_once() -> None:
        daemon: Daemon

        def capture(station: Station) -> list[Component]:
            stations.append(station)

            async def stop_soon() -> None:
                daemon.request_stop("test")

            return [Component("stop", stop_soon)]

        daemon = Daemon(config, component_factories=[capture], notifier=notifier(address), supervisor_options=FAST)
        assert await finish(asyncio.create_task(daemon.run())) == EXIT_OK

    await run_once()
    await run_once()
    assert len(stations) == 2
    first, second = stations
    assert first.boot_id >= 1
    assert second.boot_id > first.boot_id
    assert first.config is config
    assert first.store.get("BoxId") == "TE-DEV000001"
    assert first.db.closed and second.db.closed  # the database is closed on the way out


async def test_log_level_key_changed_by_another_process_applies_while_running(config, notify):
    address, sock = notify
    daemon = Daemon(config, notifier=notifier(address), supervisor_options=FAST)
    task = asyncio.create_task(daemon.run())
    await wait_for_line(sock, "READY=1")
    assert logging.getLogger("stationd").level == logging.INFO  # log_level: info in the file
    tool = ConfigStore.open(config.data_dir)  # like `stationd config set`
    assert tool.set("LogLevelAppService", "2", Source.LOCAL).ok
    await until(lambda: logging.getLogger("stationd").level == logging.DEBUG, timeout=5.0)
    daemon.request_stop("test")
    assert await finish(task) == EXIT_OK


async def test_unusable_database_raises_storage_error_and_leaves_nothing_behind(config, notify):
    address, sock = notify
    config.data_dir.mkdir()
    (config.data_dir / "station.db").mkdir()  # not a file at all (a corrupt file is moved aside instead)
    before = list(logs._secret_sources)
    daemon = Daemon(config, notifier=notifier(address))
    with pytest.raises(StorageError, match="station.db"):
        await asyncio.wait_for(daemon.run(), WAIT)
    assert logs._secret_sources == before  # the store's secret source was unregistered
    assert drain(sock) == []  # never reported ready


async def test_a_start_the_storage_refuses_waits_out_of_service_then_starts(config, notify, caplog):
    """No exit (a systemd restart loop that gives up): up, out of service, watchdog fed, one clear
    log line however often the start is retried, and the station starts once the directory works."""
    address, sock = notify
    config.data_dir.write_text("a file where the data directory belongs")
    daemon = Daemon(config, notifier=notifier(address, WATCHDOG_USEC="200000"), supervisor_options=FAST,
                    storage_retry_s=0.05)
    task = asyncio.create_task(daemon.run())
    ready = await wait_for_line(sock, "READY=1")
    assert any(line.startswith("STATUS=out of service: storage:") and str(config.data_dir) in line
               for line in ready), ready
    await wait_for_line(sock, "WATCHDOG=1")
    await asyncio.sleep(0.3)  # several retries
    assert not task.done()
    refusals = [r for r in caplog.records if "the station cannot start" in r.getMessage()]
    assert len(refusals) == 1 and refusals[0].levelno == logging.CRITICAL
    assert config.data_dir.is_file()  # nothing of the station was made

    config.data_dir.unlink()
    ready = await wait_for_line(sock, "READY=1")
    assert any(line.startswith("STATUS=running") for line in ready), ready
    assert (config.data_dir / "station.db").is_file()
    daemon.request_stop("test")
    assert await finish(task) == EXIT_OK


async def test_a_stop_while_out_of_service_for_storage_returns_0(config, notify):
    address, sock = notify
    config.data_dir.write_text("a file where the data directory belongs")
    daemon = Daemon(config, notifier=notifier(address), storage_retry_s=30.0)
    task = asyncio.create_task(daemon.run())
    await wait_for_line(sock, "READY=1")
    daemon.request_stop("test")
    assert await finish(task) == EXIT_OK


# ----------------------------------------------------------------------------- real process
def daemon_env(address: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM")}
    if address is not None:
        env["NOTIFY_SOCKET"] = address
    return env


def receive_line(sock: socket.socket, line: str, timeout: float) -> list[str]:
    deadline = time.monotonic() + timeout
    sock.settimeout(timeout)
    try:
        while True:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                message = sock.recv(4096).decode().split("\n")
            except TimeoutError:
                pytest.fail(f"no {line} within {timeout} s")
            if line in message:
                return message
    finally:
        sock.setblocking(False)


def start(yaml: Path, address: str | None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "stationd", "run", "--config", str(yaml)],
                            env=daemon_env(address), cwd=yaml.parent, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_process_reports_ready_and_exits_0_on_signal(tmp_path, notify, signum):
    address, sock = notify
    proc = start(dry_run_station(tmp_path), address)
    try:
        ready = receive_line(sock, "READY=1", timeout=15)
        assert any(line.startswith("STATUS=") for line in ready)
        assert proc.poll() is None
        proc.send_signal(signum)
        status = proc.wait(timeout=10)
        receive_line(sock, "STOPPING=1", timeout=2)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
        stdout, stderr = proc.communicate(timeout=5)
    assert status == 0, stderr
    assert "Traceback" not in stderr
    assert f"stopping: {signal.Signals(signum).name}" in stderr
    assert "stationd stopped (exit status 0)" in stderr
    assert (tmp_path / "data" / "station.db").is_file()


def test_a_restart_the_station_asks_for_exits_75_for_systemd_to_start_it_again(tmp_path, notify):
    address, sock = notify
    yaml = dry_run_station(tmp_path)
    proc = start(yaml, address)
    try:
        receive_line(sock, "READY=1", timeout=15)
        # the technician's factory reset "now" (another process writes the key): the station restarts
        subprocess.run([sys.executable, "-m", "stationd", "config", "set", "--config", str(yaml),
                        "FactoryReset", "Active-now"], env=daemon_env(None), check=True, capture_output=True,
                       timeout=30)
        status = proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
        _, stderr = proc.communicate(timeout=5)
    assert status == 75, stderr  # the unit's RestartForceExitStatus=75
    assert "so that systemd starts the station again" in stderr


def test_invalid_config_file_exits_78_naming_file_and_line(tmp_path):
    yaml = dry_run_station(tmp_path, replace=("max_current_a: 32  ", "max_current_a: 100 "))
    line = next(n for n, text in enumerate(yaml.read_text().splitlines(), 1) if "max_current_a: 100" in text)
    proc = subprocess.run([sys.executable, "-m", "stationd", "run", "--config", str(yaml)], env=daemon_env(None),
                          cwd=tmp_path, capture_output=True, text=True, timeout=15)
    assert proc.returncode == 78, proc.stderr
    assert f"{yaml}:{line}:" in proc.stderr
    assert "max_current_a" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "data").exists()  # nothing was started


def test_an_unusable_database_exits_74_with_a_clear_message(tmp_path):
    yaml = dry_run_station(tmp_path)
    (tmp_path / "data" / "station.db").mkdir(parents=True)  # cannot be opened nor moved aside as corrupt
    proc = subprocess.run([sys.executable, "-m", "stationd", "run", "--config", str(yaml)], env=daemon_env(None),
                          cwd=tmp_path, capture_output=True, text=True, timeout=15)
    assert proc.returncode == 74, proc.stderr
    assert "station.db" in proc.stderr and "Traceback" not in proc.stderr


def test_a_garbage_database_is_moved_aside_and_the_daemon_runs(tmp_path):
    """No exit (under systemd Restart=on-failure that would be a restart loop): the corrupt file
    goes aside as station.db.corrupt-<time>, a critical line says so, a fresh database is used."""
    yaml = dry_run_station(tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "station.db").write_bytes(os.urandom(8192))
    proc = subprocess.Popen([sys.executable, "-m", "stationd", "run", "--config", str(yaml)], env=daemon_env(None),
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        while not list((tmp_path / "data").glob("station.db.corrupt-*")) and time.monotonic() < deadline:
            assert proc.poll() is None, proc.stdout.read()
            time.sleep(0.1)
        time.sleep(1.0)
        assert proc.poll() is None
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        output = proc.communicate(timeout=15)[0]
    assert re.search(r"CRITICAL .*database was corrupt: moved aside to \S+station\.db\.corrupt-", output), output
    assert "Traceback" not in output


async def test_a_failing_component_factory_closes_the_database(config, notify):
    address, _ = notify
    seen: list[Station] = []

    def broken_factory(station: Station) -> list[Component]:
        seen.append(station)
        raise ValueError("bad hardware section")

    before = list(logs._secret_sources)
    daemon = Daemon(config, component_factories=[broken_factory], notifier=notifier(address))
    with pytest.raises(ValueError, match="bad hardware section"):
        await asyncio.wait_for(daemon.run(), WAIT)
    assert seen and seen[0].db.closed
    assert logs._secret_sources == before
