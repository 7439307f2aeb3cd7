"""Composite charging schedule: stacking, validity, recurrence, relative, W/A, capping, boundaries."""

from __future__ import annotations

import itertools
import math
from bisect import bisect_right
from datetime import UTC, datetime, timedelta
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stationd.smart_charging import (
    ChargingProfile,
    InstalledProfile,
    composite_schedule,
    limit_at,
)

T0 = datetime(2024, 5, 1, 0, 0, tzinfo=UTC)  # a Wednesday


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def make(
    pid: int,
    periods,
    *,
    purpose: str = "TxDefaultProfile",
    stack: int = 0,
    kind: str = "Absolute",
    start: datetime | None = T0,
    unit: str = "A",
    duration: int | None = None,
    recurrency: str | None = None,
    valid_from: datetime | None = None,
    valid_to: datetime | None = None,
) -> ChargingProfile:
    schedule: dict = {"chargingRateUnit": unit, "chargingSchedulePeriod": []}
    for item in periods:
        start_period, limit, *phases = item
        period = {"startPeriod": start_period, "limit": limit}
        if phases:
            period["numberPhases"] = phases[0]
        schedule["chargingSchedulePeriod"].append(period)
    if kind != "Relative" and start is not None:
        schedule["startSchedule"] = iso(start)
    if duration is not None:
        schedule["duration"] = duration
    data = {
        "chargingProfileId": pid,
        "stackLevel": stack,
        "chargingProfilePurpose": purpose,
        "chargingProfileKind": kind,
        "chargingSchedule": schedule,
    }
    if recurrency:
        data["recurrencyKind"] = recurrency
    if valid_from:
        data["validFrom"] = iso(valid_from)
    if valid_to:
        data["validTo"] = iso(valid_to)
    return ChargingProfile.from_ocpp(data)


def periods_of(schedule) -> list[tuple[int, float | None]]:
    return [(p.start_period, p.limit) for p in schedule.periods]


def on(connector: int, *profiles: ChargingProfile) -> list[InstalledProfile]:
    return [InstalledProfile(connector, p) for p in profiles]


def test_no_profiles_means_no_limit():
    schedule = composite_schedule([], 1, T0, 3600)
    assert periods_of(schedule) == [(0, None)] and schedule.unlimited
    assert schedule.to_ocpp() is None
    assert limit_at([], 1, T0) is None


def test_stacking_highest_valid_stack_level_wins():
    base = make(1, [(0, 16)], stack=0)
    window = make(2, [(0, 10)], stack=1, valid_from=T0 + timedelta(hours=1), valid_to=T0 + timedelta(hours=2))
    lower = make(3, [(0, 20)], stack=0, purpose="TxDefaultProfile")  # same stack on connector 0: loses
    schedule = composite_schedule(on(1, base, window) + on(0, lower), 1, T0, 3 * 3600)
    assert periods_of(schedule) == [(0, 16.0), (3600, 10.0), (7200, 16.0)]


def test_higher_profile_with_ended_duration_falls_back():
    low = make(1, [(0, 16)], stack=0)
    high = make(2, [(0, 6), (600, 8)], stack=5, duration=1200)
    schedule = composite_schedule(on(1, low, high), 1, T0, 3600)
    assert periods_of(schedule) == [(0, 6.0), (600, 8.0), (1200, 16.0)]


def test_validity_window_and_before_start():
    profile = make(1, [(0, 12)], start=T0 + timedelta(minutes=10), valid_to=T0 + timedelta(minutes=30))
    schedule = composite_schedule(on(1, profile), 1, T0, 3600)
    assert periods_of(schedule) == [(0, None), (600, 12.0), (1800, None)]
    assert schedule.to_ocpp(fill_limit=32)["chargingSchedulePeriod"] == [
        {"startPeriod": 0, "limit": 32.0},
        {"startPeriod": 600, "limit": 12.0, "numberPhases": 3},
        {"startPeriod": 1800, "limit": 32.0},
    ]
    with pytest.raises(ValueError):
        schedule.to_ocpp()


def test_recurring_daily_across_midnight():
    profile = make(
        1, [(0, 8), (7200, 12)], kind="Recurring", recurrency="Daily",
        start=T0 + timedelta(hours=22), duration=4 * 3600,
    )
    start = T0 + timedelta(days=2, hours=20)  # May 3rd, 20:00
    schedule = composite_schedule(on(1, profile), 1, start, 8 * 3600)
    assert periods_of(schedule) == [(0, None), (7200, 8.0), (14400, 12.0), (21600, None)]
    # the first night, and before startSchedule the repetition runs backwards too
    assert limit_at(on(1, profile), 1, T0 + timedelta(hours=23)) == 8.0
    assert limit_at(on(1, profile), 1, T0 + timedelta(hours=1)) == 12.0


def test_recurring_weekly_across_week_boundary():
    sunday = datetime(2024, 5, 5, 23, 0, tzinfo=UTC)
    profile = make(
        1, [(0, 6), (3600, 20)], kind="Recurring", recurrency="Weekly", start=sunday, duration=7200,
    )
    start = sunday + timedelta(days=7, hours=-1)  # next Sunday 22:00
    schedule = composite_schedule(on(1, profile), 1, start, 4 * 3600)
    assert periods_of(schedule) == [(0, None), (3600, 6.0), (7200, 20.0), (10800, None)]
    assert limit_at(on(1, profile), 1, sunday + timedelta(days=3)) is None


def test_recurring_without_duration_repeats_whole_day():
    profile = make(1, [(0, 10), (43200, 20)], kind="Recurring", recurrency="Daily", start=T0)
    schedule = composite_schedule(on(1, profile), 1, T0 + timedelta(hours=6), 36 * 3600)
    assert periods_of(schedule) == [(0, 10.0), (6 * 3600, 20.0), (18 * 3600, 10.0), (30 * 3600, 20.0)]


def test_relative_to_transaction_start():
    profile = make(1, [(0, 10), (600, 20)], kind="Relative", purpose="TxProfile")
    tx_start = T0 + timedelta(hours=12)
    schedule = composite_schedule(on(1, profile), 1, tx_start + timedelta(minutes=5), 1200, transaction_start=tx_start)
    assert periods_of(schedule) == [(0, 10.0), (300, 20.0)]
    # without a transaction: as if one started at the window start
    assert periods_of(composite_schedule(on(1, profile), 1, tx_start, 1200)) == [(0, 10.0), (600, 20.0)]


def test_tx_profile_overrides_tx_default_regardless_of_stack():
    default = make(1, [(0, 6)], stack=9)
    tx = make(2, [(0, 25)], purpose="TxProfile", stack=0, duration=600)
    schedule = composite_schedule(on(1, default, tx), 1, T0, 1200)
    assert periods_of(schedule) == [(0, 25.0), (600, 6.0)]


def test_connector_specific_default_beats_connector_zero_on_same_stack():
    zero = make(1, [(0, 20)], stack=2)
    own = make(2, [(0, 13)], stack=2)
    assert limit_at(on(0, zero) + on(1, own), 1, T0) == 13.0
    assert limit_at(on(0, zero) + on(1, own), 2, T0) == 20.0
    assert limit_at(on(0, zero) + on(1, make(3, [(0, 13)], stack=1)), 1, T0) == 20.0


@pytest.mark.parametrize(
    "periods, unit, want_unit, kwargs, expected",
    [
        ([(0, 11040)], "W", "A", {}, (16.0, 3)),
        ([(0, 3680, 1)], "W", "A", {}, (16.0, 1)),
        ([(0, 11000)], "W", "A", {}, (15.9, 3)),
        ([(0, 16)], "A", "W", {}, (11040.0, 3)),
        ([(0, 15.9)], "A", "W", {}, (10971.0, 3)),
        ([(0, 16, 2)], "A", "W", {}, (7360.0, 2)),
        ([(0, 7360)], "W", "A", {"phases_of_connector": 1}, (32.0, 1)),
        ([(0, 7360)], "W", "A", {"default_phases": 1}, (32.0, 1)),
        ([(0, 16)], "A", "W", {"voltage": 240}, (11520.0, 3)),
    ],
)
def test_w_a_conversion(periods, unit, want_unit, kwargs, expected):
    profile = make(1, periods, unit=unit)
    schedule = composite_schedule(on(1, profile), 1, T0, 60, want_unit, **kwargs)
    (period,) = schedule.periods
    assert (period.limit, period.number_phases) == expected
    assert type(period.limit) is float


def test_charge_point_max_caps_tx():
    cap = make(1, [(0, 20), (600, 40)], purpose="ChargePointMaxProfile")
    tx = make(2, [(0, 32), (900, 10)], purpose="TxProfile")
    schedule = composite_schedule(on(0, cap) + on(1, tx), 1, T0, 1800)
    assert periods_of(schedule) == [(0, 20.0), (600, 32.0), (900, 10.0)]
    # the cap alone applies when nothing else does; connector 0 sees only the cap
    assert limit_at(on(0, cap), 1, T0) == 20.0
    assert periods_of(composite_schedule(on(0, cap) + on(1, tx), 0, T0, 1800)) == [(0, 20.0), (600, 40.0)]


def test_watt_cap_compares_with_the_phases_in_use():
    cap = make(1, [(0, 11000)], purpose="ChargePointMaxProfile", unit="W")
    single = make(2, [(0, 16, 1)], purpose="TxProfile")
    # 16 A on one phase is 3680 W, well under 11000 W: the Tx limit stands
    assert limit_at(on(0, cap) + on(1, single), 1, T0) == 16.0
    triple = make(3, [(0, 16, 3)], purpose="TxProfile", stack=1)
    assert limit_at(on(0, cap) + on(1, triple), 1, T0) == 15.9
    schedule = composite_schedule(on(0, cap) + on(1, triple), 1, T0, 60, "W")
    assert periods_of(schedule) == [(0, 11000.0)]


def test_exact_boundaries_to_the_second():
    odd = T0 + timedelta(seconds=7)
    a = make(1, [(0, 10), (13, 11), (29, 10)], start=odd, stack=1, valid_to=odd + timedelta(seconds=50))
    b = make(2, [(0, 30)], stack=0, start=T0)
    cap = make(3, [(0, 25), (31, 32)], purpose="ChargePointMaxProfile", start=T0)
    schedule = composite_schedule(on(1, a, b) + on(0, cap), 1, T0 + timedelta(seconds=3), 100)
    assert periods_of(schedule) == [(0, 25.0), (4, 10.0), (17, 11.0), (33, 10.0), (54, 30.0)]
    doc = schedule.to_ocpp()
    assert doc["startSchedule"] == "2024-05-01T00:00:03Z" and doc["duration"] == 100
    assert [p["startPeriod"] for p in doc["chargingSchedulePeriod"]] == [0, 4, 17, 33, 54]


def test_equal_adjacent_periods_merge():
    profile = make(1, [(0, 10), (60, 10), (120, 12), (180, 12)])
    assert periods_of(composite_schedule(on(1, profile), 1, T0, 300)) == [(0, 10.0), (120, 12.0)]


def test_limit_at_truncates_to_seconds_and_is_float():
    profile = make(1, [(0, 10), (60, 6.25)])
    assert limit_at(on(1, profile), 1, T0 + timedelta(seconds=59, microseconds=999_999)) == 10.0
    value = limit_at(on(1, profile), 1, T0 + timedelta(seconds=60))
    assert value == 6.2 and type(value) is float


def test_10_profiles_1440_periods_over_24_hours():
    """The benchmark's size, checked for correctness only: how long it takes is measured by
    bench/smart_charging.py (``composite_schedule_ms``, same recipe), never here."""
    purposes = ["ChargePointMaxProfile", "TxDefaultProfile", "TxProfile"]
    profiles = []
    for j in range(10):
        purpose = purposes[j % 3]
        unit = "A" if j % 2 == 0 else "W"
        periods = [(60 * i, (6 + (i * 7 + j) % 26) * (1 if unit == "A" else 690)) for i in range(1440)]
        profile = make(j + 1, periods, purpose=purpose, stack=j, unit=unit, start=T0 + timedelta(seconds=7 * j))
        profiles.append(InstalledProfile(0 if purpose == "ChargePointMaxProfile" else 1, profile))
    schedule = composite_schedule(profiles, 1, T0, 86400, "A")
    assert schedule.unit == "A" and schedule.duration == 86400

    # The composite can change only where a period of some profile starts (profile j's period i
    # at 7j + 60i s); between two such instants it is constant. So it is right everywhere when
    # its periods start only there and it matches the brute-force oracle at every one of them.
    boundaries = sorted({t for j in range(10) for i in range(1440) if (t := 7 * j + 60 * i) < 86400})
    starts = [p.start_period for p in schedule.periods]
    assert starts[0] == 0 and starts == sorted(set(starts)) and set(starts) <= set(boundaries)
    items = [(p.connector_id, p.profile) for p in profiles]
    ws = _epoch(T0)
    expected, got, index = [], [], 0
    for offset in boundaries:
        while index + 1 < len(starts) and starts[index + 1] <= offset:
            index += 1
        got.append(schedule.periods[index].limit)
        expected.append(_oracle(items, 1, ws + offset, ws, "A", 3, 3))
    assert got == expected
    # merged: one period per change of the limit (every period is on 3 phases)
    assert {p.number_phases for p in schedule.periods} == {3}
    changes = sum(1 for before, after in itertools.pairwise(expected) if before != after)
    assert len(schedule.periods) == 1 + changes > 1440

    # limit_at, the core's question at one instant, agrees with the composite (A per phase)
    for offset in (0, 6, 7, 13, 14, 62, 63, 64, 3600, 3656, 3663, 43_233, 86_340, 86_399):
        limit = limit_at(profiles, 1, T0 + timedelta(seconds=offset))
        assert limit is not None and limit == schedule.at(offset).limit


# ---------------------------------------------------------------- brute force comparison


def _epoch(moment: datetime) -> int:
    return int(moment.timestamp())


def _oracle_period(profile: ChargingProfile, t: int, anchor: int):
    if profile.valid_from is not None and t < _epoch(profile.valid_from):
        return None
    if profile.valid_to is not None and t >= _epoch(profile.valid_to):
        return None
    schedule = profile.schedule
    if profile.kind == "Recurring":
        repeat = 86400 if profile.recurrency_kind == "Daily" else 7 * 86400
        offset = (t - _epoch(schedule.start_schedule)) % repeat
        if schedule.duration is not None and offset >= schedule.duration:
            return None
    else:
        origin = _epoch(schedule.start_schedule) if profile.kind == "Absolute" else anchor
        offset = t - origin
        if offset < 0 or (schedule.duration is not None and offset >= schedule.duration):
            return None
    found = None
    for period in schedule.periods:
        if period.start_period <= offset:
            found = period
    return found


def _oracle(items, connector_id, t, anchor, unit, default_phases, phases_of_connector):
    caps = sorted((p for c, p in items if p.purpose == "ChargePointMaxProfile" and c == 0),
                  key=lambda p: -p.stack_level)
    txs = sorted((p for c, p in items if p.purpose == "TxProfile" and c == connector_id),
                 key=lambda p: -p.stack_level)
    defaults = sorted(((c, p) for c, p in items if p.purpose == "TxDefaultProfile" and c in (0, connector_id)),
                      key=lambda cp: (-cp[1].stack_level, cp[0] != connector_id))
    chain = [] if connector_id == 0 else txs + [p for _, p in defaults]

    def first(profiles):
        for profile in profiles:
            period = _oracle_period(profile, t, anchor)
            if period is not None:
                return period, profile.schedule.charging_rate_unit
        return None

    tx, cap = first(chain), first(caps)
    if tx is None and cap is None:
        return None
    phases = min((tx or cap)[0].number_phases or default_phases, phases_of_connector)
    amps = min(
        Fraction(str(p.limit)) if u == "A" else Fraction(str(p.limit)) / (230 * phases)
        for p, u in (x for x in (tx, cap) if x is not None)
    )
    value = amps if unit == "A" else amps * 230 * phases
    return math.floor(value * 10) / 10


@st.composite
def profile_sets(draw):
    ws = _epoch(T0) + draw(st.integers(0, 7 * 86400))
    items = []
    for pid in range(draw(st.integers(1, 4))):
        purpose = draw(st.sampled_from(["ChargePointMaxProfile", "TxDefaultProfile", "TxProfile"]))
        connector = 0 if purpose == "ChargePointMaxProfile" else draw(st.sampled_from([0, 1, 2] if purpose != "TxProfile" else [1, 2]))
        kind = draw(st.sampled_from(["Absolute", "Recurring", "Relative"]))
        recurrency = draw(st.sampled_from(["Daily", "Weekly"])) if kind == "Recurring" else None
        repeat = 86400 if recurrency == "Daily" else 7 * 86400
        if kind == "Recurring":
            base = ws + draw(st.integers(-1800, 3600)) - draw(st.integers(-1, 2)) * repeat
        else:
            base = ws + draw(st.integers(-1800, 3600))
        count = draw(st.integers(1, 3))
        starts = [0] + sorted(draw(st.sets(st.integers(1, 2400), min_size=count - 1, max_size=count - 1)))
        unit = draw(st.sampled_from(["A", "W"]))
        periods = []
        for s in starts:
            limit = draw(st.integers(0, 400)) / draw(st.sampled_from([10, 4]))  # some not multiples of 0.1
            if unit == "W":
                limit *= 230
            phases = draw(st.sampled_from([None, 1, 2, 3]))
            periods.append((s, limit) if phases is None else (s, limit, phases))
        duration = draw(st.one_of(st.none(), st.integers(0, 4000)))
        vf = draw(st.one_of(st.none(), st.integers(-600, 3600)))
        vt = draw(st.one_of(st.none(), st.integers(1, 3000)))
        valid_from = None if vf is None else datetime.fromtimestamp(ws + vf, UTC)
        valid_to = None if vt is None else datetime.fromtimestamp(ws + (vf if vf is not None else -3600) + vt, UTC)
        profile = make(
            pid, periods, purpose=purpose, stack=draw(st.integers(0, 3)), kind=kind, unit=unit,
            start=datetime.fromtimestamp(base, UTC), duration=duration, recurrency=recurrency,
            valid_from=valid_from, valid_to=valid_to,
        )
        items.append(InstalledProfile(connector, profile))
    tx_start = draw(st.one_of(st.none(), st.integers(-3600, 600)))
    return ws, items, None if tx_start is None else ws + tx_start


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    case=profile_sets(),
    connector_id=st.sampled_from([0, 1, 2]),
    unit=st.sampled_from(["A", "W"]),
    default_phases=st.sampled_from([1, 3]),
    phases_of_connector=st.sampled_from([1, 2, 3]),
)
def test_composite_matches_brute_force(case, connector_id, unit, default_phases, phases_of_connector):
    ws, items, tx_start = case
    duration = 3600
    schedule = composite_schedule(
        items, connector_id, datetime.fromtimestamp(ws, UTC), duration, unit,
        transaction_start=None if tx_start is None else datetime.fromtimestamp(tx_start, UTC),
        default_phases=default_phases, phases_of_connector=phases_of_connector,
    )
    anchor = ws if tx_start is None else tx_start
    starts = [p.start_period for p in schedule.periods]
    assert starts[0] == 0 and starts == sorted(set(starts))
    previous = object()
    for p in schedule.periods:  # merged: no two adjacent periods alike
        assert (p.limit, p.number_phases) != previous
        previous = (p.limit, p.number_phases)
    index = 0
    for offset in range(duration):
        while index + 1 < len(starts) and starts[index + 1] <= offset:
            index += 1
        expected = _oracle(items, connector_id, ws + offset, anchor, unit, default_phases, phases_of_connector)
        assert schedule.periods[index].limit == expected, offset


def _change_instants(items, ws: int, we: int, anchor: int) -> list[int]:
    """Every instant in [ws, we) where some profile's period, run or validity starts or ends."""
    out = {ws}
    for _, profile in items:
        schedule = profile.schedule
        for moment in (profile.valid_from, profile.valid_to):
            if moment is not None:
                out.add(_epoch(moment))
        if profile.kind == "Recurring":
            repeat = 86400 if profile.recurrency_kind == "Daily" else 7 * 86400
            base = _epoch(schedule.start_schedule)
            origins = [base + k * repeat for k in range((ws - base) // repeat - 1, (we - base) // repeat + 2)]
        else:
            origins = [_epoch(schedule.start_schedule) if profile.kind == "Absolute" else anchor]
        for origin in origins:
            out.update(origin + p.start_period for p in schedule.periods)
            if schedule.duration is not None:
                out.add(origin + schedule.duration)
    return sorted(t for t in out if ws <= t < we)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    case=profile_sets(),
    connector_id=st.sampled_from([0, 1, 2]),
    unit=st.sampled_from(["A", "W"]),
    shift=st.integers(-3 * 86400, 3600),
    days=st.integers(1, 9),
)
def test_composite_over_days_matches_brute_force_where_it_can_change(case, connector_id, unit, shift, days):
    """Windows of up to 9 days (recurring profiles repeat in them): between two instants where
    some profile's period, run or validity starts or ends, the composite is constant, so the
    oracle is asked at each such instant and the second before it."""
    ws, items, tx_start = case
    ws += shift
    duration = days * 86400
    schedule = composite_schedule(
        items, connector_id, datetime.fromtimestamp(ws, UTC), duration, unit,
        transaction_start=None if tx_start is None else datetime.fromtimestamp(tx_start, UTC),
    )
    anchor = ws if tx_start is None else tx_start
    starts = [p.start_period for p in schedule.periods]
    assert starts[0] == 0 and starts == sorted(set(starts))
    instants = _change_instants([(c, p) for c, p in items], ws, ws + duration, anchor)
    assert {ws + s for s in starts} <= set(instants)
    for t in sorted({*instants, *(t - 1 for t in instants if t > ws)}):
        index = bisect_right(starts, t - ws) - 1
        assert schedule.periods[index].limit == _oracle(items, connector_id, t, anchor, unit, 3, 3), t - ws
