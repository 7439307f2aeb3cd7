"""Keys the CTEK Charge Portal backend reads and writes (seeds 000-002, OCPP tab).

``endpoint`` needs no entry: key names are case-insensitive, so it is ``Endpoint``.
"""

from __future__ import annotations

from ... import __version__
from ..registry import Access, Alias, KeyDef
from ..value_types import Int, Text

CTEK = "CTEK Charge Portal"

KEYS = (
    KeyDef("AuthCacheLifeTime", Int(0, 10 * 365 * 86400), 2592000, family=CTEK, unit="s",
           description="How long an authorization cache entry stays valid"),
    KeyDef("FirmwareVersion", Text(), __version__, Access.R, family=CTEK, computed=True,
           description="Firmware version the station runs (as in BootNotification)"),
)

ALIASES = (
    Alias("chargeboxidentity", of="BoxId", family=CTEK, description="Chargebox identity (same as BoxId)"),
    Alias("ChargingStationModel", of="ModelId", family=CTEK, description="Model (same as ModelId)"),
    Alias("ChargingStationVendor", of="VendorId", family=CTEK, description="Vendor (same as VendorId)"),
)
