"""Firmware Management: UpdateFirmware, and the security whitepaper's SignedUpdateFirmware
(GetDiagnostics lives in its own module).

UpdateFirmware.conf is empty and goes out at once; the update itself is the FirmwareUpdater's
(stationd/firmware/update.py), which gets the request once the .conf is sent. A location whose
scheme the SupportedFileTransferProtocols key does not list, or that is no usable URL, is
answered with a PropertyConstraintViolation CALLERROR and changes nothing (the .conf has no
status field to refuse it with).

SignedUpdateFirmware.conf has a status: ``InvalidCertificate`` when the signingCertificate is no
valid PEM X.509 certificate, is not valid now or does not chain to an installed
ManufacturerRootCertificate (a SecurityEventNotification ``InvalidFirmwareSigningCertificate``
follows); ``Rejected`` for an unusable location, a negative retries/retryInterval or a
signature that is not base64; else ``Accepted``, or ``AcceptedCanceled`` when it replaces an
update that has not started installing. The same FirmwareUpdater runs it, reporting with
SignedFirmwareStatusNotification and the requestId.
"""

from __future__ import annotations

import logging
from datetime import UTC

from ...firmware.job import SignedRequest
from ...firmware.signature import SignatureRefused, check_signing_certificate, decode_signature
from ...transfer import TransferError, allowed, redact
from ...transfer.urls import parse as parse_url
from ..certificates import MANUFACTURER_ROOT
from ..errors import CallError
from ..rpc import HandlerResult
from ..timestamps import parse_ocpp_time

log = logging.getLogger("stationd.ocpp.firmware")


def _location_problem(client, location: str) -> str | None:
    try:
        parse_url(location)
    except TransferError as problem:
        return f"location {redact(location)}: {problem.reason}"
    if not allowed(location, client.store):
        supported = ",".join(client.store.get("SupportedFileTransferProtocols"))
        return (f"location {redact(location)}: the scheme is not one of SupportedFileTransferProtocols "
                f"({supported})")
    return None


def _retry_problem(payload: dict) -> str | None:
    for name in ("retries", "retryInterval"):
        value = payload.get(name)
        if value is not None and value < 0:
            return f"{name} must not be negative (got {value})"
    return None


def _time(payload: dict, name: str):
    try:
        return parse_ocpp_time(payload[name])
    except ValueError:
        raise CallError("TypeConstraintViolation", f"{name} {payload[name][:40]!r} is not a date and time") from None


async def update_firmware(client, payload: dict) -> HandlerResult:
    location = payload["location"]
    for problem in (_location_problem(client, location), _retry_problem(payload)):
        if problem:
            raise CallError("PropertyConstraintViolation", problem)
    retrieve_date = _time(payload, "retrieveDate")

    async def after() -> None:
        client.firmware.submit(location, retrieve_date, payload.get("retries"), payload.get("retryInterval"))

    return HandlerResult({}, after=after)


async def signed_update_firmware(client, payload: dict) -> dict | HandlerResult:
    firmware = payload["firmware"]
    location = firmware["location"]
    retrieve_date = _time(firmware, "retrieveDateTime")
    install_date = _time(firmware, "installDateTime") if "installDateTime" in firmware else None
    problem = _location_problem(client, location) or _retry_problem(payload)
    if problem is None:
        try:
            decode_signature(firmware["signature"])
        except SignatureRefused as refused:
            problem = str(refused)
    if problem:
        log.warning("SignedUpdateFirmware %s rejected: %s", payload["requestId"], problem)
        return {"status": "Rejected"}
    roots = [entry.certificate for entry in client.certificates.installed(MANUFACTURER_ROOT)]
    try:
        check_signing_certificate(firmware["signingCertificate"], roots, client.clock())
    except SignatureRefused as refused:
        reason = str(refused)
        log.warning("SignedUpdateFirmware %s: invalid signing certificate: %s", payload["requestId"], reason)

        async def report() -> None:
            client.security_event("InvalidFirmwareSigningCertificate", reason)

        return HandlerResult({"status": "InvalidCertificate"}, after=report)
    signed = SignedRequest(payload["requestId"], firmware["signingCertificate"], firmware["signature"],
                           install_date.astimezone(UTC).isoformat() if install_date else None)
    status = "AcceptedCanceled" if client.firmware.replaces_pending() else "Accepted"

    async def after() -> None:
        client.firmware.submit(location, retrieve_date, payload.get("retries"), payload.get("retryInterval"),
                               signed=signed)

    return HandlerResult({"status": status}, after=after)


HANDLERS = {"UpdateFirmware": update_firmware, "SignedUpdateFirmware": signed_update_firmware}
