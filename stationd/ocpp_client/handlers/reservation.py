"""Reservation profile calls from the backend."""

from __future__ import annotations

from ..timestamps import parse_ocpp_time


async def reserve_now(client, payload: dict) -> dict:
    status = client.core.reserve(payload["reservationId"], payload["connectorId"], payload["idTag"],
                                 parse_ocpp_time(payload["expiryDate"]), payload.get("parentIdTag"))
    return {"status": status}


async def cancel_reservation(client, payload: dict) -> dict:
    return {"status": "Accepted" if client.core.cancel_reservation(payload["reservationId"]) else "Rejected"}


HANDLERS = {"ReserveNow": reserve_now, "CancelReservation": cancel_reservation}
