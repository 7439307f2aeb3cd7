"""The cluster master's allocation (stationd.power.cluster): the definition in its module docstring."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stationd.power.allocation import PAUSED_NOT_ENOUGH, Allocation
from stationd.power.cluster import (
    ALGORITHMS,
    PRIVILEGE_PRIORITY,
    ClusterLimits,
    ClusterSession,
    allocate_cluster,
    available_per_phase,
)

ALL = frozenset({1, 2, 3})
TOLERANCE = 1e-6


def cs(station: str, connector: int = 1, privilege: str = "AC05", started: float = 0.0, cap: float = 32,
       grid: frozenset[int] = ALL, **kw) -> ClusterSession:
    kw.setdefault("phases", len(grid))
    return ClusterSession(station, connector, privilege, started, {"connector": cap}, frozenset(grid), **kw)


def offers(result: dict) -> dict:
    return {key: a.offer_a for key, a in result.items()}


def load(sessions, result) -> dict[int, float]:
    per_phase = {1: 0.0, 2: 0.0, 3: 0.0}
    for s in sessions:
        for p in s.grid:
            per_phase[p] += result[s.station, s.connector_id].offer_a
    return per_phase


# ---- the API the cluster master codes against -------------------------------------------

def test_names_and_defaults():
    assert ALGORITHMS == ("UNIFORM", "OPTIMIZED", "SUSPENDABLE")
    assert PRIVILEGE_PRIORITY == {"AC10": 0, "AC05": 1}
    limits = ClusterLimits()
    assert (limits.algorithm, limits.max_cluster_a, limits.max_building_a, limits.building_a, limits.meter_enabled,
            limits.min_cluster_a, limits.phase_balance_a, limits.rotate_after_s) == (
        "SUSPENDABLE", 0, 0, None, False, 0, None, 900)
    assert allocate_cluster(limits, [], 0.0) == {}


def test_bad_inputs():
    with pytest.raises(ValueError):
        allocate_cluster(ClusterLimits(algorithm="FAST"), [cs("A")], 0.0)
    with pytest.raises(ValueError):
        allocate_cluster(ClusterLimits(), [cs("A", privilege="AC99")], 0.0)
    with pytest.raises(ValueError):
        allocate_cluster(ClusterLimits(), [cs("A"), cs("A")], 0.0)  # one connector, two sessions
    with pytest.raises(ValueError):
        allocate_cluster(ClusterLimits(), [cs("A", grid=frozenset({4}))], 0.0)
    with pytest.raises(ValueError):
        allocate_cluster(ClusterLimits(max_cluster_a=-1), [cs("A")], 0.0)


# ---- 1. available current --------------------------------------------------------------

def test_no_cluster_limit_leaves_the_caps():
    assert available_per_phase(ClusterLimits(), [cs("A")]) == (None, "no cluster limit")
    result = allocate_cluster(ClusterLimits(), [cs("A", cap=32), cs("B", cap=80)], 0.0)
    assert result == {("A", 1): Allocation(32.0, "connector 32 A"), ("B", 1): Allocation(80.0, "PWM maximum 80 A")}


def test_max_cluster_is_per_phase():
    limits = ClusterLimits(max_cluster_a=32)
    assert available_per_phase(limits, []) == ({1: 32.0, 2: 32.0, 3: 32.0}, "cluster limit")
    sessions = [cs("A"), cs("B", started=1)]
    assert allocate_cluster(limits, sessions, 0.0) == {("A", 1): Allocation(16.0, "cluster limit L1"),
                                                       ("B", 1): Allocation(16.0, "cluster limit L1")}
    # single-phase vehicles on different grid phases each get the whole per-phase limit
    sessions = [cs("A", grid=frozenset({1})), cs("B", grid=frozenset({2}))]
    assert offers(allocate_cluster(limits, sessions, 0.0)) == {("A", 1): 32.0, ("B", 1): 32.0}


def test_max_building_without_a_meter_is_the_limit():
    limits = ClusterLimits(max_building_a=40)
    assert available_per_phase(limits, []) == ({1: 40.0, 2: 40.0, 3: 40.0}, "building limit")
    assert allocate_cluster(limits, [cs("A", cap=63)], 0.0)[("A", 1)] == Allocation(40.0, "building limit L1")


def test_the_meter_reading_less_the_clusters_own_draw_is_the_rest_of_the_building():
    # the building draws 50/30/30 A, 10 A of it on each phase is the cluster's session: the rest is 40/20/20
    sessions = [cs("A", cap=63, current_a={1: 10.0, 2: 10.0, 3: 10.0})]
    limits = ClusterLimits(max_building_a=63, meter_enabled=True, building_a=(50.0, 30.0, 30.0))
    assert available_per_phase(limits, sessions) == ({1: 23.0, 2: 43.0, 3: 43.0}, "building limit")
    assert allocate_cluster(limits, sessions, 0.0) == {("A", 1): Allocation(23.0, "building limit L1")}
    # two sessions' draws are both taken out
    sessions = [cs("A", grid=frozenset({1}), current_a={1: 16.0}), cs("B", grid=frozenset({2}), current_a={2: 8.0})]
    available, _ = available_per_phase(limits, sessions)
    assert available == {1: 63 - (50 - 16), 2: 63 - (30 - 8), 3: 63 - 30}


def test_a_meter_reading_below_the_clusters_own_draw_counts_as_no_other_load():
    sessions = [cs("A", current_a={1: 30.0, 2: 30.0, 3: 30.0})]
    limits = ClusterLimits(max_building_a=40, meter_enabled=True, building_a=(20.0, 30.0, 35.0))
    assert available_per_phase(limits, sessions) == ({1: 40.0, 2: 40.0, 3: 35.0}, "building limit")


def test_a_building_already_over_its_limit_leaves_nothing():
    limits = ClusterLimits(max_building_a=40, meter_enabled=True, building_a=(60.0, 10.0, 10.0))
    assert available_per_phase(limits, [])[0] == {1: 0.0, 2: 30.0, 3: 30.0}
    result = allocate_cluster(limits, [cs("A"), cs("B", grid=frozenset({2}))], 0.0)
    assert result[("A", 1)] == Allocation(0.0, PAUSED_NOT_ENOUGH)
    assert result[("B", 1)] == Allocation(30.0, "building limit L2")


def test_the_lower_of_cluster_and_building_limit_applies_per_phase_and_is_named():
    sessions = [cs("A", grid=frozenset({1})), cs("B", grid=frozenset({2}))]
    limits = ClusterLimits(max_cluster_a=25, max_building_a=40, meter_enabled=True, building_a=(30.0, 10.0, 0.0))
    assert available_per_phase(limits, sessions) == ({1: 10.0, 2: 25.0, 3: 25.0}, "cluster/building limit")
    assert allocate_cluster(limits, sessions, 0.0) == {("A", 1): Allocation(10.0, "building limit L1"),
                                                       ("B", 1): Allocation(25.0, "cluster limit L2")}


# ---- 2. meter offline -------------------------------------------------------------------

def test_meter_offline_each_station_gets_min_cluster():
    sessions = [cs("A", 1), cs("A", 2, started=1), cs("B", 1, started=2)]
    limits = ClusterLimits(meter_enabled=True, building_a=None, min_cluster_a=16, max_building_a=200)
    assert available_per_phase(limits, sessions) == ({1: 200.0, 2: 200.0, 3: 200.0}, "building limit")
    result = allocate_cluster(limits, sessions, 0.0)
    assert result == {("A", 1): Allocation(8.0, "meter offline: MinCluster 8 A"),
                      ("A", 2): Allocation(8.0, "meter offline: MinCluster 8 A"),
                      ("B", 1): Allocation(16.0, "meter offline: MinCluster 16 A")}


def test_meter_offline_a_station_shares_min_cluster_like_its_own_limit():
    # 10 A for two sessions of one station: one charges, the later one waits (never 5 + 5)
    sessions = [cs("A", 1), cs("A", 2, started=1)]
    result = allocate_cluster(ClusterLimits(meter_enabled=True, min_cluster_a=10), sessions, 0.0)
    assert result == {("A", 1): Allocation(10.0, "meter offline: MinCluster 10 A"),
                      ("A", 2): Allocation(0.0, PAUSED_NOT_ENOUGH)}
    # per grid phase: two single-phase vehicles of one station on different phases both get it
    sessions = [cs("A", 1, grid=frozenset({1})), cs("A", 2, grid=frozenset({3}))]
    result = allocate_cluster(ClusterLimits(meter_enabled=True, min_cluster_a=10), sessions, 0.0)
    assert offers(result) == {("A", 1): 10.0, ("A", 2): 10.0}


def test_meter_offline_max_cluster_still_applies():
    sessions = [cs("A"), cs("B", started=1), cs("C", started=2)]
    result = allocate_cluster(ClusterLimits(meter_enabled=True, min_cluster_a=16, max_cluster_a=30), sessions, 0.0)
    assert offers(result) == {("A", 1): 10.0, ("B", 1): 10.0, ("C", 1): 10.0}
    assert {a.reason for a in result.values()} == {"cluster limit L1"}


def test_meter_offline_min_cluster_0_pauses_everyone():
    sessions = [cs("A"), cs("B", privilege="AC10")]
    result = allocate_cluster(ClusterLimits(meter_enabled=True, max_building_a=100), sessions, 0.0)
    assert result == {key: Allocation(0.0, "paused: meter offline: MinCluster 0 A below 6 A")
                      for key in (("A", 1), ("B", 1))}


def test_meter_answering_or_disabled_min_cluster_does_not_apply():
    sessions = [cs("A")]
    assert offers(allocate_cluster(ClusterLimits(min_cluster_a=6), sessions, 0.0)) == {("A", 1): 32.0}
    online = ClusterLimits(meter_enabled=True, building_a=(0.0, 0.0, 0.0), min_cluster_a=6, max_building_a=63)
    assert offers(allocate_cluster(online, sessions, 0.0)) == {("A", 1): 32.0}


# ---- 3. priority order --------------------------------------------------------------------

def test_ac10_goes_before_an_earlier_ac05():
    sessions = [cs("A", started=0.0), cs("B", privilege="AC10", started=100.0)]
    result = allocate_cluster(ClusterLimits(max_cluster_a=10), sessions, 200.0)
    assert result == {("A", 1): Allocation(0.0, PAUSED_NOT_ENOUGH), ("B", 1): Allocation(10.0, "cluster limit L1")}


def test_privilege_does_not_change_equal_shares():
    sessions = [cs("A", started=0.0), cs("B", privilege="AC10", started=100.0)]
    assert offers(allocate_cluster(ClusterLimits(max_cluster_a=32), sessions, 200.0)) == {("A", 1): 16.0,
                                                                                          ("B", 1): 16.0}


def test_within_a_privilege_the_earliest_session_goes_first():
    # given in another order than they started
    sessions = [cs("C", started=30.0), cs("A", started=10.0), cs("B", started=20.0)]
    result = allocate_cluster(ClusterLimits(algorithm="UNIFORM", max_cluster_a=16), sessions, 100.0)
    assert offers(result) == {("C", 1): 0.0, ("A", 1): 8.0, ("B", 1): 8.0}
    assert list(result) == [("C", 1), ("A", 1), ("B", 1)]  # the order given


# ---- 4. algorithms --------------------------------------------------------------------------

def test_uniform_ignores_the_draw_optimized_gives_it_to_others():
    sessions = [cs("A", draw_a=4.0, offered_a=16.0), cs("B", started=1, offered_a=16.0, draw_a=16.0)]
    uniform = allocate_cluster(ClusterLimits(algorithm="UNIFORM", max_cluster_a=32), sessions, 0.0)
    assert offers(uniform) == {("A", 1): 16.0, ("B", 1): 16.0}
    for algorithm in ("OPTIMIZED", "SUSPENDABLE"):
        result = allocate_cluster(ClusterLimits(algorithm=algorithm, max_cluster_a=32), sessions, 0.0)
        assert result == {("A", 1): Allocation(6.0, "vehicle draws 4.0 A"),
                          ("B", 1): Allocation(26.0, "cluster limit L1")}


def test_optimized_shares_what_a_vehicle_leaves_among_the_others():
    # A draws 4 A: UNIFORM keeps its equal share for it, OPTIMIZED gives the others what it leaves.
    # (Who charges at all does not change: every session admitted needs 6 A either way.)
    sessions = [cs("A", draw_a=4.0, offered_a=6.6), cs("B", started=1), cs("C", started=2)]
    uniform = allocate_cluster(ClusterLimits(algorithm="UNIFORM", max_cluster_a=20), sessions, 0.0)
    assert offers(uniform) == {("A", 1): 6.6, ("B", 1): 6.6, ("C", 1): 6.6}
    optimized = allocate_cluster(ClusterLimits(algorithm="OPTIMIZED", max_cluster_a=20), sessions, 0.0)
    assert offers(optimized) == {("A", 1): 6.0, ("B", 1): 7.0, ("C", 1): 7.0}


def test_only_suspendable_rotates_a_waiting_session_in():
    t = 10_000.0
    sessions = [cs("A", offered_a=6.5), cs("B", started=1, offered_a=6.5),
                cs("C", started=2, offered_a=0.0, paused_since=t - 900)]
    for algorithm in ("UNIFORM", "OPTIMIZED"):
        result = allocate_cluster(ClusterLimits(algorithm=algorithm, max_cluster_a=13), sessions, t)
        assert offers(result) == {("A", 1): 6.5, ("B", 1): 6.5, ("C", 1): 0.0}
    result = allocate_cluster(ClusterLimits(algorithm="SUSPENDABLE", max_cluster_a=13), sessions, t)
    assert offers(result) == {("A", 1): 6.5, ("B", 1): 0.0, ("C", 1): 6.5}
    assert result[("B", 1)].reason == PAUSED_NOT_ENOUGH
    # not yet waited long enough
    result = allocate_cluster(ClusterLimits(algorithm="SUSPENDABLE", max_cluster_a=13), sessions, t - 1)
    assert offers(result)[("C", 1)] == 0.0


def test_rotation_never_jumps_a_privilege_class():
    t = 10_000.0
    sessions = [cs("A", privilege="AC10", offered_a=10.0), cs("B", started=1, paused_since=0.0, offered_a=0.0)]
    result = allocate_cluster(ClusterLimits(max_cluster_a=10, rotate_after_s=60), sessions, t)
    assert offers(result) == {("A", 1): 10.0, ("B", 1): 0.0}


def simulate(limits: ClusterLimits, sessions: list[ClusterSession], rounds: int, step_s: float = 60.0,
             other: tuple[float, float, float] | None = None, charging_since: bool = True):
    """The master's loop: apply each allocation (offers, paused_since and charging_since as the
    docstring says, the vehicles draw their offers, the meter sees the rest of the building plus
    the cluster) and advance the clock."""
    state = {s.key: s for s in sessions}
    history = []
    for round_ in range(rounds):
        now = round_ * step_s
        current = list(state.values())
        if other is not None:
            own = {p: sum(s.current_a.get(p, 0.0) for s in current) for p in (1, 2, 3)}
            limits = replace(limits, building_a=tuple(other[p - 1] + own[p] for p in (1, 2, 3)))
        result = allocate_cluster(limits, current, now)
        for key, allocation in result.items():
            s = state[key]
            if allocation.paused and allocation.reason == PAUSED_NOT_ENOUGH:
                paused_since = s.paused_since if s.paused_since is not None else now
            elif allocation.paused:
                paused_since = s.paused_since
            else:
                paused_since = None
            if allocation.paused or not charging_since:
                since = None
            else:
                since = s.charging_since if s.offered_a else now
            state[key] = replace(s, offered_a=allocation.offer_a, paused_since=paused_since,
                                 current_a={p: allocation.offer_a for p in s.grid}, charging_since=since)
        history.append(result)
    return history


def runs(history, key) -> tuple[list[int], list[int]]:
    """The lengths (rounds) of a session's finished charging and paused stretches."""
    charging, paused, length = [], [], 0
    for before, after in zip(history, history[1:]):
        length += 1
        if before[key].paused != after[key].paused:
            (paused if before[key].paused else charging).append(length)
            length = 0
    return charging, paused


def test_suspendable_takes_turns_uniform_lets_the_latest_wait():
    sessions = [cs("A"), cs("B", started=1), cs("C", started=2)]  # room for two at 6.5 A
    uniform = simulate(ClusterLimits(algorithm="UNIFORM", max_cluster_a=13), sessions, 120)
    assert all(offers(r) == {("A", 1): 6.5, ("B", 1): 6.5, ("C", 1): 0.0} for r in uniform)
    suspendable = simulate(ClusterLimits(algorithm="SUSPENDABLE", max_cluster_a=13), sessions, 120)
    assert all(sum(a.paused for a in r.values()) == 1 for r in suspendable)
    for key in (("A", 1), ("B", 1), ("C", 1)):  # everyone takes turns: 30 min charging, 15 waiting
        charging, paused = runs(suspendable, key)
        assert set(charging[1:]) == {30} and set(paused) == {15}


def test_suspendable_turns_are_never_cut_short():
    # room for one, four sessions: each charges 15 min, then waits while the three others charge
    sessions = [cs(station, started=i) for i, station in enumerate("ABCD")]
    history = simulate(ClusterLimits(max_cluster_a=10), sessions, 200)
    for key in [s.key for s in sessions]:
        charging, paused = runs(history, key)
        assert charging and min(charging) == 15
        assert paused and max(paused) == 45 and min(paused[1:]) == 45


def test_without_charging_since_turns_still_come():
    sessions = [cs(station, started=i) for i, station in enumerate("ABCD")]
    history = simulate(ClusterLimits(max_cluster_a=10), sessions, 200, charging_since=False)
    for key in [s.key for s in sessions]:
        charging, paused = runs(history, key)
        assert charging and max(paused) <= 15 + 4


# ---- 5. phase balance -----------------------------------------------------------------------

def test_phase_balance_in_the_cluster():
    sessions = [cs("A", grid=frozenset({1})), cs("B", started=1)]
    unbalanced = allocate_cluster(ClusterLimits(max_cluster_a=32), sessions, 0.0)
    assert load(sessions, unbalanced) == {1: 32.0, 2: 16.0, 3: 16.0}
    result = allocate_cluster(ClusterLimits(max_cluster_a=32, phase_balance_a=6), sessions, 0.0)
    assert result == {("A", 1): Allocation(6.0, "phase balance L1"), ("B", 1): Allocation(26.0, "cluster limit L1")}
    assert load(sessions, result) == {1: 32.0, 2: 26.0, 3: 26.0}


def test_phase_balance_with_single_phase_stations_on_each_phase():
    sessions = [cs("A", grid=frozenset({1})), cs("B", grid=frozenset({2}), cap=16), cs("C", grid=frozenset({3}))]
    result = allocate_cluster(ClusterLimits(max_cluster_a=32, phase_balance_a=4), sessions, 0.0)
    assert offers(result) == {("A", 1): 20.0, ("B", 1): 16.0, ("C", 1): 20.0}
    assert result[("A", 1)].reason == "phase balance L1"


# ---- properties -------------------------------------------------------------------------------

GRIDS = st.sampled_from([frozenset(g) for g in ({1}, {2}, {3}, {1, 2}, {2, 3}, {1, 3}, {1, 2, 3})])
KEYS = [(station, connector) for station in "ABC" for connector in (1, 2, 3)]


def amps(high: float):  # cheaper to draw than floats, with 0.1 A and sub-6 A values aplenty
    return st.integers(0, int(high * 10)).map(lambda tenths: tenths / 10) | st.floats(0, high)


AMPS = amps(80)
SET_OR_NOT = st.just(0.0) | amps(200)


@st.composite
def cluster_sessions(draw, max_size: int = 8, privileges=("AC05", "AC10")):
    keys = draw(st.permutations(KEYS))[:draw(st.integers(0, max_size))]
    privilege = {station: draw(st.sampled_from(privileges)) for station in "ABC"}  # the station's key
    sessions = []
    for station, connector in keys:
        grid = draw(GRIDS)
        sessions.append(ClusterSession(
            station, connector, privilege[station], float(draw(st.integers(0, 20))),
            draw(st.dictionaries(st.sampled_from(["connector", "cable", "vehicle"]), AMPS, min_size=1)),
            grid, len(grid) if len(grid) < 3 else draw(st.sampled_from([None, 3])),
            draw(st.none() | AMPS), draw(st.none() | AMPS), draw(st.none() | st.integers(0, 5000).map(float)),
            {p: draw(AMPS) for p in grid}))
    return sessions


@st.composite
def cluster_limits(draw, balance: bool = True):
    return ClusterLimits(
        algorithm=draw(st.sampled_from(ALGORITHMS)),
        max_cluster_a=draw(SET_OR_NOT),
        max_building_a=draw(SET_OR_NOT),
        building_a=draw(st.none() | st.tuples(*[amps(400)] * 3)),
        meter_enabled=draw(st.booleans()),
        min_cluster_a=draw(amps(40)),
        phase_balance_a=draw(st.none() | amps(30)) if balance else None,
        rotate_after_s=draw(st.sampled_from([60.0, 900.0])),
    )


@settings(max_examples=200, deadline=None)
@given(cluster_limits(), cluster_sessions(), st.floats(0, 10_000))
def test_limits_hold(limits, sessions, now):
    result = allocate_cluster(limits, sessions, now)
    assert list(result) == [s.key for s in sessions]
    assert result == allocate_cluster(limits, sessions, now)  # deterministic
    available, _ = available_per_phase(limits, sessions)
    per_phase = load(sessions, result)
    for s in sessions:
        a = result[s.key]
        assert a.offer_a == 0 or 6 <= a.offer_a <= 80  # never strictly between 0 and 6 A
        assert a.offer_a <= min(s.caps.values()) + TOLERANCE
        assert a.paused == a.reason.startswith("paused") and a.reason
    if available is not None:
        for p in (1, 2, 3):
            assert per_phase[p] <= available[p] + TOLERANCE  # never above the available current
    if limits.meter_enabled and limits.building_a is None:
        for station in {s.station for s in sessions}:
            mine = [s for s in sessions if s.station == station]
            for p, amps in load(mine, result).items():
                assert amps <= limits.min_cluster_a + TOLERANCE
    if limits.phase_balance_a is not None:
        assert max(per_phase.values()) - min(per_phase.values()) <= limits.phase_balance_a + TOLERANCE


@settings(max_examples=200, deadline=None)
@given(cluster_limits(balance=False), cluster_sessions(), st.floats(0, 10_000))
def test_a_higher_priority_session_is_never_paused_while_a_lower_one_charges_on_its_phases(limits, sessions, now):
    """Without phase balancing: an AC10 session paused for lack of current is paused all the same
    when every AC05 session is left out (so pausing those would not help it), and, with the meter
    answering (or none), it never sees an AC05 session charge on every grid phase it uses.
    (Meter offline, a station's own MinCluster can pause it while another station charges.)"""
    result = allocate_cluster(limits, sessions, now)
    lower = [s for s in sessions if s.privilege == "AC05"]
    rest = [s for s in sessions if s.privilege == "AC10"]
    building = limits.building_a
    if building is not None:  # the meter then sees the building without their current
        building = tuple(building[p - 1] - sum(s.current_a.get(p, 0.0) for s in lower) for p in (1, 2, 3))
    alone = allocate_cluster(replace(limits, building_a=building), rest, now)
    for high in rest:
        if result[high.key].reason != PAUSED_NOT_ENOUGH:
            continue
        assert alone[high.key].reason == PAUSED_NOT_ENOUGH
        if not limits.meter_offline:
            for low in lower:
                assert result[low.key].paused or not high.grid <= low.grid, (high, low)


STEP_S = 60.0


@st.composite
def steady_clusters(draw):
    """A cluster whose every session could charge alone: caps ≥ 6 A, ≥ 6 A available on every phase."""
    sessions = draw(cluster_sessions(max_size=7, privileges=("AC05",)))
    sessions = [ClusterSession(s.station, s.connector_id, s.privilege, s.started_at,
                               {"connector": draw(st.floats(6, 80))}, s.grid, s.phases) for s in sessions]
    limit = draw(st.floats(6, 100))
    other = draw(st.tuples(*[st.floats(0, 100)] * 3))
    rotate = 300.0  # 5 rounds: short runs
    if draw(st.booleans()):  # MaxBuilding with a meter: the rest of the building stays as it is
        limits = ClusterLimits(max_building_a=max(other) + limit, meter_enabled=True, building_a=other,
                               rotate_after_s=rotate)
        return limits, sessions, other
    return ClusterLimits(max_cluster_a=limit, rotate_after_s=rotate), sessions, None


@settings(max_examples=100, deadline=None)
@given(steady_clusters())
def test_suspendable_starves_nobody(cluster):
    """Rounds of a minute with a steady set of sessions: under SUSPENDABLE every session charges
    within a bounded number of rounds (each session ahead of it gets at most one turn of
    rotate_after_s first); under UNIFORM the allocation never changes, so whoever waits in the
    first round waits for ever."""
    limits, sessions, other = cluster
    turn = int(limits.rotate_after_s / STEP_S)
    bound = len(sessions) * (turn + 1) + 1
    history = simulate(limits, sessions, 2 * bound + 2, STEP_S, other)
    for s in sessions:
        charging, paused = runs(history, s.key)
        assert all(rounds <= bound for rounds in paused), (s.key, paused)
        assert not history[-1][s.key].paused or any(not r[s.key].paused for r in history[-bound - 1:])
        assert all(rounds >= turn for rounds in charging[1:])  # a turn is never cut short

    uniform = replace(limits, algorithm="UNIFORM")
    history = simulate(uniform, sessions, bound, STEP_S, other)
    assert all(offers(r) == offers(history[0]) for r in history)
    waiting = [key for key, a in history[0].items() if a.paused]
    assert all(history[-1][key].paused for key in waiting)
