"""Installation values: what the station config file says, as configuration key values.

These replace the registry's defaults (the serial number, the chargebox id, the backend URL,
the number of connectors…). Values changed later over OCPP or locally win over them, until
the installer edits the config file again.
"""

from __future__ import annotations

import json

from .station_file import ConnectorType, MeterModel, StationConfig

GRID_VOLTAGE_V = 230

# Connector types as Eaton's EVSES key names them.
EVSE_TYPE_NAMES = {
    ConnectorType.TYPE2_SOCKET: "Mode 3 Type 2 socket",
    ConnectorType.TYPE2_CABLE: "Mode 3 Type 2 plug",
    ConnectorType.TYPE3_SOCKET: "Mode 3 Type 3 socket",
}

LOG_LEVEL_KEY_VALUES = {"debug": 2, "info": 1, "warning": 0, "error": 0}


def installation_values(config: StationConfig) -> dict[str, str]:
    connectors = config.hardware.connectors
    evses = [
        {"id": c.id, "type": EVSE_TYPE_NAMES[c.connector_type], "maxPower": c.max_current_a * c.phases * GRID_VOLTAGE_V}
        for c in connectors
    ]
    mid_meter = any(c.meter is not None and c.meter.model is MeterModel.ISKRA_WM3M4 for c in connectors)
    endpoint = config.ocpp.effective_endpoint
    values = {
        "SerialNumber": config.identity.serial_number,
        "ModelId": config.identity.model,
        "VendorId": config.identity.vendor,
        "BoxId": config.identity.chargebox_id,
        "NumberOfConnectors": str(len(connectors)),
        "EVSES": json.dumps(evses),
        "EnergyMeterType": "MID" if mid_meter else "None",
        "MaxCurrentLimit": str(max(c.max_current_a for c in connectors)),
        "Endpoint": endpoint,
        "ServerMode": "Online" if endpoint else "Offline",
        "SecurityProfile": str(config.ocpp.security_profile),
        "LogLevelAppService": str(LOG_LEVEL_KEY_VALUES[config.log_level]),
        "ModbusServerEnabled": "true" if config.modbus_server.enabled else "false",
    }
    if config.webui.address[1]:  # 0 (any free port, tests) leaves the key at its default
        values["WebServicePort"] = str(config.webui.address[1])
    if config.ocpp.authorization_key:
        values["AuthorizationKey"] = config.ocpp.authorization_key.get_secret_value()
    return values
