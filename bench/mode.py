"""How long a benchmark run may take: full (the figures of BENCHMARKS.md), quick, or smoke.

* ``FULL`` — the samples and windows the published figures are measured with;
* ``QUICK`` — fewer samples and shorter windows, for a look during development;
* ``SMOKE`` — the smallest sizes that still go through every step (1 s CPU windows, one tap,
  one boot, a few hundred messages): it proves that every benchmark runs and gives every
  figure, not how fast anything is. Its figures are never published.

A benchmark module states its sizes per mode with :meth:`Mode.pick`::

    window = mode.pick(full=60.0, quick=10.0, smoke=1.0)
"""

from __future__ import annotations

from enum import Enum
from typing import TypeVar

__all__ = ["Mode"]

T = TypeVar("T")


class Mode(Enum):
    FULL = "full"
    QUICK = "quick"
    SMOKE = "smoke"

    def pick(self, full: T, quick: T, smoke: T) -> T:
        """The value of this mode among the three."""
        return {Mode.FULL: full, Mode.QUICK: quick, Mode.SMOKE: smoke}[self]
