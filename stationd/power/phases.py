"""Which grid phases a vehicle loads: connector phase rotation x grid phase connection.

Two settings describe the wiring:

* ``ConnectorPhaseRotation`` (OCPP, CSL of ``<connector>.<rotation>``): connector *n*'s L1, L2, L3
  are wired to the station's terminals named by the rotation's letters, R = station L1, S = L2,
  T = L3. ``1.RST`` = straight through; ``2.STR`` = connector 2's L1 is station L2, its L2 is
  station L3, its L3 is station L1. ``NotApplicable`` and ``Unknown`` (and a connector the
  setting does not list) mean the wiring is not known.
* ``GridPhaseConnection`` (Eaton, e.g. ``[1,2,3]``): the station's L1, L2, L3 meet the grid phases
  listed, in order. ``[2,3,1]`` = station L1 is on grid phase 2, L2 on 3, L3 on 1.

A vehicle charging on *k* phases (1, 2 or 3) uses the connector's first *k* phases (a 1-phase
vehicle uses L1). When the connector's rotation is not known, the vehicle may be on any phase:
a vehicle with fewer than 3 phases is then accounted on **all three** grid phases (the safe side
for the per-phase limit). An unknown number of vehicle phases (None) counts as 3.

The entry for connector 0 (the station as a whole) is not used here: how the station meets the
grid is ``GridPhaseConnection``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

ROTATIONS = ("RST", "RTS", "SRT", "STR", "TRS", "TSR")
UNKNOWN_ROTATIONS = ("NotApplicable", "Unknown")
ALL_PHASES = frozenset({1, 2, 3})
DEFAULT_GRID_CONNECTION = (1, 2, 3)
TERMINAL = {"R": 1, "S": 2, "T": 3}  # rotation letter -> station terminal L1..L3


def check_grid_connection(grid_connection: Sequence[int]) -> tuple[int, int, int]:
    """``GridPhaseConnection`` as a tuple; ValueError unless it orders the phases 1, 2 and 3."""
    value = tuple(grid_connection)
    if sorted(value) != [1, 2, 3] or not all(type(v) is int for v in value):
        raise ValueError(f"GridPhaseConnection must order the phases 1, 2 and 3, not {list(value)}")
    return value  # type: ignore[return-value]


def check_rotation(rotation: str) -> str:
    if rotation not in ROTATIONS and rotation not in UNKNOWN_ROTATIONS:
        raise ValueError(f"unknown phase rotation {rotation!r} (one of {', '.join(ROTATIONS + UNKNOWN_ROTATIONS)})")
    return rotation


def parse_connector_phase_rotation(value: str | Iterable[str]) -> dict[int, str]:
    """``ConnectorPhaseRotation`` ("1.RST,2.STR" or its items) as {connector: rotation}."""
    items = value.split(",") if isinstance(value, str) else list(value)
    result: dict[int, str] = {}
    for item in (i.strip() for i in items):
        if not item:
            continue
        connector, sep, rotation = item.partition(".")
        if not sep or not connector.isdigit():
            raise ValueError(f"phase rotation item {item!r} is not <connector>.<rotation>")
        result[int(connector)] = check_rotation(rotation)
    return result


def vehicle_phase_count(vehicle_phases: int | None) -> int:
    """The phases a vehicle draws on: 1, 2 or 3; unknown (None) counts as 3."""
    if vehicle_phases is None:
        return 3
    if vehicle_phases not in (1, 2, 3):
        raise ValueError(f"a vehicle charges on 1, 2 or 3 phases, not {vehicle_phases}")
    return vehicle_phases


def station_phases(rotation: str, vehicle_phases: int | None) -> frozenset[int] | None:
    """The station terminals (1 = L1 …) the vehicle loads; None when the rotation is not known
    and the vehicle uses fewer than 3 phases (it could be on any of them)."""
    count = vehicle_phase_count(vehicle_phases)
    check_rotation(rotation)
    if count == 3:
        return ALL_PHASES
    if rotation in UNKNOWN_ROTATIONS:
        return None
    return frozenset(TERMINAL[letter] for letter in rotation[:count])


def grid_phases(rotation: str, vehicle_phases: int | None,
                grid_connection: Sequence[int] = DEFAULT_GRID_CONNECTION) -> frozenset[int]:
    """The grid phases to account the vehicle's current on (all three when the wiring is unknown)."""
    grid = check_grid_connection(grid_connection)
    terminals = station_phases(rotation, vehicle_phases)
    if terminals is None:
        return ALL_PHASES
    return frozenset(grid[t - 1] for t in terminals)
