"""Smart Charging profile: SetChargingProfile, ClearChargingProfile, GetCompositeSchedule."""

from __future__ import annotations

import logging

from ...smart_charging import ChargingProfile, InvalidProfile, composite_schedule
from ...smart_charging.profiles import format_time

log = logging.getLogger("stationd.ocpp")


def parse_profile(client, data: dict) -> ChargingProfile:
    units = tuple({"Current": "A", "Power": "W"}[u] for u in client.store.get("ChargingScheduleAllowedChargingRateUnit"))
    return ChargingProfile.from_ocpp(data, max_stack_level=int(client.store.get("ChargeProfileMaxStackLevel")),
                                     max_periods=int(client.store.get("ChargingScheduleMaxPeriods")),
                                     allowed_units=units)


def active_transaction(client, connector_id: int) -> int | None:
    connector = client.core.connectors.get(connector_id)
    if connector is None or connector.session is None:
        return None
    return client.outbox.transaction_id(connector.session.session_id)


async def set_charging_profile(client, payload: dict) -> dict:
    connector_id = payload["connectorId"]
    if connector_id != 0 and connector_id not in client.core.connectors:
        return {"status": "Rejected"}
    try:
        profile = parse_profile(client, payload["csChargingProfiles"])
    except InvalidProfile as problem:
        log.warning("SetChargingProfile refused: %s", problem.reason)
        return {"status": "Rejected"}
    result = client.profiles.install(connector_id, profile, active_transaction=active_transaction(client, connector_id),
                                     now=client.clock())
    if result.status != "Accepted":
        log.warning("SetChargingProfile refused: %s", result.reason)
    else:
        client.profile_applier.changed()
    return {"status": result.status}


async def clear_charging_profile(client, payload: dict) -> dict:
    status = client.profiles.clear(id=payload.get("id"), connector_id=payload.get("connectorId"),
                                   purpose=payload.get("chargingProfilePurpose"), stack_level=payload.get("stackLevel"))
    if status == "Accepted":
        client.profile_applier.changed()
    return {"status": status}


async def get_composite_schedule(client, payload: dict) -> dict:
    connector_id = payload["connectorId"]
    if connector_id != 0 and connector_id not in client.core.connectors:
        return {"status": "Rejected"}
    if payload["duration"] < 0:  # no schedule lasts less than nothing (it was an InternalError)
        return {"status": "Rejected"}
    unit = {"W": "W", "A": "A", None: "A"}[payload.get("chargingRateUnit")]
    now = client.clock()
    connector = client.core.connectors.get(connector_id)
    session = connector.session if connector is not None else None
    voltage = float(client.store.get("GridVoltage"))
    phases = connector.phases if connector is not None else 3
    schedule = composite_schedule(client.profiles.profiles_for(connector_id), connector_id, now, payload["duration"],
                                  unit, transaction_start=session.started_at if session else None,
                                  voltage=voltage, phases_of_connector=phases)
    maximum_a = connector.max_current_a if connector is not None else float(client.store.get("MaxCurrentLimit"))
    fill = maximum_a if unit == "A" else round(maximum_a * voltage * phases, 1)
    charging_schedule = schedule.to_ocpp(fill_limit=fill) or {  # no profile limits it: its maximum
        "duration": schedule.duration, "startSchedule": format_time(schedule.start), "chargingRateUnit": unit,
        "chargingSchedulePeriod": [{"startPeriod": 0, "limit": float(fill)}]}
    return {"status": "Accepted", "connectorId": connector_id, "scheduleStart": format_time(schedule.start),
            "chargingSchedule": charging_schedule}


HANDLERS = {
    "SetChargingProfile": set_charging_profile,
    "ClearChargingProfile": clear_charging_profile,
    "GetCompositeSchedule": get_composite_schedule,
}
