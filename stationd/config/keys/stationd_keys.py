"""stationd's own installer settings (WebUI pages the vendors configure outside OCPP keys)."""

from __future__ import annotations

from ..registry import KeyDef
from ..value_types import Bool, Text

STATIOND = "stationd"

KEYS = (
    KeyDef("WhitelistSource", Text(choices=("OCPP", "Local")), "OCPP", family=STATIOND,
           description="Cards known locally: OCPP = the list the backend manages (SendLocalList); Local = the "
                       "technician's whitelist (CSV), used while the backend is unreachable"),
    KeyDef("ModbusServerEnabled", Bool(), False, family=STATIOND,
           description="Run the station's Modbus TCP server for energy managers (Communication > Modbus; "
                       "docs/modbus-server.md)"),
)
