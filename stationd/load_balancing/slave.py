"""A cluster slave: reports this station's connectors to the master, applies what it allocates.

The slave connects to the master URL (LoadBalancingMasterURI with ``{BoxId}`` replaced), sends
a report every ``report_interval_s`` and at once when a session starts or ends, and applies
every allocation it receives as the core's "load balancing" limit. Its limits over time:

* from the start until the first allocation: LoadBalancingStartCurrent on every connector
  (0, the default: no current until the master has answered);
* an allocation: what it says, per connector (a connector it does not name: 0);
* the link lost (closed, refused, no allocation for ``allocation_timeout_s``) after an
  allocation: LoadBalancingFallbackCurrent for ``fallback_hold_s`` (30 s), then 0;
* the master back: its next allocation.

Reconnect attempts wait 1 s, 2 s, 4 s … up to 30 s, each shortened by a random 0-25 % so that
slaves which lost the same master do not all call at the same instant; a link that carried an
allocation starts the series again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import ssl
import time
from collections.abc import Callable

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from ..core.events import SessionEnded, SessionStarted
from .applier import LimitApplier
from .protocol import WEBSOCKET_MAX_SIZE, AllocationMessage, ProtocolError, parse, report_json
from .settings import SOURCE

log = logging.getLogger("stationd.load_balancing")

REPORT_INTERVAL_S = 1.0
FALLBACK_HOLD_S = 30.0  # LoadBalancingFallbackCurrent is held this long, then 0 (SPEC §4.2)
ALLOCATION_TIMEOUT_S = 5.0
BACKOFF_MIN_S = 1.0
BACKOFF_MAX_S = 30.0
PING_INTERVAL_S = 5.0
NOT_ALLOCATED = "cluster: not allocated"


class ClusterSlave:
    def __init__(self, core, store, url: str, *, ssl_context: ssl.SSLContext | None = None,
                 report_interval_s: float = REPORT_INTERVAL_S, fallback_hold_s: float = FALLBACK_HOLD_S,
                 allocation_timeout_s: float = ALLOCATION_TIMEOUT_S, backoff_min_s: float = BACKOFF_MIN_S,
                 backoff_max_s: float = BACKOFF_MAX_S, rng: random.Random | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.core, self.store, self.url, self.ssl_context = core, store, url, ssl_context
        self.report_interval_s, self.fallback_hold_s = report_interval_s, fallback_hold_s
        self.allocation_timeout_s = allocation_timeout_s
        self.backoff_min_s, self.backoff_max_s = backoff_min_s, max(backoff_min_s, backoff_max_s)
        self._rng = rng or random.Random()
        self._clock = clock
        self.applier = LimitApplier(core)
        self.state = "starting"  # starting | allocated | fallback | cut
        self.connected = False
        self.allocations = 0
        self._changed = asyncio.Event()
        self._cut_task: asyncio.Task | None = None
        self._allocated_on_link = False

    # ---- running ----------------------------------------------------------------------

    async def run(self) -> None:
        start = int(self.store.get("LoadBalancingStartCurrent"))
        self.applier.set_all(start, f"cluster: waiting for the master (start current {start} A)" if start
                             else "cluster: waiting for the master")
        unsubscribe = [self.core.bus.subscribe(lambda _event: self._changed.set(), kind)
                       for kind in (SessionStarted, SessionEnded)]
        failures = 0
        try:
            while True:
                self._allocated_on_link = False
                try:
                    await self._connect_once()
                except (OSError, InvalidHandshake, InvalidURI, TimeoutError, ConnectionClosed) as error:
                    if failures == 0 or failures % 10 == 0:
                        log.warning("cluster: cannot reach the master at %s: %s", self.url,
                                    _describe(error))
                self.connected = False
                self._link_lost()
                failures = 1 if self._allocated_on_link else failures + 1
                await asyncio.sleep(self.backoff(failures))
        finally:
            for stop in unsubscribe:
                stop()
            if self._cut_task is not None:
                self._cut_task.cancel()

    def backoff(self, failures: int) -> float:
        """The wait before reconnect attempt ``failures`` (1, 2, …)."""
        base = min(self.backoff_max_s, self.backoff_min_s * 2 ** min(failures - 1, 30))
        return base * self._rng.uniform(0.75, 1.0)

    async def _connect_once(self) -> None:
        async with connect(self.url, ssl=self.ssl_context, max_size=WEBSOCKET_MAX_SIZE, open_timeout=5,
                           ping_interval=PING_INTERVAL_S, ping_timeout=PING_INTERVAL_S, close_timeout=2,
                           proxy=None) as ws:
            self.connected = True
            log.info("cluster: connected to the master at %s", self.url)
            sender = asyncio.create_task(self._send_reports(ws), name="load-balancing-report")
            receiver = asyncio.create_task(self._receive(ws), name="load-balancing-receive")
            try:
                done, _ = await asyncio.wait({sender, receiver}, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    with contextlib.suppress(ConnectionClosed):
                        task.result()  # a failure of either ends the link
            finally:
                for task in (sender, receiver):
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                        await task
        log.warning("cluster: link to the master closed (%s)", _close_reason(ws))

    async def _send_reports(self, ws: ClientConnection) -> None:
        while True:
            self._changed.clear()
            await ws.send(json.dumps(self.report()))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.report_interval_s):
                    await self._changed.wait()

    def report(self) -> dict:
        return report_json(str(self.store.get("BoxId")), str(self.store.get("LoadBalancingChargerPrivilege")),
                           self.core.connector_demands(exclude=(SOURCE,)))

    async def _receive(self, ws: ClientConnection) -> None:
        last = self._clock()
        while True:
            remaining = self.allocation_timeout_s - (self._clock() - last)
            try:
                async with asyncio.timeout(max(remaining, 0.0)):
                    frame = await ws.recv()
            except TimeoutError:
                log.warning("cluster: no allocation from the master for %g s; reconnecting", self.allocation_timeout_s)
                await ws.close(4002, "no allocation")
                return
            try:
                message = parse(frame, AllocationMessage)
            except ProtocolError as problem:
                log.warning("cluster: message from the master refused: %s", problem)
                continue
            last = self._clock()
            self.apply(message)

    # ---- limits -----------------------------------------------------------------------

    def apply(self, message: AllocationMessage) -> None:
        if self.state in ("fallback", "cut"):
            log.info("cluster: the master answers again; applying its allocation")
        if self._cut_task is not None:
            self._cut_task.cancel()
            self._cut_task = None
        self.state = "allocated"
        self._allocated_on_link = True
        self.allocations += 1
        self.applier.apply({cid: (entry.limit, entry.reason) for cid, entry in message.connectors.items()},
                           missing=(0.0, NOT_ALLOCATED))

    def _link_lost(self) -> None:
        if self.state != "allocated":
            return  # still on the start current, or already falling back
        self.state = "fallback"
        fallback = int(self.store.get("LoadBalancingFallbackCurrent"))
        log.warning("cluster: lost the master; fallback current %d A for %g s, then 0", fallback,
                    self.fallback_hold_s)
        self.applier.set_all(fallback, f"cluster master lost: fallback {fallback} A")
        self._cut_task = asyncio.create_task(self._cut_after(self.fallback_hold_s), name="load-balancing-fallback")

    async def _cut_after(self, delay: float) -> None:
        await asyncio.sleep(delay)
        if self.state == "fallback":
            self.state = "cut"
            log.warning("cluster: the master is still away after %g s; no current until it answers", delay)
            self.applier.set_all(0, "cluster master lost: no current")


def _describe(error: BaseException) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _close_reason(ws: ClientConnection) -> str:
    if ws.close_code is None:
        return "connection lost"
    return f"code {ws.close_code}{': ' + ws.close_reason if ws.close_reason else ''}"
