"""The station's own current allocation: which current (A per phase) each session is offered.

``allocate(request)`` is a pure function: the same request gives the same answer, nothing is
read from or written to anywhere else. The caller (the core, or the load-balancing cluster
master through ``stationd.power.cluster``) builds the request from the settings and the
connectors and applies the offers.

THE RULES (this docstring is the definition; tests/test_power_allocation.py checks them)
=========================================================================================

Inputs
  * ``phase_limit_a``: the limit per grid phase (A), one number for all three phases or one per
    grid phase 1, 2, 3. For the station: min(GridMaxCurrentPerPhase,
    /power/station/mainsMaxCurrent / 1000). ``limit_name`` names it in reasons ("station limit");
    ``phase_limit_names`` may name each grid phase's limit differently ({1: "building limit"}).
  * ``power_limit_w``: the station's power limit (W), GridMaxPower × 1000; None = none.
    ``voltage_v`` = GridVoltage (phase to neutral).
  * ``grid_connection`` = GridPhaseConnection and ``rotations`` = ConnectorPhaseRotation
    ({connector: "RST" …}); see ``stationd.power.phases`` for how they map a vehicle onto grid
    phases.
  * ``phase_balance_a``: the largest allowed difference between the loads of the grid phases (A)
    (LoadBalancingPhaseBalBound while LoadBalancingPhaseBalTrigger is on); None = no phase
    balancing (rule 7).
  * ``sessions``: the connectors with a session, **in start order, earliest first**. Each has an
    id (``connector_id``: any hashable, e.g. a connector number or a (BoxId, connector) pair;
    unique), named caps (connector maximum, cable PP rating, vehicle maximum, MaxCurrentLimit,
    smart-charging limits …: the lowest one applies), the phases the vehicle charges on (1, 2, 3;
    None = unknown = 3), the grid phases its current is accounted on (``grid``; None = worked out
    from the wiring, rule 4), its priority class (``priority``, lower = more important, default
    0; rule 6), its measured draw and current offer, and since when it has been paused or charging
    (rule 6).

1. Equal shares (the vendor behaviour). The current is shared max-min fairly ("water filling"):
   every session's offer rises together until it meets its own demand (rules 2, 3) or a limit it
   is subject to (rules 4, 5, 7); what a session cannot use goes to the others. So one session
   gets the whole limit and two sessions on the same phases get half each. Priority classes do
   not change the shares, only who pauses (rule 6).

2. Caps. A session is never offered more than its lowest cap (nor more than 80 A, the PWM
   maximum). A session whose cap is below 6 A is paused (offer 0, reason
   ``"paused: <cap> below 6 A"``).

3. Unused current. A vehicle *draws clearly below its offer* when ``draw_a < offered_a − 1 A``
   (``SATURATION_MARGIN_A``). Its demand is then ``max(6 A, draw_a + 2 A)`` (``HEADROOM_A``),
   never more than its cap; the rest of its share goes to the others. A vehicle drawing within
   1 A of its offer is *using* its offer and demands its cap again, so it gets its full share back
   in the next round (the 2 A headroom is larger than the 1 A margin: a vehicle that starts to
   draw more always reaches the margin). The draw is taken as given: the caller passes the
   highest current of the vehicle's phases over a window (e.g. the last 60 s) and None while it
   does not know yet (just started, or the offer changed within the window). A draw or an offer
   of None means "demands its cap". A paused vehicle (offer 0) demands its cap.

4. Per grid phase. A session is accounted on the grid phases ``grid`` when the caller gives them;
   otherwise a vehicle on *k* phases loads the grid phases of its connector's first *k* phases
   (connector rotation, then GridPhaseConnection). On every grid phase the sum of the offers of
   the sessions accounted on it is at most that phase's limit. Two single-phase vehicles on
   different grid phases therefore each get the full per-phase limit. Unknown wiring
   (rotation Unknown / NotApplicable / not listed) with a vehicle on fewer than 3 phases is
   accounted on all three phases.

5. Power. Σ voltage_v × offer × phases over all sessions ≤ power_limit_w, with phases = the
   vehicle's phases (unknown = 3).

6. Priority order and pauses: never between 0 and 6 A.
   The *priority order* sorts the sessions by ``priority`` (lower first); the sort is stable, so
   within a class they keep the given (start) order. Sessions are *admitted* in priority order:
   a session charges when it and every session admitted before it can all have 6 A at once
   (on every grid phase: 6 A × the admitted sessions accounted on it ≤ the phase's limit, and the
   same for the phase-balance limits of rule 7; 6 A × voltage_v × their phases ≤ power_limit_w).
   Otherwise it is paused (offer 0, reason ``"paused: not enough current"``). The admitted
   sessions share by rules 1–5; every demand is at least 6 A, so max-min fair shares give every
   admitted session at least 6 A. Hence a session is paused only when the sessions before it in
   the priority order leave it less than 6 A: the sessions after it never make it pause. Among
   sessions competing for a grid phase the latest in priority order pauses first, and a session of
   a less important class always pauses before a more important one on that phase.
   Rotation, so a paused session is not starved (only when ``now`` is given; ``now`` = None keeps
   the plain priority order). Within each priority class the order is:
     a. sessions charging (``offered_a`` > 0) whose ``charging_since`` is less than
        ``rotate_after_s`` (default 15 min) before ``now``: their turn is not over;
     b. sessions whose ``paused_since`` is at least ``rotate_after_s`` before ``now``, the
        longest-waiting first ("waited");
     c. the other sessions charging now, the one charging longest last (``charging_since``
        None: as if it had charged longest; all None: start order);
     d. the others (new sessions, sessions still waiting their turn), in start order.
   So a waited session moves to the front of its own class (never ahead of a more important
   class, nor of a session whose turn is not over) and the session charging longest that no
   longer fits pauses instead; the newcomer then keeps its place for its turn while the one it
   displaced waits its own ``rotate_after_s``. The caller keeps the two clocks: it sets
   ``paused_since`` when it applies a "paused: not enough current" allocation to a session that
   was not paused, and clears it once the session gets an offer again; it sets
   ``charging_since`` when it applies an offer > 0 to a session that had none (new or paused),
   and clears it when the session is paused. With a steady set of sessions every session that
   can charge gets its turns, and a rotation never ends a turn (charging, or waiting for lack of
   current) sooner than ``rotate_after_s`` after it began: vehicles do not like frequent stops.
   Without ``charging_since`` the turns
   still come (no session waits much longer than ``rotate_after_s``), but sessions that became
   due in the same round may displace each other on consecutive rounds, and the earliest
   sessions keep charging while later ones take turns.

7. Phase balance. With ``phase_balance_a`` set, after the allocation the load of the most loaded
   grid phase (the sum of the offers of the sessions accounted on it) minus that of the least
   loaded one is at most ``phase_balance_a``. While it is not, with *p* the most loaded phase and
   *q* the least loaded one (the lowest number on a tie): only the sessions accounted on *p* but
   not on *q* make *p* heavier than *q* (a session on both loads both alike), so they get a
   *phase-balance limit*: together at most what they have now minus the excess
   (load_p − load_q − ``phase_balance_a``), rounded down to 0.1 A, so that load_p comes down to
   load_q + ``phase_balance_a``. The allocation is then worked out again (rules 1–6; a
   phase-balance limit is a limit like those of rule 4, reason ``"phase balance L<p>"``; a
   session it leaves less than 6 A is paused by rule 6, ``"paused: not enough current"``), which
   may move the loads again, so this repeats. Each round cuts at least ``BALANCE_STEP_A``
   (0.1 A; doubling from round ``BALANCE_DOUBLING_ROUND`` = 4 on, so that the rounding of the
   offers cannot keep it going in tiny steps) below what the sessions have now; the limits only
   go down, and offers of 0 are always balanced, so this ends (within a few rounds in practice).
   Should it take ``MAX_BALANCE_ROUNDS`` rounds, every session not on all three phases is paused
   (reason ``"paused: phase balance"``).

8. Rounding. Offers are rounded down to 0.1 A. Results: every offer is 0 or in [6, 80]; no grid
   phase exceeds its limit; the power limit holds; the phase-balance bound holds.

Reasons (``Allocation.reason``) name what bounds the offer, for a WebUI "why is it slow":
``"<cap name> <value> A"`` (e.g. ``"cable 20 A"``), ``"vehicle draws 7.0 A"``,
``"station limit L2"`` (grid phase 2; ``"<limit name> L<p>"``), ``"power limit"``,
``"phase balance L1"``, ``"paused: not enough current"``, ``"paused: <cap name> <value> A below
6 A"``, ``"paused: phase balance"``.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field

from ..core.iec61851 import MAX_CURRENT_A, MIN_CURRENT_A
from .phases import (
    ALL_PHASES,
    DEFAULT_GRID_CONNECTION,
    check_grid_connection,
    grid_phases,
    vehicle_phase_count,
)

SATURATION_MARGIN_A = 1.0  # draw within this of the offer = the vehicle uses its offer
HEADROOM_A = 2.0  # a vehicle drawing less keeps this much above its draw to ramp up
ROTATE_AFTER_S = 15 * 60.0
BALANCE_STEP_A = 0.1  # rule 7: the least cut of a phase-balance round …
BALANCE_DOUBLING_ROUND = 4  # … doubling from this round on
MAX_BALANCE_ROUNDS = 64  # rule 7's safety stop
PAUSED_NOT_ENOUGH = "paused: not enough current"
PAUSED_PHASE_BALANCE = "paused: phase balance"
POWER_LIMIT = "power limit"
PHASE_BALANCE = "phase balance"
PWM_MAXIMUM = "PWM maximum"
PHASES = (1, 2, 3)


@dataclass(frozen=True)
class SessionInput:
    connector_id: Hashable  # unique in the request: a connector number, a (BoxId, connector) pair …
    caps: Mapping[str, float]  # named caps (A per phase), e.g. {"connector": 32, "cable": 20}
    phases: int | None = None  # phases the vehicle charges on; None = unknown = 3
    draw_a: float | None = None  # highest measured current of its phases (A) over the window
    offered_a: float | None = None  # the offer applied now (A; 0 = paused)
    paused_since: float | None = None  # when the current pause started (seconds, same clock as now)
    grid: frozenset[int] | None = None  # grid phases it is accounted on; None: from the wiring
    priority: int = 0  # priority class: lower goes first (rule 6)
    charging_since: float | None = None  # when its current offer > 0 began (same clock as now; rule 6)


@dataclass(frozen=True)
class AllocationRequest:
    phase_limit_a: float | Sequence[float]  # per grid phase (A): one value or (L1, L2, L3)
    sessions: Sequence[SessionInput]  # start order, earliest first
    power_limit_w: float | None = None
    voltage_v: float = 230.0
    grid_connection: Sequence[int] = DEFAULT_GRID_CONNECTION
    rotations: Mapping[int, str] = field(default_factory=dict)  # ConnectorPhaseRotation
    now: float | None = None  # None: no rotation of pauses
    rotate_after_s: float = ROTATE_AFTER_S
    limit_name: str = "station limit"
    phase_balance_a: float | None = None  # rule 7; None: no phase balancing
    phase_limit_names: Mapping[int, str] = field(default_factory=dict)  # per grid phase; else limit_name

    def phase_limits(self) -> dict[int, float]:
        if isinstance(self.phase_limit_a, (int, float)):
            values = [float(self.phase_limit_a)] * 3
        else:
            values = [float(v) for v in self.phase_limit_a]
            if len(values) != 3:
                raise ValueError("phase_limit_a: one value or one per grid phase (3)")
        if any(not math.isfinite(v) or v < 0 for v in values):
            raise ValueError(f"phase limits must be finite and ≥ 0, not {values}")
        return {p: v for p, v in zip(PHASES, values)}


@dataclass(frozen=True)
class Allocation:
    offer_a: float  # 0 or 6…80, in 0.1 A steps
    reason: str

    @property
    def paused(self) -> bool:
        return self.offer_a == 0


@dataclass(frozen=True)
class _Claim:
    index: int  # position in the request
    grid: frozenset[int]  # grid phases it is accounted on
    phases: int  # phases it draws power on
    demand: float
    demand_reason: str
    paused_since: float | None
    charging: bool  # offered_a > 0
    priority: int
    charging_since: float | None

    @property
    def uneven(self) -> bool:
        return self.grid != ALL_PHASES


@dataclass
class _Limit:
    """One packing constraint: Σ scale × weight × offer over its members ≤ capacity."""

    key: int  # tie-break: grid phases 1..3, power 4, phase balance 10·p + q (rule 7)
    capacity: float
    reason: str
    scale: float
    weights: dict[int, int]  # claim index -> weight (1, or the vehicle's phases for power)


def floor_offer(amps: float) -> float:
    """Rounded down to 0.1 A (tolerating float noise just below a step)."""
    return math.floor(round(amps * 10, 9)) / 10


def _fmt(amps: float) -> str:
    return f"{amps:g} A"


def _cap(session: SessionInput) -> tuple[float, str]:
    best_name, best = PWM_MAXIMUM, MAX_CURRENT_A
    for name, value in session.caps.items():
        value = float(value)
        if math.isnan(value):
            raise ValueError(f"connector {session.connector_id}: cap {name!r} is NaN")
        if value < best:
            best_name, best = name, value
    return max(best, 0.0), f"{best_name} {_fmt(best)}"


def _demand(session: SessionInput, cap: float, cap_reason: str) -> tuple[float, str]:
    draw, offered = session.draw_a, session.offered_a
    if draw is None or offered is None or draw >= offered - SATURATION_MARGIN_A:
        return cap, cap_reason
    want = max(MIN_CURRENT_A, draw + HEADROOM_A)
    if want >= cap:
        return cap, cap_reason
    return want, f"vehicle draws {draw:.1f} A"


def _grid(session: SessionInput, request: AllocationRequest, grid_connection: Sequence[int]) -> frozenset[int]:
    if session.grid is None:
        return grid_phases(request.rotations.get(session.connector_id, "Unknown"), session.phases, grid_connection)
    grid = frozenset(session.grid)
    if not grid or not grid <= ALL_PHASES:
        raise ValueError(f"connector {session.connector_id}: grid must be grid phases 1..3, not {set(grid)}")
    return grid


def _priority(claims: list[_Claim], now: float | None, rotate_after_s: float) -> list[_Claim]:
    """Rule 6: priority class; with a clock: new turns, waited, charging, the others; start order."""
    def key(claim: _Claim) -> tuple[int, int, float, int]:
        if now is None:
            return claim.priority, 0, 0.0, claim.index
        since = claim.charging_since
        if claim.charging and since is not None and now - since < rotate_after_s:
            return claim.priority, 0, 0.0, claim.index  # a. its turn is not over
        if claim.paused_since is not None and now - claim.paused_since >= rotate_after_s:
            return claim.priority, 1, claim.paused_since, claim.index  # b. waited, longest first
        if claim.charging:  # c. charging longest last (unknown: as long as can be)
            return claim.priority, 2, -since if since is not None else math.inf, claim.index
        return claim.priority, 3, 0.0, claim.index  # d. the others

    return sorted(claims, key=key)


def _limits(claims: list[_Claim], limits: dict[int, float], names: Mapping[int, str], limit_name: str,
            power_limit_w: float | None, voltage_v: float,
            balance: Mapping[tuple[int, int], float]) -> list[_Limit]:
    result = [_Limit(p, limits[p], f"{names.get(p, limit_name)} L{p}", 1.0,
                     {c.index: 1 for c in claims if p in c.grid}) for p in PHASES]
    if power_limit_w is not None:
        result.append(_Limit(4, power_limit_w, POWER_LIMIT, voltage_v, {c.index: c.phases for c in claims}))
    for (p, q), capacity in sorted(balance.items()):  # rule 7: the sessions on p but not on q
        result.append(_Limit(10 * p + q, capacity, f"{PHASE_BALANCE} L{p}", 1.0,
                             {c.index: 1 for c in claims if p in c.grid and q not in c.grid}))
    return [limit for limit in result if limit.weights]


def _room(limit: _Limit) -> int:
    """The most weight a limit takes at 6 A each (rounded down to 0.1 A as offers are)."""
    def fits(weight: int) -> bool:
        return weight == 0 or floor_offer(limit.capacity / (limit.scale * weight)) >= MIN_CURRENT_A

    if not math.isfinite(limit.capacity):
        return sys.maxsize
    weight = max(0, int(limit.capacity / (limit.scale * MIN_CURRENT_A)))
    while fits(weight + 1):
        weight += 1
    while not fits(weight):
        weight -= 1
    return weight


def _admit(order: list[_Claim], limits: list[_Limit]) -> list[_Claim]:
    """Rule 6: in priority order, the sessions that fit with 6 A each next to those before them."""
    room = {limit.key: _room(limit) for limit in limits}
    of_claim: dict[int, list[tuple[int, int]]] = {c.index: [] for c in order}
    for limit in limits:
        for index, weight in limit.weights.items():
            of_claim[index].append((limit.key, weight))
    admitted = []
    for claim in order:
        mine = of_claim[claim.index]
        if all(weight <= room[key] for key, weight in mine):
            admitted.append(claim)
            for key, weight in mine:
                room[key] -= weight
    return admitted


def _fill(claims: list[_Claim], limits: list[_Limit]) -> dict[int, tuple[float, str]]:
    """Max-min fair (water-filling) shares of the claims, with their binding constraint."""
    shares: dict[int, tuple[float, str]] = {}
    members = {limit.key: [c.index for c in claims if c.index in limit.weights] for limit in limits}
    free_weight = {limit.key: sum(limit.weights[i] for i in members[limit.key]) for limit in limits}
    free_count = {limit.key: len(members[limit.key]) for limit in limits}
    used = {limit.key: 0.0 for limit in limits}
    of_claim: dict[int, list[_Limit]] = {c.index: [] for c in claims}
    for limit in limits:
        for i in members[limit.key]:
            of_claim[i].append(limit)
    by_demand = sorted(claims, key=lambda c: c.demand)
    next_demand = 0
    remaining = len(claims)
    while remaining:
        bound: _Limit | None = None
        level = math.inf
        for limit in limits:  # in key order: the lowest key wins a tie
            if free_count[limit.key]:
                value = (limit.capacity - used[limit.key]) / (limit.scale * free_weight[limit.key])
                if value < level:
                    bound, level = limit, value
        level = max(level, 0.0)
        while by_demand[next_demand].index in shares:
            next_demand += 1
        lowest = by_demand[next_demand].demand
        if lowest <= level:  # a session's own demand binds first
            level = lowest
            frozen = []
            for position in range(next_demand, len(by_demand)):
                claim = by_demand[position]
                if claim.demand != lowest:
                    break
                if claim.index not in shares:
                    frozen.append(claim)
            reasons = [c.demand_reason for c in frozen]
            indices = [c.index for c in frozen]
        else:
            assert bound is not None
            indices = [i for i in members[bound.key] if i not in shares]
            reasons = [bound.reason] * len(indices)
        for i, reason in zip(indices, reasons):
            shares[i] = (level, reason)
            remaining -= 1
            for limit in of_claim[i]:
                weight = limit.weights[i]
                used[limit.key] += limit.scale * level * weight
                free_weight[limit.key] -= weight
                free_count[limit.key] -= 1
    return shares


def _share(order: list[_Claim], limits: list[_Limit]) -> tuple[dict[int, tuple[float, str]], list[_Claim]]:
    """Rule 6 then rules 1–5: the offers of the admitted sessions (rounded) and the paused ones."""
    active = _admit(order, limits)
    while True:
        shares = _fill(active, limits)
        starving = [c for c in active if floor_offer(shares[c.index][0]) < MIN_CURRENT_A]
        if not starving:  # only float noise can starve an admitted session: pause the latest one
            break
        active = [c for c in active if c is not starving[-1]]
    offers = {i: (floor_offer(amps), reason) for i, (amps, reason) in shares.items()}
    admitted = {c.index for c in active}
    return offers, [c for c in order if c.index not in admitted]


def allocate(request: AllocationRequest) -> dict[Hashable, Allocation]:
    """The offer for every session of the request, by connector id (see the module docstring)."""
    limits = request.phase_limits()
    grid_connection = check_grid_connection(request.grid_connection)
    if request.power_limit_w is not None and not request.power_limit_w >= 0:
        raise ValueError(f"power_limit_w must be ≥ 0, not {request.power_limit_w}")
    if not request.voltage_v > 0:
        raise ValueError(f"voltage_v must be > 0, not {request.voltage_v}")
    bound = request.phase_balance_a
    if bound is not None and not (bound >= 0 and math.isfinite(bound)):
        raise ValueError(f"phase_balance_a must be finite and ≥ 0, not {bound}")
    ids = [s.connector_id for s in request.sessions]
    if len(set(ids)) != len(ids):
        raise ValueError(f"a connector has two sessions: {ids}")

    result: dict[int, Allocation] = {}
    claims: list[_Claim] = []
    for index, session in enumerate(request.sessions):
        cap, cap_reason = _cap(session)
        grid = _grid(session, request, grid_connection)
        phases = vehicle_phase_count(session.phases)
        if cap < MIN_CURRENT_A:
            result[index] = Allocation(0.0, f"paused: {cap_reason} below {_fmt(MIN_CURRENT_A)}")
            continue
        demand, demand_reason = _demand(session, cap, cap_reason)
        charging = session.offered_a is not None and session.offered_a > 0
        claims.append(_Claim(index, grid, phases, demand, demand_reason, session.paused_since, charging,
                             int(session.priority), session.charging_since if charging else None))

    order = _priority(claims, request.now, request.rotate_after_s)
    balance: dict[tuple[int, int], float] = {}
    for round_ in range(1, MAX_BALANCE_ROUNDS + 1):
        constraints = _limits(claims, limits, request.phase_limit_names, request.limit_name,
                              request.power_limit_w, request.voltage_v, balance)
        offers, paused = _share(order, constraints)
        if bound is None:
            break
        load = {p: sum(offers[c.index][0] for c in claims if p in c.grid and c.index in offers) for p in PHASES}
        most = max(PHASES, key=lambda p: (load[p], -p))
        least = min(PHASES, key=lambda p: (load[p], p))
        excess = load[most] - load[least] - bound
        if excess <= 1e-9:
            break
        heavy = sum(offers[c.index][0] for c in claims
                    if most in c.grid and least not in c.grid and c.index in offers)
        # what they have now less the excess; at least a step less, so below any previous limit
        step = BALANCE_STEP_A * 2 ** max(0, round_ - BALANCE_DOUBLING_ROUND + 1)
        balance[most, least] = max(0.0, min(floor_offer(heavy - excess), heavy - step))
    else:  # rule 7's safety stop: the even sessions alone are always balanced
        even = [c for c in order if not c.uneven]
        offers, paused = _share(even, _limits(even, limits, request.phase_limit_names, request.limit_name,
                                              request.power_limit_w, request.voltage_v, {}))
        for claim in claims:
            if claim.uneven:
                result[claim.index] = Allocation(0.0, PAUSED_PHASE_BALANCE)

    for claim in paused:
        result[claim.index] = Allocation(0.0, PAUSED_NOT_ENOUGH)
    for index, (amps, reason) in offers.items():
        result[index] = Allocation(amps, reason)
    return {s.connector_id: result[i] for i, s in enumerate(request.sessions)}
