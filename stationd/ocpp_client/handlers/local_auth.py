"""Local Auth List Management and the cache: SendLocalList, GetLocalListVersion, ClearCache."""

from __future__ import annotations


async def send_local_list(client, payload: dict) -> dict:
    if not client.store.get("LocalAuthListEnabled"):
        return {"status": "NotSupported"}
    status = client.local_list.apply_request(payload)
    if status == "Accepted":  # list ids never stay in the cache
        for entry in payload.get("localAuthorizationList") or []:
            client.auth_cache.remove(entry["idTag"])
        client.core.station_fault("LocalListConflict", False, source="local list")  # a new list: no conflict
    return {"status": status}


async def get_local_list_version(client, payload: dict) -> dict:
    if not client.store.get("LocalAuthListEnabled"):
        return {"listVersion": -1}
    return {"listVersion": client.local_list.version}


async def clear_cache(client, payload: dict) -> dict:
    client.auth_cache.clear()
    return {"status": "Accepted"}


HANDLERS = {
    "SendLocalList": send_local_list,
    "GetLocalListVersion": get_local_list_version,
    "ClearCache": clear_cache,
}
