"""SignedUpdateFirmware (security whitepaper) and firmware statuses across an outage.

End to end: the daemon with simulated hardware, a real central system and a real HTTP(S) file
server on 127.0.0.1, a throwaway manufacturer root and code-signing certificate made here. Plus
the FirmwareUpdater with fakes (tests/test_firmware_update.py's Rig) for what needs a restart
or an offline backend at a precise step.
"""

from __future__ import annotations

import asyncio
import base64
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from file_servers import HttpFiles
from firmware_sim.central_system import CentralSystem
from firmware_sim.test_pki import create_test_pki
from stationd import __version__
from stationd.firmware.job import SignedRequest, UpdateJob
from stationd.firmware.update import UPDATE_META
from test_firmware_update import Rig, make_package
from test_ocpp_client import BOX, Station, payloads, until

MF_ROOT, CS_ROOT = "ManufacturerRootCertificate", "CentralSystemRootCertificate"


# ---- a throwaway manufacturer PKI ----------------------------------------------------------------

def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "stationd tests"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _key(key_type: str):
    return ec.generate_private_key(ec.SECP256R1()) if key_type == "ec" else rsa.generate_private_key(65537, 2048)


class Manufacturer:
    """A root CA and a code-signing certificate it issued; ``sign()`` signs a file as a vendor would
    (``openssl dgst -sha256 -sign key.pem``, then base64)."""

    def __init__(self, *, key_type: str = "ec", expired_signer: bool = False):
        now = datetime.now(UTC)
        self.root_key = _key(key_type)
        self.root = (x509.CertificateBuilder().subject_name(_name("test manufacturer root"))
                     .issuer_name(_name("test manufacturer root")).public_key(self.root_key.public_key())
                     .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
                     .not_valid_after(now + timedelta(days=30))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                     .sign(self.root_key, hashes.SHA256()))
        self.key = _key(key_type)
        valid = (now - timedelta(days=10), now - timedelta(days=1)) if expired_signer else (
            now - timedelta(minutes=5), now + timedelta(days=2))
        self.signer = (x509.CertificateBuilder().subject_name(_name("test firmware signer"))
                       .issuer_name(self.root.subject).public_key(self.key.public_key())
                       .serial_number(x509.random_serial_number()).not_valid_before(valid[0])
                       .not_valid_after(valid[1])
                       .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                       .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
                       .sign(self.root_key, hashes.SHA256()))

    @property
    def root_pem(self) -> str:
        return self.root.public_bytes(serialization.Encoding.PEM).decode()

    @property
    def signer_pem(self) -> str:
        return self.signer.public_bytes(serialization.Encoding.PEM).decode()

    def sign(self, data: bytes) -> str:
        if isinstance(self.key, rsa.RSAPrivateKey):
            raw = self.key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        else:
            raw = self.key.sign(data, ec.ECDSA(hashes.SHA256()))
        return base64.b64encode(raw).decode()


def now_iso(offset_s: float = 0) -> str:
    return (datetime.now(UTC) + timedelta(seconds=offset_s)).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


def request(location: str, vendor: Manufacturer, package: bytes, *, request_id: int = 42,
            retrieve_in_s: float = 0, **extra) -> dict:
    firmware = {"location": location, "retrieveDateTime": now_iso(retrieve_in_s),
                "signingCertificate": vendor.signer_pem, "signature": vendor.sign(package)}
    return {"requestId": request_id, "retries": 0, "firmware": firmware, **extra}


# ---- end to end ------------------------------------------------------------------------------------

def signed_statuses(cs: CentralSystem) -> list[str]:
    return [p["status"] for p in payloads(cs, "SignedFirmwareStatusNotification")]


def security_events(cs: CentralSystem) -> list[str]:
    return [p["type"] for p in payloads(cs, "SecurityEventNotification")]


async def install_root(cs: CentralSystem, kind: str, pem: str) -> None:
    assert await cs.call(BOX, "InstallCertificate", {"certificateType": kind, "certificate": pem}) == {
        "status": "Accepted"}


async def test_signed_update_installs_reboots_and_reports_installed(station: Station, cs: CentralSystem,
                                                                    http_files: HttpFiles, tmp_path: Path):
    vendor = Manufacturer()
    await install_root(cs, MF_ROOT, vendor.root_pem)
    package = make_package(tmp_path / "pkg", version="7.0.0-signed")
    http_files.files["fw.tar"] = package
    answer = await cs.call(BOX, "SignedUpdateFirmware", request(f"{http_files.base}/files/fw.tar", vendor, package))
    assert answer == {"status": "Accepted"}
    await cs.wait_for("SignedFirmwareStatusNotification", timeout=20,
                      predicate=lambda r: r.payload["status"] == "Installed")
    assert signed_statuses(cs) == ["Downloading", "Downloaded", "SignatureVerified", "Installing",
                                   "InstallRebooting", "Installed"]
    assert {p["requestId"] for p in payloads(cs, "SignedFirmwareStatusNotification")} == {42}
    assert payloads(cs, "FirmwareStatusNotification") == []  # a signed update speaks only the signed message
    assert station.boots == 2
    boots = payloads(cs, "BootNotification")
    assert [b["firmwareVersion"] for b in boots] == [__version__, "7.0.0-signed"]
    incoming = [(r.action, r.payload.get("status")) for r in cs.messages(BOX)
                if r.direction == "in" and r.message_type_id == 2]
    assert incoming.index(("BootNotification", None), 1) < incoming.index(
        ("SignedFirmwareStatusNotification", "Installed"))  # Installed once the new firmware runs
    await until(lambda: "FirmwareUpdated" in security_events(cs))
    # Nothing runs any more: the trigger answers Idle, without a requestId.
    assert await cs.call(BOX, "ExtendedTriggerMessage", {"requestedMessage": "FirmwareStatusNotification"}) == {
        "status": "Accepted"}
    await until(lambda: len(payloads(cs, "SignedFirmwareStatusNotification")) == 7)
    assert payloads(cs, "SignedFirmwareStatusNotification")[-1] == {"status": "Idle"}


@pytest.mark.parametrize("problem", ["other root", "expired", "not a certificate"])
async def test_an_invalid_signing_certificate_is_refused_with_a_security_event(
        problem, station: Station, cs: CentralSystem, http_files: HttpFiles, tmp_path: Path):
    vendor = Manufacturer(expired_signer=problem == "expired")
    await install_root(cs, MF_ROOT, (Manufacturer() if problem == "other root" else vendor).root_pem)
    package = make_package(tmp_path / "pkg")
    http_files.files["fw.tar"] = package
    payload = request(f"{http_files.base}/files/fw.tar", vendor, package)
    if problem == "not a certificate":
        payload["firmware"]["signingCertificate"] = "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n" \
                                                    "-----END CERTIFICATE-----\n"
    assert await cs.call(BOX, "SignedUpdateFirmware", payload) == {"status": "InvalidCertificate"}
    await cs.wait_for("SecurityEventNotification", timeout=10,
                      predicate=lambda r: r.payload["type"] == "InvalidFirmwareSigningCertificate")
    await asyncio.sleep(0.3)
    assert http_files.requests == [] and payloads(cs, "SignedFirmwareStatusNotification") == []
    assert station.station.ocpp.firmware.pending is None


async def test_a_bad_signature_installs_nothing(station: Station, cs: CentralSystem, http_files: HttpFiles,
                                                tmp_path: Path):
    vendor = Manufacturer()
    await install_root(cs, MF_ROOT, vendor.root_pem)
    package = make_package(tmp_path / "pkg", version="6.6.6")
    http_files.files["fw.tar"] = package
    payload = request(f"{http_files.base}/files/fw.tar", vendor, package + b"\0")  # signed other bytes
    assert await cs.call(BOX, "SignedUpdateFirmware", payload) == {"status": "Accepted"}
    await cs.wait_for("SignedFirmwareStatusNotification", timeout=10,
                      predicate=lambda r: r.payload["status"] == "InvalidSignature")
    assert signed_statuses(cs) == ["Downloading", "Downloaded", "InvalidSignature"]
    await cs.wait_for("SecurityEventNotification", timeout=10,
                      predicate=lambda r: r.payload["type"] == "InvalidFirmwareSignature")
    await asyncio.sleep(0.3)
    assert station.boots == 1 and station.store.get("FirmwareVersion") == __version__
    assert "FirmwareUpdated" not in security_events(cs)
    assert list((Path(station.config.data_dir) / "firmware").iterdir()) == []  # the download is gone


async def test_a_second_request_cancels_the_pending_download(station: Station, cs: CentralSystem,
                                                             http_files: HttpFiles, tmp_path: Path):
    vendor = Manufacturer()
    await install_root(cs, MF_ROOT, vendor.root_pem)
    old, new = make_package(tmp_path / "old", version="5.0.0"), make_package(tmp_path / "new", version="5.1.0")
    http_files.files.update({"old.tar": old, "new.tar": new})
    http_files.cut = [50_000]  # the first attempt breaks off; the next one waits an hour
    first = request(f"{http_files.base}/files/old.tar", vendor, old, request_id=1, retries=1, retryInterval=3600)
    assert await cs.call(BOX, "SignedUpdateFirmware", first) == {"status": "Accepted"}
    firmware_dir = Path(station.config.data_dir) / "firmware"
    await until(lambda: [p.stat().st_size for p in firmware_dir.glob("*.part")] == [50_000])
    second = request(f"{http_files.base}/files/new.tar", vendor, new, request_id=2)
    assert await cs.call(BOX, "SignedUpdateFirmware", second) == {"status": "AcceptedCanceled"}
    await cs.wait_for("SignedFirmwareStatusNotification", timeout=20,
                      predicate=lambda r: r.payload == {"status": "Installed", "requestId": 2})
    assert [(p["requestId"], p["status"]) for p in payloads(cs, "SignedFirmwareStatusNotification")][:1] == [
        (1, "Downloading")]
    assert {p["requestId"] for p in payloads(cs, "SignedFirmwareStatusNotification")[1:]} == {2}
    assert [r.path for r in http_files.requests] == ["/files/old.tar", "/files/new.tar"]
    assert payloads(cs, "BootNotification")[-1]["firmwareVersion"] == "5.1.0"
    assert not list(firmware_dir.glob("*.part"))  # the old download's part file went with it


async def test_a_future_retrieve_date_is_download_scheduled_and_triggers_report_it(
        station: Station, cs: CentralSystem, http_files: HttpFiles, tmp_path: Path):
    vendor = Manufacturer(key_type="rsa")
    await install_root(cs, MF_ROOT, vendor.root_pem)
    package = make_package(tmp_path / "pkg")
    http_files.files["fw.tar"] = package
    payload = request(f"{http_files.base}/files/fw.tar", vendor, package, request_id=9, retrieve_in_s=3600)
    assert await cs.call(BOX, "SignedUpdateFirmware", payload) == {"status": "Accepted"}
    await cs.wait_for("SignedFirmwareStatusNotification", timeout=10)
    assert payloads(cs, "SignedFirmwareStatusNotification") == [{"status": "DownloadScheduled", "requestId": 9}]
    assert await cs.call(BOX, "ExtendedTriggerMessage", {"requestedMessage": "FirmwareStatusNotification"}) == {
        "status": "Accepted"}
    await until(lambda: len(payloads(cs, "SignedFirmwareStatusNotification")) == 2)
    assert payloads(cs, "SignedFirmwareStatusNotification")[1] == {"status": "DownloadScheduled", "requestId": 9}
    # The 1.6 message has no DownloadScheduled: nothing is under way yet.
    assert await cs.call(BOX, "TriggerMessage", {"requestedMessage": "FirmwareStatusNotification"}) == {
        "status": "Accepted"}
    await until(lambda: payloads(cs, "FirmwareStatusNotification") == [{"status": "Idle"}])
    assert http_files.requests == []


async def test_statuses_of_an_outage_reach_the_backend_when_it_is_back(station: Station, cs: CentralSystem,
                                                                       http_files: HttpFiles, tmp_path: Path):
    for key in ("RetryBackoffWaitMinimum", "RetryBackoffRandomRange"):
        assert (await cs.call(BOX, "ChangeConfiguration", {"key": key, "value": "0"}))["status"] == "Accepted"
    vendor = Manufacturer()
    await install_root(cs, MF_ROOT, vendor.root_pem)
    package = make_package(tmp_path / "pkg", version="8.0.0")
    http_files.files["fw.tar"] = package
    payload = request(f"{http_files.base}/files/fw.tar", vendor, package, request_id=5, retrieve_in_s=3)
    assert await cs.call(BOX, "SignedUpdateFirmware", payload) == {"status": "Accepted"}
    await cs.wait_for("SignedFirmwareStatusNotification", timeout=10)
    cs.refuse_status = 503  # the backend goes away before the download starts
    await cs.disconnect(BOX)
    await until(lambda: station.boots == 2, timeout=30)  # downloaded, installed, rebooted: all offline
    meta = station.station.core.meta
    await until(lambda: ((meta.get(UPDATE_META) or {}).get("report") or {}).get("payload") == {
        "status": "Installed", "requestId": 5})
    assert signed_statuses(cs) == ["DownloadScheduled"]
    cs.refuse_status = None
    await cs.wait_for("SignedFirmwareStatusNotification", timeout=20,
                      predicate=lambda r: r.payload["status"] == "Installed")
    assert payloads(cs, "SignedFirmwareStatusNotification") == [{"status": "DownloadScheduled", "requestId": 5},
                                                             {"status": "Installed", "requestId": 5}]
    assert payloads(cs, "BootNotification")[-1]["firmwareVersion"] == "8.0.0"
    await until(lambda: meta.get(UPDATE_META)["report"]["delivered"] is True)  # once the answer is back


async def test_https_downloads_and_uploads_trust_an_installed_central_system_root(
        station: Station, cs: CentralSystem, tmp_path: Path):
    pki = create_test_pki(tmp_path / "pki")
    files = HttpFiles(ssl_context=pki.server_context)
    await files.start()
    try:
        files.files["fw.tar"] = make_package(tmp_path / "pkg", version="3.3.3")
        update = {"location": f"{files.base}/files/fw.tar", "retrieveDate": now_iso(), "retries": 0}
        assert await cs.call(BOX, "UpdateFirmware", update) == {}
        await cs.wait_for("FirmwareStatusNotification", timeout=10,
                          predicate=lambda r: r.payload["status"] == "DownloadFailed")  # the CA is unknown yet
        assert files.requests == []  # refused in the TLS handshake
        await install_root(cs, CS_ROOT, pki.ca_path.read_text())
        diagnostics = await cs.call(BOX, "GetDiagnostics", {"location": f"{files.base}/upload/"})
        await cs.wait_for("DiagnosticsStatusNotification", timeout=20,
                          predicate=lambda r: r.payload["status"] in ("Uploaded", "UploadFailed"))
        assert payloads(cs, "DiagnosticsStatusNotification")[-1] == {"status": "Uploaded"}
        assert diagnostics["fileName"] in files.uploads
        update["retrieveDate"] = now_iso()
        assert await cs.call(BOX, "UpdateFirmware", update) == {}
        await cs.wait_for("FirmwareStatusNotification", timeout=20,
                          predicate=lambda r: r.payload["status"] == "Installed")
        assert [p["status"] for p in payloads(cs, "FirmwareStatusNotification")] == [
            "Downloading", "DownloadFailed", "Downloading", "Downloaded", "Installing", "Installed"]
        await cs.wait_for("BootNotification", timeout=15, predicate=lambda r: r.payload["firmwareVersion"] == "3.3.3")
    finally:
        await files.stop()


async def test_rejected_requests_change_nothing(station: Station, cs: CentralSystem, http_files: HttpFiles,
                                                tmp_path: Path):
    vendor = Manufacturer()
    await install_root(cs, MF_ROOT, vendor.root_pem)
    package = make_package(tmp_path / "pkg")
    good = request(f"{http_files.base}/files/fw.tar", vendor, package)
    for change in ({"location": "sftp://127.0.0.1/fw.tar"}, {"signature": "not base64!"}):
        payload = {**good, "firmware": {**good["firmware"], **change}}
        assert await cs.call(BOX, "SignedUpdateFirmware", payload) == {"status": "Rejected"}
    assert await cs.call(BOX, "SignedUpdateFirmware", {**good, "retries": -1}) == {"status": "Rejected"}
    assert station.station.ocpp.firmware.pending is None


# ---- the updater with fakes: restarts and an unreachable backend at chosen steps -----------------------

@pytest.fixture
async def rig(tmp_path: Path):
    made = Rig(tmp_path)
    yield made
    await made.stop()
    made.db.close()


def sent_signed(rig: Rig) -> list[dict]:
    return [p for _, action, p in rig.sent if action == "SignedFirmwareStatusNotification"]


def signed(vendor: Manufacturer, package: bytes, request_id: int = 3, install_in_s: float | None = None):
    install = (datetime.now(UTC) + timedelta(seconds=install_in_s)).isoformat() if install_in_s else None
    return SignedRequest(request_id, vendor.signer_pem, vendor.sign(package), install)


async def test_install_date_schedules_the_installation_and_installed_follows_the_reboot(
        rig: Rig, http_files: HttpFiles, tmp_path: Path):
    vendor = Manufacturer(key_type="rsa")
    package = make_package(tmp_path / "pkg", version="4.0.0")
    http_files.files["fw.tar"] = package
    later = {"by": timedelta(0)}
    rig.updater.clock = lambda: datetime.now(UTC) + later["by"]
    rig.updater._sleep = lambda seconds: asyncio.sleep(0.01)  # the waits look at the clock often
    rig.start()
    rig.updater.submit(f"{http_files.base}/files/fw.tar", datetime.now(UTC), 0,
                       signed=signed(vendor, package, install_in_s=3600))
    async with asyncio.timeout(5):
        while not sent_signed(rig) or sent_signed(rig)[-1]["status"] != "InstallScheduled":
            await asyncio.sleep(0.01)
    await asyncio.sleep(0.2)
    assert rig.updater.signed_status() == {"status": "InstallScheduled", "requestId": 3}
    assert rig.status == "Downloaded"  # what a plain TriggerMessage reports meanwhile
    assert rig.system.actions == []  # not before installDateTime
    later["by"] = timedelta(hours=2)
    async with asyncio.timeout(5):
        while ("reboot", "firmware 4.0.0 installed") not in rig.system.actions:
            await asyncio.sleep(0.01)
    assert [p["status"] for p in sent_signed(rig)] == ["Downloading", "Downloaded", "SignatureVerified",
                                                       "InstallScheduled", "Installing", "InstallRebooting"]
    assert rig.meta.get(UPDATE_META)["job"]["phase"] == "rebooting"
    await rig.restart()  # the reboot
    async with asyncio.timeout(5):
        while sent_signed(rig)[-1]["status"] != "Installed":
            await asyncio.sleep(0.01)
    await rig.until_idle()
    assert sent_signed(rig)[-1] == {"status": "Installed", "requestId": 3}
    assert rig.updater.signed_status() == {"status": "Idle"} and rig.store.get("FirmwareVersion") == "4.0.0"
    assert rig.system.actions == [("install_firmware", "4.0.0"), ("reboot", "firmware 4.0.0 installed")]


async def test_a_signed_package_for_another_model_fails_its_verification(rig: Rig, http_files: HttpFiles,
                                                                         tmp_path: Path):
    vendor = Manufacturer()
    package = make_package(tmp_path / "pkg", model="other AC11")
    http_files.files["fw.tar"] = package
    rig.start()
    rig.updater.submit(f"{http_files.base}/files/fw.tar", datetime.now(UTC), 0, signed=signed(vendor, package))
    await rig.until_idle()
    actions = [(action, p.get("status") or p.get("messageId")) for _, action, p in rig.sent]
    assert actions == [("SignedFirmwareStatusNotification", s) for s in ("Downloading", "Downloaded",
                                                                         "SignatureVerified")] + [
        ("DataTransfer", "MachineMismatch"), ("SignedFirmwareStatusNotification", "InstallVerificationFailed")]
    assert rig.system.actions == [] and rig.status == "Idle"


async def test_a_plain_update_offline_reports_its_latest_status_after_reconnecting_and_restarting(
        rig: Rig, http_files: HttpFiles, tmp_path: Path):
    http_files.files["fw.tar"] = make_package(tmp_path / "pkg", version="2.2.0")
    rig.online = False
    rig.start()
    rig.updater.submit(f"{http_files.base}/files/fw.tar", datetime.now(UTC), 0)
    async with asyncio.timeout(5):
        while ("reboot", "firmware 2.2.0 installed") not in rig.system.actions:
            await asyncio.sleep(0.01)
    assert rig.sent == []  # nothing reached the backend
    await rig.restart()  # the reboot
    await rig.updater.send_unsent()  # still offline: kept
    assert rig.sent == []
    rig.online = True
    await rig.updater.send_unsent()  # the client does this once it is connected again
    assert rig.statuses() == ["Installed"]  # the latest status, not the history
    await rig.updater.send_unsent()
    assert rig.statuses() == ["Installed"]  # sent once


def test_jobs_saved_before_signed_updates_still_load():
    saved = {"id": "abc", "location": "http://127.0.0.1/fw.tar", "retrieve_date": "2030-01-01T00:00:00+00:00",
             "retries": 1, "retry_interval": 5.0, "phase": "downloaded", "attempts": 1}
    job = UpdateJob.from_json(saved)
    assert job.signed is None and job.notification("InstallVerificationFailed") == (
        "FirmwareStatusNotification", {"status": "InstallationFailed"})
    with pytest.raises(ValueError):
        UpdateJob.from_json({**saved, "signed": {"request_id": "x", "signing_certificate": "", "signature": ""}})
