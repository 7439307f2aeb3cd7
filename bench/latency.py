"""Latencies between the EVSE controllers and the core, over a real pty, in one process.

One asyncio loop runs a ``SimWorld`` (2 connectors, serial transport: each controller on a pty
pair) and the real ``Daemon`` whose controllers are ``transport: serial`` on those pty paths
and whose meters are the world's simulated SDM630s over Modbus TCP. Connector 1 is measured;
connector 2 idles alongside, as in the demo. Both ends share ``time.perf_counter()``.

* **status → core**: the controller-side link's ``send`` is wrapped to timestamp every Status
  whose CP state differs from the previous Status sent; the core's ``controller_state`` is
  wrapped to timestamp the call that first carries that new CP state. One plug (A → B) and one
  unplug (B → A) per cycle give two samples per cycle.
* **limit → PWM**: with a vehicle charging, ``core.set_limit(1, "bench", A)`` alternates
  between 10 A and 15 A (below the default 15.9 A of GridMaxPower 11 kW); the time runs from that call to the controller sending the first
  Status whose ``offered_current_a`` is the new offer (its PWM changed; the controller's
  ``offered_current_a`` is checked to agree at that moment).

Between two changes the bench waits a random 50-150 ms (seeded) so the changes do not fall
into step with the periodic Heartbeat, Status and meter traffic. The controller sends Status at
most every 20 ms (``STATUS_MIN_GAP_S``), so a change that follows another Status closely waits
up to that long: that is the worst case ``limit_to_pwm_ms`` sees.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from firmware_sim.world import SimConnectorSpec, SimWorld
from stationd.config.station_file import parse_station_config
from stationd.daemon import Daemon
from stationd.hw.evse_protocol import Status
from stationd.sdnotify import SystemdNotifier

from .common import LOOPBACK, LogCapture, free_port, percentile, summarize_problems
from .figures import Figure
from .mode import Mode

__all__ = ["run"]

log = logging.getLogger("bench.latency")

LIMITS_A = (10.0, 15.0)
MEASURED = 1  # connector id
CONNECTORS = 2
WAIT_S = 3.0  # one change that has not arrived after this is a failure, not a sample
TIME_LIMIT_S = 120.0


def run(mode: Mode) -> list[Figure]:
    cycles = mode.pick(full=50, quick=20, smoke=2)  # plug/unplug cycles (two samples each)
    changes = mode.pick(full=30, quick=12, smoke=2)  # limit changes 10 A → 15 A → 10 A …
    with LogCapture("stationd") as capture:  # one summary instead of a line per warning
        try:
            return asyncio.run(_measure(cycles, changes))
        finally:
            if capture.lines:
                print(summarize_problems(capture.lines, "the in-process daemon"), file=sys.stderr)


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 3)


class Probe:
    """Timestamps at both ends: Status messages leaving the controller, calls reaching the core."""

    def __init__(self) -> None:
        self.sent_cp: str | None = None  # CP state of the last Status sent
        self.cp_sent_at: dict[str, float] = {}  # CP state → when the Status that changed to it was sent
        self.core_cp: str | None = None
        self.arrived = asyncio.Event()
        self.want_cp: str | None = None
        self.cp_latency: float | None = None
        self.want_offer: float | None = None
        self.offer_sent_at: float | None = None
        self.offer_checked: bool | None = None
        self.controller: Any = None

    def wrap_link(self, link: Any) -> None:
        send = link.send

        async def timed_send(message: Any, *args: Any, **kwargs: Any) -> Any:
            if isinstance(message, Status):
                now = time.perf_counter()
                cp = message.cp_state.name
                if cp != self.sent_cp:
                    self.sent_cp = cp
                    self.cp_sent_at[cp] = now
                if self.want_offer is not None and message.offered_current_a == self.want_offer:
                    self.offer_sent_at = now
                    self.offer_checked = self.controller.offered_current_a == self.want_offer
                    self.want_offer = None
                    self.arrived.set()
            return await send(message, *args, **kwargs)

        link.send = timed_send

    def wrap_core(self, core: Any) -> None:
        controller_state = core.controller_state

        def timed_controller_state(connector_id: int, state: Any, *args: Any, **kwargs: Any) -> Any:
            if connector_id == MEASURED:
                now = time.perf_counter()
                cp = state.cp_state.name
                if cp != self.core_cp:
                    self.core_cp = cp
                    if cp == self.want_cp:
                        self.cp_latency = now - self.cp_sent_at[cp]
                        self.want_cp = None
                        self.arrived.set()
            return controller_state(connector_id, state, *args, **kwargs)

        core.controller_state = timed_controller_state

    async def cp_change(self, cp: str, act: Callable[[], None]) -> float:
        """Do ``act`` (plug, unplug) and return the Status → core latency of the change to ``cp``."""
        self.arrived.clear()
        self.want_cp, self.cp_latency = cp, None
        act()
        await _wait(self.arrived, f"the core never saw CP state {cp}")
        assert self.cp_latency is not None
        return self.cp_latency

    async def offer_change(self, core: Any, amps: float) -> float:
        """``core.set_limit`` and return the time until the controller reports the new offer."""
        self.arrived.clear()
        self.want_offer, self.offer_sent_at = amps, None
        started = time.perf_counter()
        core.set_limit(MEASURED, "bench", amps)
        await _wait(self.arrived, f"the controller never reported an offer of {amps:g} A")
        assert self.offer_sent_at is not None
        if not self.offer_checked:
            raise RuntimeError(f"the controller reported {amps:g} A but its offered_current_a is "
                               f"{self.controller.offered_current_a}")
        return self.offer_sent_at - started


async def _wait(event: asyncio.Event, what: str) -> None:
    try:
        await asyncio.wait_for(event.wait(), WAIT_S)
    except TimeoutError:
        raise RuntimeError(f"{what} within {WAIT_S:g} s") from None


def _station_yaml(world: SimWorld, data_dir: Path) -> str:
    rows = "".join(
        f"    - id: {cid}\n"
        f"      controller: {{transport: serial, port: '{world.controller_port(cid)}'}}\n"
        f"      meter: {{model: sim}}\n"
        for cid in range(1, CONNECTORS + 1))
    return (f"identity: {{serial_number: BENCH0001}}\n"
            f"hardware:\n  connectors:\n{rows}\n"
            f"webui: {{bind: '{LOOPBACK}:{free_port()}'}}\n"
            f"modbus_server: {{enabled: false, bind: '{LOOPBACK}:{free_port()}'}}\n"
            f"data_dir: '{data_dir}'\n")


async def _measure(cycles: int, changes: int) -> list[Figure]:
    rng = random.Random(61851)
    probe = Probe()
    cores: list[Any] = []

    def capture(station: Any) -> list[Any]:
        probe.wrap_core(station.core)
        cores.append(station.core)
        return []

    with tempfile.TemporaryDirectory(prefix="bench-latency-") as tmp:
        world = SimWorld([SimConnectorSpec(cid, transport="serial") for cid in range(1, CONNECTORS + 1)],
                         Path(tmp) / "sim")
        await world.start()
        daemon_task: asyncio.Task[int] | None = None
        try:
            probe.controller = world.controller(MEASURED)
            probe.wrap_link(world._links[MEASURED])  # the controller side of connector 1's pty pair
            config = parse_station_config(_station_yaml(world, Path(tmp) / "data"))
            daemon = Daemon(config, world=world, component_factories=[capture], handle_signals=False,
                            notifier=SystemdNotifier.from_env({}))
            daemon_task = asyncio.create_task(daemon.run(), name="bench-daemon")
            async with asyncio.timeout(TIME_LIMIT_S):
                await _until(lambda: bool(cores) and all(c.link_up for c in cores[0].connectors.values()),
                             daemon_task, "the controller links never came up")
                core = cores[0]
                await asyncio.sleep(1.0)  # first meter samples, first periodic Status: start-up is over

                status_ms = []
                for _ in range(cycles):
                    for cp, act in (("B", lambda: world.plug(MEASURED, cable_max_a=32)),
                                    ("A", lambda: world.unplug(MEASURED))):
                        status_ms.append(_ms(await probe.cp_change(cp, act)))
                        await asyncio.sleep(rng.uniform(0.05, 0.15))

                core.set_limit(MEASURED, "bench", max(LIMITS_A))
                world.plug(MEASURED, cable_max_a=32)
                world.charge(MEASURED, max_current_a=32, phases=3)  # the offer alone limits the draw
                await _until(lambda: probe.controller.contactor_closed
                             and probe.controller.offered_current_a == max(LIMITS_A),
                             daemon_task, f"connector {MEASURED} never started charging at {max(LIMITS_A):g} A")
                # Not right on the heels of the Status that reported the closed contactor: the
                # controller sends Status at most every 20 ms, so the first change would always wait.
                await asyncio.sleep(1.0)
                limit_ms = []
                for index in range(changes):
                    amps = LIMITS_A[index % 2]
                    limit_ms.append(_ms(await probe.offer_change(core, amps)))
                    await asyncio.sleep(rng.uniform(0.05, 0.15))
                if not probe.controller.contactor_closed:
                    raise RuntimeError("the vehicle stopped charging during the limit changes")
        finally:
            if daemon_task is not None:
                daemon.request_stop("benchmark over")
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(asyncio.shield(daemon_task), 15)
                if not daemon_task.done():
                    daemon_task.cancel()
                    await asyncio.gather(daemon_task, return_exceptions=True)
            await world.stop()

    status_note = f"{len(status_ms)} CP changes ({cycles} plug/unplug cycles), Status sent → core.controller_state"
    limit_note = (f"{len(limit_ms)} changes {LIMITS_A[1]:g}↔{LIMITS_A[0]:g} A while charging, "
                  f"set_limit → controller's Status with the new offer")
    return [
        Figure("status_to_core_ms_p50", percentile(status_ms, 50), "ms", "< 50", status_note),
        Figure("status_to_core_ms_p99", percentile(status_ms, 99), "ms", "< 50", status_note),
        Figure("limit_to_pwm_ms", max(limit_ms), "ms", "< 200",
               f"the slowest (median {percentile(limit_ms, 50):g} ms) of {limit_note}"),
    ]


async def _until(condition: Callable[[], bool], daemon_task: asyncio.Task[int], what: str,
                 timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if daemon_task.done():
            raise RuntimeError(f"the daemon stopped (exit {daemon_task.result()}) — {what}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} within {timeout:g} s")
        await asyncio.sleep(0.02)
