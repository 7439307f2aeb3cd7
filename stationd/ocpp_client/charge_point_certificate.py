"""The charge point certificate of security profile 3 (OCPP 1.6 security whitepaper, A02/A03).

The station makes its own key pairs (ECDSA P-256) and asks the backend to have them signed with
a PKCS#10 certificate signing request (the CSR of SignCertificate.req): subject CN = the
station's serial number (SerialNumber, BootNotification's chargePointSerialNumber) and O =
CpoName (left out while CpoName is empty), signed with the new key (SHA-256). Every CSR makes a
new key pair, the *pending* key; only the latest one is pending.

CertificateSigned.req is accepted when its certificateChain (PEM, leaf first, sub-CAs after it)

- has at most CertificateSignedMaxChainSize characters and holds only PEM X.509 certificates;
- has a leaf whose public key is the pending key's (a new certificate for the latest CSR) or the
  current key's (the same key signed again);
- names the serial number as the leaf's CN (one CN, exactly the serial number);
- is valid now;
- verifies up to a trust anchor of the backend connection
  (:meth:`~stationd.ocpp_client.certificates.CertificateStore.central_system_roots`: the installed
  CentralSystemRootCertificates and the config file's ca_file), with the chain rules of
  ``cryptography``'s verifier for the CA certificates; the leaf may have any extensions, but an
  extendedKeyUsage without clientAuth is refused (a TLS server would refuse it too).

Anything else is :class:`~stationd.ocpp_client.certificates.CertificateRefused` (→ Rejected) and
nothing changes. Accepted, the chain and its key become the current pair and the pair before it
is kept as the previous one.

Files, under ``<data dir>/certificates/charge-point/``, each replaced in one step (mode 0600;
private keys are never logged)::

    pending.key     the key of the outstanding CSR (PKCS#8 PEM)
    current.pem     the charge point certificate chain, leaf first
    current.key     its private key
    previous.pem    the pair before the last accepted CertificateSigned: the fallback that
    previous.key    profile 3 connects with while the current pair cannot be used

A pair is usable when both files load, the key is the leaf's and the leaf is valid now (a pair
half written when the station lost power fails the first test, and the other pair is used).

Renewal (A03): :meth:`ChargePointCertificates.renewal_due` says when the current certificate
expires within :data:`RENEW_BEFORE` and the station has not asked for a renewal within
:data:`RENEWAL_INTERVAL` (the pending key's age counts after a restart).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ..lazy_import import lazy_module
from .certificates import (
    CERTIFICATES_DIR,
    CertificateRefused,
    CertificateStore,
    write_atomically,
)
from .tls import ClientCertificate

x509 = lazy_module("cryptography.x509")
hashes = lazy_module("cryptography.hazmat.primitives.hashes")
serialization = lazy_module("cryptography.hazmat.primitives.serialization")
ec = lazy_module("cryptography.hazmat.primitives.asymmetric.ec")

log = logging.getLogger("stationd.ocpp.certificates")

FOLDER = "charge-point"
PENDING_KEY = "pending.key"
CURRENT, PREVIOUS = "current", "previous"
RENEW_BEFORE = timedelta(days=30)
RENEWAL_INTERVAL = timedelta(days=1)


class ChargePointCertificates:
    """The station's key pairs and charge point certificates in one data directory."""

    def __init__(self, data_dir: Path, *, serial_number: Callable[[], str], cpo_name: Callable[[], str],
                 max_chain_size: Callable[[], int], trust_anchors: Callable[[], list[x509.Certificate]],
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self.directory = Path(data_dir) / CERTIFICATES_DIR / FOLDER
        self._serial_number, self._cpo_name = serial_number, cpo_name
        self._max_chain_size, self._trust_anchors, self._clock = max_chain_size, trust_anchors, clock
        pending = self.directory / PENDING_KEY
        self._renewal_asked_at = (datetime.fromtimestamp(pending.stat().st_mtime, UTC)
                                  if pending.exists() else None)

    @classmethod
    def for_store(cls, data_dir: Path, store, certificates: CertificateStore,
                  clock: Callable[[], datetime]) -> ChargePointCertificates:
        """Wired to the configuration keys (SerialNumber, CpoName, CertificateSignedMaxChainSize)
        and the station's root certificates."""
        return cls(data_dir, serial_number=lambda: str(store.get("SerialNumber")),
                   cpo_name=lambda: str(store.get("CpoName") or ""),
                   max_chain_size=lambda: int(store.get("CertificateSignedMaxChainSize")),
                   trust_anchors=certificates.central_system_roots, clock=clock)

    # ---- the CSR -------------------------------------------------------------------------

    def new_csr(self) -> str:
        """A new pending key pair and its CSR (PEM text) for SignCertificate.req."""
        key = ec.generate_private_key(ec.SECP256R1())
        self.directory.mkdir(parents=True, exist_ok=True)
        write_atomically(self.directory / PENDING_KEY, _private_pem(key))
        subject = [x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, self._serial_number())]
        if self._cpo_name():
            subject.append(x509.NameAttribute(x509.oid.NameOID.ORGANIZATION_NAME, self._cpo_name()))
        csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(subject)).sign(key, hashes.SHA256())
        log.info("new key pair and CSR for %s", csr.subject.rfc4514_string())
        return csr.public_bytes(serialization.Encoding.PEM).decode()

    # ---- CertificateSigned -----------------------------------------------------------------

    def accept(self, certificate_chain: str) -> x509.Certificate:
        """Check a CertificateSigned certificateChain (module docstring) and make it the current
        certificate; returns its leaf. CertificateRefused says why not; OSError when it cannot
        be written."""
        limit = self._max_chain_size()
        if len(certificate_chain) > limit:
            raise CertificateRefused(f"the certificate chain has {len(certificate_chain)} characters, more than "
                                     f"CertificateSignedMaxChainSize ({limit})")
        try:
            chain = x509.load_pem_x509_certificates(certificate_chain.encode())
        except ValueError as exc:
            raise CertificateRefused(f"not a PEM X.509 certificate chain ({exc})") from None
        leaf = chain[0]
        key, pending = self._key_of(leaf)
        serial = self._serial_number()
        names = [attribute.value for attribute in leaf.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)]
        if names != [serial]:
            raise CertificateRefused(f"the certificate's CN is {', '.join(map(str, names)) or 'missing'}, "
                                     f"not the station's serial number {serial}")
        now = self._clock()
        if now < leaf.not_valid_before_utc:
            raise CertificateRefused(f"not valid before {leaf.not_valid_before_utc.isoformat()}")
        if now > leaf.not_valid_after_utc:
            raise CertificateRefused(f"expired on {leaf.not_valid_after_utc.isoformat()}")
        self._verify_chain(leaf, chain[1:], now)
        self._install(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain), key)
        if pending:
            (self.directory / PENDING_KEY).unlink(missing_ok=True)
        log.info("charge point certificate %s (serial %x, valid until %s) is now current",
                 leaf.subject.rfc4514_string(), leaf.serial_number, leaf.not_valid_after_utc.isoformat())
        return leaf

    def _key_of(self, leaf: x509.Certificate) -> tuple[ec.EllipticCurvePrivateKey, bool]:
        """The station's private key for the leaf's public key, and whether it is the pending one."""
        wanted = _public_der(leaf.public_key())
        for path, pending in ((self.directory / PENDING_KEY, True), (self.directory / f"{CURRENT}.key", False)):
            key = _load_key(path)
            if key is not None and _public_der(key.public_key()) == wanted:
                return key, pending
        raise CertificateRefused("the certificate's public key is not the key of the station's latest CSR "
                                 "(nor its current key)")

    def _verify_chain(self, leaf: x509.Certificate, intermediates: list[x509.Certificate], now: datetime) -> None:
        roots = self._trust_anchors()
        if not roots:
            raise CertificateRefused("no CentralSystemRootCertificate is installed to verify it with")
        leaf_policy = x509.verification.ExtensionPolicy.permit_all().may_be_present(
            x509.ExtendedKeyUsage, x509.verification.Criticality.AGNOSTIC, _client_auth_usage)
        verifier = (x509.verification.PolicyBuilder().store(x509.verification.Store(roots)).time(now)
                    .extension_policies(ca_policy=x509.verification.ExtensionPolicy.webpki_defaults_ca(),
                                        ee_policy=leaf_policy)
                    .build_client_verifier())
        try:
            verifier.verify(leaf, intermediates)
        except x509.verification.VerificationError as exc:
            raise CertificateRefused(f"the chain does not verify up to an installed CentralSystemRootCertificate "
                                     f"({exc})") from None

    def _install(self, chain: bytes, key: ec.EllipticCurvePrivateKey) -> None:
        """The current pair becomes the previous one, the new pair the current one (key before
        chain: a pair cut short by a power loss does not match and is not used)."""
        for suffix in ("key", "pem"):
            current = self.directory / f"{CURRENT}.{suffix}"
            if current.exists():
                write_atomically(self.directory / f"{PREVIOUS}.{suffix}", current.read_bytes())
        write_atomically(self.directory / f"{CURRENT}.key", _private_pem(key))
        write_atomically(self.directory / f"{CURRENT}.pem", chain)

    # ---- for the connection ----------------------------------------------------------------

    def credentials(self) -> ClientCertificate | None:
        """What security profile 3 connects with: the current pair, else the previous one, when
        usable (module docstring); None when neither is."""
        current = self._usable(CURRENT)
        if current is not None:
            return current
        previous = self._usable(PREVIOUS)
        if previous is not None and (self.directory / f"{CURRENT}.pem").exists():
            log.warning("the current charge point certificate cannot be used; using the previous one")
        return previous

    def installed(self) -> bool:
        """ChargePointCertificateInstalled: a usable pair is there."""
        return self.credentials() is not None

    def _usable(self, name: str) -> ClientCertificate | None:
        chain_file, key_file = self.directory / f"{name}.pem", self.directory / f"{name}.key"
        leaf, key = _load_leaf(chain_file), _load_key(key_file)
        if leaf is None or key is None or _public_der(leaf.public_key()) != _public_der(key.public_key()):
            return None
        if not leaf.not_valid_before_utc <= self._clock() <= leaf.not_valid_after_utc:
            return None
        return ClientCertificate(chain_file, key_file)

    # ---- renewal ---------------------------------------------------------------------------

    def renewal_due(self) -> bool:
        """The current certificate expires within RENEW_BEFORE (or has expired) and no renewal
        was asked for within RENEWAL_INTERVAL."""
        leaf = _load_leaf(self.directory / f"{CURRENT}.pem")
        now = self._clock()
        if leaf is None or leaf.not_valid_after_utc - now > RENEW_BEFORE:
            return False
        return self._renewal_asked_at is None or now - self._renewal_asked_at >= RENEWAL_INTERVAL

    def renewal_asked(self) -> None:
        """The backend answered a renewal's SignCertificate: no other one for RENEWAL_INTERVAL."""
        self._renewal_asked_at = self._clock()

    def expiry(self) -> datetime | None:
        """When the current certificate expires (None: there is none)."""
        leaf = _load_leaf(self.directory / f"{CURRENT}.pem")
        return leaf.not_valid_after_utc if leaf is not None else None


def _client_auth_usage(policy, certificate: x509.Certificate, usage: x509.ExtendedKeyUsage | None) -> None:
    if usage is not None and x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH not in usage:
        raise ValueError("the extendedKeyUsage does not allow TLS client authentication (clientAuth)")


def _private_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def _public_der(key) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _load_key(path: Path):
    try:
        return serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError):
        return None


def _load_leaf(path: Path) -> x509.Certificate | None:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())  # the first certificate: the leaf
    except (OSError, ValueError):
        return None
