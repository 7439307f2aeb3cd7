"""WebUI login sessions: server-side, in memory, with idle and absolute expiry.

A session is a random token in the ``stationd_session`` cookie (Secure, HttpOnly,
SameSite=Strict) and the state kept here: who logged in, the CSRF token of its forms, whether
the password must still be changed (the default password, the serial number), the user level
(Default or Expert) and the language. Logout and a password change end it on the server. A
restart of the daemon ends every session: installers log in again.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

COOKIE = "stationd_session"
IDLE_TIMEOUT_S = 30 * 60  # a session nobody used for 30 min is gone
ABSOLUTE_TIMEOUT_S = 12 * 3600  # and every session after 12 h
MAX_SESSIONS = 32  # the oldest goes when a 33rd login succeeds
LEVELS = ("Default", "Expert")
LANGUAGES = ("en", "de")


@dataclass
class Session:
    token: str
    user: str
    csrf: str
    created: float
    last_seen: float
    must_change_password: bool = False
    level: str = "Default"
    language: str = "en"
    flash: list[tuple[str, str]] = field(default_factory=list)  # (kind, message) shown once
    pages: dict[str, object] = field(default_factory=dict)  # a page's state until logout (unsaved edits)

    @property
    def expert(self) -> bool:
        return self.level == "Expert"


class SessionStore:
    def __init__(self, clock: Callable[[], float] = time.monotonic, *, idle_timeout_s: float = IDLE_TIMEOUT_S,
                 absolute_timeout_s: float = ABSOLUTE_TIMEOUT_S, max_sessions: int = MAX_SESSIONS):
        self._clock = clock
        self.idle_timeout_s, self.absolute_timeout_s, self.max_sessions = idle_timeout_s, absolute_timeout_s, max_sessions
        self._sessions: dict[str, Session] = {}

    def create(self, user: str, *, must_change_password: bool, language: str = "en") -> Session:
        self._expire()
        while len(self._sessions) >= self.max_sessions:
            oldest = min(self._sessions.values(), key=lambda s: s.created)
            del self._sessions[oldest.token]
        now = self._clock()
        session = Session(secrets.token_urlsafe(32), user, secrets.token_urlsafe(32), now, now,
                          must_change_password, language=language if language in LANGUAGES else "en")
        self._sessions[session.token] = session
        return session

    def get(self, token: str | None) -> Session | None:
        """The live session of ``token`` (its idle time starts again), or None."""
        if not token:
            return None
        session = self._sessions.get(token)
        if session is None:
            return None
        now = self._clock()
        if now - session.last_seen > self.idle_timeout_s or now - session.created > self.absolute_timeout_s:
            del self._sessions[token]
            return None
        session.last_seen = now
        return session

    def end(self, token: str) -> None:
        self._sessions.pop(token, None)

    def end_all(self, user: str, *, keep: str | None = None) -> None:
        """After a password change: every other session of the user is gone."""
        for token in [t for t, s in self._sessions.items() if s.user == user and t != keep]:
            del self._sessions[token]

    def __len__(self) -> int:
        self._expire()
        return len(self._sessions)

    def _expire(self) -> None:
        for token in list(self._sessions):
            self.get(token)
