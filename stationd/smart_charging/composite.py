"""The composite charging schedule of a connector (GetCompositeSchedule) and its limit now.

Rules (OCPP 1.6 §3.13, OCPP-NOTES.md §5), evaluated for every instant of the window:

* A profile is in effect at ``t`` when ``validFrom <= t < validTo`` and its schedule runs at
  ``t``: from its start for ``duration`` seconds (no duration: without end). The start is
  ``startSchedule`` (Absolute), ``startSchedule + k × 1 day / 1 week`` (Recurring; the
  repetition runs both ways from startSchedule; a duration longer than the recurrence is cut at
  the next repetition), or the transaction start (Relative; without a transaction: the start
  of the window, i.e. "a transaction starting now"; this also tolerates a Relative
  ChargePointMaxProfile). An Absolute profile without startSchedule (the store fills it in when
  installing) is treated like a Relative one.
* Per purpose, the profile in effect with the highest stackLevel wins; a TxDefaultProfile of the
  connector beats one of connector 0 with the same stackLevel. When a profile's schedule ends,
  the next lower one takes over.
* A TxProfile in effect overrides every TxDefaultProfile.
* The limit is min(ChargePointMaxProfile, Tx/TxDefault). Phases ``n``: numberPhases of the
  Tx/TxDefault period in effect (else of the ChargePointMax period; absent: ``default_phases``),
  at most ``phases_of_connector``. W is the total, A per phase: ``A = W / (voltage × n)``. A
  limits compare per phase, W limits are turned into A with ``n`` first.
* Limits are floats rounded down to one decimal (never Decimal). Adjacent equal periods merge.
* Connector 0 (the whole station): only ChargePointMaxProfiles count.

All arithmetic is in whole seconds (``start`` and ``transaction_start`` are truncated).

Performance: each chain (ChargePointMax; Tx then TxDefault) is first reduced to the periods that
decide it — a profile only fills the time the higher ones leave free, found from its runs (a few
intervals), so the periods of a hidden profile are never looked at — then one sweep over the
boundaries of the two chains. 10 profiles × 1,440 periods over 24 h take about 7 ms
(``composite_schedule_pure_ms`` in bench/smart_charging.py, BENCHMARKS.md).
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .profiles import (
    CHARGE_POINT_MAX,
    TX,
    TX_DEFAULT,
    ChargingProfile,
    ChargingSchedule,
    format_time,
)

__all__ = ["CompositePeriod", "CompositeSchedule", "composite_schedule", "limit_at"]

DAY = 86_400
WEEK = 7 * DAY

# A segment: (start, end, limit, numberPhases, unit), epoch seconds, end exclusive.
_Segment = tuple[int, int, float, "int | None", str]
# A run of a profile's schedule where it is in effect: (begin, end, origin, span, schedule), epoch
# seconds, end exclusive; ``origin`` is where this run of the schedule starts, ``span`` its length.
_Run = tuple[int, int, int, "int | None", ChargingSchedule]


@dataclass(frozen=True, slots=True)
class CompositePeriod:
    start_period: int  # seconds from the schedule start
    limit: float | None  # None: no profile limits this period
    number_phases: int | None = None


@dataclass(frozen=True, slots=True)
class CompositeSchedule:
    start: datetime  # whole seconds, UTC
    duration: int
    unit: str  # "A" or "W"
    periods: tuple[CompositePeriod, ...]

    def at(self, offset: int) -> CompositePeriod:
        """The period in effect ``offset`` seconds after :attr:`start`."""
        index = bisect_right([p.start_period for p in self.periods], offset) - 1
        return self.periods[max(index, 0)]

    @property
    def unlimited(self) -> bool:
        """True when no profile limits any part of the window."""
        return all(p.limit is None for p in self.periods)

    def to_ocpp(self, fill_limit: float | None = None) -> dict[str, Any] | None:
        """The GetCompositeSchedule.conf ``chargingSchedule`` (None when :attr:`unlimited`).

        A period without limit gets ``fill_limit`` (e.g. the connector's maximum in this unit);
        ValueError if such a period exists and ``fill_limit`` is None.
        """
        if self.unlimited:
            return None
        periods = []
        for period in self.periods:
            limit = period.limit
            if limit is None:
                if fill_limit is None:
                    raise ValueError("the composite schedule has periods without limit: give fill_limit")
                limit = float(math.floor(float(fill_limit) * 10 + 1e-6) / 10)
            item: dict[str, Any] = {"startPeriod": period.start_period, "limit": limit}
            if period.number_phases is not None:
                item["numberPhases"] = period.number_phases
            if periods and periods[-1]["limit"] == limit and periods[-1].get("numberPhases") == item.get(
                "numberPhases"
            ):
                continue
            periods.append(item)
        return {
            "duration": self.duration,
            "startSchedule": format_time(self.start),
            "chargingRateUnit": self.unit,
            "chargingSchedulePeriod": periods,
        }


def _epoch(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return math.floor(moment.timestamp())


def _floor_tenth(value: float) -> float:
    # The epsilon absorbs float error (15.9 * 690 = 10970.999999999998); true values are
    # k/10 or at least 1/6900 away from the next tenth, so it never rounds a real value up.
    return math.floor(value * 10 + 1e-6) / 10


def _emit(out: list, schedule: ChargingSchedule, origin: int, span: int | None, lo: int, hi: int) -> None:
    """Append the periods of one run of ``schedule`` starting at ``origin``, clipped to [lo, hi)."""
    end = hi if span is None else min(hi, origin + span)
    begin = max(lo, origin)
    if begin >= end:
        return
    starts = schedule.starts
    periods = schedule.periods
    unit = schedule.charging_rate_unit
    count = len(periods)
    index = bisect_right(starts, begin - origin) - 1
    while index < count:
        seg_start = origin + starts[index]
        if seg_start >= end:
            break
        seg_end = origin + starts[index + 1] if index + 1 < count else end
        seg_end = min(seg_end, end)
        period = periods[index]
        out.append((max(begin, seg_start), seg_end, period.limit, period.number_phases, unit))
        index += 1


def _runs(profile: ChargingProfile, lo: int, hi: int, anchor: int) -> list[_Run]:
    """Where ``profile`` is in effect inside [lo, hi): its runs, clipped, in time order."""
    if profile.valid_from is not None:
        lo = max(lo, _epoch(profile.valid_from))
    if profile.valid_to is not None:
        hi = min(hi, _epoch(profile.valid_to))
    out: list[_Run] = []
    if lo >= hi:
        return out
    schedule = profile.schedule
    if profile.kind == "Recurring" and schedule.start_schedule is not None:
        repeat = DAY if profile.recurrency_kind == "Daily" else WEEK
        base = _epoch(schedule.start_schedule)
        span = repeat if schedule.duration is None else min(schedule.duration, repeat)
        origins = [base + k * repeat for k in range((lo - base) // repeat, (hi - 1 - base) // repeat + 1)]
    else:
        if profile.kind == "Absolute" and schedule.start_schedule is not None:
            origins = [_epoch(schedule.start_schedule)]
        else:
            origins = [anchor]
        span = schedule.duration
    for origin in origins:
        begin = max(lo, origin)
        end = hi if span is None else min(hi, origin + span)
        if begin < end:
            out.append((begin, end, origin, span, schedule))
    return out


def _in_charge(chain: list[ChargingProfile], lo: int, hi: int, anchor: int) -> list[_Segment]:
    """The periods that decide a chain of profiles (highest priority first) inside [lo, hi):
    at each instant the period of the first profile in effect, in time order.

    A profile only fills the time that the ones before it leave free, so the periods of a
    profile hidden behind a higher one are never looked at."""
    free = [(lo, hi)]  # time no profile of the chain has taken yet, in order
    taken: list[tuple[int, int, int, int | None, ChargingSchedule]] = []
    for profile in chain:
        if not free:
            break
        for run_begin, run_end, origin, span, schedule in _runs(profile, lo, hi, anchor):
            left: list[tuple[int, int]] = []
            for gap_begin, gap_end in free:
                begin, end = max(gap_begin, run_begin), min(gap_end, run_end)
                if begin >= end:
                    left.append((gap_begin, gap_end))
                    continue
                taken.append((begin, end, origin, span, schedule))
                if gap_begin < begin:
                    left.append((gap_begin, begin))
                if end < gap_end:
                    left.append((end, gap_end))
            free = left
    taken.sort(key=lambda item: item[0])
    out: list[_Segment] = []
    for begin, end, origin, span, schedule in taken:
        _emit(out, schedule, origin, span, begin, end)
    return out


def _items(profiles: Iterable[Any]) -> Iterable[tuple[int, ChargingProfile]]:
    for item in profiles:
        connector, profile = item  # InstalledProfile or (connector_id, profile)
        yield connector, profile


def composite_schedule(
    profiles: Iterable[Any],
    connector_id: int,
    start: datetime,
    duration_s: int,
    unit: str = "A",
    *,
    transaction_start: datetime | None = None,
    voltage: float = 230,
    default_phases: int = 3,
    phases_of_connector: int = 3,
) -> CompositeSchedule:
    """The composite schedule of ``connector_id`` for [start, start + duration_s).

    ``profiles``: :class:`~stationd.smart_charging.profiles.InstalledProfile` items (or
    ``(connector_id, profile)`` pairs), e.g. ``ProfileStore.profiles_for(connector_id)``; profiles
    that do not apply to the connector are ignored.
    """
    if unit not in ("A", "W"):
        raise ValueError(f"unit must be 'A' or 'W', got {unit!r}")
    if duration_s < 0:
        raise ValueError("duration_s must be >= 0")
    ws = _epoch(start)
    we = ws + int(duration_s)
    anchor = ws if transaction_start is None else _epoch(transaction_start)
    start_dt = datetime.fromtimestamp(ws, UTC)

    maxes: list[tuple[int, ChargingProfile]] = []
    txs: list[tuple[int, ChargingProfile]] = []
    defaults: list[tuple[int, int, ChargingProfile]] = []
    for connector, profile in _items(profiles):
        if profile.purpose == CHARGE_POINT_MAX:
            if connector == 0:
                maxes.append((profile.stack_level, profile))
        elif connector_id == 0:
            continue
        elif profile.purpose == TX:
            if connector == connector_id:
                txs.append((profile.stack_level, profile))
        elif profile.purpose == TX_DEFAULT and connector in (0, connector_id):
            defaults.append((profile.stack_level, 1 if connector == connector_id else 0, profile))
    maxes.sort(key=lambda x: -x[0])
    txs.sort(key=lambda x: -x[0])
    defaults.sort(key=lambda x: (-x[0], -x[1]))

    # The deciding period of each chain over time, then one sweep over the instants where
    # either changes.
    caps = _in_charge([p for _, p in maxes], ws, we, anchor)
    txs_in_charge = _in_charge([p for _, p in txs] + [p for *_, p in defaults], ws, we, anchor)

    phase_cap = phases_of_connector
    periods: list[CompositePeriod] = []
    last: tuple[float | None, int | None] | None = None
    n_tx, n_cap = len(txs_in_charge), len(caps)
    i = j = 0
    t = ws
    while t < we:
        while i < n_tx and txs_in_charge[i][1] <= t:
            i += 1
        while j < n_cap and caps[j][1] <= t:
            j += 1
        following = we
        tx = cap = None
        if i < n_tx:
            segment = txs_in_charge[i]
            if segment[0] <= t:
                tx = segment
                following = segment[1]
            else:
                following = segment[0]
        if j < n_cap:
            segment = caps[j]
            if segment[0] <= t:
                cap = segment
                following = min(following, segment[1])
            else:
                following = min(following, segment[0])
        if tx is None and cap is None:
            value: tuple[float | None, int | None] = (None, None)
        else:
            ref = tx if tx is not None else cap
            assert ref is not None
            phases = ref[3] or default_phases
            phases = min(phases, phase_cap)
            best = None
            best_amps = 0.0
            for segment in (tx, cap):
                if segment is None:
                    continue
                amps = segment[2] if segment[4] == "A" else segment[2] / (voltage * phases)
                if best is None or amps < best_amps:
                    best, best_amps = segment, amps
            assert best is not None
            if unit == best[4]:
                limit = _floor_tenth(best[2])
            elif unit == "A":
                limit = _floor_tenth(best_amps)
            else:
                limit = _floor_tenth(best[2] * voltage * phases)
            value = (limit, phases)
        if value != last:
            periods.append(CompositePeriod(t - ws, value[0], value[1]))
            last = value
        t = following
    if not periods:  # zero-length window
        periods.append(CompositePeriod(0, None, None))
    return CompositeSchedule(start_dt, int(duration_s), unit, tuple(periods))


def limit_at(
    profiles: Iterable[Any],
    connector_id: int,
    now: datetime,
    *,
    transaction_start: datetime | None = None,
    voltage: float = 230,
    default_phases: int = 3,
    phases_of_connector: int = 3,
) -> float | None:
    """The limit in A per phase for ``connector_id`` at ``now`` (None: no profile limits it)."""
    schedule = composite_schedule(
        profiles,
        connector_id,
        now,
        1,
        "A",
        transaction_start=transaction_start,
        voltage=voltage,
        default_phases=default_phases,
        phases_of_connector=phases_of_connector,
    )
    return schedule.periods[0].limit

