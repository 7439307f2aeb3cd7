"""Security whitepaper certificate management: InstallCertificate, GetInstalledCertificateIds,
DeleteCertificate (the store is :mod:`stationd.ocpp_client.certificates`, ``client.certificates``)
and CertificateSigned (:mod:`stationd.ocpp_client.charge_point_certificate`,
``client.charge_point_certificate``).

- InstallCertificate: Accepted; Rejected for a PEM that is not a valid, current, self-signed CA
  certificate or when the store holds CertificateStoreMaxLength certificates; Failed when it
  cannot be written.
- GetInstalledCertificateIds: the CertificateHashData (SHA256) of every certificate of the type,
  or NotFound.
- DeleteCertificate: Accepted; NotFound for an unknown certificate; Failed for the
  CentralSystemRootCertificate that verified the current connection (the whitepaper's
  "cannot be deleted") — and for the last one while SecurityProfile is 2 without a config
  ca_file, which would leave the station without a trust anchor for its backend.
- CertificateSigned: Accepted when the chain passes the checks of
  :meth:`~stationd.ocpp_client.charge_point_certificate.ChargePointCertificates.accept`; it is the
  charge point certificate from then on, and under security profile 3 the station reconnects
  with it (after the .conf). Rejected otherwise, with the SecurityEventNotification
  InvalidChargePointCertificate; also Rejected, without the event, when it cannot be written
  (the enum has no Failed).
"""

from __future__ import annotations

import logging

from ...lazy_import import lazy_module
from ..certificates import CENTRAL_SYSTEM_ROOT, CertificateRefused, Installed
from ..rpc import HandlerResult

x509 = lazy_module("cryptography.x509")

log = logging.getLogger("stationd.ocpp.certificates")


async def install_certificate(client, payload: dict) -> dict:
    kind = payload["certificateType"]
    try:
        client.certificates.install(kind, payload["certificate"])
    except CertificateRefused as refused:
        log.warning("InstallCertificate %s rejected: %s", kind, refused)
        return {"status": "Rejected"}
    except OSError as exc:
        log.error("InstallCertificate %s failed: %s", kind, exc)
        return {"status": "Failed"}
    if kind == CENTRAL_SYSTEM_ROOT:
        client.security_event("ReconfigurationOfSecurityParameters", "CentralSystemRootCertificate installed")
    return {"status": "Accepted"}


async def get_installed_certificate_ids(client, payload: dict) -> dict:
    found = client.certificates.installed(payload["certificateType"])
    if not found:
        return {"status": "NotFound"}
    return {"status": "Accepted", "certificateHashData": [c.hash_data() for c in found]}


async def delete_certificate(client, payload: dict) -> dict:
    store = client.certificates
    entry = store.find(payload["certificateHashData"])
    if entry is None:
        return {"status": "NotFound"}
    if entry.certificate_type == CENTRAL_SYSTEM_ROOT and in_use(client, entry):
        log.warning("DeleteCertificate refused: %s verifies the current connection and cannot be deleted",
                    entry.certificate.subject.rfc4514_string())
        return {"status": "Failed"}
    try:
        store.delete(entry)
    except OSError as exc:
        log.error("DeleteCertificate failed: %s", exc)
        return {"status": "Failed"}
    return {"status": "Accepted"}


def peer_certificate(client) -> x509.Certificate | None:
    """The backend's TLS certificate on the current connection (None: no connection or no TLS)."""
    websocket = getattr(getattr(client, "_rpc", None), "_ws", None)
    transport = getattr(websocket, "transport", None)
    tls = transport.get_extra_info("ssl_object") if transport is not None else None
    der = tls.getpeercert(binary_form=True) if tls is not None else None
    return x509.load_der_x509_certificate(der) if der else None


def in_use(client, entry: Installed) -> bool:
    """Whether the root verified the current connection: it issued the backend's certificate (or
    is it), or — with an intermediate in between, which Python cannot show — it is the only
    trust anchor the station has."""
    peer = peer_certificate(client)
    if peer is None:
        return False
    root = entry.certificate
    if peer == root:
        return True
    if peer.issuer == root.subject:
        try:
            peer.verify_directly_issued_by(root)
            return True
        except Exception:  # noqa: BLE001 - another root with the same name
            pass
    others = [c for c in client.certificates.installed(CENTRAL_SYSTEM_ROOT) if c is not entry]
    directly = any(peer.issuer == c.certificate.subject for c in others)
    return not directly and not others and client.certificates.config_ca_file is None


async def certificate_signed(client, payload: dict) -> dict | HandlerResult:
    try:
        leaf = client.charge_point_certificate.accept(payload["certificateChain"])
    except CertificateRefused as refused:
        log.warning("CertificateSigned rejected: %s", refused)
        client.security_event("InvalidChargePointCertificate", str(refused))
        return {"status": "Rejected"}
    except OSError as exc:
        log.error("CertificateSigned: the certificate cannot be stored: %s", exc)
        return {"status": "Rejected"}
    client.security_event("ReconfigurationOfSecurityParameters",
                          f"charge point certificate replaced (serial {leaf.serial_number:x})")
    if client.store.get("SecurityProfile") != 3:
        return {"status": "Accepted"}

    async def reconnect() -> None:
        client.manager.request_reconnect("new charge point certificate")

    return HandlerResult({"status": "Accepted"}, after=reconnect)


HANDLERS = {"InstallCertificate": install_certificate,
            "GetInstalledCertificateIds": get_installed_certificate_ids,
            "DeleteCertificate": delete_certificate,
            "CertificateSigned": certificate_signed}
