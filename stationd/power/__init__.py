"""Power: how the station shares its current among the sessions (pure functions, no I/O)."""

from .allocation import Allocation, AllocationRequest, SessionInput, allocate
from .phases import grid_phases, parse_connector_phase_rotation

__all__ = ["Allocation", "AllocationRequest", "SessionInput", "allocate", "grid_phases",
           "parse_connector_phase_rotation"]
