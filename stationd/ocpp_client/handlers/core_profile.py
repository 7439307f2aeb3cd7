"""Core profile calls from the backend."""

from __future__ import annotations

import logging

from ...config.store import ConfigStatus
from ...config.value_types import Source
from ..rpc import HandlerResult

log = logging.getLogger("stationd.ocpp")


async def change_availability(client, payload: dict) -> dict:
    connector_id, operative = payload["connectorId"], payload["type"] == "Operative"
    if connector_id != 0 and connector_id not in client.core.connectors:
        return {"status": "Rejected"}
    return {"status": client.core.set_availability(connector_id, operative)}


async def change_configuration(client, payload: dict) -> dict:
    result = client.store.set(payload["key"], payload["value"], Source.OCPP)
    if result.status is not ConfigStatus.ACCEPTED:
        log.warning("ChangeConfiguration of %s: %s %s", payload["key"], result.status.value, result.reason)
    return {"status": result.status.value}


async def get_configuration(client, payload: dict) -> dict:
    names = payload.get("key")
    if not names:  # every key but the hidden ones
        readings = client.store.readings()
        unknown = []
    else:
        readings, unknown = [], []
        for name in names:
            reading = client.store.read(name)
            (readings.append(reading) if reading is not None else unknown.append(name))
    response: dict = {"configurationKey": [_key_value(r) for r in readings]}
    if unknown:
        response["unknownKey"] = unknown
    return response


def _key_value(reading) -> dict:
    entry = {"key": reading.name[:50], "readonly": reading.readonly}
    if reading.value is not None:
        entry["value"] = reading.value[:500]
    return entry


async def data_transfer(client, payload: dict) -> dict:
    vendor = payload["vendorId"].lower()
    if vendor not in {str(client.store.get("VendorId")).lower(), "stationd"}:
        return {"status": "UnknownVendorId"}
    return {"status": "UnknownMessageId"}  # the station accepts no vendor messages yet


async def remote_start_transaction(client, payload: dict) -> dict:
    if not client.accepted:
        return {"status": "Rejected"}  # not while the boot is Pending
    connector_id = payload.get("connectorId")
    if connector_id == 0 or (connector_id is not None and connector_id not in client.core.connectors):
        return {"status": "Rejected"}
    profile = payload.get("chargingProfile")
    if profile is not None and profile.get("chargingProfilePurpose") != "TxProfile":
        return {"status": "Rejected"}
    result = client.core.authorize(connector_id, payload["idTag"])
    if profile is not None and result.accepted and result.connector_id is not None:
        client.remember_remote_start_profile(result.connector_id, profile)
    if not result.accepted:
        log.info("RemoteStartTransaction for %s refused: %s", payload["idTag"], result.reason)
    return {"status": "Accepted" if result.accepted else "Rejected"}


async def remote_stop_transaction(client, payload: dict) -> dict:
    if not client.accepted:
        return {"status": "Rejected"}
    session_id = client.outbox.session_for_transaction(payload["transactionId"])
    for connector in client.core.connectors.values():
        if connector.session is not None and connector.session.session_id == session_id:
            client.core.stop_session(connector.id, "Remote")
            client.vendor_messages.remote_shut_off(connector.id, "Accepted")
            return {"status": "Accepted"}
    return {"status": "Rejected"}


async def reset(client, payload: dict) -> HandlerResult:
    kind = payload["type"]  # Soft | Hard

    async def after() -> None:
        await client.reset(kind)

    return HandlerResult({"status": "Accepted"}, after=after)


async def unlock_connector(client, payload: dict) -> dict:
    return {"status": client.core.unlock(payload["connectorId"])}


HANDLERS = {
    "ChangeAvailability": change_availability,
    "ChangeConfiguration": change_configuration,
    "GetConfiguration": get_configuration,
    "DataTransfer": data_transfer,
    "RemoteStartTransaction": remote_start_transaction,
    "RemoteStopTransaction": remote_stop_transaction,
    "Reset": reset,
    "UnlockConnector": unlock_connector,
}
