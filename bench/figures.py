"""The Figure record (one measured number with its unit and goal) and goal checking.

A goal is written the way the table shows it — ``"< 50"``, ``"<= 1"``, ``">= 100"`` — and a
figure meets it when ``value OP threshold`` holds. A figure without a goal (``goal=None``) is
shown for information only: it gets no "met?" verdict and is left out of ``results.json``.

:data:`BUDGET` is the station's performance budget: the 13 figures with the goals the project
set for them. ``results.json`` holds exactly these (see ``bench/__main__.py``); other figures
with a goal (``status_to_core_ms_p99``, …) are checked and printed, but not written there.
"""

from __future__ import annotations

import math
import operator
import re
from dataclasses import dataclass
from typing import Any

__all__ = ["BUDGET", "RESULT_NAMES", "Figure", "check_goal", "parse_goal"]

# The performance budget: figure name -> goal. A figure of one of these names must carry exactly
# this goal (checked when results.json is written).
BUDGET: dict[str, str] = {
    "auth_decision_p99_us": "< 100",
    "csv_import_100k_s": "< 2",
    "csv_export_100k_s": "< 1",
    "sendlocallist_full_100k_s": "< 3",
    "replay_ratio_to_rtt_limit": ">= 0.9",
    "tap_to_starttx_p50_ms": "< 20",
    "start_to_boot_s": "< 2",
    "rss_mb_4_connectors": "< 80",
    "idle_cpu_percent": "< 1",
    "charging_cpu_percent": "< 5",
    "modbus_requests_per_meter_sample": "<= 1",
    "limit_to_pwm_ms": "< 200",
    "composite_schedule_ms": "< 50",
}
RESULT_NAMES = frozenset(BUDGET)

_OPERATORS = {
    "<": operator.lt, "<=": operator.le, "≤": operator.le,
    ">": operator.gt, ">=": operator.ge, "≥": operator.ge,
}
_GOAL_RE = re.compile(r"\s*(<=|>=|≤|≥|<|>)\s*([-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)\s*")


def parse_goal(goal: str) -> tuple[str, float]:
    """``"< 50"`` → ``("<", 50.0)``; anything else is a ValueError naming the goal."""
    match = _GOAL_RE.fullmatch(goal)
    if match is None:
        raise ValueError(f"goal {goal!r} is not OPERATOR NUMBER (operators: < <= > >=)")
    return match.group(1), float(match.group(2))


def check_goal(value: float, goal: str) -> bool:
    """Whether ``value`` meets ``goal``; NaN never does."""
    op, threshold = parse_goal(goal)
    return not math.isnan(value) and _OPERATORS[op](value, threshold)


@dataclass(frozen=True)
class Figure:
    name: str  # stable key in results.json, e.g. "status_to_core_ms_p99"
    value: float
    unit: str  # "ms", "%", "MB", "requests"
    goal: str | None = None  # "< 50"; None = informational, not goal-checked
    note: str = ""  # how it was measured (samples, window), shown under the table

    def __post_init__(self) -> None:
        if self.goal is not None:
            parse_goal(self.goal)  # a misspelt goal fails where the figure is made

    @property
    def met(self) -> bool | None:
        """True / False against the goal; None for an informational figure."""
        return None if self.goal is None else check_goal(self.value, self.goal)

    def as_json(self) -> dict[str, Any]:
        if self.goal is None:
            raise ValueError(f"{self.name} has no goal; informational figures are not written")
        return {"value": self.value, "unit": self.unit, "goal": self.goal, "met": self.met}
