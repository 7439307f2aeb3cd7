"""SignedUpdateFirmware's trust checks: the signing certificate and the firmware signature.

The security whitepaper's signed update carries, in the request itself, the vendor's signing
certificate (PEM) and a detached signature of the firmware file (base64):

* :func:`check_signing_certificate` — on receipt: a valid PEM X.509 certificate (optionally
  followed by intermediate CA certificates), valid now, that chains to one of the installed
  ManufacturerRootCertificates; a certificate with a key usage must allow digital signatures,
  one with an extended key usage must allow code signing. Else :class:`SignatureRefused`
  (→ SignedUpdateFirmware.conf ``InvalidCertificate``).
* :func:`verify_signature` — after the download: the signature over the whole downloaded file,
  SHA-256, with the signing certificate's public key — RSA PKCS#1 v1.5 or ECDSA (DER-encoded,
  as ``openssl dgst -sha256 -sign`` writes it). Else :class:`SignatureRefused`
  (→ ``crypto_exceptions.InvalidSignature``). The file is hashed in chunks, never read whole.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

from ..lazy_import import lazy_module

x509 = lazy_module("cryptography.x509")
crypto_exceptions = lazy_module("cryptography.exceptions")
hashes = lazy_module("cryptography.hazmat.primitives.hashes")
ec = lazy_module("cryptography.hazmat.primitives.asymmetric.ec")
padding = lazy_module("cryptography.hazmat.primitives.asymmetric.padding")
rsa = lazy_module("cryptography.hazmat.primitives.asymmetric.rsa")
utils = lazy_module("cryptography.hazmat.primitives.asymmetric.utils")

CHUNK = 1 << 20
MAX_CHAIN = 5  # intermediate CAs between the signing certificate and the root, at most


class SignatureRefused(ValueError):
    """A signing certificate or a signature that is not accepted; str() says why."""


def decode_signature(text: str) -> bytes:
    """The signature's bytes from its base64 text; SignatureRefused when it is none."""
    try:
        raw = base64.b64decode("".join(str(text).split()), validate=True)
    except (binascii.Error, ValueError):
        raise SignatureRefused("the signature is not base64") from None
    if not raw:
        raise SignatureRefused("the signature is empty")
    return raw


def check_signing_certificate(pem: str, roots: Iterable[x509.Certificate], now: datetime) -> x509.Certificate:
    """The signing certificate in ``pem`` when it is valid now and chains to one of ``roots``."""
    try:
        chain = x509.load_pem_x509_certificates(str(pem).encode())
    except ValueError as problem:
        raise SignatureRefused(f"not a PEM X.509 certificate ({problem})") from None
    signer, intermediates = chain[0], chain[1:]
    for certificate in chain:
        _check_validity(certificate, now)
    _check_usage(signer)
    roots = list(roots)
    if not roots:
        raise SignatureRefused("no ManufacturerRootCertificate is installed to check it against")
    current = signer
    for _ in range(MAX_CHAIN + 1):
        root = next((r for r in roots if _issued_by(current, r)), None)
        if root is not None:
            _check_validity(root, now, "the ManufacturerRootCertificate")
            return signer
        parent = next((c for c in intermediates if _is_ca(c) and _issued_by(current, c)), None)
        if parent is None:
            break
        current = parent
    raise SignatureRefused(f"{_name(signer)} does not chain to an installed ManufacturerRootCertificate")


def verify_signature(path: Path, signature: str, certificate_pem: str) -> None:
    """Check ``signature`` (base64) over the file at ``path`` with the signing certificate's key."""
    raw = decode_signature(signature)
    try:
        key = x509.load_pem_x509_certificates(str(certificate_pem).encode())[0].public_key()
    except ValueError as problem:
        raise SignatureRefused(f"the signing certificate is not usable ({problem})") from None
    digest = _sha256(path)
    prehashed = utils.Prehashed(hashes.SHA256())
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(raw, digest, padding.PKCS1v15(), prehashed)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(raw, digest, ec.ECDSA(prehashed))
        else:
            raise SignatureRefused(f"unsupported signing key type {type(key).__name__}")
    except crypto_exceptions.InvalidSignature:
        raise SignatureRefused("the signature does not match the firmware file") from None


def _sha256(path: Path) -> bytes:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(CHUNK):
            digest.update(chunk)
    return digest.digest()


def _name(certificate: x509.Certificate) -> str:
    return certificate.subject.rfc4514_string() or "the signing certificate"


def _check_validity(certificate: x509.Certificate, now: datetime, what: str | None = None) -> None:
    what = what or _name(certificate)
    if now < certificate.not_valid_before_utc:
        raise SignatureRefused(f"{what} is not valid before {certificate.not_valid_before_utc.isoformat()}")
    if now > certificate.not_valid_after_utc:
        raise SignatureRefused(f"{what} expired on {certificate.not_valid_after_utc.isoformat()}")


def _check_usage(signer: x509.Certificate) -> None:
    try:
        usage = signer.extensions.get_extension_for_class(x509.KeyUsage).value
        if not usage.digital_signature:
            raise SignatureRefused(f"{_name(signer)} may not sign (key usage without digitalSignature)")
    except x509.ExtensionNotFound:
        pass
    try:
        purposes = signer.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        if x509.oid.ExtendedKeyUsageOID.CODE_SIGNING not in purposes:
            raise SignatureRefused(f"{_name(signer)} is not for code signing (extended key usage)")
    except x509.ExtensionNotFound:
        pass


def _is_ca(certificate: x509.Certificate) -> bool:
    try:
        return certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def _issued_by(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        certificate.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, crypto_exceptions.InvalidSignature):
        return False
    return True
