"""Security profile 3 of the OCPP 1.6 security whitepaper: the station's own key pair, its CSR
(ExtendedTriggerMessage SignChargePointCertificate → SignCertificate), the backend's
CertificateSigned, and TLS with the charge point certificate as client certificate. End to end:
the daemon with simulated hardware and real central systems with real TLS on 127.0.0.1, the CA
being the throwaway test PKI; plus the certificate store and the connection on their own."""

from __future__ import annotations

import ssl
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from test_ocpp_certificates import CS_ROOT, PASSWORD, config
from test_ocpp_client import BOX, Station, until
from test_ocpp_connection import blocking_tls_server, make_store

from firmware_sim.central_system import CentralSystem
from firmware_sim.test_pki import ThrowawayPKI, create_test_pki
from firmware_sim.world import SimConnectorSpec, SimWorld
from stationd.config.value_types import Source
from stationd.ocpp_client.certificates import CertificateRefused, CertificateStore
from stationd.ocpp_client.charge_point_certificate import ChargePointCertificates
from stationd.ocpp_client.connection import open_connection
from stationd.ocpp_client.errors import ConnectFailed

SERIAL = "IT0001"  # the serial number of test_ocpp_certificates.config()
CPO = "Test CPO"
INVALID = "InvalidChargePointCertificate"


# ---- fixtures and helpers ------------------------------------------------------------------

@pytest.fixture
def pki(tmp_path: Path) -> ThrowawayPKI:
    return create_test_pki(tmp_path / "pki")


@pytest.fixture
async def world(tmp_path: Path):
    sim = SimWorld([SimConnectorSpec(1)], tmp_path / "sim", vehicle_reaction_s=0)
    await sim.start()
    yield sim
    await sim.stop()


@pytest.fixture
async def secure(pki: ThrowawayPKI):
    """The backend of security profile 2 (HTTP Basic over TLS)."""
    async with CentralSystem(security_profile=2, ssl_context=pki.server_context, passwords={BOX: PASSWORD}) as cs:
        yield cs


@pytest.fixture
async def station(tmp_path: Path, pki: ThrowawayPKI, secure: CentralSystem, world: SimWorld):
    """The station under security profile 2, the test CA installed as CentralSystemRootCertificate."""
    data = tmp_path / "data"
    CertificateStore(data).install(CS_ROOT, pki.ca_path.read_text())
    running = Station(config(data, secure.url, 2), world)
    await secure.wait_for("BootNotification", timeout=15)
    yield running
    await running.stop()


def folder(tmp_path: Path) -> Path:
    return tmp_path / "data" / "certificates" / "charge-point"


async def signing_request(cs: CentralSystem) -> x509.CertificateSigningRequest:
    """ExtendedTriggerMessage SignChargePointCertificate and the CSR it brings."""
    assert await cs.call(BOX, "ExtendedTriggerMessage", {"requestedMessage": "SignChargePointCertificate"}) == {
        "status": "Accepted"}
    record = await cs.wait_for("SignCertificate", timeout=10)
    return x509.load_pem_x509_csr(record.payload["csr"].encode())


def pem(csr: x509.CertificateSigningRequest) -> str:
    return csr.public_bytes(serialization.Encoding.PEM).decode()


async def certificate_signed(cs: CentralSystem, chain: str) -> str:
    return (await cs.call(BOX, "CertificateSigned", {"certificateChain": chain}))["status"]


def events(cs: CentralSystem, kind: str) -> list[str]:
    return [p.get("techInfo", "") for p in cs.payloads("SecurityEventNotification", BOX) if p["type"] == kind]


async def key_value(cs: CentralSystem, key: str) -> str:
    answer = await cs.call(BOX, "GetConfiguration", {"key": [key]})
    return answer["configurationKey"][0]["value"]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# ---- end to end ----------------------------------------------------------------------------

async def test_the_station_gets_a_certificate_and_connects_with_it_under_profile_3(
        tmp_path: Path, pki: ThrowawayPKI, secure: CentralSystem, station: Station):
    assert await secure.call(BOX, "ChangeConfiguration", {"key": "CpoName", "value": CPO}) == {"status": "Accepted"}
    # No charge point certificate yet: profile 3 is refused.
    assert await key_value(secure, "ChargePointCertificateInstalled") == "false"
    assert await secure.call(BOX, "ChangeConfiguration", {"key": "SecurityProfile", "value": "3"}) == {
        "status": "Rejected"}

    csr = await signing_request(secure)
    assert csr.is_signature_valid
    assert csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == SERIAL
    assert csr.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == CPO
    assert isinstance(csr.public_key(), ec.EllipticCurvePublicKey)
    answered = [r.seq for r in secure.messages(BOX) if r.action == "ExtendedTriggerMessage" and r.direction == "in"]
    asked = [r.seq for r in secure.messages(BOX) if r.action == "SignCertificate" and r.direction == "in"]
    assert answered[0] < asked[0]  # the .conf first, then the triggered message
    assert mode(folder(tmp_path) / "pending.key") == 0o600

    chain = pki.sign_csr(pem(csr))
    assert await certificate_signed(secure, chain) == "Accepted"
    files = folder(tmp_path)
    assert sorted(p.name for p in files.iterdir()) == ["current.key", "current.pem"]  # the pending key used up
    assert mode(files / "current.key") == 0o600
    assert (files / "current.pem").read_text() == chain
    key = serialization.load_pem_private_key((files / "current.key").read_bytes(), None)
    der = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    assert key.public_key().public_bytes(*der) == csr.public_key().public_bytes(*der)
    assert await key_value(secure, "ChargePointCertificateInstalled") == "true"

    async with CentralSystem(security_profile=3, ssl_context=pki.client_auth_context()) as mutual:
        # The backend moves the station to its client-certificate endpoint and raises the profile.
        assert await secure.call(BOX, "ChangeConfiguration", {"key": "Endpoint", "value": mutual.url}) == {
            "status": "Accepted"}
        assert await secure.call(BOX, "ChangeConfiguration", {"key": "SecurityProfile", "value": "3"}) == {
            "status": "Accepted"}
        await mutual.wait_connected(BOX, timeout=15)
        handshake = mutual.handshakes(BOX)[-1]
        assert handshake.status == 101
        assert handshake.client_certificate == f"O={CPO},CN={SERIAL}"
        assert handshake.user is None  # no HTTP Basic header under profile 3
        manager = station.station.ocpp.manager
        await until(lambda: manager.profile_state.confirmed_profile == 3)
        assert station.store.get("SecurityProfile") == 3 and manager.profile_state.trial_profile is None

        # A new certificate under profile 3: the station reconnects with it, and since it expires
        # within 30 days, asks for its renewal on its own.
        renewal_csr = await signing_request(mutual)
        short = pki.sign_csr(pem(renewal_csr), days=10)
        assert await certificate_signed(mutual, short) == "Accepted"
        await until(lambda: len(mutual.handshakes(BOX)) == 2 and mutual.connected(BOX))
        assert (files / "previous.pem").read_text() == chain and (files / "current.pem").read_text() == short
        renewal = await mutual.wait_for("SignCertificate", timeout=15)
        again = x509.load_pem_x509_csr(renewal.payload["csr"].encode())
        assert again.is_signature_valid
        assert again.public_key().public_bytes(*der) != renewal_csr.public_key().public_bytes(*der)
        assert again.subject == renewal_csr.subject


async def test_a_certificate_that_does_not_fit_is_rejected_and_changes_nothing(
        tmp_path: Path, pki: ThrowawayPKI, secure: CentralSystem, station: Station):
    first = await signing_request(secure)
    assert await certificate_signed(secure, pki.sign_csr(pem(first))) == "Accepted"
    csr = await signing_request(secure)  # a second request: a new pending key
    files = folder(tmp_path)
    before = {p.name: p.read_bytes() for p in files.iterdir()}
    assert sorted(before) == ["current.key", "current.pem", "pending.key"]

    stranger = ec.generate_private_key(ec.SECP256R1())
    foreign_csr = (x509.CertificateSigningRequestBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, SERIAL)]))
                   .sign(stranger, hashes.SHA256()))
    other_ca = create_test_pki(tmp_path / "other")
    good = pki.sign_csr(pem(csr))
    refused = [
        (pki.sign_csr(pem(foreign_csr)), "public key"),
        (pki.sign_csr(pem(csr), common_name="IT0002"), "CN is IT0002"),
        (pki.sign_csr(pem(csr), expired=True), "expired"),
        (other_ca.sign_csr(pem(csr)), "does not verify"),
        ("not a certificate", "PEM"),
        (good.replace("MII", "MIX", 1), "PEM"),
    ]
    for chain, _ in refused:
        assert await certificate_signed(secure, chain) == "Rejected"
    station.store.provide("CertificateSignedMaxChainSize", lambda: len(good) - 1)
    assert await certificate_signed(secure, good) == "Rejected"
    refused.append((good, "CertificateSignedMaxChainSize"))

    await until(lambda: len(events(secure, INVALID)) == len(refused))
    for tech_info, (_, why) in zip(events(secure, INVALID), refused, strict=True):
        assert why in tech_info
    assert {p.name: p.read_bytes() for p in files.iterdir()} == before

    # The pending key still waits for its certificate; a chain up to the root is fine too.
    station.store.provide("CertificateSignedMaxChainSize", lambda: 10000)
    with_root = pki.sign_csr(pem(csr), with_ca=True)
    assert await certificate_signed(secure, with_root) == "Accepted"
    assert (files / "previous.pem").read_bytes() == before["current.pem"]
    assert (files / "previous.key").read_bytes() == before["current.key"]
    assert (files / "current.key").read_bytes() == before["pending.key"]
    assert not (files / "pending.key").exists()


async def test_a_profile_3_trial_that_fails_its_first_connection_falls_back_to_2(
        pki: ThrowawayPKI, secure: CentralSystem, station: Station):
    csr = await signing_request(secure)
    assert await certificate_signed(secure, pki.sign_csr(pem(csr))) == "Accepted"
    # The profile 2 backend wants HTTP Basic, which profile 3 does not send: 401, back to 2.
    assert await secure.call(BOX, "ChangeConfiguration", {"key": "SecurityProfile", "value": "3"}) == {
        "status": "Accepted"}
    await until(lambda: len(secure.handshakes(BOX)) == 3 and secure.connected(BOX), timeout=15)
    _, trial, fallback = secure.handshakes(BOX)
    assert (trial.status, trial.user) == (401, None)
    assert (fallback.status, fallback.user) == (101, BOX)
    assert station.store.get("SecurityProfile") == 2
    await until(lambda: any("fallback" in e for e in events(secure, "ReconfigurationOfSecurityParameters")))
    await until(lambda: events(secure, "FailedToAuthenticationAtCentralSystem"))


# ---- the charge point certificates on their own ----------------------------------------------

class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


def certificates_in(directory: Path, pki: ThrowawayPKI, clock: Clock) -> ChargePointCertificates:
    return ChargePointCertificates(directory, serial_number=lambda: SERIAL, cpo_name=lambda: "",
                                   max_chain_size=lambda: 10000, trust_anchors=lambda: [pki.ca_certificate],
                                   clock=clock)


def test_renewal_is_due_30_days_before_expiry_and_asked_at_most_once_a_day(tmp_path: Path, pki: ThrowawayPKI):
    clock = Clock()
    certificates = certificates_in(tmp_path, pki, clock)
    assert not certificates.renewal_due()  # no certificate, nothing to renew
    csr = x509.load_pem_x509_csr(certificates.new_csr().encode())
    assert csr.subject == x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, SERIAL)])  # no CpoName: no O
    certificates.accept(pki.sign_csr(pem(csr), days=40))
    assert not certificates.renewal_due()
    clock.now += timedelta(days=11)
    assert certificates.renewal_due()
    certificates.renewal_asked()
    clock.now += timedelta(hours=23)
    assert not certificates.renewal_due()
    clock.now += timedelta(hours=1)
    assert certificates.renewal_due()
    # After a restart, the pending key of the latest CSR counts as the latest request.
    clock.now = datetime.now(UTC)
    certificates.accept(pki.sign_csr(certificates.new_csr(), days=20))
    certificates.new_csr()
    restarted = certificates_in(tmp_path, pki, clock)
    assert not restarted.renewal_due()
    clock.now += timedelta(days=1, minutes=1)
    assert restarted.renewal_due()


def test_only_the_latest_csr_is_pending_and_a_server_only_certificate_is_refused(tmp_path: Path,
                                                                                  pki: ThrowawayPKI):
    certificates = certificates_in(tmp_path, pki, Clock())
    older, latest = certificates.new_csr(), certificates.new_csr()
    with pytest.raises(CertificateRefused, match="not the key of the station's latest CSR"):
        certificates.accept(pki.sign_csr(older))
    csr = x509.load_pem_x509_csr(latest.encode())
    now = datetime.now(UTC)
    server_only = (x509.CertificateBuilder().subject_name(csr.subject).issuer_name(pki.ca_certificate.subject)
                   .public_key(csr.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=90))
                   .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                   .sign(pki.ca_key, hashes.SHA256()))
    with pytest.raises(CertificateRefused, match="clientAuth"):
        certificates.accept(server_only.public_bytes(serialization.Encoding.PEM).decode())
    assert certificates.credentials() is None
    certificates.accept(pki.sign_csr(latest))
    assert certificates.installed()


def test_profile_3_uses_the_previous_pair_while_the_current_one_is_unusable(tmp_path: Path, pki: ThrowawayPKI):
    certificates = certificates_in(tmp_path, pki, Clock())
    assert certificates.credentials() is None and not certificates.installed()
    certificates.accept(pki.sign_csr(certificates.new_csr()))
    first = certificates.credentials()
    assert first is not None and first.chain_file.name == "current.pem"
    certificates.accept(pki.sign_csr(certificates.new_csr()))
    directory = first.chain_file.parent
    # A power loss between the key and the chain: the current key does not match its chain.
    (directory / "current.key").write_bytes((directory / "previous.key").read_bytes())
    fallback = certificates.credentials()
    assert fallback is not None and fallback.chain_file.name == "previous.pem"
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_cert_chain(fallback.chain_file, fallback.key_file)  # a pair TLS can use
    (directory / "previous.pem").unlink()
    assert certificates.credentials() is None and not certificates.installed()
    with pytest.raises(CertificateRefused, match="not the key of the station's latest CSR"):
        certificates.accept(pki.sign_csr(certificates_in(tmp_path / "elsewhere", pki, Clock()).new_csr()))


async def test_profile_3_without_a_certificate_fails_before_connecting(pki: ThrowawayPKI):
    store = make_store("wss://127.0.0.1:1/ocpp", key_hex=None)
    assert store.set("SecurityProfile", "3", Source.LOCAL).ok  # an installer may; the backend may not
    with pytest.raises(ConnectFailed, match="security profile 3 needs a charge point certificate"):
        await open_connection(store, ca_file=pki.ca_path)


async def test_a_backend_refusing_the_client_certificate_is_failed_authentication(tmp_path: Path,
                                                                                 pki: ThrowawayPKI):
    stranger = create_test_pki(tmp_path / "stranger")  # the station's certificate is from another CA
    certificates = certificates_in(tmp_path, stranger, Clock())
    certificates.accept(stranger.sign_csr(certificates.new_csr()))
    server = pki.client_auth_context()
    server.maximum_version = ssl.TLSVersion.TLSv1_2  # TLS 1.2: the refusal is an alert in the handshake
    store = make_store("wss://127.0.0.1:1/ocpp", key_hex=None)
    assert store.set("SecurityProfile", "3", Source.LOCAL).ok
    with blocking_tls_server(server) as port:
        assert store.set("Endpoint", f"wss://127.0.0.1:{port}/ocpp", Source.LOCAL).ok
        with pytest.raises(ConnectFailed) as failure:
            await open_connection(store, ca_file=pki.ca_path, client_certificate=certificates.credentials())
    assert failure.value.security_event == "FailedToAuthenticationAtCentralSystem", failure.value.reason
    assert "client certificate" in failure.value.reason
