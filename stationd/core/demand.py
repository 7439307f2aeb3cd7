"""What each connector's session asks of the grid: the input of every current allocation.

The core keeps, per connector, the vehicle's measured draw over a window (``DrawWindow``) and
builds a ``ConnectorDemand`` snapshot from it. The station's own allocation
(``stationd.power.allocation``) and the load-balancing cluster (``stationd.load_balancing``)
both start from these snapshots.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from ..power.phases import ROTATIONS, TERMINAL, check_grid_connection

DRAW_WINDOW_S = 60.0  # the draw counts once the vehicle has had this long with the same offer
PHASE_IN_USE_A = 1.0  # a phase carrying more than this is one the vehicle charges on


@dataclass(frozen=True)
class ConnectorDemand:
    """One connector as an allocation sees it (a session is open when ``started_at`` is set)."""

    connector_id: int
    started_at: datetime | None  # the session's start; None: no session (nothing to allocate)
    caps: Mapping[str, float]  # named caps (A per phase) except the allocations' own results
    grid: frozenset[int]  # grid phases (1..3) the vehicle's current is accounted on
    phases: int | None  # phases the vehicle charges on; None = not known yet (counts as 3)
    draw_a: float | None  # highest phase current over the window; None = not known yet
    offered_a: float | None  # the offer applied now (0 = paused); None = none yet
    paused_since: float | None  # epoch seconds when a "not enough current" pause began
    current_a: Mapping[int, float] = field(default_factory=dict)  # measured now, by grid phase
    charging_since: float | None = None  # epoch seconds when its current offer > 0 began

    @property
    def charging(self) -> bool:
        return self.started_at is not None


class DrawWindow:
    """The highest phase current a vehicle drew since its offer last changed, over a window.

    ``draw()`` is None until ``window_s`` has passed since the offer last rose (just started, or
    more was offered: it may still be ramping up), then the highest sample of the window.
    """

    def __init__(self, window_s: float = DRAW_WINDOW_S):
        self.window_s = window_s
        self._samples: deque[tuple[float, float]] = deque()
        self._since: float | None = None  # when the current offer began
        self._offer: float | None = None
        self.phases: int | None = None
        self.last: tuple[float, ...] = ()  # the latest sample: current on the connector's L1, L2, L3

    def offer(self, amps: float, now: float) -> None:
        """The offer applied now. Only a higher offer starts the window again (the vehicle may now
        draw more); what it drew under a higher offer stays true under a lower one."""
        if self._offer is None or amps > self._offer:
            self._since = now
            self._samples.clear()
        self._offer = amps

    def sample(self, phase_currents: tuple[float | None, ...], now: float) -> None:
        """A meter sample's current on the connector's L1, L2, L3 (None: the meter does not say)."""
        if all(amps is None for amps in phase_currents):
            return
        self.last = tuple(amps or 0.0 for amps in phase_currents)
        phase_currents = self.last
        self._samples.append((now, max(phase_currents, default=0.0)))
        while self._samples and self._samples[0][0] < now - self.window_s:
            self._samples.popleft()
        in_use = sum(1 for amps in phase_currents if amps > PHASE_IN_USE_A)
        if in_use:
            self.phases = in_use

    def draw(self, now: float) -> float | None:
        if self._since is None or now - self._since < self.window_s or not self._samples:
            return None
        return max(amps for _, amps in self._samples)

    def grid_current(self, rotation: str, grid_connection) -> dict[int, float]:
        """The latest sample by grid phase. When the connector's wiring is not known, each grid
        phase is credited only with what the vehicle surely draws on it, whatever the wiring: the
        smallest of its three phase currents (0 for a vehicle on one or two phases). A building
        meter's "rest of the building" is then never underestimated."""
        if not self.last:
            return {}
        if rotation not in ROTATIONS:
            surely = min(self.last) if len(self.last) == 3 else 0.0
            return {phase: surely for phase in (1, 2, 3)}
        grid = check_grid_connection(grid_connection)
        result: dict[int, float] = {}
        for letter, amps in zip(rotation, self.last):
            phase = grid[TERMINAL[letter] - 1]
            result[phase] = result.get(phase, 0.0) + amps
        return result

    def reset(self) -> None:
        """A new session: nothing is known about the new vehicle."""
        self._samples.clear()
        self._offer = self._since = None
        self.phases = None
        self.last = ()
