"""IEC 61851-1 control pilot facts the core needs: the CP states and the range PWM can offer.

The duty-cycle and proximity-pilot arithmetic of the controllers is in
``stationd/hw/evse_protocol/pilot.py``."""

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


def pwm_offer(limit_a: float) -> float:
    """The current to offer for a limit: rounded down to 0.1 A, 0 when below 6 A, at most 80 A."""
    if limit_a < MIN_CURRENT_A:
        return 0.0
    return min(MAX_CURRENT_A, int(limit_a * 10) / 10)
