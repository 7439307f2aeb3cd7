"""IEC 61851-1 control pilot and proximity pilot facts, as data and two small functions."""

from __future__ import annotations

import enum

MIN_CURRENT_A = 6.0  # the lowest current PWM can offer; below it the station pauses instead
MAX_CURRENT_A = 80.0


class CpState(enum.StrEnum):
    """Control pilot states, as the EVSE controller measures them."""

    A = "A"  # +12 V: no vehicle
    B = "B"  # +9 V: vehicle connected, not asking for energy
    C = "C"  # +6 V: vehicle asks for energy
    D = "D"  # +3 V: vehicle asks for energy, needs ventilation
    E = "E"  # 0 V: error (short circuit, no diode)
    F = "F"  # -12 V: EVSE not available

    @property
    def plugged(self) -> bool:
        return self in (CpState.B, CpState.C, CpState.D)

    @property
    def wants_energy(self) -> bool:
        return self in (CpState.C, CpState.D)


# Proximity pilot: cable ratings (A) and their resistor (nominal Ω).
CABLE_RATINGS_A = {13: 1500, 20: 680, 32: 220, 63: 100}


def duty_percent(current_a: float) -> float:
    """PWM duty cycle (%) the EVSE sets to offer ``current_a``; 100 % (no PWM) for 0."""
    if current_a <= 0:
        return 100.0
    if not MIN_CURRENT_A <= current_a <= MAX_CURRENT_A:
        raise ValueError(f"cannot offer {current_a} A with PWM (6 to 80 A)")
    if current_a <= 51:
        return current_a / 0.6
    return current_a / 2.5 + 64


def current_for_duty(duty: float) -> float:
    """The current (A) a vehicle reads from a duty cycle (%); 0 when it means no offer."""
    if 8 <= duty < 10:
        return 6.0
    if 10 <= duty <= 85:
        return duty * 0.6
    if 85 < duty <= 96:
        return (duty - 64) * 2.5
    if 96 < duty <= 97:
        return 80.0
    return 0.0


def pwm_offer(limit_a: float) -> float:
    """The current to offer for a limit: rounded down to 0.1 A, 0 when below 6 A, at most 80 A."""
    if limit_a < MIN_CURRENT_A:
        return 0.0
    return min(MAX_CURRENT_A, int(limit_a * 10) / 10)
