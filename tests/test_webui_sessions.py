"""WebUI sessions expire (idle and absolute) and the login limiter locks out, longer each time,
with a cap across all clients — on an injected clock."""

from __future__ import annotations

from stationd.webui.login_limiter import GLOBAL_FAILURES_PER_MINUTE, LoginLimiter
from stationd.webui.sessions import ABSOLUTE_TIMEOUT_S, IDLE_TIMEOUT_S, SessionStore


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_session_ends_after_idle_time_and_use_keeps_it_alive():
    clock = Clock()
    sessions = SessionStore(clock)
    session = sessions.create("admin", must_change_password=False)
    clock.now += IDLE_TIMEOUT_S - 1
    assert sessions.get(session.token) is session  # used: the idle time starts again
    clock.now += IDLE_TIMEOUT_S - 1
    assert sessions.get(session.token) is session
    clock.now += IDLE_TIMEOUT_S + 1
    assert sessions.get(session.token) is None
    assert sessions.get(session.token) is None  # gone for good


def test_every_session_ends_after_the_absolute_time_even_when_used():
    clock = Clock()
    sessions = SessionStore(clock)
    session = sessions.create("admin", must_change_password=False)
    while clock.now - 1000.0 < ABSOLUTE_TIMEOUT_S - 60:
        clock.now += 60
        assert sessions.get(session.token) is session
    clock.now += 120
    assert sessions.get(session.token) is None


def test_a_password_change_ends_the_users_other_sessions():
    sessions = SessionStore(Clock())
    kept, other = (sessions.create("admin", must_change_password=False) for _ in range(2))
    sessions.end_all("admin", keep=kept.token)
    assert sessions.get(kept.token) is kept and sessions.get(other.token) is None


def test_lockouts_double_and_a_success_forgets_the_failures():
    clock = Clock()
    limiter = LoginLimiter(clock)
    for _ in range(5):
        assert limiter.wait_s("laptop-a") == 0
        limiter.failed("laptop-a")
    assert limiter.wait_s("laptop-a") == 60
    assert limiter.wait_s("laptop-b") == 0  # another client is not locked out
    clock.now += 61
    for _ in range(5):
        limiter.failed("laptop-a")
    assert limiter.wait_s("laptop-a") == 120
    clock.now += 121
    limiter.succeeded("laptop-a")
    for _ in range(4):
        limiter.failed("laptop-a")
    assert limiter.wait_s("laptop-a") == 0


def test_many_clients_together_cannot_multiply_the_guessing_rate():
    clock = Clock()
    limiter = LoginLimiter(clock)
    for n in range(GLOBAL_FAILURES_PER_MINUTE):
        limiter.failed(f"client-{n}")
    assert limiter.wait_s("a-new-client") > 0
    clock.now += 61
    assert limiter.wait_s("a-new-client") == 0
