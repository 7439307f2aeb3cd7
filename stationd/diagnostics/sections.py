"""What the station knows about itself, as plain data for the diagnostics archive.

Collected on the event loop (the store and the core are not shared with other threads); each
part that fails is reported as ``{"error": "…"}`` instead of failing the archive.
"""

from __future__ import annotations

import enum
import logging
from typing import Any

from .. import __version__
from ..config.registry import Access

log = logging.getLogger("stationd.diagnostics")


def settings(store: Any) -> list[dict[str, Any]]:
    """Every key of the ConfigStore (hidden ones included), as GetConfiguration would read it.
    A secret key carries no value at all — only whether it is set."""
    rows = []
    for reading in store.readings(include_hidden=True):
        key = reading.entry.key
        row: dict[str, Any] = {"key": reading.name, "readonly": reading.readonly}
        if key.secret:
            row["secret"] = True
            row["set"] = _guarded(lambda name=reading.name: store.is_set(name), False)
        elif reading.value is None and key.access is Access.W:
            row["writeOnly"] = True
        else:
            row["value"] = reading.value
        if key.name in store.pending_reboot:
            row["pendingReboot"] = True
        rows.append(row)
    return rows


def identity(store: Any) -> dict[str, Any]:
    names = {"serialNumber": "SerialNumber", "chargeBoxId": "BoxId", "vendor": "VendorId", "model": "ModelId",
             "firmwareVersion": "FirmwareVersion"}
    found: dict[str, Any] = {field: _guarded(lambda key=key: _text(store.get(key)), None)
                             for field, key in names.items()}
    found["daemonVersion"] = __version__
    return found


def hardware(station: Any) -> dict[str, Any]:
    """Connectors (status, controller state and firmware, meter, faults, limits) and the station."""
    core = station.core
    hw = getattr(station, "hardware", None)
    drivers = getattr(hw, "drivers", {}) or {}
    readers = getattr(hw, "readers", {}) or {}
    connectors = []
    for connector_id, connector in sorted(core.connectors.items()):
        report = core.status(connector_id)
        controller = connector.controller
        row: dict[str, Any] = {
            "id": connector_id,
            "status": _plain(report.status),
            "errorCode": report.error_code,
            "vendorErrorCode": report.vendor_error_code,
            "info": report.info,
            "faults": sorted(connector.faults),
            "faultSources": {source: sorted(codes) for source, codes in connector.fault_sources.items()},
            "operative": connector.operative,
            "maxCurrentA": connector.max_current_a,
            "phases": connector.phases,
            "connectorType": connector.connector_type,
            "controller": {
                "linkUp": connector.link_up,
                "cpState": _plain(controller.cp_state),
                "cableMaxA": controller.cable_max_a,
                "offeredA": controller.offered_a,
                "contactorClosed": controller.contactor_closed,
                "locked": controller.locked,
                "temperatureC": controller.temperature_c,
                "doorOpen": controller.door_open,
                **_controller_identity(drivers.get(connector_id)),
            },
            "meter": {"online": connector.meter_online, "lastEnergyWh": connector.last_energy_wh,
                      **_meter_identity(readers.get(connector_id))},
            "limitsA": dict(connector.limits),
            "limitReason": connector.limit_reason,
            "sessionOpen": connector.session is not None,
        }
        connectors.append(row)
    return {
        "connectors": connectors,
        "station": {"operative": core.operative, "faults": sorted(core.station_faults),
                    "bootId": getattr(station, "boot_id", None)},
    }


def ocpp(client: Any) -> dict[str, Any]:
    """The backend connection as the client sees it."""
    if client is None:
        return {}
    found: dict[str, Any] = {
        "registration": getattr(client, "registration", None),
        "connected": getattr(client, "connected", None),
        "diagnosticsStatus": getattr(client, "diagnostics_status", None),
        "firmwareStatus": getattr(client, "firmware_status", None),
    }
    outbox = getattr(client, "outbox", None)
    if outbox is not None:
        found["outbox"] = _guarded(outbox.counts, None)
    return found


def _controller_identity(driver: Any) -> dict[str, Any]:
    hello = getattr(driver, "hello", None)
    if hello is None:
        return {}
    return {"hardwareId": hello.hardware_id, "firmwareVersion": _version(hello.firmware_version),
            "bootloaderVersion": _version(hello.bootloader_version),
            "protocolVersion": _version(hello.protocol_version)}


def _meter_identity(reader: Any) -> dict[str, Any]:
    if reader is None:
        return {}
    return {"model": _guarded(lambda: reader.model, None), "deviceId": getattr(reader, "device_id", None)}


def _version(parts: Any) -> str:
    return ".".join(str(p) for p in parts) if isinstance(parts, (tuple, list)) else str(parts)


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, enum.Enum) else value


def _text(value: Any) -> Any:
    return value if value is None or isinstance(value, (str, int, float, bool)) else str(value)


def _guarded(read, default):
    try:
        return read()
    except Exception as exc:  # noqa: BLE001 - one unreadable value must not stop the archive
        log.warning("diagnostics: could not read a value (%s: %s)", type(exc).__name__, exc)
        return default
