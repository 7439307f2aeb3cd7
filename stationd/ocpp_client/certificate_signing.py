"""SignCertificate.req: the station asks the backend to sign a new charge point certificate
(OCPP 1.6 security whitepaper A02 and A03; the key pairs and CSRs are
:mod:`stationd.ocpp_client.charge_point_certificate`, ``client.charge_point_certificate``).

- A02: on ExtendedTriggerMessage ``SignChargePointCertificate`` (after its .conf).
- A03: on its own, while connected and accepted, when the current certificate expires within
  30 days: checked when a session starts and every :data:`RENEWAL_CHECK_S` seconds, at most one
  renewal a day. A renewal lost with the connection is asked again in the next session; an
  answer (even Rejected or a CALLERROR) or a timeout counts for the day.

The signed certificate comes back in CertificateSigned.req (:mod:`.handlers.security`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from .errors import CallError, CallTimeout

log = logging.getLogger("stationd.ocpp.certificates")

RENEWAL_CHECK_S = 3600.0


async def request_signature(client, why: str) -> str:
    """Send SignCertificate.req with a new CSR; returns the backend's status."""
    answer = await client.call("SignCertificate", {"csr": client.charge_point_certificate.new_csr()})
    status = answer["status"]
    if status == "Accepted":
        log.info("SignCertificate (%s) accepted: the backend will send the certificate in CertificateSigned", why)
    else:
        log.warning("SignCertificate (%s): the backend answered %s", why, status)
    return status


async def renew_when_due(client, sleep: Callable[[float], Awaitable[object]] = asyncio.sleep) -> None:
    """Session worker (A03): SignCertificate when the charge point certificate needs renewal."""
    certificate = client.charge_point_certificate
    while True:
        if certificate.renewal_due():
            why = f"renewal, the certificate expires on {certificate.expiry():%Y-%m-%d}"
            try:
                await request_signature(client, why)
            except (CallError, CallTimeout) as problem:
                log.warning("SignCertificate (%s) got no answer: %s", why, problem)
            certificate.renewal_asked()
        await sleep(RENEWAL_CHECK_S)
