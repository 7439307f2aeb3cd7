"""Certificate management of the security whitepaper, end to end: InstallCertificate,
GetInstalledCertificateIds, DeleteCertificate against the running daemon, and security profile 2
verifying the backend with an installed CentralSystemRootCertificate (TLS on 127.0.0.1)."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from firmware_sim.central_system import CentralSystem
from firmware_sim.test_pki import create_test_pki
from firmware_sim.world import SimConnectorSpec, SimWorld
from stationd.config.station_file import parse_station_config
from stationd.ocpp_client.certificates import (
    CertificateRefused, CertificateStore, certificate_hash_data, parse_root)
from test_ocpp_client import BOX, Station

PASSWORD = "correct horse battery"
CS_ROOT, MF_ROOT = "CentralSystemRootCertificate", "ManufacturerRootCertificate"


def config(data_dir: Path, url: str, profile: int):
    return parse_station_config(
        f"identity: {{serial_number: IT0001, chargebox_id_template: 'TE-{{serial}}'}}\n"
        f"ocpp: {{endpoint: '{url}', security_profile: {profile}, authorization_key: '{PASSWORD}'}}\n"
        f"hardware:\n  connectors:\n    - {{id: 1, controller: {{transport: sim}}, meter: {{model: sim}}}}\n"
        f"  rfid: {{transport: sim}}\n"
        f"modbus_server: {{enabled: false, bind: '127.0.0.1:0'}}\n"
        f"data_dir: {data_dir}\n")


@pytest.fixture
async def world(tmp_path: Path):
    sim = SimWorld([SimConnectorSpec(1)], tmp_path / "sim", vehicle_reaction_s=0)
    await sim.start()
    yield sim
    await sim.stop()


def expected_ids(pem: str) -> dict:
    """The whitepaper's hashes, computed here independently of the station's code."""
    cert = x509.load_pem_x509_certificate(pem.encode())
    spki = cert.public_key().public_bytes(serialization.Encoding.X962,
                                          serialization.PublicFormat.UncompressedPoint)  # test PKI: EC keys
    return {"hashAlgorithm": "SHA256",
            "issuerNameHash": hashlib.sha256(cert.issuer.public_bytes()).hexdigest(),
            "issuerKeyHash": hashlib.sha256(spki).hexdigest(),
            "serialNumber": format(cert.serial_number, "x")}


def expired_root() -> str:
    """A self-signed CA certificate that expired yesterday."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "expired test root")])
    now = datetime.now(timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=10))
            .not_valid_after(now - timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode()


async def test_install_list_profile_2_with_the_installed_root_and_delete(tmp_path: Path, world: SimWorld):
    pki = create_test_pki(tmp_path / "pki")
    other = create_test_pki(tmp_path / "other")
    root, other_root = pki.ca_path.read_text(), other.ca_path.read_text()
    data = tmp_path / "data"
    async with CentralSystem(security_profile=1, passwords={BOX: PASSWORD}) as plain:
        station = Station(config(data, plain.url, 1), world)
        try:
            await plain.wait_for("BootNotification", timeout=15)
            # Profile 2 needs a CentralSystemRootCertificate first.
            assert await plain.call(BOX, "ChangeConfiguration", {"key": "SecurityProfile", "value": "2"}) == {
                "status": "Rejected"}
            assert await plain.call(BOX, "GetInstalledCertificateIds", {"certificateType": CS_ROOT}) == {
                "status": "NotFound"}
            for bad in ("not a certificate", root.replace("MII", "MIX", 1),
                        expired_root(),
                        (tmp_path / "pki" / "server.pem").read_text()):  # a server certificate, no CA
                assert await plain.call(BOX, "InstallCertificate", {"certificateType": CS_ROOT,
                                                                    "certificate": bad}) == {"status": "Rejected"}
            assert await plain.call(BOX, "InstallCertificate", {"certificateType": CS_ROOT, "certificate": root}) == {
                "status": "Accepted"}
            assert await plain.call(BOX, "InstallCertificate", {"certificateType": MF_ROOT,
                                                                "certificate": other_root}) == {"status": "Accepted"}
            listed = await plain.call(BOX, "GetInstalledCertificateIds", {"certificateType": CS_ROOT})
            assert listed == {"status": "Accepted", "certificateHashData": [expected_ids(root)]}
            listed = await plain.call(BOX, "GetInstalledCertificateIds", {"certificateType": MF_ROOT})
            assert listed["certificateHashData"] == [expected_ids(other_root)]
            assert station.store.get("CentralSystemRootCertificateInstalled") is True
            await plain.wait_for("SecurityEventNotification",
                                 predicate=lambda r: r.payload["type"] == "ReconfigurationOfSecurityParameters")
            assert sorted(p.name for p in (data / "certificates").iterdir()) == [
                CS_ROOT, MF_ROOT, "central-system-roots.pem", "index.json"]
        finally:
            await station.stop()

    # The next start, profile 2 with no ca_file in the config file: the installed root verifies.
    async with CentralSystem(security_profile=2, ssl_context=pki.server_context, passwords={BOX: PASSWORD}) as tls:
        station = Station(config(data, tls.url, 2), world)
        try:
            await tls.wait_for("BootNotification", timeout=15)
            assert tls.handshakes(BOX)[-1].user == BOX
            # The root in use cannot be deleted; an unknown one is NotFound; another one goes.
            in_use = expected_ids(root)
            assert await tls.call(BOX, "DeleteCertificate", {"certificateHashData": in_use}) == {"status": "Failed"}
            unknown = {**in_use, "serialNumber": "0123"}
            assert await tls.call(BOX, "DeleteCertificate", {"certificateHashData": unknown}) == {
                "status": "NotFound"}
            second = create_test_pki(tmp_path / "second").ca_path.read_text()
            assert await tls.call(BOX, "InstallCertificate", {"certificateType": CS_ROOT,
                                                              "certificate": second}) == {"status": "Accepted"}
            upper = {k: v.upper() for k, v in expected_ids(second).items()}
            upper["hashAlgorithm"] = "SHA256"
            assert await tls.call(BOX, "DeleteCertificate", {"certificateHashData": upper}) == {"status": "Accepted"}
            listed = await tls.call(BOX, "GetInstalledCertificateIds", {"certificateType": CS_ROOT})
            assert listed["certificateHashData"] == [in_use]
            listed = await tls.call(BOX, "GetInstalledCertificateIds", {"certificateType": MF_ROOT})
            assert listed["certificateHashData"] == [expected_ids(other_root)]
        finally:
            await station.stop()


def test_the_store_keeps_its_maximum_and_survives_a_restart(tmp_path: Path):
    pkis = [create_test_pki(tmp_path / f"p{i}").ca_path.read_text() for i in range(3)]
    store = CertificateStore(tmp_path, max_certificates=lambda: 2)
    assert store.trust_file() is None and not store.has_central_system_root()
    store.install(CS_ROOT, pkis[0])
    store.install(CS_ROOT, pkis[0])  # again: no change
    store.install(MF_ROOT, pkis[1])
    with pytest.raises(CertificateRefused, match="full"):
        store.install(CS_ROOT, pkis[2])
    again = CertificateStore(tmp_path, ca_file=tmp_path / "p2" / "ca.pem")
    assert [(c.certificate_type, c.pem.decode()) for c in again.installed()] == [(CS_ROOT, pkis[0]),
                                                                                  (MF_ROOT, pkis[1])]
    bundle = again.trust_file().read_text()
    assert pkis[0].strip() in bundle and pkis[2].strip() in bundle and pkis[1].strip() not in bundle
    entry = again.find(certificate_hash_data(again.installed(CS_ROOT)[0].certificate, "SHA512"))
    again.delete(entry)
    assert again.trust_file() == tmp_path / "p2" / "ca.pem"  # back to the config file's ca_file


def test_parse_root_refuses_what_is_not_a_current_root(tmp_path: Path):
    now = datetime.now(timezone.utc)
    with pytest.raises(CertificateRefused, match="PEM"):
        parse_root("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", now)
    with pytest.raises(CertificateRefused, match="expired"):
        parse_root(expired_root(), now)
    with pytest.raises(CertificateRefused, match="CA"):
        parse_root(create_test_pki(tmp_path / "s").cert_path.read_text(), now)
    assert parse_root(create_test_pki(tmp_path / "r", key_type="rsa").ca_path.read_text(), now).subject
