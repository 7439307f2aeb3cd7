"""UpdateFirmware: the FirmwareUpdater against real file servers on 127.0.0.1 (with a recording
backend, a fake core and a fake system edge), the OCPP handler, and end to end — the daemon
with simulated hardware, a real central system, a charging session the update waits for, the
reboot and the new firmwareVersion in the next BootNotification."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from file_servers import PASSWORD, USER, FtpFiles, HttpFiles
from test_ocpp_client import Station

from firmware_sim.central_system import CentralSystem
from firmware_sim.world import SimConnectorSpec, SimWorld
from stationd import __version__
from stationd import daemon as daemon_module
from stationd.config.station_file import parse_station_config
from stationd.config.store import ConfigStore
from stationd.core.events import EventBus, SessionEnded
from stationd.firmware.package import build_package
from stationd.firmware.update import INSTALLED_META, UPDATE_META, FirmwareUpdater
from stationd.ocpp_client.errors import CallError
from stationd.ocpp_client.handlers.firmware_management import update_firmware
from stationd.storage import Database
from stationd.storage.meta import StationMeta

MODEL = "stationd AC22"
PAYLOAD = os.urandom(200_000)


def now() -> datetime:
    return datetime.now(UTC)


def make_package(directory: Path, *, model: str = MODEL, version: str = "2.0.0") -> bytes:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "rootfs.img").write_bytes(PAYLOAD)
    output = directory / f"{model.replace(' ', '_')}-{version}.tar"
    build_package(model, version, [directory / "rootfs.img"], output)
    return output.read_bytes()


# ---- the updater with fakes around it --------------------------------------------------------

@dataclass
class FakeConnector:
    id: int
    session: object | None = None


class FakeCore:
    def __init__(self) -> None:
        self.connectors = {1: FakeConnector(1), 2: FakeConnector(2)}
        self.bus = EventBus()

    def end_session(self, connector_id: int) -> None:
        session, self.connectors[connector_id].session = self.connectors[connector_id].session, None
        self.bus.publish(SessionEnded(session))


@dataclass
class FakeSystem:
    install_ok: bool = True
    actions: list[tuple[str, str]] = field(default_factory=list)
    hold_install: asyncio.Event | None = None  # set: the installation may end

    async def install_firmware(self, package: Path, version: str) -> bool:
        self.actions.append(("install_firmware", version))
        self.installed_bytes = package.read_bytes()
        if self.hold_install is not None:
            await self.hold_install.wait()
        return self.install_ok

    async def reboot(self, reason: str) -> None:
        self.actions.append(("reboot", reason))


class Rig:
    """A FirmwareUpdater on a real store and database; ``restart()`` makes a new one on the same
    data, as a daemon restart does."""

    def __init__(self, tmp_path: Path):
        self.data = tmp_path / "data"
        self.store = ConfigStore.open(self.data, installation={"ModelId": MODEL})
        self.db = Database.open(self.data)
        self.meta = StationMeta(self.db)
        self.core, self.system = FakeCore(), FakeSystem()
        self.sent: list[tuple[float, str, dict]] = []
        self.events: list[tuple[str, str]] = []
        self.status = "Idle"
        self.online = True  # False: every message to the backend fails as while it is unreachable
        self.task: asyncio.Task | None = None
        self.updater = self._new_updater()

    def _new_updater(self) -> FirmwareUpdater:
        async def send(action: str, payload: dict) -> dict:
            if not self.online:
                raise ConnectionError("not connected to the backend")
            self.sent.append((time.monotonic(), action, payload))
            return {}

        return FirmwareUpdater(store=self.store, core=self.core, meta=self.meta, system=self.system,
                               directory=self.data / "firmware", send=send,
                               on_status=lambda status: setattr(self, "status", status),
                               security_event=lambda kind, info: self.events.append((kind, info)),
                               transfer_timeout_s=2)

    def start(self) -> None:
        self.task = asyncio.create_task(self.updater.run())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    async def restart(self) -> None:
        await self.stop()
        self.updater = self._new_updater()
        self.start()

    def statuses(self) -> list[str]:
        return [p["status"] for _, action, p in self.sent if action == "FirmwareStatusNotification"]

    def time_of(self, status: str) -> float:
        return next(t for t, action, p in self.sent if action == "FirmwareStatusNotification"
                    and p["status"] == status)

    async def until_status(self, status: str, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while status not in self.statuses():
                await asyncio.sleep(0.01)

    async def until_idle(self, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while self.updater.pending is not None or self.meta.get(UPDATE_META, {}).get("job"):
                await asyncio.sleep(0.01)


@pytest.fixture
async def rig(tmp_path: Path):
    made = Rig(tmp_path)
    yield made
    await made.stop()
    made.db.close()


async def test_update_over_http_installs_and_reboots(rig: Rig, http_files: HttpFiles, tmp_path: Path):
    http_files.files["fw.tar"] = make_package(tmp_path / "pkg", version="2.0.0")
    assert rig.store.get("FirmwareVersion") == __version__
    rig.start()
    rig.updater.submit(f"{http_files.base}/files/fw.tar", now(), retries=0, retry_interval=0)
    await rig.until_status("Installed")
    await rig.until_idle()
    assert rig.statuses() == ["Downloading", "Downloaded", "Installing", "Installed"]
    assert rig.system.actions == [("install_firmware", "2.0.0"), ("reboot", "firmware 2.0.0 installed")]
    assert rig.system.installed_bytes == http_files.files["fw.tar"]
    assert rig.store.get("FirmwareVersion") == "2.0.0" and rig.meta.get(INSTALLED_META)["version"] == "2.0.0"
    assert rig.events == [("FirmwareUpdated", "firmware 2.0.0 installed")]
    assert list((rig.data / "firmware").iterdir()) == []  # the package is gone


@pytest.mark.parametrize("secure", [False, True])
async def test_update_over_ftp_with_resume_after_a_cut(secure, rig: Rig, tmp_path: Path):
    from firmware_sim.test_pki import create_test_pki
    pki = create_test_pki(tmp_path / "pki") if secure else None
    server = FtpFiles(tmp_path / "ftp", pki=pki)
    try:
        (server.root / "fw.tar").write_bytes(make_package(tmp_path / "pkg", version="2.1.0"))
        server.cut = [100_000]
        rig.updater.ca_file = pki.ca_path if pki else None
        rig.start()
        rig.updater.submit(f"{server.base}/fw.tar", now(), retries=1, retry_interval=0.05)
        await rig.until_status("Installed")
        assert rig.statuses() == ["Downloading", "Downloaded", "Installing", "Installed"]
        assert server.commands_named("REST") == ["100000"]  # the second attempt continued
        assert rig.store.get("FirmwareVersion") == "2.1.0"
    finally:
        server.stop()


async def test_wrong_model_sends_machine_mismatch_then_installation_failed(rig: Rig, http_files: HttpFiles,
                                                                           tmp_path: Path):
    http_files.files["fw.tar"] = make_package(tmp_path / "pkg", model="other AC11", version="3.0.0")
    rig.start()
    rig.updater.submit(f"{http_files.base}/files/fw.tar", now(), retries=0)
    await rig.until_status("InstallationFailed")
    await rig.until_idle()
    actions = [(action, p.get("status") or p.get("messageId")) for _, action, p in rig.sent]
    assert actions == [("FirmwareStatusNotification", "Downloading"), ("FirmwareStatusNotification", "Downloaded"),
                       ("DataTransfer", "MachineMismatch"), ("FirmwareStatusNotification", "InstallationFailed")]
    mismatch = next(p for _, action, p in rig.sent if action == "DataTransfer")
    assert mismatch["vendorId"] == rig.store.get("VendorId")
    assert json.loads(mismatch["data"]) == {
        "error": "the package is for model 'other AC11', this station is 'stationd AC22'",
        "packageModel": "other AC11", "stationModel": MODEL}
    assert rig.system.actions == [] and rig.store.get("FirmwareVersion") == __version__
    assert rig.status == "Idle"  # nothing in progress any more: a TriggerMessage answers Idle


async def test_machine_mismatch_only_when_enabled(rig: Rig, http_files: HttpFiles, tmp_path: Path):
    http_files.files["fw.tar"] = make_package(tmp_path / "pkg", model="other AC11")
    rig.store.set("EnabledDataTransfer", "PlugType,StopSource")
    rig.start()
    rig.updater.submit(f"{http_files.base}/files/fw.tar", now(), retries=0)
    await rig.until_status("InstallationFailed")
    assert [action for _, action, _ in rig.sent].count("DataTransfer") == 0


@pytest.mark.parametrize("damage", ["truncated", "checksum"])
async def test_corrupted_package_fails_installation_and_keeps_the_version(
        damage, rig: Rig, http_files: HttpFiles, tmp_path: Path):
    package = bytearray(make_package(tmp_path / "pkg"))
    if damage == "truncated":
        package = package[:len(package) // 2]
    else:
        package[package.find(PAYLOAD[:64]) + 1000] ^= 0xFF
    http_files.files["fw.tar"] = bytes(package)
    rig.start()
    rig.updater.submit(f"{http_files.base}/files/fw.tar", now(), retries=0)
    await rig.until_status("InstallationFailed")
    assert rig.statuses() == ["Downloading", "Downloaded", "InstallationFailed"]
    assert rig.system.actions == [] and rig.store.get("FirmwareVersion") == __version__
    assert [action for _, action, _ in rig.sent].count("DataTransfer") == 0


async def test_server_down_retries_then_download_failed(rig: Rig, tmp_path: Path, caplog):
    import socket
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    caplog.set_level(logging.INFO, logger="stationd")
    rig.start()
    started = time.monotonic()
    rig.updater.submit(f"http://127.0.0.1:{port}/fw.tar", now(), retries=2, retry_interval=0.3)
    await rig.until_status("DownloadFailed")
    elapsed = time.monotonic() - started
    assert rig.statuses() == ["Downloading", "DownloadFailed"]
    assert "firmware download attempt 1 of 3 failed (connection refused" in caplog.text
    assert "firmware download attempt 2 of 3 failed" in caplog.text
    assert "failed after 3 attempt(s)" in caplog.text
    assert 0.6 <= elapsed < 3  # two pauses of retryInterval between three attempts
    assert rig.status == "Idle" and rig.system.actions == []


async def test_nothing_happens_before_the_retrieve_date(rig: Rig, http_files: HttpFiles, tmp_path: Path):
    http_files.files["fw.tar"] = make_package(tmp_path / "pkg")
    rig.start()
    retrieve = now() + timedelta(seconds=0.8)
    rig.updater.submit(f"{http_files.base}/files/fw.tar", retrieve, retries=0)
    await asyncio.sleep(0.5)
    assert rig.sent == [] and http_files.requests == [] and rig.status == "Idle"
    await rig.until_status("Installed")
    assert now() >= retrieve


async def test_installing_waits_for_every_open_session_to_end(rig: Rig, http_files: HttpFiles, tmp_path: Path):
    http_files.files["fw.tar"] = make_package(tmp_path / "pkg")
    rig.core.connectors[2].session = object()  # a car charges on connector 2
    rig.start()
    rig.updater.submit(f"{http_files.base}/files/fw.tar", now(), retries=0)
    await rig.until_status("Downloaded")  # downloading during a session is fine
    await asyncio.sleep(0.5)
    assert rig.statuses() == ["Downloading", "Downloaded"] and rig.status == "Downloaded"
    assert rig.core.connectors[2].session is not None  # nothing ended it
    ended = time.monotonic()
    rig.core.end_session(2)
    await rig.until_status("Installed")
    assert rig.time_of("Installing") >= ended
    assert rig.system.actions[0] == ("install_firmware", "2.0.0")


async def test_a_session_that_began_during_installation_delays_the_reboot(rig: Rig, http_files: HttpFiles,
                                                                          tmp_path: Path):
    http_files.files["fw.tar"] = make_package(tmp_path / "pkg")
    rig.system.hold_install = asyncio.Event()
    rig.start()
    rig.updater.submit(f"{http_files.base}/files/fw.tar", now(), retries=0)
    await rig.until_status("Installing")
    rig.core.connectors[1].session = object()
    rig.system.hold_install.set()
    await rig.until_status("Installed")
    await asyncio.sleep(0.3)
    assert rig.system.actions == [("install_firmware", "2.0.0")]  # no reboot during the session
    rig.core.end_session(1)
    async with asyncio.timeout(3):
        while len(rig.system.actions) < 2:
            await asyncio.sleep(0.01)
    assert rig.system.actions[1][0] == "reboot"


async def test_a_pending_update_survives_a_restart(rig: Rig, http_files: HttpFiles, tmp_path: Path):
    http_files.files["fw.tar"] = make_package(tmp_path / "pkg")
    rig.start()
    retrieve = now() + timedelta(seconds=0.8)
    location = http_files.base.replace("://", f"://{USER}:{PASSWORD}@") + "/private/fw.tar"
    rig.updater.submit(location, retrieve, retries=0)
    await asyncio.sleep(0.2)
    await rig.restart()  # a power cut while waiting for retrieveDate
    assert rig.updater.pending is None or rig.updater.pending.phase == "waiting"
    await asyncio.sleep(0.3)
    assert rig.sent == []  # the wait goes on after the restart
    await rig.until_status("Installed")
    assert rig.time_of("Downloading") and now() >= retrieve
    assert rig.store.get("FirmwareVersion") == "2.0.0"


async def test_a_verified_package_is_installed_after_a_restart(rig: Rig, http_files: HttpFiles, tmp_path: Path):
    http_files.files["fw.tar"] = make_package(tmp_path / "pkg")
    rig.core.connectors[1].session = object()
    rig.start()
    rig.updater.submit(f"{http_files.base}/files/fw.tar", now(), retries=0)
    await rig.until_status("Downloaded")
    await rig.stop()
    assert rig.meta.get(UPDATE_META)["job"]["phase"] == "downloaded"
    rig.core.connectors[1].session = None  # the power cut closed the session
    await rig.restart()
    await rig.until_status("Installed")
    assert len(http_files.requests) == 1  # not downloaded again
    assert rig.statuses() == ["Downloading", "Downloaded", "Installing", "Installed"]


async def test_a_second_request_replaces_a_pending_one(rig: Rig, http_files: HttpFiles, tmp_path: Path):
    http_files.files["old.tar"] = make_package(tmp_path / "old", version="1.5.0")
    http_files.files["new.tar"] = make_package(tmp_path / "new", version="1.6.0")
    rig.start()
    rig.updater.submit(f"{http_files.base}/files/old.tar", now() + timedelta(hours=1))
    await asyncio.sleep(0.1)
    rig.updater.submit(f"{http_files.base}/files/new.tar", now(), retries=0)
    await rig.until_status("Installed")
    await rig.until_idle()
    assert [r.path for r in http_files.requests] == ["/files/new.tar"]
    assert rig.system.actions[0] == ("install_firmware", "1.6.0")


async def test_a_request_during_installation_waits_for_it(rig: Rig, http_files: HttpFiles, tmp_path: Path):
    http_files.files["a.tar"] = make_package(tmp_path / "a", version="1.5.0")
    http_files.files["b.tar"] = make_package(tmp_path / "b", version="1.6.0")
    rig.system.hold_install = asyncio.Event()
    rig.start()
    rig.updater.submit(f"{http_files.base}/files/a.tar", now(), retries=0)
    await rig.until_status("Installing")
    rig.updater.submit(f"{http_files.base}/files/b.tar", now(), retries=0)
    await asyncio.sleep(0.2)
    assert rig.statuses() == ["Downloading", "Downloaded", "Installing"]  # not cancelled
    rig.system.hold_install.set()
    async with asyncio.timeout(5):
        while rig.statuses().count("Installed") < 2:
            await asyncio.sleep(0.01)
    assert [a for a in rig.system.actions if a[0] == "install_firmware"] == [
        ("install_firmware", "1.5.0"), ("install_firmware", "1.6.0")]
    assert rig.store.get("FirmwareVersion") == "1.6.0"


async def test_a_failed_installation_keeps_the_version(rig: Rig, http_files: HttpFiles, tmp_path: Path):
    http_files.files["fw.tar"] = make_package(tmp_path / "pkg")
    rig.system.install_ok = False
    rig.start()
    rig.updater.submit(f"{http_files.base}/files/fw.tar", now(), retries=0)
    await rig.until_status("InstallationFailed")
    assert rig.statuses() == ["Downloading", "Downloaded", "Installing", "InstallationFailed"]
    assert rig.store.get("FirmwareVersion") == __version__ and rig.events == []


# ---- the OCPP handler ------------------------------------------------------------------------------

async def test_handler_answers_empty_and_refuses_unsupported_locations(rig: Rig):
    class Client:
        store, firmware = rig.store, rig.updater

    when = "2030-01-01T00:00:00Z"
    for location in ("sftp://host/fw.tar", "file:///etc/passwd", "not a url", "http:///no-host"):
        with pytest.raises(CallError) as refused:
            await update_firmware(Client, {"location": location, "retrieveDate": when})
        assert refused.value.code == "PropertyConstraintViolation"
    with pytest.raises(CallError, match="retries must not be negative"):
        await update_firmware(Client, {"location": "ftp://h/f", "retrieveDate": when, "retries": -1})
    with pytest.raises(CallError) as refused:
        await update_firmware(Client, {"location": "ftp://h/f", "retrieveDate": "2030-13-45T99:00:00Z"})
    assert refused.value.code == "TypeConstraintViolation"
    assert rig.updater.pending is None  # a refused request changes nothing
    result = await update_firmware(Client, {"location": "ftp://u:p@h/f", "retrieveDate": when, "retries": 2,
                                            "retryInterval": 30})
    assert result.response == {}
    await result.after()
    job = rig.updater.pending
    assert (job.location, job.retries, job.retry_interval) == ("ftp://u:p@h/f", 2, 30)
    assert job.retrieve_at == datetime(2030, 1, 1, tzinfo=UTC)


# ---- end to end --------------------------------------------------------------------------------------

BOX = "TE-FW0001"


def station_config(data_dir: Path, url: str):
    return parse_station_config(
        "identity: {serial_number: FW0001, chargebox_id_template: 'TE-{serial}'}\n"
        f"ocpp: {{endpoint: '{url}', security_profile: 0}}\n"
        "hardware:\n  connectors:\n"
        "    - {id: 1, controller: {transport: sim}, meter: {model: sim}}\n"
        "    - {id: 2, controller: {transport: sim}, meter: {model: sim}}\n"
        "  rfid: {transport: sim}\n"
        "modbus_server: {enabled: false, bind: '127.0.0.1:0'}\n"
        f"data_dir: {data_dir}\n")


class RebootingStation(Station):
    """The daemon in this event loop; the dry-run system edge's reboot restarts it in place,
    as in the demo."""

    def __init__(self, config, world, monkeypatch):
        self.reboots = []
        real = daemon_module.system_edge

        def system_edge(backend, **options):
            options["on_reboot"] = self._reboot
            return real(backend, **options)

        monkeypatch.setattr(daemon_module, "system_edge", system_edge)
        super().__init__(config, world)

    def _reboot(self, reason: str) -> None:
        self.reboots.append(reason)
        self.daemon.request_restart(f"reboot: {reason}")


def sent(cs: CentralSystem, action: str) -> list[dict]:
    return cs.payloads(action, BOX)


async def test_end_to_end_update_waits_for_the_session_reboots_and_reports_the_version(
        tmp_path: Path, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG, logger="stationd")
    central = CentralSystem(heartbeat_interval=300)
    await central.start()
    world = SimWorld([SimConnectorSpec(1), SimConnectorSpec(2)], tmp_path / "sim", vehicle_reaction_s=0)
    await world.start()
    files = HttpFiles()
    await files.start()
    running = RebootingStation(station_config(tmp_path / "data", central.url), world, monkeypatch)
    try:
        await central.wait_for("BootNotification", timeout=15)
        await central.wait_for("StatusNotification", predicate=lambda r: r.payload["connectorId"] == 2, timeout=15)
        model = running.station.store.get("ModelId")
        files.files["fw.tar"] = make_package(tmp_path / "pkg", model=model, version="9.9.9-test")
        world.plug(1)
        world.charge(1, 16, 3)
        await central.wait_for("StartTransaction", timeout=10)  # free charging: a session runs
        location = files.base.replace("://", f"://{USER}:{PASSWORD}@") + "/private/fw.tar"
        answer = await central.call(BOX, "UpdateFirmware", {"location": location, "retrieveDate": central.now_iso(),
                                                            "retries": 1, "retryInterval": 1})
        assert answer == {}
        await central.wait_for("FirmwareStatusNotification", predicate=lambda r: r.payload["status"] == "Downloaded",
                               timeout=10)
        assert (await central.call(BOX, "TriggerMessage", {"requestedMessage": "FirmwareStatusNotification"}))[
            "status"] == "Accepted"
        await central.wait_for("FirmwareStatusNotification", timeout=5,  # what it is doing now
                               predicate=lambda r: r.payload["status"] == "Downloaded")
        await asyncio.sleep(0.8)
        assert "Installing" not in [p["status"] for p in sent(central, "FirmwareStatusNotification")]
        world.unplug(1)  # the driver leaves: the session ends on its own
        stop = (await central.wait_for("StopTransaction", timeout=10)).payload
        assert stop["reason"] == "EVDisconnected"
        await central.wait_for("FirmwareStatusNotification", predicate=lambda r: r.payload["status"] == "Installed",
                               timeout=10)
        boot = await central.wait_for("BootNotification", timeout=15)
        assert boot.payload["firmwareVersion"] == "9.9.9-test"
        assert running.boots == 2 and running.reboots == ["firmware 9.9.9-test installed"]
        statuses = [p["status"] for p in sent(central, "FirmwareStatusNotification")]
        assert statuses == ["Downloading", "Downloaded", "Downloaded", "Installing", "Installed"]
        calls = [(r.action, r.payload) for r in central.messages(BOX) if r.direction == "in" and r.message_type_id == 2]
        installing = calls.index(("FirmwareStatusNotification", {"status": "Installing"}))
        assert calls.index(("StopTransaction", stop)) < installing  # never while the session was open
        assert running.station.store.get("FirmwareVersion") == "9.9.9-test"
        await central.wait_for("SecurityEventNotification", predicate=lambda r: r.payload["type"] == "FirmwareUpdated",
                               timeout=10)
        assert PASSWORD not in caplog.text
    finally:
        await running.stop()
        await files.stop()
        await world.stop()
        await central.stop()
