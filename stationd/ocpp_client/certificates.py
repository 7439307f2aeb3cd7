"""The station's installed root certificates (OCPP 1.6 security whitepaper, certificate management).

Two kinds, as InstallCertificate names them: ``CentralSystemRootCertificate`` (trust anchors of
the backend's TLS certificate, security profile 2) and ``ManufacturerRootCertificate`` (firmware
signing). They live in the data directory::

    certificates/<type>/<sha256 fingerprint>.pem    one PEM file per certificate
    certificates/index.json                          what is installed: type, file, subject, validity
    certificates/central-system-roots.pem            the TLS trust bundle: installed central-system
                                                     roots + the config file's ocpp.ca_file

A certificate is identified as the whitepaper's CertificateHashDataType says: ``issuerNameHash``
= hash of the DER issuer name, ``issuerKeyHash`` = hash of the issuer's public key (the bits of
its subjectPublicKey; a root is its own issuer), ``serialNumber`` = the serial in lower-case hex
without leading zeros, ``hashAlgorithm`` SHA256 (DeleteCertificate may ask for SHA384/SHA512).

:meth:`CertificateStore.central_system_roots` gives the trust anchors that a charge point
certificate chain (CertificateSigned, :mod:`stationd.ocpp_client.charge_point_certificate`) must
verify up to: the installed central-system roots and the certificates of the config file's
ca_file, the same anchors that verify the backend.

Only root certificates are installed: a valid PEM X.509 certificate that is a CA
(basicConstraints cA), self-issued with a valid self-signature, and valid now; anything else is
Rejected, as is a certificate beyond ``CertificateStoreMaxLength``. A write that fails is Failed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from ..lazy_import import lazy_module

x509 = lazy_module("cryptography.x509")
hashes = lazy_module("cryptography.hazmat.primitives.hashes")
serialization = lazy_module("cryptography.hazmat.primitives.serialization")
ec = lazy_module("cryptography.hazmat.primitives.asymmetric.ec")
ed448 = lazy_module("cryptography.hazmat.primitives.asymmetric.ed448")
ed25519 = lazy_module("cryptography.hazmat.primitives.asymmetric.ed25519")
rsa = lazy_module("cryptography.hazmat.primitives.asymmetric.rsa")

log = logging.getLogger("stationd.ocpp.certificates")

CERTIFICATES_DIR = "certificates"
INDEX_FILE = "index.json"
TRUST_BUNDLE = "central-system-roots.pem"
CENTRAL_SYSTEM_ROOT = "CentralSystemRootCertificate"
MANUFACTURER_ROOT = "ManufacturerRootCertificate"
TYPES = (CENTRAL_SYSTEM_ROOT, MANUFACTURER_ROOT)
HASHES = {"SHA256": hashlib.sha256, "SHA384": hashlib.sha384, "SHA512": hashlib.sha512}
DEFAULT_MAX_CERTIFICATES = 10


class CertificateRefused(ValueError):
    """A certificate that cannot be installed (InstallCertificate Rejected); str() says why."""


@dataclass(frozen=True)
class Installed:
    certificate_type: str
    fingerprint: str  # SHA-256 of the DER certificate, hex: also the file name
    certificate: x509.Certificate

    def hash_data(self, algorithm: str = "SHA256") -> dict:
        return certificate_hash_data(self.certificate, algorithm)

    @property
    def pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)


def public_key_bits(key) -> bytes:
    """The content of the subjectPublicKey BIT STRING (what OCSP and OCPP hash as the issuer key)."""
    if isinstance(key, ec.EllipticCurvePublicKey):
        return key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    if isinstance(key, rsa.RSAPublicKey):
        return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    if isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    raise CertificateRefused(f"unsupported public key type {type(key).__name__}")


def certificate_hash_data(certificate: x509.Certificate, algorithm: str = "SHA256",
                          issuer: x509.Certificate | None = None) -> dict:
    """CertificateHashDataType of ``certificate``; ``issuer`` defaults to itself (a root)."""
    digest = HASHES[algorithm]
    issuer = issuer or certificate
    return {"hashAlgorithm": algorithm,
            "issuerNameHash": digest(certificate.issuer.public_bytes()).hexdigest(),
            "issuerKeyHash": digest(public_key_bits(issuer.public_key())).hexdigest(),
            "serialNumber": format(certificate.serial_number, "x")}


def _same_serial(a: str, b: str) -> bool:
    return a.lower().lstrip("0") == b.lower().lstrip("0")


def matches(installed: Installed, wanted: dict) -> bool:
    algorithm = wanted.get("hashAlgorithm", "SHA256")
    if algorithm not in HASHES:
        return False
    mine = installed.hash_data(algorithm)
    return (mine["issuerNameHash"] == str(wanted.get("issuerNameHash", "")).lower()
            and mine["issuerKeyHash"] == str(wanted.get("issuerKeyHash", "")).lower()
            and _same_serial(mine["serialNumber"], str(wanted.get("serialNumber", ""))))


def parse_root(pem: str | bytes, now: datetime) -> x509.Certificate:
    """The root certificate in ``pem``, or CertificateRefused saying what is wrong with it."""
    data = pem.encode() if isinstance(pem, str) else pem
    try:
        certificate = x509.load_pem_x509_certificate(data)
    except ValueError as exc:
        raise CertificateRefused(f"not a PEM X.509 certificate ({exc})") from None
    if now < certificate.not_valid_before_utc:
        raise CertificateRefused(f"not valid before {certificate.not_valid_before_utc.isoformat()}")
    if now > certificate.not_valid_after_utc:
        raise CertificateRefused(f"expired on {certificate.not_valid_after_utc.isoformat()}")
    try:
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is None or not constraints.ca:
        raise CertificateRefused("not a CA certificate (basicConstraints cA is not set)")
    if certificate.issuer != certificate.subject:
        raise CertificateRefused("not a root certificate (issuer differs from subject)")
    try:
        certificate.verify_directly_issued_by(certificate)
    except (ValueError, TypeError, Exception) as exc:  # crypto_exceptions.InvalidSignature, unsupported algorithms
        raise CertificateRefused(f"self-signature does not verify ({type(exc).__name__})") from None
    return certificate


class CertificateStore:
    """The installed root certificates of one data directory."""

    def __init__(self, data_dir: Path, *, ca_file: Path | None = None,
                 max_certificates: Callable[[], int] = lambda: DEFAULT_MAX_CERTIFICATES,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)):
        self.directory = Path(data_dir) / CERTIFICATES_DIR
        self.config_ca_file = Path(ca_file) if ca_file else None
        self._max, self._clock = max_certificates, clock
        self._installed: list[Installed] = self._load()
        self._write_bundle()

    # ---- reading ---------------------------------------------------------------------------

    def installed(self, certificate_type: str | None = None) -> list[Installed]:
        return [c for c in self._installed if certificate_type in (None, c.certificate_type)]

    def find(self, wanted: dict) -> Installed | None:
        return next((c for c in self._installed if matches(c, wanted)), None)

    def trust_file(self) -> Path | None:
        """The CA file that profile 2 verifies the backend with: the bundle of the installed
        central-system roots (plus the config file's ca_file) when any is installed, else the
        config file's ca_file (None: the system's store)."""
        if self.installed(CENTRAL_SYSTEM_ROOT):
            return self.directory / TRUST_BUNDLE
        return self.config_ca_file

    def central_system_roots(self) -> list[x509.Certificate]:
        """The installed CentralSystemRootCertificates and the certificates of the config
        file's ca_file (an unreadable ca_file adds none)."""
        roots = [c.certificate for c in self.installed(CENTRAL_SYSTEM_ROOT)]
        if self.config_ca_file is not None:
            try:
                roots += x509.load_pem_x509_certificates(self.config_ca_file.read_bytes())
            except (OSError, ValueError) as exc:
                log.warning("ocpp.ca_file %s unreadable (%s): only the installed roots are trusted",
                            self.config_ca_file, exc)
        return roots

    def has_central_system_root(self) -> bool:
        """A trust anchor for profile 2: an installed CentralSystemRootCertificate or the
        installer's ca_file."""
        return bool(self.installed(CENTRAL_SYSTEM_ROOT)) or self.config_ca_file is not None

    # ---- changing ----------------------------------------------------------------------------

    def install(self, certificate_type: str, pem: str) -> Installed:
        """Install a root; CertificateRefused (→ Rejected) or OSError (→ Failed)."""
        if certificate_type not in TYPES:
            raise CertificateRefused(f"unknown certificate type {certificate_type}")
        certificate = parse_root(pem, self._clock())
        fingerprint = certificate.fingerprint(hashes.SHA256()).hex()
        for present in self._installed:
            if present.fingerprint == fingerprint and present.certificate_type == certificate_type:
                return present  # installing it again changes nothing
        if len(self._installed) >= self._max():
            raise CertificateRefused(f"the certificate store is full ({self._max()} certificates)")
        entry = Installed(certificate_type, fingerprint, certificate)
        folder = self.directory / certificate_type
        folder.mkdir(parents=True, exist_ok=True)
        write_atomically(folder / f"{fingerprint}.pem", entry.pem)
        self._installed.append(entry)
        self._save_index()
        self._write_bundle()
        log.info("installed %s %s (%s)", certificate_type, certificate.subject.rfc4514_string(), fingerprint[:16])
        return entry

    def delete(self, entry: Installed) -> None:
        self._installed = [c for c in self._installed if c is not entry]
        self._save_index()
        (self.directory / entry.certificate_type / f"{entry.fingerprint}.pem").unlink(missing_ok=True)
        self._write_bundle()
        log.info("deleted %s %s (%s)", entry.certificate_type, entry.certificate.subject.rfc4514_string(),
                 entry.fingerprint[:16])

    # ---- files -------------------------------------------------------------------------------

    def _load(self) -> list[Installed]:
        index = self.directory / INDEX_FILE
        try:
            rows = json.loads(index.read_text())["certificates"]
        except FileNotFoundError:
            return []
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.error("certificate index %s unreadable (%s): no certificates installed", index, exc)
            return []
        found = []
        for row in rows:
            path = self.directory / row["certificateType"] / f"{row['fingerprint']}.pem"
            try:
                certificate = x509.load_pem_x509_certificate(path.read_bytes())
            except (OSError, ValueError) as exc:
                log.error("installed certificate %s unreadable (%s): left out", path, exc)
                continue
            found.append(Installed(row["certificateType"], row["fingerprint"], certificate))
        return found

    def _save_index(self) -> None:
        rows = [{"certificateType": c.certificate_type, "fingerprint": c.fingerprint,
                 "subject": c.certificate.subject.rfc4514_string(),
                 "notAfter": c.certificate.not_valid_after_utc.isoformat(), **c.hash_data()}
                for c in self._installed]
        self.directory.mkdir(parents=True, exist_ok=True)
        write_atomically(self.directory / INDEX_FILE, json.dumps({"certificates": rows}, indent=1).encode())

    def _write_bundle(self) -> None:
        roots = self.installed(CENTRAL_SYSTEM_ROOT)
        bundle = self.directory / TRUST_BUNDLE
        if not roots:
            bundle.unlink(missing_ok=True)
            return
        parts = [c.pem for c in roots]
        if self.config_ca_file is not None:
            try:
                parts.append(self.config_ca_file.read_bytes())
            except OSError as exc:
                log.warning("ocpp.ca_file %s unreadable (%s): only the installed roots are trusted",
                            self.config_ca_file, exc)
        write_atomically(bundle, b"\n".join(p.strip() + b"\n" for p in parts))


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` in one step (a temporary file, synced, renamed); the file
    has mode 0600, as ``mkstemp`` creates it."""
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
