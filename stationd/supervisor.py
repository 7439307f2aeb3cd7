"""The supervisor: runs each component's ``run()``, restarts a failing one with backoff.

A component that raises is restarted after 1 s, 2 s, 4 s … (at most ``max_backoff``). When it
fails more than ``max_failures`` times within ``window`` seconds the supervisor gives up on it,
loudly: a critical component then ends the daemon with a failure (systemd restarts the whole
service), a non-critical one stays stopped and the station reports itself degraded.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

log = logging.getLogger("stationd.supervisor")


@dataclass
class Component:
    name: str
    run: Callable[[], Awaitable[None]]
    critical: bool = True


@dataclass
class ComponentState:
    state: str = "starting"  # starting | running | restarting | finished | failed
    restarts: int = 0
    last_error: str = ""
    failures: list[float] = field(default_factory=list)


class ComponentFailed(Exception):
    """A critical component failed too often; the daemon must stop."""


class Supervisor:
    def __init__(
        self,
        components: list[Component],
        *,
        initial_backoff: float = 1.0,
        max_backoff: float = 60.0,
        max_failures: int = 5,
        window: float = 300.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.components = components
        self.states = {c.name: ComponentState() for c in components}
        self._initial_backoff, self._max_backoff = initial_backoff, max_backoff
        self._max_failures, self._window = max_failures, window
        self._sleep, self._clock = sleep, clock

    async def run(self) -> None:
        """Run every component until cancelled; raises ComponentFailed when a critical one gives up."""
        async with asyncio.TaskGroup() as group:
            for component in self.components:
                group.create_task(self._keep_running(component), name=component.name)

    @property
    def healthy(self) -> bool:
        return all(s.state != "failed" for s in self.states.values())

    def summary(self) -> str:
        failed = [n for n, s in self.states.items() if s.state == "failed"]
        restarting = [n for n, s in self.states.items() if s.state == "restarting"]
        parts = [f"{len(self.states)} components"]
        if restarting:
            parts.append("restarting: " + ", ".join(restarting))
        if failed:
            parts.append("failed: " + ", ".join(failed))
        return "; ".join(parts)

    async def _keep_running(self, component: Component) -> None:
        state = self.states[component.name]
        backoff = self._initial_backoff
        while True:
            state.state = "running"
            started = self._clock()
            try:
                await component.run()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                now = self._clock()
                if now - started > self._max_backoff:  # it ran well for a while: start over
                    backoff = self._initial_backoff
                state.failures = [t for t in state.failures if now - t < self._window] + [now]
                state.last_error = f"{type(exc).__name__}: {exc}"
                if len(state.failures) > self._max_failures:
                    state.state = "failed"
                    log.critical("component %s failed %d times within %.0f s; giving up on it (last error: %s)",
                                 component.name, len(state.failures), self._window, state.last_error,
                                 exc_info=exc)
                    if component.critical:
                        raise ComponentFailed(f"{component.name}: {state.last_error}") from exc
                    return
                state.state = "restarting"
                state.restarts += 1
                log.error("component %s failed (%s); restarting in %.1f s", component.name, state.last_error,
                          backoff)
                log.debug("component %s failure details", component.name, exc_info=exc)
                await self._sleep(backoff)
                backoff = min(backoff * 2, self._max_backoff)
            else:
                state.state = "finished"
                log.info("component %s finished", component.name)
                return
