"""The supervisor: restart with backoff, give up loudly, stop cleanly.

Time is faked: ``FakeTime.sleep`` records each delay, advances the fake clock by it and returns
at once, so every test runs in milliseconds.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from stationd.supervisor import Component, ComponentFailed, Supervisor

WAIT = 2.0  # upper bound for anything a test waits for (everything here is instant)


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0
        self.delays: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.delays.append(delay)
        self.now += delay
        await asyncio.sleep(0)  # let the other components run, but never wait


class Flaky:
    """A component that raises ``failures`` times, then runs until cancelled.

    ``runs_for`` (per run, fake seconds) is how long each failing run "lasted" before it raised.
    """

    def __init__(self, time: FakeTime, failures: int, runs_for: list[float] | None = None) -> None:
        self.time, self.failures, self.runs_for = time, failures, runs_for or []
        self.runs = 0
        self.running = asyncio.Event()
        self.stopped = False

    async def run(self) -> None:
        self.runs += 1
        if self.runs <= len(self.runs_for):
            self.time.now += self.runs_for[self.runs - 1]
        if self.runs <= self.failures:
            raise RuntimeError(f"link lost (run {self.runs})")
        self.running.set()
        try:
            await asyncio.Event().wait()
        finally:
            self.stopped = True


class Ticker:
    """A healthy component that counts its ticks until cancelled."""

    def __init__(self) -> None:
        self.ticks = 0
        self.stopped = False

    async def run(self) -> None:
        try:
            while True:
                self.ticks += 1
                await asyncio.sleep(0)
        finally:
            self.stopped = True


def supervisor(components: list[Component], time: FakeTime, **options) -> Supervisor:
    return Supervisor(components, sleep=time.sleep, clock=time.clock, **options)


async def cancel(task: asyncio.Task) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, WAIT)


def messages(caplog: pytest.LogCaptureFixture, word: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "stationd.supervisor" and word in r.getMessage()]


@pytest.fixture(autouse=True)
def _capture(caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.DEBUG, logger="stationd.supervisor")


async def test_failing_component_is_restarted_with_doubling_backoff(caplog):
    time = FakeTime()
    link = Flaky(time, failures=2)
    sup = supervisor([Component("evse-link", link.run)], time)
    task = asyncio.create_task(sup.run())
    await asyncio.wait_for(link.running.wait(), WAIT)

    assert link.runs == 3
    assert time.delays == [1.0, 2.0]
    state = sup.states["evse-link"]
    assert state.state == "running"
    assert state.restarts == 2
    assert state.last_error == "RuntimeError: link lost (run 2)"
    assert sup.healthy
    restarting = messages(caplog, "restarting")
    assert len(restarting) == 2
    assert "evse-link" in restarting[0] and "link lost (run 1)" in restarting[0] and "1.0 s" in restarting[0]
    assert "2.0 s" in restarting[1]
    assert all(r.levelno == logging.ERROR for r in caplog.records if "restarting" in r.getMessage())
    await cancel(task)
    assert link.stopped


async def test_backoff_is_capped_at_max_backoff():
    time = FakeTime()
    link = Flaky(time, failures=6)
    sup = supervisor([Component("meter", link.run)], time, max_backoff=5.0, max_failures=10)
    task = asyncio.create_task(sup.run())
    await asyncio.wait_for(link.running.wait(), WAIT)
    assert time.delays == [1.0, 2.0, 4.0, 5.0, 5.0, 5.0]
    await cancel(task)


async def test_initial_backoff_is_configurable():
    time = FakeTime()
    link = Flaky(time, failures=3)
    sup = supervisor([Component("meter", link.run)], time, initial_backoff=0.25)
    task = asyncio.create_task(sup.run())
    await asyncio.wait_for(link.running.wait(), WAIT)
    assert time.delays == [0.25, 0.5, 1.0]
    await cancel(task)


async def test_exactly_max_failures_within_the_window_is_still_restarted(caplog):
    time = FakeTime()
    link = Flaky(time, failures=3)
    sup = supervisor([Component("rfid", link.run)], time, max_failures=3, window=300.0)
    task = asyncio.create_task(sup.run())
    await asyncio.wait_for(link.running.wait(), WAIT)
    assert sup.states["rfid"].state == "running"
    assert not messages(caplog, "giving up")
    await cancel(task)


async def test_critical_component_failing_too_often_ends_run_with_component_failed(caplog):
    time = FakeTime()
    link = Flaky(time, failures=1000)
    other = Ticker()
    sup = supervisor([Component("evse-link", link.run), Component("ticker", other.run)], time,
                     max_failures=3, window=300.0)

    with pytest.raises(ExceptionGroup) as caught:
        await asyncio.wait_for(sup.run(), WAIT)

    failed = caught.value.subgroup(ComponentFailed)
    assert failed is not None and len(failed.exceptions) == 1
    assert "evse-link" in str(failed.exceptions[0])
    assert "link lost (run 4)" in str(failed.exceptions[0])
    assert link.runs == 4  # three restarts, the fourth failure is one too many
    assert time.delays == [1.0, 2.0, 4.0]
    assert sup.states["evse-link"].state == "failed"
    assert not sup.healthy
    assert other.stopped  # the rest of the station was cancelled
    giving_up = messages(caplog, "giving up")
    assert len(giving_up) == 1 and "evse-link" in giving_up[0]
    assert [r.levelno for r in caplog.records if "giving up" in r.getMessage()] == [logging.CRITICAL]


async def test_non_critical_component_failing_too_often_is_marked_failed_others_keep_running(caplog):
    time = FakeTime()
    modem = Flaky(time, failures=1000)
    other = Ticker()
    sup = supervisor([Component("modem", modem.run, critical=False), Component("ticker", other.run)], time,
                     max_failures=2, window=300.0)
    task = asyncio.create_task(sup.run())

    async def modem_failed() -> None:
        while sup.states["modem"].state != "failed":
            await asyncio.sleep(0)

    await asyncio.wait_for(modem_failed(), WAIT)
    assert modem.runs == 3
    assert not sup.healthy
    assert "failed: modem" in sup.summary()
    ticks = other.ticks
    for _ in range(20):
        await asyncio.sleep(0)
    assert other.ticks > ticks  # the others keep running
    assert not task.done()
    assert modem.runs == 3  # and the failed one is not restarted
    assert sup.states["ticker"].state == "running"
    assert len(messages(caplog, "giving up")) == 1
    await cancel(task)
    assert other.stopped


async def test_failures_outside_the_window_do_not_count():
    time = FakeTime()
    # Each failing run lasts 11 fake seconds: more than the 10 s window, less than max_backoff.
    link = Flaky(time, failures=6, runs_for=[11.0] * 6)
    sup = supervisor([Component("can-bus", link.run)], time, max_failures=2, window=10.0, max_backoff=60.0)
    task = asyncio.create_task(sup.run())
    await asyncio.wait_for(link.running.wait(), WAIT)
    state = sup.states["can-bus"]
    assert state.state == "running"
    assert state.restarts == 6
    assert len(state.failures) == 1  # older failures left the window
    assert time.delays == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0]  # the backoff itself keeps doubling
    await cancel(task)


async def test_the_same_failures_inside_the_window_do_count():
    time = FakeTime()
    link = Flaky(time, failures=6, runs_for=[1.0] * 6)
    sup = supervisor([Component("can-bus", link.run)], time, max_failures=2, window=100.0, max_backoff=60.0)
    with pytest.raises(ExceptionGroup) as caught:
        await asyncio.wait_for(sup.run(), WAIT)
    assert caught.value.subgroup(ComponentFailed) is not None
    assert link.runs == 3


async def test_a_component_that_ran_longer_than_max_backoff_restarts_with_the_initial_backoff():
    time = FakeTime()
    # quick, quick, a long good run (10 s > max_backoff 8 s), quick, then it runs
    link = Flaky(time, failures=4, runs_for=[0.0, 0.0, 10.0, 0.0])
    sup = supervisor([Component("meter", link.run)], time, max_backoff=8.0, max_failures=10)
    task = asyncio.create_task(sup.run())
    await asyncio.wait_for(link.running.wait(), WAIT)
    assert time.delays == [1.0, 2.0, 1.0, 2.0]
    await cancel(task)


async def test_a_component_that_returns_is_finished_and_not_restarted(caplog):
    time = FakeTime()
    runs = 0

    async def one_shot() -> None:
        nonlocal runs
        runs += 1

    other = Ticker()
    sup = supervisor([Component("migrate", one_shot), Component("ticker", other.run)], time)
    task = asyncio.create_task(sup.run())
    for _ in range(20):
        await asyncio.sleep(0)
    assert runs == 1
    assert sup.states["migrate"].state == "finished"
    assert sup.states["migrate"].restarts == 0
    assert sup.healthy
    assert time.delays == []
    assert not task.done()  # the others keep running
    assert any("migrate finished" in m for m in messages(caplog, "finished"))
    await cancel(task)


async def test_run_returns_when_every_component_finished():
    time = FakeTime()

    async def done() -> None:
        return None

    sup = supervisor([Component("a", done), Component("b", done)], time)
    await asyncio.wait_for(sup.run(), WAIT)
    assert {s.state for s in sup.states.values()} == {"finished"}


async def test_cancelling_run_cancels_every_component_and_their_finally_runs():
    time = FakeTime()
    first, second = Flaky(time, failures=0), Flaky(time, failures=1)
    sup = supervisor([Component("one", first.run), Component("two", second.run, critical=False)], time)
    task = asyncio.create_task(sup.run())
    await asyncio.wait_for(asyncio.gather(first.running.wait(), second.running.wait()), WAIT)
    assert not (first.stopped or second.stopped)
    await cancel(task)
    assert first.stopped and second.stopped


async def test_cancellation_during_backoff_is_not_a_failure():
    """A component waiting out its backoff is cancelled cleanly (not counted, not restarted)."""
    sleeping = asyncio.Event()

    async def slow_sleep(delay: float) -> None:
        sleeping.set()
        await asyncio.Event().wait()

    runs = 0

    async def failing() -> None:
        nonlocal runs
        runs += 1
        raise OSError("no such device")

    sup = Supervisor([Component("serial", failing)], sleep=slow_sleep, clock=lambda: 0.0)
    task = asyncio.create_task(sup.run())
    await asyncio.wait_for(sleeping.wait(), WAIT)
    assert sup.states["serial"].state == "restarting"
    assert "restarting: serial" in sup.summary()
    await cancel(task)
    assert runs == 1
