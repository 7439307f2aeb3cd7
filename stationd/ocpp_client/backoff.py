"""Reconnect backoff of the OCPP connection (DESIGN.md §5.3, Eaton's Retry* keys).

After a lost connection or a failed attempt the station waits before the next attempt. Attempt
``n`` of a series (``n`` counts from 1, the first reconnect included) waits::

    n <= RetryRepeatTimes:  RetryBackoffWaitMinimum + uniform(0, RetryBackoffRandomRange)
    n >  RetryRepeatTimes:  RetryBackoffWaitMinimum + RetryBackoffRandomRange    (fixed)

The randomness spreads a fleet of stations that lost the same backend over time, so they do not
all reconnect at the same instant. A *series* ends with :meth:`Backoff.reset`, which the
connection manager calls after a stable connection (BootNotification accepted, or a session
that lasted long enough) and after a configuration change that makes the station reconnect.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

Number = float | int
Setting = Number | Callable[[], Number]

# The Retry* keys' defaults (stationd/config/keys/eaton.py).
DEFAULT_WAIT_MINIMUM = 10
DEFAULT_RANDOM_RANGE = 6
DEFAULT_REPEAT_TIMES = 9


class Backoff:
    """Waits between reconnect attempts: ``next_delay()`` for each attempt, ``reset()`` to start
    a new series.

    ``wait_minimum``, ``random_range`` (seconds) and ``repeat_times`` are numbers or functions
    returning the current value; :meth:`from_store` passes functions that read the
    RetryBackoffWaitMinimum, RetryBackoffRandomRange and RetryRepeatTimes keys. They are read
    at every :meth:`next_delay`, so a change (ChangeConfiguration, WebUI, CLI) applies from the
    next wait on, also in a series that is already running - an installer who shortens the waits
    of a station that is offline must not have to wait for a connection first. The attempt
    count ``n`` is not touched by a change.

    Worked example with the defaults (wait minimum 10 s, random range 6 s, repeat times 9):

    ========  ==========================  =============
    attempt   wait                        range
    ========  ==========================  =============
    1 .. 9    10 + uniform(0, 6)          10 s .. 16 s
    10, 11 …  10 + 6                      16 s (fixed)
    ========  ==========================  =============

    So a backend that stays away sees the first 9 reconnects spread over 10-16 s pauses, then
    one attempt every 16 s (plus the attempt's own duration). ``repeat_times = 0`` means fixed
    waits from the first reconnect; ``random_range = 0`` means fixed waits of ``wait_minimum``.
    ``rng`` is injected (``random.Random(seed)`` in tests)."""

    def __init__(self, wait_minimum: Setting = DEFAULT_WAIT_MINIMUM, random_range: Setting = DEFAULT_RANDOM_RANGE,
                 repeat_times: Setting = DEFAULT_REPEAT_TIMES, rng: random.Random | None = None):
        self._wait_minimum = wait_minimum
        self._random_range = random_range
        self._repeat_times = repeat_times
        self._rng = rng if rng is not None else random.Random()
        self.attempt = 0  # attempts of the current series so far

    @classmethod
    def from_store(cls, store: Any, rng: random.Random | None = None) -> Backoff:
        """A backoff that follows the store's Retry* keys."""
        return cls(lambda: store.get("RetryBackoffWaitMinimum"), lambda: store.get("RetryBackoffRandomRange"),
                   lambda: store.get("RetryRepeatTimes"), rng)

    def next_delay(self) -> float:
        """The wait in seconds before the next attempt of this series (counts the attempt)."""
        self.attempt += 1
        wait_minimum = max(0.0, float(_value(self._wait_minimum)))
        random_range = max(0.0, float(_value(self._random_range)))
        repeat_times = max(0, int(_value(self._repeat_times)))
        if self.attempt <= repeat_times:
            return wait_minimum + self._rng.uniform(0.0, random_range)
        return wait_minimum + random_range

    def reset(self) -> None:
        """Start a new series: the next wait is attempt 1 again."""
        self.attempt = 0


def _value(setting: Setting) -> Number:
    return setting() if callable(setting) else setting
