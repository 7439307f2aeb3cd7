"""IEC 61851-1 control pilot and proximity pilot arithmetic, as the controller applies it."""

from __future__ import annotations

import math

from ...core.iec61851 import MAX_CURRENT_A, MIN_CURRENT_A
from .enums import ResultReason

MIN_OFFER_A = MIN_CURRENT_A  # IEC 61851-1: PWM offers 6 to 80 A
MAX_OFFER_A = MAX_CURRENT_A
#: Duty cycle reported when no PWM runs (steady +12 V).
NO_PWM_PERMILLE = 1000

#: Proximity pilot ranges (lowest Ω, highest Ω, rating A), lowest resistance first. A value
#: between two ranges counts as the lower rating (the next range up in resistance).
PP_RANGES_OHM: tuple[tuple[float, float, int], ...] = (
    (60.0, 140.0, 63),  # 80/100/140 Ω nominal; 60–80 counted here (below 60 = short = invalid)
    (140.0, 308.0, 32),  # 164/220/308
    (308.0, 936.0, 20),  # 400/680/936
    (936.0, 4500.0, 13),  # 1100/1500/2460; up to 4500 counts as 13 A
)
PP_SHORT_OHM = 60.0
PP_OPEN_OHM = 4500.0


def check_offer(amps: float) -> ResultReason:
    """The controller's verdict on SetCurrent: OK, or OUT_OF_RANGE (0 < I < 6 A, I > 80 A)."""
    if amps == 0 or MIN_OFFER_A <= amps <= MAX_OFFER_A:
        return ResultReason.OK
    return ResultReason.OUT_OF_RANGE


def duty_permille(amps: float) -> int:
    """PWM duty (‰) for an offered current; 0 A = no PWM (1000 ‰ = steady +12 V).

    duty % = I / 0.6 for 6–51 A, I / 2.5 + 64 for 51–80 A, rounded *down* to 0.1 % so the
    vehicle never reads more than offered. Raises ValueError for 0 < I < 6 and I > 80.
    """
    if amps == 0:
        return NO_PWM_PERMILLE
    if check_offer(amps) is not ResultReason.OK:
        raise ValueError(f"{amps} A cannot be signalled (0, or 6–80 A)")
    percent = amps / 0.6 if amps <= 51 else amps / 2.5 + 64
    return math.floor(percent * 10 + 1e-9)


def current_for_duty(permille: int) -> float | None:
    """Current a vehicle reads from a duty cycle (vehicle side), None = no charging allowed.

    < 8 % none (3–7 % = digital communication only); 8–10 % = 6 A; 10–85 % d × 0.6;
    85–96 % (d − 64) × 2.5; 96–97 % = 80 A; > 97 % none.
    """
    percent = permille / 10
    if percent < 8 or percent > 97:
        return None
    if percent < 10:
        return 6.0
    if percent <= 85:
        return round(percent * 0.6, 1)
    if percent <= 96:
        return round((percent - 64) * 2.5, 1)
    return 80.0


def pp_rating(ohms: float | None) -> int | None:
    """Cable rating (A) from the PP resistance; 0 = no cable (open); None = invalid (short)."""
    if ohms is None or ohms > PP_OPEN_OHM:
        return 0
    if ohms < PP_SHORT_OHM:
        return None
    for _low, high, rating in PP_RANGES_OHM:
        if ohms <= high:
            return rating
    return 13  # unreachable: the last range ends at PP_OPEN_OHM
