"""A throwaway CA and server certificate for TLS on loopback (security profile 2 in tests).

    pki = create_test_pki(tmp_path)                 # writes ca.pem, server.pem, server.key
    cs = CentralSystem(security_profile=2, ssl_context=pki.server_context, passwords=...)
    client_ctx = pki.client_context()               # trusts only the throwaway CA
    # or give the station pki.ca_path as its CentralSystemRootCertificate / --ca-file

The server certificate is for CN ``localhost`` with subjectAltName DNS ``localhost`` and IP
``127.0.0.1`` and ``::1``, so both ``wss://localhost:P`` and ``wss://127.0.0.1:P`` verify.
Keys are ECDSA P-256 by default (the whitepaper's ECDHE-ECDSA suites) or RSA 2048. The
certificates carry the extensions a strict verifier wants (critical basicConstraints, key usage,
subject/authority key identifiers), so they also pass ``VERIFY_X509_STRICT``. ``expired=True``
or other names make certificates that a station must refuse (InvalidCentralSystemCertificate).
Nothing here is secret or lasting: the CA key is not even written to disk.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
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

    def client_context(self) -> ssl.SSLContext:
        """A client context that verifies the chain against ca.pem and checks the host name."""
        return ssl.create_default_context(cafile=str(self.ca_path))


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
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False,
                key_encipherment=key_type == "rsa", data_encipherment=False, key_agreement=False,
                key_cert_sign=False, crl_sign=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
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
    return ThrowawayPKI(out, ca_path, cert_path, key_path, context)
