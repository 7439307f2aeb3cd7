"""Where every limit on a connector's current meets: the lowest wins, and the reason is kept.

A session's current is bounded by
  * the hardware: the connector's rating, MaxCurrentLimit, the cable's PP rating;
  * the limits other parts of the station set through ``StationCore.set_limit`` — OCPP charging
    profiles ("smart charging"), the energy manager over Modbus ("energy manager"), the
    load-balancing cluster ("load balancing");
  * the station's own supply: GridMaxCurrentPerPhase (= /power/station/mainsMaxCurrent / 1000),
    GridMaxPower (0 = none) at GridVoltage, shared between the sessions on each grid phase
    (GridPhaseConnection, ConnectorPhaseRotation) by ``stationd.power.allocate``;
  * what the vehicle draws (current it does not use goes to the others).
``resolve`` gives every session its offer and the name of what bounds it ("cable 20 A",
"station limit L2", "smart charging 10 A", "paused: not enough current" …) for the WebUI.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ..config.store import ConfigStore
from ..power import Allocation, AllocationRequest, SessionInput, allocate, grid_phases
from ..power.phases import parse_connector_phase_rotation
from .connector import Connector
from .demand import ConnectorDemand, DrawWindow

ROTATE_AFTER_S = 15 * 60.0  # a session paused for lack of current gets its turn after this


def caps(store: ConfigStore, connector: Connector, exclude: Iterable[str] = ()) -> dict[str, float]:
    """The named caps (A) on a connector's current, except the sources in ``exclude``."""
    named = {"connector": connector.max_current_a, "MaxCurrentLimit": float(store.get("MaxCurrentLimit"))}
    if connector.controller.cable_max_a:
        named["cable"] = float(connector.controller.cable_max_a)
    skipped = set(exclude)
    for source, amps in connector.limits.items():
        if source not in skipped:
            note = connector.limit_notes.get(source)
            named[f"{source} ({note})" if note else source] = amps
    return named


def demand(store: ConfigStore, connector: Connector, draw: DrawWindow, now: float,
           exclude: Iterable[str] = (), hypothetical: bool = False) -> ConnectorDemand:
    """What the connector's session asks for (``hypothetical``: as if a session started now)."""
    session = connector.session
    rotations = _rotations(store)
    phases = None if hypothetical else draw.phases
    return ConnectorDemand(
        connector_id=connector.id,
        started_at=getattr(session, "started_at", None) if not hypothetical else None,
        caps=caps(store, connector, exclude),
        grid=grid_phases(rotations.get(connector.id, "Unknown"), phases, store.get("GridPhaseConnection")),
        phases=phases,
        draw_a=None if hypothetical else draw.draw(now),
        offered_a=None if hypothetical else connector.outputs.offer_a,
        paused_since=None if hypothetical else connector.paused_since,
        charging_since=None if hypothetical else connector.charging_since,
        current_a={} if hypothetical else dict(draw.grid_current(rotations.get(connector.id, "Unknown"),
                                                                 store.get("GridPhaseConnection"))),
    )


def resolve(store: ConfigStore, demands: Iterable[ConnectorDemand], now: float) -> dict[int, Allocation]:
    """The offer of every demand (in priority order: session start order) under the station limit."""
    phase_limit = store.get("/power/station/mainsMaxCurrent") / 1000
    power_kw = int(store.get("GridMaxPower"))
    request = AllocationRequest(
        phase_limit_a=phase_limit,
        sessions=[SessionInput(d.connector_id, d.caps, phases=d.phases, draw_a=d.draw_a, offered_a=d.offered_a,
                               paused_since=d.paused_since, charging_since=d.charging_since, grid=d.grid)
                  for d in demands],
        power_limit_w=power_kw * 1000.0 if power_kw > 0 else None,
        voltage_v=float(store.get("GridVoltage")),
        grid_connection=store.get("GridPhaseConnection"),
        now=now,
        rotate_after_s=ROTATE_AFTER_S,
    )
    return allocate(request)


def _rotations(store: ConfigStore) -> Mapping[int, str]:
    return parse_connector_phase_rotation(store.get("ConnectorPhaseRotation"))
