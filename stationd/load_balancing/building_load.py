"""What the rest of the building draws: the building meter's reading less the cluster's own draw.

The meter is read once a second and every station reports its vehicles' currents once a second,
at other instants; a vehicle follows a new offer within a few seconds. Right after the cluster's
offers change, ``reading − own draw`` mixes old and new values: taken as it is, it swings by
the size of the change and the allocation with it (offers up, too much "rest" seen, offers down,
too little seen …). So the estimate of the rest is taken afresh only while the cluster is
settled (no limit it sends changed for ``settle_s``) and held in between; a cluster that never
settles still takes a fresh estimate every ``max_hold_s``. A meter that does not answer gives
no estimate (the cluster's meter-offline rule applies).
"""

from __future__ import annotations

import time
from collections.abc import Callable

SETTLE_S = 5.0  # vehicles follow a lower offer within 5 s (IEC 61851); reports and meter lag ~1 s more
MAX_HOLD_S = 15.0

Phases = tuple[float, float, float]


class RestOfBuilding:
    def __init__(self, settle_s: float = SETTLE_S, max_hold_s: float = MAX_HOLD_S,
                 clock: Callable[[], float] = time.monotonic):
        self.settle_s, self.max_hold_s, self._clock = settle_s, max_hold_s, clock
        self._changed_at: float | None = None
        self._taken_at = 0.0
        self.other: Phases | None = None

    def offers_changed(self) -> None:
        """The cluster's offers change now: the next readings mix old and new draws."""
        self._changed_at = self._clock()

    def building(self, reading: Phases | None, own: Phases) -> Phases | None:
        """The building current per phase to allocate with: the rest of the building (as estimated)
        plus the cluster's own draw now; None without a reading."""
        if reading is None:
            self.other = None
            return None
        now = self._clock()
        settled = self._changed_at is None or now - self._changed_at >= self.settle_s
        if self.other is None or settled or now - self._taken_at >= self.max_hold_s:
            self.other = (max(0.0, reading[0] - own[0]), max(0.0, reading[1] - own[1]), max(0.0, reading[2] - own[2]))
            self._taken_at = now
        return (self.other[0] + own[0], self.other[1] + own[1], self.other[2] + own[2])
