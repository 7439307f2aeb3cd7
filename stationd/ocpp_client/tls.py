"""TLS for security profiles 2 and 3: the client context and what a failed TLS handshake means.

OCPP 1.6 security whitepaper, profile 2: the station verifies the backend's certificate chain
and host name, speaks TLS 1.2 or newer, and offers only these TLS 1.2 suites:

- TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 (ECDHE-ECDSA-AES128-GCM-SHA256)  whitepaper, ECDSA servers
- TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 (ECDHE-ECDSA-AES256-GCM-SHA384)  whitepaper, ECDSA servers
- TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256   (ECDHE-RSA-AES128-GCM-SHA256)    RSA servers, forward secrecy
- TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384   (ECDHE-RSA-AES256-GCM-SHA384)    RSA servers, forward secrecy
- TLS_RSA_WITH_AES_128_GCM_SHA256         (AES128-GCM-SHA256)              whitepaper, RSA servers
- TLS_RSA_WITH_AES_256_GCM_SHA384         (AES256-GCM-SHA384)              whitepaper, RSA servers

The ECDHE-RSA pair is not in the whitepaper's list but is the same AES-GCM with forward secrecy,
offered before the plain-RSA pair so an RSA backend that can do better does. TLS 1.3 suites are
OpenSSL's defaults (AES-GCM and ChaCha20-Poly1305, all AEAD); Python's ``ssl`` module cannot
narrow them, and the whitepaper's list is about TLS 1.2. TLS compression is off (CRIME).

Profile 3 is profile 2 plus TLS client authentication: the station presents its charge point
certificate chain (:class:`ClientCertificate`, from
:mod:`stationd.ocpp_client.charge_point_certificate`) and proves it holds the private key. A
backend that refuses that certificate answers with a TLS alert (TLS 1.2, or a server that sends
its alerts), reported as FailedToAuthenticationAtCentralSystem; over TLS 1.3 many servers just
close the connection after the handshake, which reads as a connection closed during the
handshake.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

from .errors import ConnectFailed

TLS12_CIPHERS = (
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384:"
    "AES128-GCM-SHA256:AES256-GCM-SHA384"
)

INVALID_CERTIFICATE = "InvalidCentralSystemCertificate"
INVALID_TLS_VERSION = "InvalidTLSVersion"
INVALID_TLS_CIPHER_SUITE = "InvalidTLSCipherSuite"
FAILED_TO_AUTHENTICATE = "FailedToAuthenticationAtCentralSystem"

# OpenSSL reason codes of a failed handshake, as ssl.SSLError.reason shows them.
_VERSION_REASONS = frozenset({
    "TLSV1_ALERT_PROTOCOL_VERSION", "UNSUPPORTED_PROTOCOL", "NO_PROTOCOLS_AVAILABLE", "VERSION_TOO_LOW",
    "UNKNOWN_PROTOCOL", "TLSV1_ALERT_INAPPROPRIATE_FALLBACK",
})
_CIPHER_REASONS = frozenset({
    "SSLV3_ALERT_HANDSHAKE_FAILURE", "NO_SHARED_CIPHER", "NO_CIPHERS_AVAILABLE", "WRONG_CIPHER_RETURNED",
    "TLSV1_ALERT_INSUFFICIENT_SECURITY", "NO_SUITABLE_SIGNATURE_ALGORITHM", "NO_SHARED_SIGNATURE_ALGORITHMS",
})
# Alerts a server sends about the client certificate it got (or did not get).
_CLIENT_CERTIFICATE_REASONS = frozenset({
    "TLSV13_ALERT_CERTIFICATE_REQUIRED", "TLSV1_ALERT_UNKNOWN_CA", "SSLV3_ALERT_BAD_CERTIFICATE",
    "SSLV3_ALERT_CERTIFICATE_EXPIRED", "SSLV3_ALERT_CERTIFICATE_REVOKED", "SSLV3_ALERT_CERTIFICATE_UNKNOWN",
    "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE", "TLSV1_ALERT_ACCESS_DENIED",
})
# The peer's first bytes are not a TLS record: most likely a plain ws:// / HTTP server.
_NOT_TLS_REASONS = frozenset({"WRONG_VERSION_NUMBER", "HTTP_REQUEST", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG"})


@dataclass(frozen=True)
class ClientCertificate:
    """The charge point certificate as TLS loads it: the chain (PEM, leaf first) and its
    private key (PEM), as files."""

    chain_file: Path
    key_file: Path


def client_context(ca_file: Path | None, client_certificate: ClientCertificate | None = None) -> ssl.SSLContext:
    """The TLS context of security profile 2, and of 3 with ``client_certificate``.

    TLS >= 1.2, certificate chain and host name verified (``CERT_REQUIRED``,
    ``check_hostname``), trust anchors = ``ca_file`` (PEM, one or more certificates) or the
    system's store when None, TLS 1.2 suites as in the module docstring, no TLS compression;
    ``client_certificate`` is presented when the backend asks for one. Raises ConnectFailed when
    ``ca_file`` or the client certificate is missing or unreadable."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # check_hostname=True, CERT_REQUIRED
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    context.set_ciphers(TLS12_CIPHERS)
    context.options |= ssl.OP_NO_COMPRESSION
    if client_certificate is not None:
        try:
            context.load_cert_chain(client_certificate.chain_file, client_certificate.key_file)
        except (ssl.SSLError, OSError, ValueError) as exc:
            raise ConnectFailed(f"security profile 3: cannot load the charge point certificate "
                                f"{client_certificate.chain_file}: {exc}") from None
    if ca_file is None:
        context.load_default_certs(ssl.Purpose.SERVER_AUTH)
        return context
    path = Path(ca_file)
    if not path.is_file():
        raise ConnectFailed(f"TLS: the backend's CA certificate file {path} does not exist")
    try:
        context.load_verify_locations(cafile=str(path))
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise ConnectFailed(f"TLS: cannot load the CA certificate file {path}: {exc}") from None
    return context


def classify_tls_error(exc: ssl.SSLError) -> ConnectFailed:
    """A failed TLS handshake as a ConnectFailed with the whitepaper's security event where one
    applies (certificate → InvalidCentralSystemCertificate, version → InvalidTLSVersion,
    suites → InvalidTLSCipherSuite, the backend refusing the client certificate →
    FailedToAuthenticationAtCentralSystem). A bare handshake_failure alert is taken as "no
    common suite", its usual cause."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        detail = exc.verify_message or exc.reason or str(exc)
        return ConnectFailed(f"backend certificate not accepted: {detail}", security_event=INVALID_CERTIFICATE)
    reason = exc.reason or ""
    if reason in _VERSION_REASONS:
        return ConnectFailed(f"TLS version refused: the backend and the station share no TLS version >= 1.2 "
                             f"({reason})", security_event=INVALID_TLS_VERSION)
    if reason in _CIPHER_REASONS:
        return ConnectFailed(f"TLS cipher suite refused: the backend accepts none of the station's suites "
                             f"({reason})", security_event=INVALID_TLS_CIPHER_SUITE)
    if reason in _CLIENT_CERTIFICATE_REASONS:
        return ConnectFailed(f"backend refused the station's TLS client certificate or wants one ({reason})",
                             security_event=FAILED_TO_AUTHENTICATE)
    if reason in _NOT_TLS_REASONS:
        return ConnectFailed(f"the backend did not answer with TLS - is the port a ws:// (plain) one? ({reason})")
    return ConnectFailed(f"TLS handshake failed: {reason or exc}")
