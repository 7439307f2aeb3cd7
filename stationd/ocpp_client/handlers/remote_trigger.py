"""Remote Trigger profile: TriggerMessage, and the security whitepaper's ExtendedTriggerMessage.

Both share the per-message senders; the .conf goes out first, then the message. The extended
one's FirmwareStatusNotification is a SignedFirmwareStatusNotification, its
LogStatusNotification reports the GetLog upload (Idle when none runs), and
SignChargePointCertificate sends a SignCertificate with a new CSR (security profile 3,
:mod:`stationd.ocpp_client.certificate_signing`).
"""

from __future__ import annotations

from ..certificate_signing import request_signature
from ..rpc import HandlerResult


async def trigger_message(client, payload: dict) -> dict | HandlerResult:
    return _trigger(client, payload, TRIGGERS)


async def extended_trigger_message(client, payload: dict) -> dict | HandlerResult:
    return _trigger(client, payload, EXTENDED_TRIGGERS)


def _trigger(client, payload: dict, triggers: dict) -> dict | HandlerResult:
    message, connector_id = payload["requestedMessage"], payload.get("connectorId")
    if connector_id is not None and connector_id != 0 and connector_id not in client.core.connectors:
        return {"status": "Rejected"}
    send = triggers.get(message)
    if send is None:
        return {"status": "NotImplemented"}

    async def after() -> None:
        await send(client, connector_id)

    return HandlerResult({"status": "Accepted"}, after=after)


async def _boot(client, connector_id):
    await client.send_boot_notification()


async def _heartbeat(client, connector_id):
    await client.send_heartbeat()


async def _status(client, connector_id):
    await client.status.send_now(client.call, connector_id)


async def _meter_values(client, connector_id):
    await client.send_triggered_meter_values(connector_id)


async def _diagnostics_status(client, connector_id):
    await client.call("DiagnosticsStatusNotification", {"status": client.diagnostics_status})


async def _firmware_status(client, connector_id):
    await client.call("FirmwareStatusNotification", {"status": client.firmware_status})


async def _signed_firmware_status(client, connector_id):
    await client.call("SignedFirmwareStatusNotification", client.firmware.signed_status())


async def _log_status(client, connector_id):
    from .get_log import log_status  # the GetLog upload's state

    await client.call("LogStatusNotification", log_status(client))


async def _sign_certificate(client, connector_id):
    await request_signature(client, "ExtendedTriggerMessage SignChargePointCertificate")


TRIGGERS = {
    "BootNotification": _boot,
    "Heartbeat": _heartbeat,
    "StatusNotification": _status,
    "MeterValues": _meter_values,
    "DiagnosticsStatusNotification": _diagnostics_status,
    "FirmwareStatusNotification": _firmware_status,
}

EXTENDED_TRIGGERS = {
    "BootNotification": _boot,
    "Heartbeat": _heartbeat,
    "StatusNotification": _status,
    "MeterValues": _meter_values,
    "FirmwareStatusNotification": _signed_firmware_status,
    "LogStatusNotification": _log_status,
    "SignChargePointCertificate": _sign_certificate,
}

HANDLERS = {"TriggerMessage": trigger_message, "ExtendedTriggerMessage": extended_trigger_message}
