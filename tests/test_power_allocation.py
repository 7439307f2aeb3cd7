"""The station's own current allocation (stationd.power): the rules of its module docstring."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stationd.power import Allocation, AllocationRequest, SessionInput, allocate
from stationd.power.allocation import PAUSED_NOT_ENOUGH, floor_offer
from stationd.power.phases import (
    grid_phases,
    parse_connector_phase_rotation,
    station_phases,
    vehicle_phase_count,
)

STRAIGHT = {1: "RST", 2: "RST", 3: "RST", 4: "RST"}


def session(cid: int, cap: float = 32, phases: int | None = 3, **kw) -> SessionInput:
    return SessionInput(cid, {"connector": cap}, phases, **kw)


def request(limit, *sessions: SessionInput, **kw) -> AllocationRequest:
    kw.setdefault("rotations", STRAIGHT)
    return AllocationRequest(limit, sessions, **kw)


def offers(result: dict[int, Allocation]) -> dict[int, float]:
    return {cid: a.offer_a for cid, a in result.items()}


# ---- phases ----------------------------------------------------------------------------

def test_parse_connector_phase_rotation():
    assert parse_connector_phase_rotation("0.RST,1.STR, 2.Unknown") == {0: "RST", 1: "STR", 2: "Unknown"}
    assert parse_connector_phase_rotation(("1.TSR",)) == {1: "TSR"}
    assert parse_connector_phase_rotation("") == {}
    for bad in ("1.XYZ", "RST", "a.RST"):
        with pytest.raises(ValueError):
            parse_connector_phase_rotation(bad)


@pytest.mark.parametrize("rotation, one, two", [
    ("RST", {1}, {1, 2}), ("RTS", {1}, {1, 3}), ("SRT", {2}, {1, 2}),
    ("STR", {2}, {2, 3}), ("TRS", {3}, {1, 3}), ("TSR", {3}, {2, 3}),
])
def test_station_phases_follow_the_rotation(rotation, one, two):
    assert station_phases(rotation, 1) == one
    assert station_phases(rotation, 2) == two
    assert station_phases(rotation, 3) == {1, 2, 3}
    assert station_phases(rotation, None) == {1, 2, 3}  # unknown vehicle phases = 3


def test_grid_connection_maps_station_terminals_to_grid_phases():
    # station L1 on grid 2, L2 on grid 3, L3 on grid 1
    assert grid_phases("RST", 1, [2, 3, 1]) == {2}
    assert grid_phases("STR", 1, [2, 3, 1]) == {3}
    assert grid_phases("TRS", 1, [2, 3, 1]) == {1}
    assert grid_phases("RTS", 2, [2, 3, 1]) == {2, 1}
    assert grid_phases("RST", 3, [3, 1, 2]) == {1, 2, 3}


def test_unknown_wiring_is_accounted_on_every_phase():
    for rotation in ("Unknown", "NotApplicable"):
        assert station_phases(rotation, 1) is None
        assert grid_phases(rotation, 1) == {1, 2, 3}
        assert grid_phases(rotation, 3) == {1, 2, 3}


def test_bad_phase_inputs():
    with pytest.raises(ValueError):
        grid_phases("RST", 1, [1, 1, 2])
    with pytest.raises(ValueError):
        vehicle_phase_count(4)
    with pytest.raises(ValueError):
        station_phases("XYZ", 1)


# ---- the vendor baseline -------------------------------------------------------------

def test_one_session_gets_the_whole_limit():
    result = allocate(request(20, session(1)))
    assert result == {1: Allocation(20.0, "station limit L1")}


def test_a_second_session_halves_it():
    assert offers(allocate(request(20, session(1), session(2)))) == {1: 10.0, 2: 10.0}
    assert offers(allocate(request(63, session(1), session(2)))) == {1: 31.5, 2: 31.5}


def test_offers_are_rounded_down_to_a_tenth():
    result = allocate(request(20, session(1), session(2), session(3)))
    assert offers(result) == {1: 6.6, 2: 6.6, 3: 6.6}
    assert floor_offer(6.0 - 1e-12) == 6.0
    assert floor_offer(6.19) == 6.1


def test_no_sessions():
    assert allocate(request(16)) == {}


# ---- (a) unused current --------------------------------------------------------------

def test_current_a_vehicle_does_not_draw_goes_to_the_other():
    # connector 1 offered 16 A draws 4 A: it keeps max(6, 4 + 2) = 6 A; connector 2 gets the rest
    result = allocate(request(32, session(1, draw_a=4.0, offered_a=16.0), session(2)))
    assert result[1] == Allocation(6.0, "vehicle draws 4.0 A")
    assert result[2] == Allocation(26.0, "station limit L1")


def test_headroom_above_the_draw():
    result = allocate(request(32, session(1, draw_a=9.0, offered_a=16.0), session(2)))
    assert offers(result) == {1: 11.0, 2: 21.0}


def test_a_vehicle_using_its_offer_gets_its_share_back():
    # it draws within 1 A of its (reduced) offer: it demands its cap again -> equal shares
    result = allocate(request(32, session(1, draw_a=10.5, offered_a=11.0), session(2)))
    assert offers(result) == {1: 16.0, 2: 16.0}


def test_draw_unknown_or_paused_demands_the_cap():
    assert offers(allocate(request(32, session(1, draw_a=None, offered_a=16.0), session(2)))) == {1: 16, 2: 16}
    assert offers(allocate(request(32, session(1, draw_a=0.0, offered_a=0.0), session(2)))) == {1: 16, 2: 16}


def test_both_below_their_share():
    result = allocate(request(32, session(1, draw_a=3.0, offered_a=16.0), session(2, draw_a=5.0, offered_a=16.0)))
    assert offers(result) == {1: 6.0, 2: 7.0}


# ---- (b) caps ------------------------------------------------------------------------

def test_caps_are_respected_and_named():
    caps = {"connector": 32, "cable": 20, "vehicle": 25}
    result = allocate(request(63, SessionInput(1, caps, 3), session(2)))
    assert result[1] == Allocation(20.0, "cable 20 A")
    assert result[2] == Allocation(32.0, "connector 32 A")  # 63 - 20 = 43, capped at 32


def test_pwm_maximum_is_a_cap():
    assert allocate(request(100, session(1, cap=100)))[1] == Allocation(80.0, "PWM maximum 80 A")


def test_a_cap_below_6_a_pauses():
    result = allocate(request(32, SessionInput(1, {"connector": 32, "smart charging": 4}, 3), session(2)))
    assert result[1] == Allocation(0.0, "paused: smart charging 4 A below 6 A")
    assert result[2].offer_a == 32.0


# ---- (c) per grid phase --------------------------------------------------------------

def test_single_phase_vehicles_on_different_phases_both_get_the_full_limit():
    rotations = {1: "RST", 2: "STR"}
    result = allocate(request(16, session(1, phases=1), session(2, phases=1), rotations=rotations))
    assert offers(result) == {1: 16.0, 2: 16.0}


def test_single_phase_vehicles_on_the_same_phase_share_it():
    result = allocate(request(16, session(1, phases=1), session(2, phases=1), rotations={1: "RST", 2: "RTS"}))
    assert offers(result) == {1: 8.0, 2: 8.0}


def test_grid_connection_decides_which_phases_meet():
    # grid [2,3,1]: connector 1 L1 = station L1 = grid 2; connector 2 L1 = station L2 = grid 3
    rotations = {1: "RST", 2: "SRT"}
    result = allocate(request((10, 16, 12), session(1, phases=1), session(2, phases=1),
                              rotations=rotations, grid_connection=[2, 3, 1]))
    assert result[1] == Allocation(16.0, "station limit L2")
    assert result[2] == Allocation(12.0, "station limit L3")  # the weak grid phase 1 carries nothing
    # grid [1,2,3]: the same connectors are on grid phases 1 and 2
    result = allocate(request((10, 16, 12), session(1, phases=1), session(2, phases=1), rotations=rotations))
    assert result[1] == Allocation(10.0, "station limit L1")
    assert result[2] == Allocation(16.0, "station limit L2")


def test_a_three_phase_vehicle_and_a_single_phase_vehicle():
    # the 1-phase vehicle on grid L1 shares L1 with the 3-phase one; L2/L3 do not bind the 3-phase one
    result = allocate(request(20, session(1, phases=3), session(2, phases=1)))
    assert offers(result) == {1: 10.0, 2: 10.0}


def test_unknown_wiring_is_conservative():
    rotations = {1: "RST", 2: "Unknown"}
    result = allocate(request(16, session(1, phases=1), session(2, phases=1), rotations=rotations))
    assert offers(result) == {1: 8.0, 2: 8.0}
    # a connector missing from ConnectorPhaseRotation counts as Unknown
    result = allocate(request(16, session(1, phases=1), session(2, phases=1), rotations={1: "RST"}))
    assert offers(result) == {1: 8.0, 2: 8.0}


# ---- (d) power limit -----------------------------------------------------------------

def test_power_limit_bounds_the_sum():
    # 11 kW at 230 V over 3 phases = 15.94 A
    assert allocate(request(16, session(1), power_limit_w=11000))[1] == Allocation(15.9, "power limit")
    result = allocate(request(32, session(1), session(2), power_limit_w=11000))
    assert offers(result) == {1: 7.9, 2: 7.9}


def test_power_limit_counts_the_vehicle_phases():
    # 3-phase at a weight of 3, single-phase at 1: 7360 W / 230 V = 32 A·phases -> 8 A each
    rotations = {1: "RST", 2: "STR"}
    result = allocate(request(32, session(1, phases=3), session(2, phases=1), power_limit_w=7360,
                              rotations=rotations))
    assert offers(result) == {1: 8.0, 2: 8.0}
    assert all(a.reason == "power limit" for a in result.values())


# ---- (e) pauses and the rotation -----------------------------------------------------

def test_the_latest_session_pauses_when_shares_fall_below_6_a():
    result = allocate(request(16, session(1), session(2), session(3)))
    assert result[1] == Allocation(8.0, "station limit L1")
    assert result[2] == Allocation(8.0, "station limit L1")
    assert result[3] == Allocation(0.0, PAUSED_NOT_ENOUGH)


def test_a_low_limit_pauses_everyone_but_the_first():
    result = allocate(request(10, session(1), session(2)))
    assert offers(result) == {1: 10.0, 2: 0.0}
    assert offers(allocate(request(5, session(1)))) == {1: 0.0}


def test_a_session_on_another_phase_is_not_paused_for_a_crowded_one():
    # connectors 1 and 2 crowd grid L1 (limit 10); connector 3 is alone on L2 and is not paused
    rotations = {1: "RST", 2: "RST", 3: "STR"}
    result = allocate(request(10, session(1, phases=1), session(2, phases=1), session(3, phases=1),
                              rotations=rotations))
    assert offers(result) == {1: 10.0, 2: 0.0, 3: 10.0}


def test_a_paused_session_moves_to_the_front_after_rotate_after_s():
    t0 = 1000.0
    early = allocate(request(10, session(1), session(2, paused_since=t0), now=t0 + 899))
    assert offers(early) == {1: 10.0, 2: 0.0}
    rotated = allocate(request(10, session(1), session(2, paused_since=t0), now=t0 + 900))
    assert offers(rotated) == {1: 0.0, 2: 10.0}
    assert rotated[1].reason == PAUSED_NOT_ENOUGH
    # no clock: no rotation
    assert offers(allocate(request(10, session(1), session(2, paused_since=t0)))) == {1: 10.0, 2: 0.0}


def test_pauses_rotate_so_nobody_starves():
    """Simulate the caller (it keeps paused_since) for 3 sessions with room for 2, over 2 hours."""
    paused_since: dict[int, float | None] = {1: None, 2: None, 3: None}
    charged = {1: 0.0, 2: 0.0, 3: 0.0}
    longest_pause = {1: 0.0, 2: 0.0, 3: 0.0}
    for minute in range(120):
        now = minute * 60.0
        sessions = [session(cid, paused_since=paused_since[cid]) for cid in (1, 2, 3)]
        result = allocate(request(13, *sessions, now=now, rotate_after_s=900))
        for cid, allocation in result.items():
            if allocation.paused:
                paused_since[cid] = now if paused_since[cid] is None else paused_since[cid]
                longest_pause[cid] = max(longest_pause[cid], now - paused_since[cid])
            else:
                paused_since[cid] = None
                charged[cid] += allocation.offer_a
            assert allocation.offer_a == 0 or allocation.offer_a >= 6
        assert sum(a.offer_a for a in result.values()) <= 13
    assert all(charged[cid] > 0 for cid in (1, 2, 3))
    assert max(longest_pause.values()) <= 15 * 60


def test_bad_requests():
    with pytest.raises(ValueError):
        allocate(request(16, session(1), session(1)))
    with pytest.raises(ValueError):
        allocate(request(-1, session(1)))
    with pytest.raises(ValueError):
        allocate(request((16, 16), session(1)))


# ---- properties ----------------------------------------------------------------------

ROTATION = st.sampled_from(["RST", "RTS", "SRT", "STR", "TRS", "TSR", "Unknown", "NotApplicable"])
GRID = st.permutations([1, 2, 3])
AMPS = st.floats(0, 80, allow_nan=False)


@st.composite
def requests(draw):
    count = draw(st.integers(0, 5))
    sessions = []
    for cid in range(1, count + 1):
        offered = draw(st.none() | AMPS)
        sessions.append(SessionInput(
            cid,
            draw(st.dictionaries(st.sampled_from(["connector", "cable", "vehicle", "smart"]), AMPS, min_size=1)),
            draw(st.sampled_from([None, 1, 2, 3])),
            draw(st.none() | AMPS),
            offered,
            draw(st.none() | st.floats(0, 10_000)),
        ))
    limit = draw(AMPS | st.tuples(AMPS, AMPS, AMPS))
    return AllocationRequest(
        limit, tuple(sessions),
        power_limit_w=draw(st.none() | st.floats(0, 60_000)),
        voltage_v=draw(st.sampled_from([110.0, 230.0, 240.0])),
        grid_connection=tuple(draw(GRID)),
        rotations=draw(st.dictionaries(st.integers(0, 6), ROTATION)),
        now=draw(st.none() | st.floats(0, 20_000)),
        rotate_after_s=draw(st.sampled_from([60.0, 900.0])),
    )


TOLERANCE = 1e-6


@settings(max_examples=400, deadline=None)
@given(requests())
def test_properties(req):
    result = allocate(req)
    assert result == allocate(req)  # deterministic
    assert list(result) == [s.connector_id for s in req.sessions]
    limits = req.phase_limits()
    load = {1: 0.0, 2: 0.0, 3: 0.0}
    power = 0.0
    for s in req.sessions:
        a = result[s.connector_id]
        assert a.offer_a == 0 or 6 <= a.offer_a <= 80  # never in (0, 6)
        assert a.offer_a <= min(s.caps.values()) + TOLERANCE
        assert round(a.offer_a * 10, 6) == int(round(a.offer_a * 10, 6))  # 0.1 A steps
        assert a.reason
        assert a.paused == a.reason.startswith("paused")
        for p in grid_phases(req.rotations.get(s.connector_id, "Unknown"), s.phases, req.grid_connection):
            load[p] += a.offer_a
        power += req.voltage_v * a.offer_a * vehicle_phase_count(s.phases)
    for p in (1, 2, 3):
        assert load[p] <= limits[p] + TOLERANCE  # never above the limit on any grid phase
    if req.power_limit_w is not None:
        assert power <= req.power_limit_w + TOLERANCE


@settings(max_examples=200, deadline=None)
@given(requests())
def test_the_first_session_charges_when_it_can(req):
    """Whoever is first in priority order gets ≥ 6 A whenever that alone would fit."""
    claims = [s for s in req.sessions if min(s.caps.values()) >= 6]
    if not claims or req.now is not None:
        return
    first = claims[0]
    alone = allocate(AllocationRequest(req.phase_limit_a, (first,), req.power_limit_w, req.voltage_v,
                                       req.grid_connection, req.rotations))
    if alone[first.connector_id].offer_a >= 6:
        assert allocate(req)[first.connector_id].offer_a >= 6


@settings(max_examples=200, deadline=None)
@given(st.floats(12, 80), st.floats(6, 80))
def test_vendor_halving(limit, cap):
    """Two identical 3-phase sessions always get equal offers; one alone gets min(limit, cap)."""
    one = allocate(request(limit, session(1, cap=cap)))
    assert one[1].offer_a == floor_offer(min(limit, cap, 80))
    two = allocate(request(limit, session(1, cap=cap), session(2, cap=cap)))
    assert two[1].offer_a == two[2].offer_a == floor_offer(min(limit / 2, cap, 80))


# ---- ids, grid and priority classes (used by the cluster master) --------------------

def test_connector_ids_may_be_any_hashable():
    result = allocate(AllocationRequest(20, (SessionInput(("TE-1", 1), {"connector": 32}, 3),
                                             SessionInput(("TE-2", 1), {"connector": 32}, 3))))
    assert offers(result) == {("TE-1", 1): 10.0, ("TE-2", 1): 10.0}


def test_grid_given_by_the_caller_replaces_the_wiring():
    # the rotation says grid L1 for both; the caller's grid puts connector 2 on L2
    result = allocate(request(16, session(1, phases=1), session(2, phases=1, grid=frozenset({2})),
                              rotations={1: "RST", 2: "RST"}))
    assert offers(result) == {1: 16.0, 2: 16.0}
    assert result[2].reason == "station limit L2"
    for bad in (frozenset(), frozenset({4}), frozenset({0, 1})):
        with pytest.raises(ValueError):
            allocate(request(16, session(1, grid=bad)))


def test_phase_limit_names_name_each_phase():
    result = allocate(request((20, 16, 16), session(1, phases=1), session(2, phases=1),
                              rotations={1: "RST", 2: "STR"}, phase_limit_names={1: "building limit"},
                              limit_name="cluster limit"))
    assert result[1] == Allocation(20.0, "building limit L1")
    assert result[2] == Allocation(16.0, "cluster limit L2")


def test_a_less_important_session_pauses_first_even_if_it_started_earlier():
    result = allocate(request(10, session(1, priority=1), session(2, priority=0)))
    assert result[1] == Allocation(0.0, PAUSED_NOT_ENOUGH)
    assert result[2] == Allocation(10.0, "station limit L1")
    # equal priority: the start order decides (the given order)
    assert offers(allocate(request(10, session(1, priority=1), session(2, priority=1)))) == {1: 10.0, 2: 0.0}


def test_priority_does_not_change_equal_shares():
    assert offers(allocate(request(32, session(1, priority=1), session(2, priority=0)))) == {1: 16.0, 2: 16.0}


def test_rotation_stays_within_the_priority_class():
    t0 = 0.0
    # 2 is less important and has waited long: it does not move ahead of 1
    result = allocate(request(10, session(1, priority=0), session(2, priority=1, paused_since=t0), now=t0 + 3600))
    assert offers(result) == {1: 10.0, 2: 0.0}
    # within its class it does move to the front: 3 waited, so 2 pauses instead; 1 (more important) keeps charging
    result = allocate(request(16, session(1, priority=0), session(2, priority=1), session(3, priority=1, paused_since=t0),
                              now=t0 + 900))
    assert offers(result) == {1: 8.0, 2: 0.0, 3: 8.0}


def test_admission_pauses_only_where_current_is_short():
    # L1 has room for one session at 6 A: 2 (on all phases) does not fit there, 3 on L2 is not affected
    rotations = {1: "RST", 2: "RST", 3: "STR"}
    result = allocate(request((6, 12, 40), session(1, phases=1), session(2, phases=3), session(3, phases=1),
                              rotations=rotations))
    assert offers(result) == {1: 6.0, 2: 0.0, 3: 12.0}


def test_partial_overlap_a_later_session_may_charge_on_a_phase_the_paused_one_also_uses():
    """2 (L1+L2) is short on L2, where 1 took the room; 3 (L1 only) fits on L1. Pausing 3 would not
    help 2, so 3 charges although it comes after 2: the sessions after a session never make it pause."""
    grids = {1: frozenset({2}), 2: frozenset({1, 2}), 3: frozenset({1})}
    result = allocate(request((40, 10, 40), *(session(c, phases=len(g), grid=g, priority=0 if c < 3 else 1)
                                              for c, g in grids.items())))
    assert offers(result) == {1: 10.0, 2: 0.0, 3: 32.0}  # 3 is on L1 alone: its cap


def test_a_rotated_session_keeps_charging_when_the_caller_passes_the_offers():
    """3 sessions, room for 2, the caller passes offered_a and paused_since: every pause lasts
    rotate_after_s and each switch holds until the next one (no one-round flapping)."""
    offered: dict[int, float | None] = {1: None, 2: None, 3: None}
    paused_since: dict[int, float | None] = {1: None, 2: None, 3: None}
    history = []
    for minute in range(120):
        now = minute * 60.0
        sessions = [session(cid, offered_a=offered[cid], paused_since=paused_since[cid]) for cid in (1, 2, 3)]
        result = allocate(request(13, *sessions, now=now, rotate_after_s=900))
        for cid, allocation in result.items():
            offered[cid] = allocation.offer_a
            if allocation.paused:
                paused_since[cid] = now if paused_since[cid] is None else paused_since[cid]
            else:
                paused_since[cid] = None
        history.append(frozenset(cid for cid, a in result.items() if a.paused))
    switches = [minute for minute in range(1, 120) if history[minute] != history[minute - 1]]
    assert switches == list(range(15, 120, 15))
    assert all(len(paused) == 1 for paused in history)


# ---- phase balance (rule 7) ----------------------------------------------------------------

def loads(req: AllocationRequest, result) -> dict[int, float]:
    load = {1: 0.0, 2: 0.0, 3: 0.0}
    for s in req.sessions:
        grid = s.grid if s.grid is not None else grid_phases(req.rotations.get(s.connector_id, "Unknown"), s.phases,
                                                              req.grid_connection)
        for p in grid:
            load[p] += result[s.connector_id].offer_a
    return load


def test_phase_balance_cuts_the_session_that_unbalances():
    # without a bound: the 1-phase session and the 3-phase one share L1 (16 A each): loads 32/16/16
    req = request(32, session(1, phases=1), session(2, phases=3))
    assert offers(allocate(req)) == {1: 16.0, 2: 16.0}
    req = request(32, session(1, phases=1), session(2, phases=3), phase_balance_a=6)
    result = allocate(req)
    assert result[1] == Allocation(6.0, "phase balance L1")
    assert result[2] == Allocation(26.0, "station limit L1")  # the 3-phase one is not cut for balance
    assert loads(req, result) == {1: 32.0, 2: 26.0, 3: 26.0}


def test_phase_balance_pauses_when_6_a_would_unbalance():
    result = allocate(request(32, session(1, phases=1), session(2, phases=3), phase_balance_a=4))
    assert result[1] == Allocation(0.0, PAUSED_NOT_ENOUGH)
    assert result[2] == Allocation(32.0, "connector 32 A")
    # a single-phase vehicle alone with bound 0
    assert offers(allocate(request(32, session(1, phases=1), phase_balance_a=0))) == {1: 0.0}


def test_phase_balance_lowers_the_most_loaded_phase_to_the_least_plus_the_bound():
    rotations = {1: "RST", 2: "STR", 3: "TRS"}
    req = request((32, 20, 32), session(1, phases=1), session(2, phases=1), session(3, phases=1),
                  rotations=rotations, phase_balance_a=4)
    result = allocate(req)
    assert result[1] == Allocation(24.0, "phase balance L1")
    assert result[2] == Allocation(20.0, "station limit L2")
    assert result[3] == Allocation(24.0, "phase balance L3")
    assert loads(req, result) == {1: 24.0, 2: 20.0, 3: 24.0}


def test_two_phase_vehicles_and_phase_balance():
    # a 2-phase vehicle on L1+L2 and a 1-phase one on L3: only the pair's difference counts
    grids = {1: frozenset({1, 2}), 2: frozenset({3})}
    req = request(32, session(1, phases=2, grid=grids[1]), session(2, phases=1, grid=grids[2]), phase_balance_a=10)
    result = allocate(req)
    assert offers(result) == {1: 32.0, 2: 32.0}
    req = request(32, session(1, phases=2, grid=grids[1]), session(2, phases=1, grid=grids[2], cap=16),
                  phase_balance_a=10)
    result = allocate(req)
    assert result[1] == Allocation(26.0, "phase balance L1")
    assert loads(req, result) == {1: 26.0, 2: 26.0, 3: 16.0}


def test_no_phase_balance_by_default_and_bad_bounds():
    req = request(32, session(1, phases=1))
    assert offers(allocate(req)) == {1: 32.0}
    for bad in (-1, math.inf, math.nan):
        with pytest.raises(ValueError):
            allocate(request(32, session(1), phase_balance_a=bad))


# ---- properties of priority classes, grids and phase balance ---------------------------

GRIDS = st.sampled_from([frozenset(g) for g in ({1}, {2}, {3}, {1, 2}, {2, 3}, {1, 3}, {1, 2, 3})])


@st.composite
def class_requests(draw, balance: bool = True):
    count = draw(st.integers(0, 6))
    sessions = []
    for cid in range(1, count + 1):
        grid = draw(st.none() | GRIDS)
        phases = draw(st.sampled_from([None, 1, 2, 3])) if grid is None else len(grid)
        sessions.append(SessionInput(
            cid,
            draw(st.dictionaries(st.sampled_from(["connector", "cable", "vehicle"]), AMPS, min_size=1)),
            phases,
            draw(st.none() | AMPS),
            draw(st.none() | AMPS),
            draw(st.none() | st.floats(0, 10_000)),
            grid=grid,
            priority=draw(st.integers(0, 2)),
        ))
    return AllocationRequest(
        draw(AMPS | st.tuples(AMPS, AMPS, AMPS)), tuple(sessions),
        power_limit_w=draw(st.none() | st.floats(0, 60_000)),
        rotations=draw(st.dictionaries(st.integers(0, 6), ROTATION)),
        now=draw(st.none() | st.floats(0, 20_000)),
        rotate_after_s=draw(st.sampled_from([60.0, 900.0])),
        phase_balance_a=draw(st.none() | st.floats(0, 30)) if balance else None,
    )


@settings(max_examples=150, deadline=None)
@given(class_requests())
def test_class_properties(req):
    result = allocate(req)
    limits = req.phase_limits()
    load = loads(req, result)
    for s in req.sessions:
        a = result[s.connector_id]
        assert a.offer_a == 0 or 6 <= a.offer_a <= 80
        assert a.offer_a <= min(s.caps.values()) + TOLERANCE
        assert a.paused == a.reason.startswith("paused")
    for p in (1, 2, 3):
        assert load[p] <= limits[p] + TOLERANCE
    if req.phase_balance_a is not None:
        assert max(load.values()) - min(load.values()) <= req.phase_balance_a + TOLERANCE


@settings(max_examples=150, deadline=None)
@given(class_requests(balance=False))
def test_later_sessions_never_make_a_session_pause(req):
    """A session paused for lack of current is paused also without every session of a less
    important class (so pausing those would not help it)."""
    result = allocate(req)
    for s in req.sessions:
        if result[s.connector_id].reason != PAUSED_NOT_ENOUGH:
            continue
        fewer = [o for o in req.sessions if o.priority <= s.priority]
        alone = allocate(AllocationRequest(req.phase_limit_a, fewer, req.power_limit_w, req.voltage_v,
                                           req.grid_connection, req.rotations, req.now, req.rotate_after_s))
        assert alone[s.connector_id].reason == PAUSED_NOT_ENOUGH


def test_a_turn_is_not_cut_short_when_the_caller_passes_charging_since():
    """4 sessions, room for one: with charging_since every session charges 15 min, then waits 45;
    every session takes turns, the first one too."""
    ids = (1, 2, 3, 4)
    offered: dict[int, float | None] = dict.fromkeys(ids)
    paused_since: dict[int, float | None] = dict.fromkeys(ids)
    charging_since: dict[int, float | None] = dict.fromkeys(ids)
    charging = []
    for minute in range(240):
        now = minute * 60.0
        sessions = [session(cid, offered_a=offered[cid], paused_since=paused_since[cid],
                            charging_since=charging_since[cid]) for cid in ids]
        result = allocate(request(10, *sessions, now=now))
        for cid, allocation in result.items():
            if allocation.paused:
                paused_since[cid] = now if paused_since[cid] is None else paused_since[cid]
                charging_since[cid] = None
            else:
                paused_since[cid] = None
                charging_since[cid] = now if not offered[cid] else charging_since[cid]
            offered[cid] = allocation.offer_a
        charging.append(next(cid for cid, a in result.items() if not a.paused))
    assert charging[:60] == [1] * 15 + [2] * 15 + [3] * 15 + [4] * 15
    assert charging[60:120] == charging[:60]


def test_a_session_whose_turn_is_not_over_stays_ahead_of_a_waited_one():
    t = 10_000.0
    one = session(1, offered_a=10.0, charging_since=t - 899)  # its turn began 899 s ago
    two = session(2, offered_a=0.0, paused_since=t - 3600)
    assert offers(allocate(request(10, one, two, now=t))) == {1: 10.0, 2: 0.0}
    one = session(1, offered_a=10.0, charging_since=t - 900)
    assert offers(allocate(request(10, one, two, now=t))) == {1: 0.0, 2: 10.0}


def test_the_session_charging_longest_pauses_for_a_waited_one():
    t = 10_000.0
    sessions = [session(1, offered_a=6.5, charging_since=t - 2000),  # started first, charging longest
                session(2, offered_a=6.5, charging_since=t - 1000),
                session(3, offered_a=0.0, paused_since=t - 900)]
    assert offers(allocate(request(13, *sessions, now=t))) == {1: 0.0, 2: 6.5, 3: 6.5}
