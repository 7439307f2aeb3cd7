"""stationd's own installer settings (WebUI pages the vendors configure outside OCPP keys)."""

from __future__ import annotations

from ..registry import KeyDef
from ..value_types import Bool

STATIOND = "stationd"

KEYS = (
    KeyDef("ModbusServerEnabled", Bool(), False, family=STATIOND,
           description="Run the station's Modbus TCP server for energy managers (Communication > Modbus; "
                       "docs/modbus-server.md)"),
)
