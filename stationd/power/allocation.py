"""The station's own current allocation: which current (A per phase) each session is offered.

``allocate(request)`` is a pure function: the same request gives the same answer, nothing is
read from or written to anywhere else. The caller (the core) builds the request from the settings
and the connectors and applies the offers.

THE RULES (this docstring is the definition; tests/test_power_allocation.py checks them)
=========================================================================================

Inputs
  * ``phase_limit_a``: the station's limit per grid phase (A), one number for all three phases or
    one per grid phase 1, 2, 3. From the settings: min(GridMaxCurrentPerPhase,
    /power/station/mainsMaxCurrent / 1000).
  * ``power_limit_w``: the station's power limit (W), GridMaxPower × 1000; None = none.
    ``voltage_v`` = GridVoltage (phase to neutral).
  * ``grid_connection`` = GridPhaseConnection and ``rotations`` = ConnectorPhaseRotation
    ({connector: "RST" …}); see ``stationd.power.phases`` for how they map a vehicle onto grid
    phases.
  * ``sessions``: the connectors with a session, **in priority order = session start order,
    earliest first**. Each has named caps (connector maximum, cable PP rating, vehicle maximum,
    MaxCurrentLimit, smart-charging limits …: the lowest one applies), the phases the vehicle
    charges on (1, 2, 3; None = unknown = 3), its measured draw and current offer, and when it
    was paused (for the rotation, rule 6).

1. Equal shares (the vendor behaviour). The current is shared max-min fairly ("water filling"):
   every session's offer rises together until it meets its own demand (rules 2, 3) or a station
   limit it is subject to (rules 4, 5); what a session cannot use goes to the others. So one
   session gets the whole limit and two sessions on the same phases get half each.

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

4. Per grid phase. A vehicle on *k* phases loads the grid phases of its connector's first *k*
   phases (connector rotation, then GridPhaseConnection). On every grid phase the sum of the
   offers of the sessions loading it is at most that phase's limit. Two single-phase vehicles on
   different grid phases therefore each get the full per-phase limit. Unknown wiring
   (rotation Unknown / NotApplicable / not listed) with a vehicle on fewer than 3 phases is
   accounted on all three phases.

5. Power. Σ voltage_v × offer × phases over all sessions ≤ power_limit_w, with phases = the
   vehicle's phases (unknown = 3).

6. Never between 0 and 6 A. When fair shares would give an active session less than 6 A (after
   rounding), the *latest* session (in priority order) among those below 6 A and those sharing a
   grid phase with them is paused (offer 0, reason ``"paused: not enough current"``) and the
   shares are worked out again, until every remaining offer is ≥ 6 A.
   Rotation, so a paused session is not starved: a session whose ``paused_since`` is at least
   ``rotate_after_s`` (default 15 min) before ``now`` moves to the front of the priority order
   (several: the longest-waiting first). Then a later one pauses instead. The caller sets
   ``paused_since`` when it applies a "paused: not enough current" allocation to a session that
   was not paused, and clears it once the session gets an offer again; ``now`` = None disables
   the rotation. A rotation only happens after a session has waited ``rotate_after_s``, so with a
   steady set of sessions the pauses switch at most once per ``rotate_after_s`` (vehicles do not
   like frequent stops). Sessions that are never paused keep their place; paused ones take turns.

7. Rounding. Offers are rounded down to 0.1 A. Results: every offer is 0 or in [6, 80]; no grid
   phase exceeds its limit; the power limit holds.

Reasons (``Allocation.reason``) name what bounds the offer, for a WebUI "why is it slow":
``"<cap name> <value> A"`` (e.g. ``"cable 20 A"``), ``"vehicle draws 7.0 A"``,
``"station limit L2"`` (grid phase 2), ``"power limit"``, ``"paused: not enough current"``,
``"paused: <cap name> <value> A below 6 A"``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ..core.iec61851 import MAX_CURRENT_A, MIN_CURRENT_A
from .phases import (
    DEFAULT_GRID_CONNECTION,
    check_grid_connection,
    grid_phases,
    vehicle_phase_count,
)

SATURATION_MARGIN_A = 1.0  # draw within this of the offer = the vehicle uses its offer
HEADROOM_A = 2.0  # a vehicle drawing less keeps this much above its draw to ramp up
ROTATE_AFTER_S = 15 * 60.0
PAUSED_NOT_ENOUGH = "paused: not enough current"
POWER_LIMIT = "power limit"
PWM_MAXIMUM = "PWM maximum"


@dataclass(frozen=True)
class SessionInput:
    connector_id: int
    caps: Mapping[str, float]  # named caps (A per phase), e.g. {"connector": 32, "cable": 20}
    phases: int | None = None  # phases the vehicle charges on; None = unknown = 3
    draw_a: float | None = None  # highest measured current of its phases (A) over the window
    offered_a: float | None = None  # the offer applied now (A; 0 = paused)
    paused_since: float | None = None  # when the current pause started (seconds, same clock as now)


@dataclass(frozen=True)
class AllocationRequest:
    phase_limit_a: float | Sequence[float]  # per grid phase (A): one value or (L1, L2, L3)
    sessions: Sequence[SessionInput]  # priority order: session start order, earliest first
    power_limit_w: float | None = None
    voltage_v: float = 230.0
    grid_connection: Sequence[int] = DEFAULT_GRID_CONNECTION
    rotations: Mapping[int, str] = field(default_factory=dict)  # ConnectorPhaseRotation
    now: float | None = None  # None: no rotation of pauses
    rotate_after_s: float = ROTATE_AFTER_S
    limit_name: str = "station limit"

    def phase_limits(self) -> dict[int, float]:
        if isinstance(self.phase_limit_a, (int, float)):
            values = [float(self.phase_limit_a)] * 3
        else:
            values = [float(v) for v in self.phase_limit_a]
            if len(values) != 3:
                raise ValueError("phase_limit_a: one value or one per grid phase (3)")
        if any(not math.isfinite(v) or v < 0 for v in values):
            raise ValueError(f"phase limits must be finite and ≥ 0, not {values}")
        return {p: v for p, v in zip((1, 2, 3), values)}


@dataclass(frozen=True)
class Allocation:
    offer_a: float  # 0 or 6…80, in 0.1 A steps
    reason: str

    @property
    def paused(self) -> bool:
        return self.offer_a == 0


@dataclass(frozen=True)
class _Claim:
    connector_id: int
    grid: frozenset[int]  # grid phases it is accounted on
    phases: int  # phases it draws power on
    demand: float
    demand_reason: str
    paused_since: float | None


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


def _priority(claims: list[_Claim], now: float | None, rotate_after_s: float) -> list[_Claim]:
    if now is None:
        return claims
    waited = [c for c in claims if c.paused_since is not None and now - c.paused_since >= rotate_after_s]
    waited.sort(key=lambda c: c.paused_since)  # stable: ties keep the start order
    return waited + [c for c in claims if c not in waited]


def _fill(claims: list[_Claim], limits: dict[int, float], power_limit_w: float | None,
          voltage_v: float, limit_name: str) -> dict[int, tuple[float, str]]:
    """Max-min fair (water-filling) shares of the claims, with their binding constraint."""
    shares: dict[int, tuple[float, str]] = {}
    free = list(claims)
    used = {1: 0.0, 2: 0.0, 3: 0.0}
    used_w = 0.0
    while free:
        bounds: list[tuple[float, int, str, list[_Claim]]] = []
        for p in (1, 2, 3):
            members = [c for c in free if p in c.grid]
            if members:
                bounds.append(((limits[p] - used[p]) / len(members), p, f"{limit_name} L{p}", members))
        if power_limit_w is not None:
            weight = voltage_v * sum(c.phases for c in free)
            bounds.append(((power_limit_w - used_w) / weight, 4, POWER_LIMIT, free))
        level, _, reason, members = min(bounds, key=lambda b: (b[0], b[1]))
        level = max(level, 0.0)
        lowest = min(c.demand for c in free)
        if lowest <= level:  # a session's own demand binds first
            level = lowest
            members = [c for c in free if c.demand == lowest]
            reason = ""
        for claim in members:
            shares[claim.connector_id] = (level, reason or claim.demand_reason)
            for p in claim.grid:
                used[p] += level
            used_w += voltage_v * level * claim.phases
        free = [c for c in free if c not in members]
    return shares


def _to_pause(active: list[_Claim], starving: list[_Claim]) -> _Claim:
    crowded = frozenset().union(*(c.grid for c in starving))
    candidates = [c for c in active if c in starving or c.grid & crowded]
    return candidates[-1]


def allocate(request: AllocationRequest) -> dict[int, Allocation]:
    """The offer for every session of the request, by connector id (see the module docstring)."""
    limits = request.phase_limits()
    grid = check_grid_connection(request.grid_connection)
    if request.power_limit_w is not None and not request.power_limit_w >= 0:
        raise ValueError(f"power_limit_w must be ≥ 0, not {request.power_limit_w}")
    if not request.voltage_v > 0:
        raise ValueError(f"voltage_v must be > 0, not {request.voltage_v}")
    ids = [s.connector_id for s in request.sessions]
    if len(set(ids)) != len(ids):
        raise ValueError(f"a connector has two sessions: {ids}")

    result: dict[int, Allocation] = {}
    claims: list[_Claim] = []
    for session in request.sessions:
        cap, cap_reason = _cap(session)
        if cap < MIN_CURRENT_A:
            result[session.connector_id] = Allocation(0.0, f"paused: {cap_reason} below {_fmt(MIN_CURRENT_A)}")
            continue
        demand, demand_reason = _demand(session, cap, cap_reason)
        rotation = request.rotations.get(session.connector_id, "Unknown")
        claims.append(_Claim(session.connector_id, grid_phases(rotation, session.phases, grid),
                             vehicle_phase_count(session.phases), demand, demand_reason, session.paused_since))

    active = _priority(claims, request.now, request.rotate_after_s)
    while True:
        shares = _fill(active, limits, request.power_limit_w, request.voltage_v, request.limit_name)
        starving = [c for c in active if floor_offer(shares[c.connector_id][0]) < MIN_CURRENT_A]
        if not starving:
            break
        paused = _to_pause(active, starving)
        result[paused.connector_id] = Allocation(0.0, PAUSED_NOT_ENOUGH)
        active = [c for c in active if c is not paused]

    for claim in active:
        amps, reason = shares[claim.connector_id]
        result[claim.connector_id] = Allocation(floor_offer(amps), reason)
    return {s.connector_id: result[s.connector_id] for s in request.sessions}
