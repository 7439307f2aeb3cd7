"""Tests for stationd.sdnotify against real AF_UNIX datagram sockets."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import secrets
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from stationd.sdnotify import SystemdNotifier, run_watchdog


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    """A bound datagram socket standing in for systemd; yields (NOTIFY_SOCKET, socket)."""
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2.0)
    yield str(path), sock
    sock.close()


def drain(sock: socket.socket) -> list[bytes]:
    """Every datagram waiting on ``sock``, without blocking."""
    out: list[bytes] = []
    sock.setblocking(False)
    try:
        while True:
            out.append(sock.recv(4096))
    except BlockingIOError:
        return out
    finally:
        sock.settimeout(2.0)


def notifier_for(address: str, **extra: str) -> SystemdNotifier:
    return SystemdNotifier.from_env({"NOTIFY_SOCKET": address, **extra})


async def test_ready_status_watchdog_stopping_send_exact_datagrams(receiver):
    address, sock = receiver
    n = notifier_for(address)
    assert n.enabled

    assert n.ready()
    assert n.ready("listening on :443")
    assert n.status("2 connectors available")
    assert n.watchdog()
    assert n.stopping()
    assert n.stopping("shutting down")

    assert drain(sock) == [
        b"READY=1",
        b"READY=1\nSTATUS=listening on :443",
        b"STATUS=2 connectors available",
        b"WATCHDOG=1",
        b"STOPPING=1",
        b"STOPPING=1\nSTATUS=shutting down",
    ]


async def test_notify_joins_lines_into_one_datagram(receiver):
    address, sock = receiver
    assert notifier_for(address).notify("A=1", "B=2")
    assert drain(sock) == [b"A=1\nB=2"]


async def test_status_text_is_one_line(receiver):
    address, sock = receiver
    n = notifier_for(address)
    n.status("line one\nline two\r\nthree\0four\n")
    n.ready("a\nb")
    assert drain(sock) == [
        b"STATUS=line one line two three four",
        b"READY=1\nSTATUS=a b",
    ]


async def test_status_is_utf8(receiver):
    address, sock = receiver
    notifier_for(address).status("Ladepunkt bereit \u2013 22 kW")
    assert drain(sock) == ["STATUS=Ladepunkt bereit \u2013 22 kW".encode()]


async def test_reloading_sends_monotonic_timestamp(receiver):
    address, sock = receiver
    before = time.monotonic_ns() // 1000
    notifier_for(address).reloading()
    after = time.monotonic_ns() // 1000
    [datagram] = drain(sock)
    match = re.fullmatch(rb"RELOADING=1\nMONOTONIC_USEC=([0-9]+)", datagram)
    assert match, datagram
    assert before <= int(match[1]) <= after


async def test_abstract_namespace_address():
    name = f"stationd-test-{secrets.token_hex(8)}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        n = notifier_for("@" + name)
        assert n.enabled
        assert n.ready("up")
        assert drain(sock) == [b"READY=1\nSTATUS=up"]


@pytest.mark.parametrize("environ", [{}, {"NOTIFY_SOCKET": ""}], ids=["unset", "empty"])
def test_disabled_notifier_sends_nothing(environ, monkeypatch):
    def no_socket(*args, **kwargs):
        raise AssertionError("a disabled notifier must not create sockets")

    monkeypatch.setattr(socket, "socket", no_socket)
    n = SystemdNotifier.from_env(environ)
    assert not n.enabled
    assert n.ready("x") is False
    assert n.status("x") is False
    assert n.watchdog() is False
    assert n.stopping("x") is False
    assert n.reloading() is False
    assert n.notify("A=1") is False
    assert n.watchdog_interval() is None


async def test_from_env_defaults_to_process_environment(receiver, monkeypatch):
    address, sock = receiver
    monkeypatch.setenv("NOTIFY_SOCKET", address)
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    n = SystemdNotifier.from_env()
    assert n.watchdog()
    assert drain(sock) == [b"WATCHDOG=1"]
    assert n.watchdog_interval() == 15.0


async def test_missing_socket_path_does_not_raise(tmp_path, caplog):
    n = notifier_for(str(tmp_path / "no-such-dir" / "notify.sock"))
    assert n.enabled
    with caplog.at_level(logging.DEBUG, logger="stationd.sdnotify"):
        assert n.ready("x") is False
        assert n.watchdog() is False
    records = [r for r in caplog.records if r.name == "stationd.sdnotify"]
    assert records and all(r.levelno == logging.DEBUG for r in records)


async def test_socket_nobody_listens_on_does_not_raise(tmp_path):
    # A path that exists but is a plain file, not a socket.
    path = tmp_path / "not-a-socket"
    path.write_text("")
    assert notifier_for(str(path)).status("x") is False


async def test_overlong_path_and_unsupported_address_do_not_raise():
    assert notifier_for("/" + "x" * 200).watchdog() is False
    relative = notifier_for("relative/notify.sock")
    assert not relative.enabled
    assert relative.watchdog() is False


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"WATCHDOG_USEC": "2000000"}, 1.0),
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "<self>"}, 1.0),
        ({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "<other>"}, None),
        ({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "garbage"}, None),
        ({"WATCHDOG_USEC": "garbage"}, None),
        ({"WATCHDOG_USEC": "1.5"}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "-5"}, None),
        ({"WATCHDOG_USEC": ""}, None),
        ({}, None),
    ],
)
def test_watchdog_interval(environ, expected):
    pid = os.getpid()
    environ = {
        k: str(pid) if v == "<self>" else str(pid + 1) if v == "<other>" else v
        for k, v in environ.items()
    }
    assert SystemdNotifier.from_env(environ).watchdog_interval() == expected


def test_watchdog_interval_does_not_need_notify_socket():
    # The interval is parsed independently; sending is still a no-op.
    n = SystemdNotifier.from_env({"WATCHDOG_USEC": "2000000"})
    assert n.watchdog_interval() == 1.0
    assert n.watchdog() is False


class _Stop(Exception):
    """Raised by the fake sleep to end run_watchdog's loop."""


class FakeSleep:
    """Records requested delays; calls ``on_sleep(n)`` before the n-th (1-based) sleep."""

    def __init__(self, limit: int, on_sleep=lambda n: None) -> None:
        self.delays: list[float] = []
        self.limit = limit
        self.on_sleep = on_sleep

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        self.on_sleep(len(self.delays))
        if len(self.delays) >= self.limit:
            raise _Stop


async def test_run_watchdog_pings_while_healthy_then_stops(receiver):
    address, sock = receiver
    n = notifier_for(address, WATCHDOG_USEC="2000000")
    healthy = True

    def after_sleep(count: int) -> None:
        nonlocal healthy
        if count == 3:  # three pings sent, then the daemon turns unhealthy
            healthy = False

    sleep = FakeSleep(limit=6, on_sleep=after_sleep)
    with pytest.raises(_Stop):
        await run_watchdog(n, lambda: healthy, sleep=sleep)

    assert sleep.delays == [1.0] * 6  # keeps checking at the interval
    assert drain(sock) == [b"WATCHDOG=1"] * 3


async def test_run_watchdog_resumes_when_health_returns(receiver):
    address, sock = receiver
    n = notifier_for(address, WATCHDOG_USEC="2000000")
    pattern = [True, False, False, True, True]
    calls = iter(pattern)

    sleep = FakeSleep(limit=len(pattern))
    with pytest.raises(_Stop):
        await run_watchdog(n, lambda: next(calls), sleep=sleep)
    assert drain(sock) == [b"WATCHDOG=1"] * pattern.count(True)


async def test_run_watchdog_treats_failing_health_check_as_unhealthy(receiver, caplog):
    address, sock = receiver
    n = notifier_for(address, WATCHDOG_USEC="2000000")

    def broken() -> bool:
        raise RuntimeError("boom")

    with caplog.at_level(logging.WARNING, logger="stationd.sdnotify"):
        with pytest.raises(_Stop):
            await run_watchdog(n, broken, sleep=FakeSleep(limit=3))
    assert drain(sock) == []
    warnings = [r for r in caplog.records if r.name == "stationd.sdnotify"]
    assert len(warnings) == 1  # logged once on the transition, not every interval
    assert warnings[0].exc_info is not None


@pytest.mark.parametrize(
    "environ",
    [{}, {"WATCHDOG_USEC": "garbage"}, {"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "<other>"}],
)
async def test_run_watchdog_returns_at_once_without_interval(receiver, environ):
    address, sock = receiver
    environ = {k: str(os.getpid() + 1) if v == "<other>" else v for k, v in environ.items()}
    n = notifier_for(address, **environ)
    sleep = FakeSleep(limit=1)

    await run_watchdog(n, lambda: True, sleep=sleep)

    assert sleep.delays == []
    assert drain(sock) == []


async def test_run_watchdog_with_real_sleep_is_cancellable(receiver):
    address, sock = receiver
    n = notifier_for(address, WATCHDOG_USEC="20000")  # 10 ms interval
    task = asyncio.create_task(run_watchdog(n, lambda: True))
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(drain(sock)) >= 2
