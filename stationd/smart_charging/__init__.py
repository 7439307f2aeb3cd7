"""OCPP 1.6 smart charging: charging profiles, their store and the composite schedule.

Pure logic and persistence; the OCPP handlers (SetChargingProfile, ClearChargingProfile,
GetCompositeSchedule) and the core (applying :func:`limit_at`) wire it up.

* :mod:`.profiles` — :class:`ChargingProfile` (``from_ocpp`` / ``to_ocpp``, checks,
  :class:`InvalidProfile`), :func:`check_placement`.
* :mod:`.profile_store` — :class:`ProfileStore` (SQLite, migration 6).
* :mod:`.composite` — :func:`composite_schedule`, :func:`limit_at`.
"""

from .composite import CompositePeriod, CompositeSchedule, composite_schedule, limit_at
from .profile_store import ACCEPTED, REJECTED, UNKNOWN, InstallResult, ProfileStore
from .profiles import (
    CHARGE_POINT_MAX,
    TX,
    TX_DEFAULT,
    ChargingProfile,
    ChargingSchedule,
    InstalledProfile,
    InvalidProfile,
    Period,
    check_placement,
)

__all__ = [
    "ACCEPTED",
    "CHARGE_POINT_MAX",
    "REJECTED",
    "TX",
    "TX_DEFAULT",
    "UNKNOWN",
    "ChargingProfile",
    "ChargingSchedule",
    "CompositePeriod",
    "CompositeSchedule",
    "InstallResult",
    "InstalledProfile",
    "InvalidProfile",
    "Period",
    "ProfileStore",
    "check_placement",
    "composite_schedule",
    "limit_at",
]
