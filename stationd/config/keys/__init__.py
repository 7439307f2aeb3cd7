"""Every configuration key of the station, assembled from the per-family tables."""

from __future__ import annotations

from ..registry import Registry
from . import (
    ctek,
    eaton,
    eaton_load_balancing,
    eaton_special,
    ocpp_standard,
    security,
    stationd_keys,
    technagon,
    technagon_paths,
)

REGISTRY = Registry(
    keys=(
        *ocpp_standard.KEYS,
        *security.KEYS,
        *technagon.KEYS,
        *ctek.KEYS,
        *eaton.KEYS,
        *eaton_load_balancing.KEYS,
        *eaton_special.KEYS,
        *technagon_paths.KEYS,
        *stationd_keys.KEYS,
    ),
    aliases=(*ctek.ALIASES, *eaton.ALIASES, *technagon_paths.ALIASES),
)
