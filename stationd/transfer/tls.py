"""TLS for https and ftps: the server's certificate chain and host name are always verified."""

from __future__ import annotations

import ssl
from pathlib import Path

from .errors import TransferError


def client_context(ca_file: Path | None) -> ssl.SSLContext:
    """TLS >= 1.2; trust anchors = ``ca_file`` (PEM) or, without one, the system's store."""
    try:
        context = ssl.create_default_context(cafile=str(ca_file) if ca_file is not None else None)
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
