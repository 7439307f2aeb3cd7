"""BootNotification: what the station tells the backend about itself at every start."""

from __future__ import annotations

from ..config.store import ConfigStore


def boot_payload(store: ConfigStore, *, meter_type: str | None = None, meter_serial: str | None = None,
                 iccid: str | None = None, imsi: str | None = None) -> dict:
    """OCPP 1.6 BootNotification.req (CiString limits applied: vendor/model 20, serials 25…)."""
    payload = {
        "chargePointVendor": str(store.get("VendorId"))[:20],
        "chargePointModel": str(store.get("ModelId") or "stationd")[:20],
        "chargePointSerialNumber": str(store.get("SerialNumber"))[:25],
        "chargeBoxSerialNumber": str(store.get("SerialNumber"))[:25],
        "firmwareVersion": str(store.get("FirmwareVersion"))[:50],
    }
    optional = {"iccid": (iccid, 20), "imsi": (imsi, 20), "meterType": (meter_type, 25),
                "meterSerialNumber": (meter_serial, 25)}
    payload.update({name: value[:limit] for name, (value, limit) in optional.items() if value})
    return payload
