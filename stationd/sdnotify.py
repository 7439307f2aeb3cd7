"""Minimal sd_notify(3) client: readiness, status and watchdog pings to systemd.

The protocol is one datagram of newline-separated ``KEY=VALUE`` lines sent to the
AF_UNIX socket named in ``NOTIFY_SOCKET`` (a leading ``@`` means the Linux abstract
namespace). Without ``NOTIFY_SOCKET`` (not started by systemd) every call is a no-op.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Mapping

__all__ = ["SystemdNotifier", "run_watchdog"]

log = logging.getLogger("stationd.sdnotify")


def _one_line(text: str) -> str:
    """Return ``text`` with line breaks and NUL bytes replaced by spaces."""
    return " ".join(text.replace("\0", " ").splitlines())


class SystemdNotifier:
    """Sends notifications to systemd; sending never raises."""

    def __init__(
        self,
        notify_socket: str | None = None,
        watchdog_usec: str | None = None,
        watchdog_pid: str | None = None,
    ) -> None:
        """Use :meth:`from_env` normally; the arguments are the raw variable values."""
        self._socket_name = notify_socket or None
        self._address: bytes | None = None
        if notify_socket:
            if notify_socket.startswith("@"):
                self._address = b"\0" + os.fsencode(notify_socket[1:])
            elif notify_socket.startswith("/"):
                self._address = os.fsencode(notify_socket)
            else:
                log.debug("unsupported NOTIFY_SOCKET %r, notifications disabled", notify_socket)
        self._watchdog_usec = watchdog_usec
        self._watchdog_pid = watchdog_pid

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> SystemdNotifier:
        """Build from NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID in ``environ``."""
        return cls(
            environ.get("NOTIFY_SOCKET"),
            environ.get("WATCHDOG_USEC"),
            environ.get("WATCHDOG_PID"),
        )

    @property
    def enabled(self) -> bool:
        """True when there is a notification socket to send to."""
        return self._address is not None

    def notify(self, *lines: str) -> bool:
        """Send ``lines`` joined by newlines as one datagram; return True if sent."""
        if self._address is None or not lines:
            return False
        payload = "\n".join(lines).encode("utf-8", errors="replace")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                # Never block the event loop: drop the message if the queue is full.
                sock.setblocking(False)
                sock.sendto(payload, self._address)
        except (OSError, ValueError) as exc:
            log.debug("sd_notify to %r failed: %s", self._socket_name, exc)
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        """Report that start-up (or a reload) is complete."""
        return self.notify("READY=1", *self._status_lines(status))

    def status(self, text: str) -> bool:
        """Set the one-line status shown by ``systemctl status``."""
        return self.notify(f"STATUS={_one_line(text)}")

    def watchdog(self) -> bool:
        """Send one watchdog keep-alive ping."""
        return self.notify("WATCHDOG=1")

    def stopping(self, status: str | None = None) -> bool:
        """Report that a graceful shutdown has begun."""
        return self.notify("STOPPING=1", *self._status_lines(status))

    def reloading(self) -> bool:
        """Report that a configuration reload has begun; call :meth:`ready` when done."""
        # MONOTONIC_USEC lets systemd (Type=notify-reload) match this to the reload request.
        return self.notify("RELOADING=1", f"MONOTONIC_USEC={time.monotonic_ns() // 1000}")

    def watchdog_interval(self) -> float | None:
        """Seconds between pings (half of WATCHDOG_USEC), or None if no watchdog is set."""
        if not self._watchdog_usec:
            return None
        try:
            usec = int(self._watchdog_usec)
        except ValueError:
            return None
        if usec <= 0:
            return None
        if self._watchdog_pid:
            try:
                pid = int(self._watchdog_pid)
            except ValueError:
                return None
            if pid != os.getpid():
                return None
        return usec / 2 / 1_000_000

    @staticmethod
    def _status_lines(status: str | None) -> tuple[str, ...]:
        return () if status is None else (f"STATUS={_one_line(status)}",)


async def run_watchdog(
    notifier: SystemdNotifier,
    is_healthy: Callable[[], bool],
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
) -> None:
    """Ping the watchdog every interval while ``is_healthy()`` is true; run until cancelled.

    Returns at once if there is no watchdog interval. While ``is_healthy()`` is false
    (or raises) no ping is sent, so systemd restarts the service once WatchdogSec
    passes without one; pings resume if health returns before that.
    """
    interval = notifier.watchdog_interval()
    if interval is None:
        return
    healthy = True  # previous result, so that transitions are logged once
    while True:
        error: Exception | None = None
        try:
            now_healthy = bool(is_healthy())
        except Exception as exc:
            now_healthy, error = False, exc
        if now_healthy:
            notifier.watchdog()
            if not healthy:
                log.info("healthy again; watchdog pings resumed")
        elif healthy:
            log.warning("unhealthy; withholding watchdog pings", exc_info=error)
        healthy = now_healthy
        await sleep(interval)
