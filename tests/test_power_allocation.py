"""The station's own current allocation (stationd.power): the rules of its module docstring."""

from __future__ import annotations

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
