"""A simulated electric vehicle, as the EVSE controller sees it through the control pilot.

It follows IEC 61851-1: it shows state B when plugged in, asks for energy (state C) only while
the station offers PWM, draws min(offered current, its own maximum) on its phases, follows a
lower offer within ``reaction_s`` (the standard allows 5 s; we default to 1 s), and goes back
to B when it pauses or the offer disappears.
"""

from __future__ import annotations

from dataclasses import dataclass

from stationd.core.iec61851 import MIN_CURRENT_A, CpState


@dataclass
class Vehicle:
    cable_max_a: int | None = 32  # proximity pilot rating of the cable; None for a fixed cable
    max_current_a: float = 16.0
    phases: int = 3
    wants_energy: bool = False
    reaction_s: float = 1.0
    _draw_a: float = 0.0
    _target_a: float = 0.0
    _target_since: float = 0.0

    def charge(self, max_current_a: float, phases: int) -> None:
        if phases not in (1, 3):
            raise ValueError("phases must be 1 or 3")
        if not 0 < max_current_a <= 80:
            raise ValueError("max_current_a must be above 0 and at most 80")
        self.max_current_a, self.phases, self.wants_energy = float(max_current_a), phases, True

    def suspend(self) -> None:
        self.wants_energy = False

    def cp_state(self, offered_a: float) -> CpState:
        """C only while the vehicle wants energy and PWM offers a usable current."""
        return CpState.C if self.wants_energy and offered_a >= MIN_CURRENT_A else CpState.B

    def update(self, offered_a: float, contactor_closed: bool, now: float) -> float:
        """Advance to ``now`` (s, monotonic); returns the current drawn per phase (A)."""
        usable = contactor_closed and self.cp_state(offered_a) is CpState.C
        target = min(offered_a, self.max_current_a) if usable else 0.0
        if target != self._target_a:
            self._target_a, self._target_since = target, now
        if target > self._draw_a or not usable:
            self._draw_a = target  # it may start or stop at once; the contactor decides
        elif now - self._target_since >= self.reaction_s:
            self._draw_a = target  # a lower offer is followed within the reaction time
        return self._draw_a

    @property
    def draw_a(self) -> float:
        return self._draw_a
