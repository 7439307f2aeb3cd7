"""Firmware Management profile: UpdateFirmware (GetDiagnostics lives in its own module).

UpdateFirmware.conf is empty and goes out at once; the update itself is the FirmwareUpdater's
(stationd/firmware/update.py), which gets the request once the .conf is sent. A location whose
scheme the SupportedFileTransferProtocols key does not list, or that is no usable URL, is
answered with a PropertyConstraintViolation CALLERROR and changes nothing (the .conf has no
status field to refuse it with).
"""

from __future__ import annotations

from ...transfer import TransferError, allowed, redact
from ...transfer.urls import parse as parse_url
from ..errors import CallError
from ..rpc import HandlerResult
from ..timestamps import parse_ocpp_time


async def update_firmware(client, payload: dict) -> HandlerResult:
    location = payload["location"]
    try:
        parse_url(location)
    except TransferError as problem:
        raise CallError("PropertyConstraintViolation", f"location {redact(location)}: {problem.reason}") from None
    if not allowed(location, client.store):
        supported = ",".join(client.store.get("SupportedFileTransferProtocols"))
        raise CallError("PropertyConstraintViolation",
                        f"location {redact(location)}: the scheme is not one of SupportedFileTransferProtocols "
                        f"({supported})")
    retries, interval = payload.get("retries"), payload.get("retryInterval")
    for name, value in (("retries", retries), ("retryInterval", interval)):
        if value is not None and value < 0:
            raise CallError("PropertyConstraintViolation", f"{name} must not be negative (got {value})")
    try:
        retrieve_date = parse_ocpp_time(payload["retrieveDate"])
    except ValueError:
        raise CallError("TypeConstraintViolation", f"retrieveDate {payload['retrieveDate'][:40]!r} is not a date "
                                                   "and time") from None

    async def after() -> None:
        client.firmware.submit(location, retrieve_date, retries, interval)

    return HandlerResult({}, after=after)


HANDLERS = {"UpdateFirmware": update_firmware}
