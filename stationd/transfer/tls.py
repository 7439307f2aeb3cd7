"""TLS for https and ftps: the server's certificate chain and host name are always verified.

The trust anchors are the system's CA store plus, when the caller gives one, a PEM file: the
OCPP client passes its CertificateStore's trust file — the installed
CentralSystemRootCertificates together with the config file's ``ocpp.ca_file`` (or that file
alone while no root is installed) — so a file server with a certificate from a public CA, from
the installer's CA or from a root the backend installed with InstallCertificate is trusted.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from .errors import TransferError


def client_context(ca_file: Path | None) -> ssl.SSLContext:
    """TLS >= 1.2; trust anchors = the system's store plus ``ca_file`` (PEM, one or more
    certificates) when given."""
    context = ssl.create_default_context()
    if ca_file is not None:
        try:
            context.load_verify_locations(cafile=str(ca_file))
        except (OSError, ssl.SSLError, ValueError) as problem:
            raise TransferError(f"cannot load the CA file {ca_file}: {problem}", retry=False) from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def tls_reason(problem: BaseException) -> str:
    """A failed TLS handshake in plain words."""
    if isinstance(problem, ssl.SSLCertVerificationError):
        return f"TLS verification of the server's certificate failed: {problem.verify_message or problem.reason}"
    if isinstance(problem, ssl.SSLError):
        return f"TLS failed: {problem.reason or problem}"
    return f"TLS failed: {problem}"
