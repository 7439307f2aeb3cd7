"""Remote Trigger profile: TriggerMessage. The .conf goes out first, then the message."""

from __future__ import annotations

from ..rpc import HandlerResult


async def trigger_message(client, payload: dict) -> dict | HandlerResult:
    message, connector_id = payload["requestedMessage"], payload.get("connectorId")
    if connector_id is not None and connector_id != 0 and connector_id not in client.core.connectors:
        return {"status": "Rejected"}
    send = TRIGGERS.get(message)
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


TRIGGERS = {
    "BootNotification": _boot,
    "Heartbeat": _heartbeat,
    "StatusNotification": _status,
    "MeterValues": _meter_values,
    "DiagnosticsStatusNotification": _diagnostics_status,
    "FirmwareStatusNotification": _firmware_status,
}

HANDLERS = {"TriggerMessage": trigger_message}
