"""Login rate limiting and lockout.

Per client address: 5 wrong passwords within 15 minutes lock that address out for 1 minute;
every further lockout doubles the time, up to 15 minutes. A correct password while locked
out is refused too (a guesser learns nothing). A successful login forgets the failures.
Across all addresses: at most 30 wrong passwords a minute, so that many addresses (a laptop
behind the USB gadget gets one by DHCP, an attacker on the WAN may have many) cannot multiply
the rate.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

FAILURES_BEFORE_LOCKOUT = 5
FAILURE_WINDOW_S = 15 * 60
FIRST_LOCKOUT_S = 60.0
MAX_LOCKOUT_S = 15 * 60.0
GLOBAL_FAILURES_PER_MINUTE = 30
MAX_TRACKED_CLIENTS = 1024


@dataclass
class _Client:
    failures: deque[float] = field(default_factory=deque)
    locked_until: float = 0.0
    lockouts: int = 0


class LoginLimiter:
    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._clients: dict[str, _Client] = {}
        self._recent: deque[float] = deque()  # every failure of the last minute

    def wait_s(self, client: str) -> float:
        """Seconds until ``client`` may try again (0: now)."""
        now = self._clock()
        while self._recent and now - self._recent[0] > 60:
            self._recent.popleft()
        state = self._clients.get(client)
        own = max(0.0, state.locked_until - now) if state else 0.0
        if len(self._recent) >= GLOBAL_FAILURES_PER_MINUTE:
            own = max(own, 60 - (now - self._recent[0]))
        return own

    def failed(self, client: str) -> None:
        now = self._clock()
        self._recent.append(now)
        if client not in self._clients and len(self._clients) >= MAX_TRACKED_CLIENTS:
            quiet = min(self._clients, key=lambda c: self._clients[c].failures[-1] if self._clients[c].failures else 0)
            del self._clients[quiet]
        state = self._clients.setdefault(client, _Client())
        state.failures.append(now)
        while state.failures and now - state.failures[0] > FAILURE_WINDOW_S:
            state.failures.popleft()
        if len(state.failures) >= FAILURES_BEFORE_LOCKOUT:
            state.locked_until = now + min(MAX_LOCKOUT_S, FIRST_LOCKOUT_S * 2 ** state.lockouts)
            state.lockouts += 1
            state.failures.clear()

    def succeeded(self, client: str) -> None:
        self._clients.pop(client, None)
