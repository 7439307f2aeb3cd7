"""The load-balancing cluster master's allocation: which current each session of the cluster gets.

``allocate_cluster(limits, sessions, now)`` is a pure function (no I/O, no clock of its own). The
cluster master (``stationd.load_balancing.master``) calls it every round with the sessions of
its own connectors and those every slave reported, and sends each station its offers. It works
through ``stationd.power.allocation.allocate``, whose rules 1–8 (module docstring there) apply
unchanged; this docstring defines what the cluster adds. docs/load-balancing.md says the same for
installers and backend operators.

THE DEFINITION (tests/test_cluster_allocation.py checks it)
===========================================================

Sessions. Every open session of the cluster (``ClusterSession``), identified by
(``station`` = BoxId, ``connector_id``), with the station's LoadBalancingChargerPrivilege, when
it started, its named caps (connector, cable, vehicle, smart charging … as the station reports
them; the lowest applies), the grid phases its current is accounted on (``grid``: the station
works them out from ConnectorPhaseRotation and GridPhaseConnection), the vehicle's phases, its
measured draw, the offer it has now, since when it has been paused for lack of current or
charging (rule 4), and the current it draws now per grid phase (``current_a``).

1. Available current, per grid phase p (``available_per_phase``):
   * LoadBalancingMaxCluster (``max_cluster_a``, A per phase; 0 = not set) when set;
   * LoadBalancingMaxBuilding (``max_building_a``; 0 = not set) when set, less the rest of the
     building: with the external meter (``meter_enabled``) answering, ``building_a[p]`` is what
     the whole building draws on p now, and the rest is other_p = max(0, building_a[p] − Σ
     ``current_a[p]`` of the cluster's sessions) (the cluster's own draw is part of the meter's
     reading, so it is taken out); the building limit is then max(0, MaxBuilding − other_p).
     Without a meter (``meter_enabled`` False): MaxBuilding itself (the installer has already
     set aside what the rest of the building needs). Meter enabled but not answering
     (``building_a`` None): MaxBuilding itself too (the rest of the building draws ≥ 0, so it is
     still an upper bound) and the meter-offline rule 2;
   * the smaller of the two when both are set (on a tie: the cluster limit); None when neither is
     set: the cluster has no limit of its own, only the sessions' caps bound them.
   Reasons name the limit that binds: ``"cluster limit L<p>"`` or ``"building limit L<p>"``.
   Every session of the cluster must be passed: the subtraction assumes ``current_a`` covers all
   of the cluster's draw.

2. Meter offline. When ``meter_enabled`` is set and ``building_a`` is None, nobody knows what
   the rest of the building draws. Then every *station* may draw at most LoadBalancingMinCluster
   (``min_cluster_a``) per grid phase, shared among that station's sessions by the same rules as
   a station's own limit (``allocate`` with ``phase_limit_a`` = MinCluster over that station's
   sessions, each also capped at MinCluster; the same algorithm, below). A session's share is
   then a cap ``"meter offline: MinCluster"`` in the cluster-wide allocation (rule 1's limits,
   MaxCluster and MaxBuilding, still apply on top). A session the station's share leaves without
   current is paused with that reason (``"paused: not enough current"`` — it takes turns like
   any other under SUSPENDABLE — or ``"paused: meter offline: MinCluster 0 A below 6 A"``).
   MinCluster below 6 A therefore pauses every session: without a meter the cluster takes the
   safe side.

3. Priority order: LoadBalancingChargerPrivilege first (AC10 before AC05,
   ``PRIVILEGE_PRIORITY``), then the session start (earliest first), then the order given. This
   is ``allocate``'s priority order (a session's ``priority`` = its privilege's rank), so
   (``allocate`` rule 6) when there is not enough current for everyone, sessions are paused from
   the end of it: an AC05 session always pauses before an AC10 one on the same grid phase, and
   a session never pauses because of a session after it.

4. Algorithms (LoadBalancingAlgo):
   * ``UNIFORM``: shares by caps only. The measured draw is ignored (a vehicle gets its share
     whether it uses it or not), no rotation: first come first served, a session that cannot
     get 6 A waits until others end.
   * ``OPTIMIZED``: as UNIFORM, but current a vehicle does not draw goes to the others
     (``allocate`` rule 3: a vehicle drawing clearly below its offer keeps its draw + 2 A).
   * ``SUSPENDABLE`` (the default): as OPTIMIZED, and the sessions take turns (``allocate``
     rule 6 with ``now``): a session paused for ``rotate_after_s`` (15 min) moves to the front
     of its privilege class, and the session of that class charging longest that no longer
     fits pauses instead, once it has charged ``rotate_after_s``. So nobody waits forever while
     others of its class charge, and no turn is cut short. The caller keeps two clocks per
     session (epoch seconds, like ``now``): ``paused_since``, set to ``now`` when it applies a
     "paused: not enough current" result to a session that was not paused and cleared when the
     session gets an offer; ``charging_since``, set to ``now`` when it applies an offer > 0 to a
     session that had none (new or paused) and cleared when it is paused. Without
     ``charging_since`` the turns still come, but may be cut to a round when several sessions
     become due at once (``allocate`` rule 6).

5. Phase balance: with ``phase_balance_a`` set (LoadBalancingPhaseBalBound while
   LoadBalancingPhaseBalTrigger is on), the load of the most loaded grid phase minus that of the
   least loaded one is at most ``phase_balance_a`` (``allocate`` rule 7; the sessions that make
   the difference are cut first, reason ``"phase balance L<p>"``).

6. Results, by (station, connector_id), in the order given: every offer is 0 or 6..80 A in
   0.1 A steps; on every grid phase the offers of the sessions accounted on it add up to at most
   the available current (rule 1) and, meter offline, each station's to at most MinCluster; the
   phase-balance bound holds; ``Allocation.reason`` says what bounds the offer.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ..core.iec61851 import MAX_CURRENT_A, MIN_CURRENT_A
from .allocation import Allocation, AllocationRequest, SessionInput, allocate
from .phases import ALL_PHASES

ALGORITHMS = ("UNIFORM", "OPTIMIZED", "SUSPENDABLE")
PRIVILEGE_PRIORITY = {"AC10": 0, "AC05": 1}
CLUSTER_LIMIT = "cluster limit"
BUILDING_LIMIT = "building limit"
NO_LIMIT = "no cluster limit"
METER_OFFLINE = "meter offline: MinCluster"
PHASES = (1, 2, 3)


@dataclass(frozen=True)
class ClusterSession:
    station: str  # BoxId of the station
    connector_id: int
    privilege: str  # "AC05" | "AC10" (the station's LoadBalancingChargerPrivilege)
    started_at: float  # session start, epoch seconds
    caps: Mapping[str, float]  # named caps (A) the station reports, e.g. {"cable": 20, "connector": 32}
    grid: frozenset[int]  # grid phases its current is accounted on
    phases: int | None = None
    draw_a: float | None = None
    offered_a: float | None = None
    paused_since: float | None = None
    current_a: Mapping[int, float] = field(default_factory=dict)  # measured now per grid phase (A)
    charging_since: float | None = None  # when its offer > 0 began (epoch seconds); rule 4, SUSPENDABLE

    @property
    def key(self) -> tuple[str, int]:
        return self.station, self.connector_id


@dataclass(frozen=True)
class ClusterLimits:
    algorithm: str = "SUSPENDABLE"
    max_cluster_a: float = 0  # LoadBalancingMaxCluster, per phase; 0 = not set
    max_building_a: float = 0  # LoadBalancingMaxBuilding, per phase; 0 = not set
    building_a: tuple[float, float, float] | None = None  # external meter: current per grid phase now; None = no reading
    meter_enabled: bool = False  # LoadBalancingEnergyMeterEnabled
    min_cluster_a: float = 0  # LoadBalancingMinCluster
    phase_balance_a: float | None = None  # PhaseBalBound when PhaseBalTrigger, else None
    rotate_after_s: float = 15 * 60

    @property
    def meter_offline(self) -> bool:
        return self.meter_enabled and self.building_a is None


def _amps(name: str, value: float) -> float:
    value = float(value)
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be finite and ≥ 0, not {value}")
    return value


def _check(limits: ClusterLimits) -> None:
    if limits.algorithm not in ALGORITHMS:
        raise ValueError(f"unknown LoadBalancingAlgo {limits.algorithm!r} (one of {', '.join(ALGORITHMS)})")
    _amps("max_cluster_a", limits.max_cluster_a)
    _amps("max_building_a", limits.max_building_a)
    _amps("min_cluster_a", limits.min_cluster_a)
    reading = limits.building_a
    if reading is not None and (len(reading) != 3 or any(math.isnan(float(v)) for v in reading)):
        raise ValueError(f"building_a must be three currents (L1, L2, L3), not {reading}")


def _phase_limits(limits: ClusterLimits, sessions: Sequence[ClusterSession]) -> dict[int, tuple[float, str]] | None:
    """Rule 1 per grid phase: (available A, the limit's name); None = no cluster limit."""
    _check(limits)
    if not limits.max_cluster_a and not limits.max_building_a:
        return None
    result: dict[int, tuple[float, str]] = {}
    for p in PHASES:
        candidates: list[tuple[float, str]] = []
        if limits.max_cluster_a:
            candidates.append((float(limits.max_cluster_a), CLUSTER_LIMIT))
        if limits.max_building_a:
            building = float(limits.max_building_a)
            if limits.meter_enabled and limits.building_a is not None:
                own = sum(float(s.current_a.get(p, 0.0)) for s in sessions)
                other = max(0.0, float(limits.building_a[p - 1]) - own)
                building = max(0.0, building - other)
            candidates.append((building, BUILDING_LIMIT))
        result[p] = min(candidates, key=lambda c: c[0])  # min keeps the first (the cluster limit) on a tie
    return result


def available_per_phase(limits: ClusterLimits,
                        sessions: Sequence[ClusterSession]) -> tuple[dict[int, float] | None, str]:
    """The current available to the cluster per grid phase (None = unlimited) and its name for
    reasons ("cluster limit", "building limit", "cluster/building limit" when it differs by phase,
    "no cluster limit"); rule 1 of the module docstring."""
    per_phase = _phase_limits(limits, sessions)
    if per_phase is None:
        return None, NO_LIMIT
    names = sorted({name for _, name in per_phase.values()}, key=(CLUSTER_LIMIT, BUILDING_LIMIT).index)
    name = names[0] if len(names) == 1 else "cluster/building limit"
    return {p: amps for p, (amps, _) in per_phase.items()}, name


def _input(session: ClusterSession, algorithm: str, caps: Mapping[str, float] | None = None) -> SessionInput:
    if session.privilege not in PRIVILEGE_PRIORITY:
        raise ValueError(f"{session.station} connector {session.connector_id}: unknown privilege "
                         f"{session.privilege!r} (AC05 or AC10)")
    grid = frozenset(session.grid)
    if not grid or not grid <= ALL_PHASES:
        raise ValueError(f"{session.station} connector {session.connector_id}: grid must be grid phases 1..3, "
                         f"not {sorted(grid)}")
    return SessionInput(
        connector_id=session.key,
        caps=dict(session.caps) if caps is None else caps,
        phases=session.phases,
        draw_a=None if algorithm == "UNIFORM" else session.draw_a,  # UNIFORM: caps only
        offered_a=session.offered_a,
        paused_since=session.paused_since,
        grid=grid,
        priority=PRIVILEGE_PRIORITY[session.privilege],
        charging_since=session.charging_since,
    )


def _meter_offline(limits: ClusterLimits, ordered: list[ClusterSession], clock: float | None,
                   result: dict[tuple[str, int], Allocation]) -> dict[tuple[str, int], dict[str, float]]:
    """Rule 2: each station's share of MinCluster. Fills ``result`` with the sessions it pauses
    and returns the caps of the others (with "meter offline: MinCluster" where the share binds)."""
    min_cluster = float(limits.min_cluster_a)
    stations: dict[str, list[ClusterSession]] = {}
    for session in ordered:
        stations.setdefault(session.station, []).append(session)
    caps: dict[tuple[str, int], dict[str, float]] = {}
    for members in stations.values():
        inputs = [_input(s, limits.algorithm, {**s.caps, METER_OFFLINE: min_cluster}) for s in members]
        shares = allocate(AllocationRequest(min_cluster, inputs, now=clock, rotate_after_s=limits.rotate_after_s,
                                            limit_name=METER_OFFLINE))
        for session in members:
            share = shares[session.key]
            own = dict(session.caps)
            if share.paused:
                result[session.key] = share
            elif share.reason.startswith(METER_OFFLINE):
                own[METER_OFFLINE] = share.offer_a
            caps[session.key] = own
    return caps


def allocate_cluster(limits: ClusterLimits, sessions: Sequence[ClusterSession],
                     now: float) -> dict[tuple[str, int], Allocation]:
    """The offer for every session of the cluster, by (station, connector_id): the module docstring."""
    _check(limits)
    # rule 3: start order here, the privilege is allocate's priority class (a stable sort)
    ordered = [sessions[i] for i in sorted(range(len(sessions)), key=lambda i: (sessions[i].started_at, i))]
    clock = now if limits.algorithm == "SUSPENDABLE" else None  # rule 4: only SUSPENDABLE rotates
    result: dict[tuple[str, int], Allocation] = {}
    caps: dict[tuple[str, int], dict[str, float]] = {}
    if limits.meter_offline:
        caps = _meter_offline(limits, ordered, clock, result)

    per_phase = _phase_limits(limits, sessions)
    if per_phase is None:  # no cluster limit: one the caps always meet
        phase_limit: float | tuple[float, float, float] = MAX_CURRENT_A * max(1, len(sessions)) + MIN_CURRENT_A
        names: dict[int, str] = {}
    else:
        phase_limit = (per_phase[1][0], per_phase[2][0], per_phase[3][0])
        names = {p: name for p, (_, name) in per_phase.items()}
    inputs = [_input(s, limits.algorithm, caps.get(s.key)) for s in ordered if s.key not in result]
    shares = allocate(AllocationRequest(
        phase_limit, inputs, now=clock, rotate_after_s=limits.rotate_after_s, limit_name=CLUSTER_LIMIT,
        phase_limit_names=names, phase_balance_a=limits.phase_balance_a))
    result.update(shares)
    return {s.key: result[s.key] for s in sessions}


__all__ = ["ALGORITHMS", "PRIVILEGE_PRIORITY", "ClusterLimits", "ClusterSession", "allocate_cluster",
           "available_per_phase"]
