"""A throwaway CA and server certificate for TLS on loopback (security profiles 2 and 3 in tests).

    pki = create_test_pki(tmp_path)                 # writes ca.pem, server.pem, server.key
    cs = CentralSystem(security_profile=2, ssl_context=pki.server_context, passwords=...)
    client_ctx = pki.client_context()               # trusts only the throwaway CA
    # or give the station pki.ca_path as its CentralSystemRootCertificate / --ca-file

Security profile 3 (TLS client certificates)::

    chain = pki.sign_csr(csr_pem)                   # the station's CSR → its certificate (PEM)
    cs = CentralSystem(security_profile=3, ssl_context=pki.client_auth_context())

The server certificate is for CN ``localhost`` with subjectAltName DNS ``localhost`` and IP
``127.0.0.1`` and ``::1``, so both ``wss://localhost:P`` and ``wss://127.0.0.1:P`` verify.
Keys are ECDSA P-256 by default (the whitepaper's ECDHE-ECDSA suites) or RSA 2048. The
certificates carry the extensions a strict verifier wants (critical basicConstraints, key usage,
subject/authority key identifiers), so they also pass ``VERIFY_X509_STRICT``. ``expired=True``
or other names make certificates that a station must refuse (InvalidCentralSystemCertificate).
:meth:`ThrowawayPKI.sign_csr` issues client certificates (clientAuth) the same way; its options
make ones a station must refuse (InvalidChargePointCertificate).
Nothing here is secret or lasting: the CA key is kept in memory only, never written to disk.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["ThrowawayPKI", "create_test_pki"]

_PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@dataclass(frozen=True)
class ThrowawayPKI:
    directory: Path
    ca_path: Path  # ca.pem: what clients trust
    cert_path: Path  # server.pem: the server certificate followed by the CA certificate
    key_path: Path  # server.key: the server's private key (PKCS#8, unencrypted, mode 0600)
    server_context: ssl.SSLContext  # TLS >= 1.2, loaded with server.pem + server.key
    ca_certificate: x509.Certificate
    ca_key: _PrivateKey = field(repr=False)  # in memory only

    def client_context(self) -> ssl.SSLContext:
        """A client context that verifies the chain against ca.pem and checks the host name."""
        return ssl.create_default_context(cafile=str(self.ca_path))

    def client_auth_context(self) -> ssl.SSLContext:
        """A server context like ``server_context`` that also requires a client certificate
        issued by this CA (``CERT_REQUIRED``): a security profile 3 backend."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.cert_path, self.key_path)
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cafile=str(self.ca_path))
        return context

    def sign_csr(self, csr_pem: str | bytes, *, days: float = 90.0, expired: bool = False,
                 common_name: str | None = None, with_ca: bool = False) -> str:
        """A client certificate (PEM) for the CSR's key and subject, issued by this CA: valid
        from 5 minutes ago for ``days`` (the default lies beyond a station's 30-day renewal
        window); ``expired`` ended yesterday; ``common_name`` replaces the CSR's CN; ``with_ca``
        appends the CA certificate (a chain up to the root)."""
        csr = x509.load_pem_x509_csr(csr_pem.encode() if isinstance(csr_pem, str) else csr_pem)
        if not csr.is_signature_valid:
            raise ValueError("the CSR's signature does not verify")
        subject = csr.subject
        if common_name is not None:
            subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                                 *(a for a in subject if a.oid != NameOID.COMMON_NAME)])
        now = dt.datetime.now(dt.UTC)
        not_before, not_after = now - dt.timedelta(minutes=5), now + dt.timedelta(days=days)
        if expired:
            not_before, not_after = now - dt.timedelta(days=10), now - dt.timedelta(days=1)
        ca_ski = x509.SubjectKeyIdentifier.from_public_key(self.ca_key.public_key())
        certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.ca_certificate.subject)
            .public_key(csr.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(key_encipherment=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(csr.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
            .sign(self.ca_key, hashes.SHA256())
        )
        pem = certificate.public_bytes(serialization.Encoding.PEM)
        if with_ca:
            pem += self.ca_certificate.public_bytes(serialization.Encoding.PEM)
        return pem.decode()


def _key_usage(*, key_encipherment: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=key_encipherment,
        data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
        encipher_only=False, decipher_only=False,
    )


def _new_key(key_type: str) -> _PrivateKey:
    if key_type == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    raise ValueError(f"key_type must be 'ec' or 'rsa', not {key_type!r}")


def create_test_pki(
    directory: str | os.PathLike[str],
    *,
    common_name: str = "localhost",
    dns_names: Sequence[str] = ("localhost",),
    ip_addresses: Sequence[str] = ("127.0.0.1", "::1"),
    valid_days: float = 2.0,
    expired: bool = False,
    key_type: str = "ec",
) -> ThrowawayPKI:
    """Make a CA and a server certificate signed by it; write ca.pem / server.pem / server.key
    into ``directory`` (created if needed) and return the paths and a server SSLContext."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    if expired:
        not_before, not_after = now - dt.timedelta(days=10), now - dt.timedelta(days=1)
    else:
        not_before, not_after = now - dt.timedelta(minutes=5), now + dt.timedelta(days=valid_days)

    ca_key = _new_key(key_type)
    ca_name = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "stationd tests"),
        x509.NameAttribute(NameOID.COMMON_NAME, "stationd throwaway test CA"),
    ])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1) if not expired else not_before)
        .not_valid_after(now + dt.timedelta(days=max(valid_days, 1) + 1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    server_key = _new_key(key_type)
    alt_names: list[x509.GeneralName] = [x509.DNSName(name) for name in dns_names]
    alt_names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses]
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(key_encipherment=key_type == "rsa"), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(server_key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
    )
    if alt_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
    server_cert = builder.sign(ca_key, hashes.SHA256())

    pem = serialization.Encoding.PEM
    ca_path, cert_path, key_path = out / "ca.pem", out / "server.pem", out / "server.key"
    ca_path.write_bytes(ca_cert.public_bytes(pem))
    cert_path.write_bytes(server_cert.public_bytes(pem) + ca_cert.public_bytes(pem))
    key_bytes = server_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key_bytes)

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_path, key_path)
    return ThrowawayPKI(out, ca_path, cert_path, key_path, context, ca_cert, ca_key)
