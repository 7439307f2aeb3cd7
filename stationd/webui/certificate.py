"""The WebUI's TLS certificate: the installer's own, or one the station makes itself.

Which certificate the WebUI serves, first match wins:

1. ``webui.tls_cert`` / ``webui.tls_key`` of the station config file;
2. a certificate the installer uploaded (Security page): ``<data dir>/webui/uploaded.pem`` +
   ``uploaded.key``;
3. a self-signed certificate made at the first start: ``<data dir>/webui/self-signed.pem`` +
   ``self-signed.key`` (ECDSA P-256, 10 years, for the station's addresses: the bind address,
   192.168.32.1 of the USB interface, localhost), kept across restarts so a browser's
   exception for it stays valid.

An upload is checked before it is kept: PEM certificate (chain) and an unencrypted PEM key
that belong together, the certificate valid now. It applies at once: the server's TLS
context loads it again, and new connections get it. Keys are written with mode 0600.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import logging
import os
import ssl
import sys
from dataclasses import dataclass
from pathlib import Path

from ..lazy_import import lazy_module

x509 = lazy_module("cryptography.x509")
hashes = lazy_module("cryptography.hazmat.primitives.hashes")
serialization = lazy_module("cryptography.hazmat.primitives.serialization")
ec = lazy_module("cryptography.hazmat.primitives.asymmetric.ec")

log = logging.getLogger("stationd.webui")

DIRECTORY = "webui"
SELF_SIGNED = ("self-signed.pem", "self-signed.key")
UPLOADED = ("uploaded.pem", "uploaded.key")
DEVICE_ADDRESS = "192.168.32.1"  # the USB interface's address on the device (a name in the certificate only)
MAX_PEM_BYTES = 64 * 1024


class CertificateRefused(ValueError):
    """An uploaded certificate/key that cannot be used; str() says why."""


@dataclass(frozen=True)
class CertificateInfo:
    subject: str
    issuer: str
    not_after: dt.datetime
    self_signed: bool
    origin: str  # "config file" | "uploaded" | "self-signed"


def server_files(data_dir: Path, config_cert: Path | None, config_key: Path | None, host: str) -> tuple[Path, Path, str]:
    """(certificate, key, origin) to serve; makes the self-signed pair when nothing else exists."""
    if config_cert is not None and config_key is not None:
        return Path(config_cert), Path(config_key), "config file"
    directory = Path(data_dir) / DIRECTORY
    uploaded = directory / UPLOADED[0], directory / UPLOADED[1]
    if all(path.is_file() for path in uploaded):
        return uploaded[0], uploaded[1], "uploaded"
    cert, key = directory / SELF_SIGNED[0], directory / SELF_SIGNED[1]
    if not (cert.is_file() and key.is_file()):
        make_self_signed(cert, key, host)
    return cert, key, "self-signed"


def self_signed_to_make(data_dir: Path, config_cert: Path | None, config_key: Path | None) -> tuple[Path, Path] | None:
    """The self-signed pair's (certificate, key) paths when :func:`server_files` would have to make it."""
    if config_cert is not None and config_key is not None:
        return None
    directory = Path(data_dir) / DIRECTORY
    if all((directory / name).is_file() for name in UPLOADED):
        return None
    cert, key = directory / SELF_SIGNED[0], directory / SELF_SIGNED[1]
    return None if cert.is_file() and key.is_file() else (cert, key)


async def make_self_signed_in_child(cert_path: Path, key_path: Path, host: str) -> bool:
    """Make the first start's self-signed pair in a short-lived child process
    (``python -m stationd.webui.certificate CERT KEY HOST``), so that the daemon does not load
    ``cryptography`` (about 8 MB resident for its lifetime) for a job done once. False when the
    child failed (logged); :func:`server_files` then makes the pair in the daemon itself."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "stationd.webui.certificate", str(cert_path), str(key_path), host,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    try:
        _, errors = await process.communicate()
    except asyncio.CancelledError:  # the daemon stops meanwhile: the child goes with it
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        raise
    if process.returncode != 0:
        log.warning("making the WebUI's self-signed certificate in a child process failed (exit %s): %s",
                    process.returncode, errors.decode(errors="replace").strip()[-500:])
        return False
    return True


def make_self_signed(cert_path: Path, key_path: Path, host: str) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.ORGANIZATION_NAME, "stationd"),
                      x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "stationd WebUI")])
    now = dt.datetime.now(dt.UTC)
    names: list[x509.GeneralName] = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(DEVICE_ADDRESS))]
    try:
        address = ipaddress.ip_address(host.strip("[]"))
        if address != ipaddress.ip_address(DEVICE_ADDRESS):
            names.append(x509.IPAddress(address))
    except ValueError:
        if host and host != "localhost":
            names.append(x509.DNSName(host))
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    _write(key_path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()), mode=0o600)
    _write(cert_path, certificate.public_bytes(serialization.Encoding.PEM), mode=0o644)


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    return context


def check_upload(cert_pem: bytes, key_pem: bytes) -> CertificateInfo:
    """The uploaded pair's facts; CertificateRefused when it cannot serve the WebUI."""
    if len(cert_pem) > MAX_PEM_BYTES or len(key_pem) > MAX_PEM_BYTES:
        raise CertificateRefused(f"a certificate or key file is limited to {MAX_PEM_BYTES // 1024} KiB")
    try:
        chain = x509.load_pem_x509_certificates(cert_pem)
    except ValueError:
        raise CertificateRefused("the certificate file is not a PEM certificate") from None
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError):
        raise CertificateRefused("the key file is not an unencrypted PEM private key") from None
    leaf = chain[0]
    if leaf.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) != \
            key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo):
        raise CertificateRefused("the key does not belong to the certificate")
    now = dt.datetime.now(dt.UTC)
    if not leaf.not_valid_before_utc <= now <= leaf.not_valid_after_utc:
        raise CertificateRefused(f"the certificate is not valid now (valid {leaf.not_valid_before_utc:%Y-%m-%d} "
                                 f"to {leaf.not_valid_after_utc:%Y-%m-%d})")
    return describe(leaf, "uploaded")


def install_upload(data_dir: Path, cert_pem: bytes, key_pem: bytes) -> CertificateInfo:
    info = check_upload(cert_pem, key_pem)
    directory = Path(data_dir) / DIRECTORY
    directory.mkdir(parents=True, exist_ok=True)
    _write(directory / UPLOADED[1], key_pem, mode=0o600)
    _write(directory / UPLOADED[0], cert_pem, mode=0o644)
    return info


def describe(certificate: x509.Certificate, origin: str) -> CertificateInfo:
    return CertificateInfo(certificate.subject.rfc4514_string(), certificate.issuer.rfc4514_string(),
                           certificate.not_valid_after_utc, certificate.subject == certificate.issuer, origin)


def describe_file(path: Path, origin: str) -> CertificateInfo:
    return describe(x509.load_pem_x509_certificates(Path(path).read_bytes())[0], origin)


def _write(path: Path, data: bytes, *, mode: int) -> None:
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(temporary, mode)
    os.replace(temporary, path)


if __name__ == "__main__":  # python -m stationd.webui.certificate CERT KEY HOST (see make_self_signed_in_child)
    if len(sys.argv) != 4:
        sys.exit("usage: python -m stationd.webui.certificate CERT KEY HOST")
    make_self_signed(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3])
