"""Supervises one meter: polls it, reports samples and online/offline transitions."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from .codec import MeterError
from .reader import MeterSample

__all__ = ["MeterPoller"]

log = logging.getLogger(__name__)


class MeterPoller:
    """Polls one meter every ``interval`` s; reports samples and online/offline transitions.

    The meter is reported offline (``on_online_change(False, reason)``) after
    ``failures_before_offline`` consecutive failed reads, the reason being the last
    :class:`MeterError` ("timeout: ...", "exception 4: ...", "not a number: ..."), and online
    again (``on_online_change(True, "ok")``) with the next good sample. The first good sample
    also reports online. ``run()`` never raises because of the meter; it ends only when
    cancelled. ``sleep`` and ``clock`` are injectable so tests need no real time.
    """

    def __init__(self, reader: Any, interval: float,
                 on_sample: Callable[[MeterSample], None],
                 on_online_change: Callable[[bool, str], None], *,
                 failures_before_offline: int = 2,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if interval <= 0:
            raise ValueError("interval must be > 0")
        if failures_before_offline < 1:
            raise ValueError("failures_before_offline must be >= 1")
        self.reader = reader
        self.interval = interval
        self.on_sample = on_sample
        self.on_online_change = on_online_change
        self.failures_before_offline = failures_before_offline
        self._sleep = sleep
        self._clock = clock
        self.online: bool | None = None  # None until the first verdict
        self.consecutive_failures = 0
        self.last_error: MeterError | None = None

    async def run(self) -> None:
        while True:
            started = self._clock()
            await self.poll_once()
            elapsed = self._clock() - started
            await self._sleep(max(0.0, self.interval - elapsed))

    async def poll_once(self) -> MeterSample | None:
        """One read with its reporting; returns the sample or None."""
        try:
            sample = await self.reader.read()
        except asyncio.CancelledError:
            raise
        except MeterError as error:
            self._failed(error)
            return None
        except Exception as error:
            log.exception("meter %s: unexpected error while reading", self.reader)
            self._failed(MeterError("internal error", f"{type(error).__name__}: {error}"))
            return None
        self.consecutive_failures = 0
        self.last_error = None
        if self.online is not True:
            self.online = True
            log.info("meter %s online", self.reader)
            self._call(self.on_online_change, True, "ok")
        self._call(self.on_sample, sample)
        return sample

    def _failed(self, error: MeterError) -> None:
        self.consecutive_failures += 1
        self.last_error = error
        log.debug("meter %s: read failed (%d in a row): %s", self.reader,
                  self.consecutive_failures, error)
        if self.consecutive_failures >= self.failures_before_offline and self.online is not False:
            self.online = False
            log.warning("meter %s offline: %s", self.reader, error)
            self._call(self.on_online_change, False, str(error))

    def _call(self, callback: Callable[..., None], *args: Any) -> None:
        try:
            callback(*args)
        except Exception:
            log.exception("meter %s: callback %r failed", self.reader, callback)
