"""The recent meter samples of every connector, for the WebUI's Charts page.

:class:`MeterHistory` listens to the core's ``MeterSampled`` events and keeps, per connector, a
ring of at most ``max_points`` points (time, power W, energy Wh); points older than
``window_s`` are dropped as new ones arrive. At the meter's 1 s sampling rate the default
(3600 points, 60 min) is the last hour; memory stays bounded whatever the rate (about 100 bytes
a point: < 0.5 MB per connector).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from datetime import datetime, timezone

from ..core.events import EventBus, MeterSampled

WINDOW_S = 3600.0
MAX_POINTS = 3600


class MeterHistory:
    def __init__(self, *, window_s: float = WINDOW_S, max_points: int = MAX_POINTS,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)):
        self.window_s, self.max_points, self._clock = window_s, max_points, clock
        self._rings: dict[int, deque[tuple[float, float, float]]] = {}
        self._unsubscribe: Callable[[], None] | None = None

    def attach(self, bus: EventBus) -> MeterHistory:
        """Listen to ``bus`` from now on (once)."""
        if self._unsubscribe is None:
            self._unsubscribe = bus.subscribe(self.on_sample, MeterSampled)
        return self

    def detach(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def on_sample(self, event: MeterSampled) -> None:
        sample = event.sample
        stamp = getattr(sample, "timestamp", None) or self._clock()
        ring = self._rings.setdefault(event.connector_id, deque(maxlen=self.max_points))
        ring.append((stamp.timestamp(), float(sample.power_w), float(sample.energy_import_wh)))
        self._trim(ring, stamp.timestamp())

    def _trim(self, ring: deque, now: float) -> None:
        while ring and ring[0][0] < now - self.window_s:
            ring.popleft()

    def points(self, connector_id: int) -> list[tuple[float, float, float]]:
        """(unix time, power W, energy Wh) of ``connector_id``, oldest first, within the window."""
        ring = self._rings.get(connector_id)
        if not ring:
            return []
        self._trim(ring, self._clock().timestamp())
        return list(ring)

    def as_json(self, connector_ids) -> dict:
        """``{"windowS", "connectors": [{"id", "points": [[t, W, Wh], ...]}]}`` for ``/api/charts``."""
        return {"windowS": self.window_s,
                "connectors": [{"id": cid, "points": [[round(t, 3), round(w, 1), round(wh, 1)]
                                                      for t, w, wh in self.points(cid)]}
                               for cid in connector_ids]}
