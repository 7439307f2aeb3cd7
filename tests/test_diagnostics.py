"""Diagnostics: the archive (contents, time window, size bound, no secret in it) and
GetDiagnostics end to end — a real station and central system uploading to HTTP and FTP
servers on 127.0.0.1."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import random
import re
import tarfile
import tracemalloc
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest
from file_servers import FtpFiles
from test_ocpp_client import BOX, Station, config_for, until

from firmware_sim.central_system import CallErrorReceived, CentralSystem
from firmware_sim.world import SimConnectorSpec, SimWorld
from stationd import diagnostics, logs
from stationd.config.store import ConfigStore
from stationd.config.value_types import Source
from stationd.core.sessions import SessionStore
from stationd.core.station import ConnectorSpec, StationCore
from stationd.diagnostics.log_sources import (JournaldLogs, LogFileLogs, LogRing, default_log_source,
                                              newest_within)
from stationd.ocpp_client.journal import JOURNAL_FILE, JournalEntry, MessageJournal, SecretMasker
from stationd.storage import Database

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
PASSWORD = "Sesame-Open-Up-1234"
KEY_HEX = PASSWORD.encode().hex()
TOKEN = "giro-static-token-42"
NAME_RE = re.compile(r"^(?P<serial>[A-Za-z0-9._-]+)-(?P<time>\d{8}T\d{6}Z)-diagnostics\.tar\.gz$")


def secret_forms(box_id: str, *secrets: str) -> list[str]:
    """Every way the test secrets could leak: plain, hex (both cases), base64, Basic token."""
    forms = [KEY_HEX, KEY_HEX.upper(), base64.b64encode(f"{box_id}:{PASSWORD}".encode()).decode()]
    for secret in (PASSWORD, *secrets):
        forms += [secret, secret.encode().hex(), base64.b64encode(secret.encode()).decode().rstrip("=")]
    return forms


def extract(archive: Path | bytes) -> dict[str, bytes]:
    data = archive if isinstance(archive, bytes) else archive.read_bytes()
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def assert_no_secret(files: dict[str, bytes], forms: list[str]) -> None:
    for name, blob in files.items():
        text = blob.decode("utf-8", "replace").lower()
        for form in forms:
            assert form.lower() not in text, f"{form!r} in {name}"


def by_name(files: dict[str, bytes]) -> dict[str, str]:
    return {name.split("/", 1)[1]: blob.decode() for name, blob in files.items()}


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    sources, root = list(logs._secret_sources), logging.getLogger(logs.ROOT)
    handlers, level = list(root.handlers), root.level
    yield
    logs._secret_sources[:] = sources
    root.handlers[:] = handlers
    root.setLevel(level)


# ----------------------------------------------------------------------------- the archive
class Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def rig(tmp_path: Path):
    """A station without a daemon: settings with secrets, a core, a journal, hardware identities."""
    data = tmp_path / "data"
    store = ConfigStore.open(data, installation={"NumberOfConnectors": "2", "SerialNumber": "SN4711",
                                                 "BoxId": "TE-SN4711"})
    assert store.set("AuthorizationKey", KEY_HEX, Source.OCPP).ok
    assert store.set("GiroEStaticToken", TOKEN, Source.LOCAL).ok
    logs.add_secret_source(store.secret_values)
    db = Database.open(data)
    core = StationCore(store, SessionStore(db), [ConnectorSpec(i, 32, 3) for i in (1, 2)])
    core.start()
    core.controller_link(1, True)
    core.station_fault("LocalListConflict", True)
    clock = Clock(T0)
    journal = MessageJournal(data / JOURNAL_FILE, registry=store.registry, clock=clock)
    for minute, frame in enumerate([
        '[2,"c0","ChangeConfiguration",{"key":"HeartbeatInterval","value":"60"}]',  # 12:00, before
        f'[2,"c1","ChangeConfiguration",{{"key":"AuthorizationKey","value":"{KEY_HEX.upper()}"}}]',  # 12:01
        f'[2,"d1","DataTransfer",{{"vendorId":"x","data":"{PASSWORD} {TOKEN}"}}]',  # 12:02
        '[3,"d1",{"status":"Accepted"}]',  # 12:03
        '[2,"h9","Heartbeat",{}]',  # 12:04, after
    ]):
        clock.now = T0 + timedelta(minutes=minute)
        journal.record("in" if frame.startswith("[2") else "out", frame)
    hello = SimpleNamespace(hardware_id="EVSE-0042", firmware_version=(2, 1, 7), bootloader_version=(1, 0, 3),
                            protocol_version=(1, 2))
    hardware = SimpleNamespace(drivers={1: SimpleNamespace(hello=hello)},
                               readers={1: SimpleNamespace(model="SDM630", device_id=1)})
    station = SimpleNamespace(store=store, core=core, hardware=hardware, ocpp=SimpleNamespace(journal=journal),
                              boot_id=7)
    yield station
    journal.close()
    db.close()


def journald(records: list[tuple[datetime, str, int]], calls: list[list[str]] | None = None):
    """A journalctl runner giving ``records`` (time, message, priority) newest first, as --reverse does."""
    def runner(argv: list[str]):
        if calls is not None:
            calls.append(argv)
        for moment, message, priority in sorted(records, reverse=True):
            yield json.dumps({"__REALTIME_TIMESTAMP": str(int(moment.timestamp() * 1e6)), "MESSAGE": message,
                              "PRIORITY": str(priority), "_SYSTEMD_UNIT": "stationd.service"}).encode() + b"\n"
    return runner


def test_the_archive_name_is_serial_time_diagnostics():
    assert diagnostics.archive_name("SN4711", T0 + timedelta(seconds=5.9)) == "SN4711-20260301T120005Z-diagnostics.tar.gz"
    assert NAME_RE.match(diagnostics.archive_name("a b/../c", T0)).group("serial") == "a_b_.._c"
    assert diagnostics.archive_name("", T0).startswith("station-")


def test_the_archive_holds_the_window_settings_hardware_and_a_manifest(rig, tmp_path: Path):
    calls: list[list[str]] = []
    source = JournaldLogs(runner=journald([
        (T0 + timedelta(seconds=30), "stationd.ocpp: before the window", 6),
        (T0 + timedelta(minutes=1, seconds=30), "stationd.daemon: inside the window", 6),
        (T0 + timedelta(minutes=2, seconds=30), f"stationd.config: oops {PASSWORD}", 4),
        (T0 + timedelta(minutes=3, seconds=30), "stationd.ocpp: after the window", 6),
    ], calls))
    start, stop = T0 + timedelta(minutes=1), T0 + timedelta(minutes=3)
    path = diagnostics.build_archive(rig, start, stop, tmp_path / "out", log_source=source, now=T0 + timedelta(hours=1))
    assert path.name == "SN4711-20260301T130000Z-diagnostics.tar.gz" and path.parent == tmp_path / "out"
    files = extract(path)
    assert set(files) == {f"SN4711-20260301T130000Z-diagnostics/{name}" for name in
                          ("manifest.json", "logs.txt", "ocpp-journal.txt", "settings.json", "hardware.json")}
    text = by_name(files)
    assert calls == [["journalctl", "-u", "stationd", "-o", "json", "--no-pager", "--reverse",
                      f"--since=@{int(start.timestamp())}", f"--until=@{int(stop.timestamp())}"]]
    log_lines = text["logs.txt"].splitlines()
    assert [line.split(" ", 1)[1] for line in log_lines] == [
        "INFO stationd.daemon: inside the window", "WARNING stationd.config: oops ***"]  # in time order
    assert log_lines[0].startswith("2026-03-01T12:01:30.000000Z ")
    journal_lines = text["ocpp-journal.txt"].splitlines()
    assert [line.split(" ")[0] for line in journal_lines] == [
        "2026-03-01T12:01:00.000Z", "2026-03-01T12:02:00.000Z", "2026-03-01T12:03:00.000Z"]
    assert '"key":"AuthorizationKey","value":"***"' in journal_lines[0] and " -> [3," in journal_lines[2]
    settings = {row["key"]: row for row in json.loads(text["settings.json"])["keys"]}
    assert settings["AuthorizationKey"] == {"key": "AuthorizationKey", "readonly": False, "secret": True, "set": True}
    assert settings["GiroEStaticToken"]["secret"] and "value" not in settings["GiroEStaticToken"]
    assert settings["HeartbeatInterval"]["value"] == "600" and settings["FactoryReset"]  # hidden keys too
    assert all("value" not in row for row in settings.values() if row.get("secret"))
    hardware = json.loads(text["hardware.json"])
    one, two = hardware["connectors"]
    assert one["controller"]["firmwareVersion"] == "2.1.7" and one["controller"]["hardwareId"] == "EVSE-0042"
    assert one["controller"]["linkUp"] is True and one["meter"]["model"] == "SDM630"
    assert two["controller"]["linkUp"] is False and "firmwareVersion" not in two["controller"]
    assert hardware["station"] == {"operative": True, "faults": ["LocalListConflict"], "bootId": 7}
    manifest = json.loads(text["manifest.json"])
    assert manifest["fileName"] == path.name and manifest["station"]["serialNumber"] == "SN4711"
    assert manifest["window"] == {"startTime": "2026-03-01T12:01:00Z", "stopTime": "2026-03-01T12:03:00Z"}
    assert manifest["logSource"] == "journald (journalctl -u stationd)" and manifest["problems"] == []
    for name in ("logs.txt", "ocpp-journal.txt", "settings.json", "hardware.json"):
        blob = files[f"SN4711-20260301T130000Z-diagnostics/{name}"]
        assert manifest["files"][name]["sha256"] == hashlib.sha256(blob).hexdigest()
    assert manifest["files"]["logs.txt"]["lines"] == 2 and manifest["files"]["ocpp-journal.txt"]["lines"] == 3
    assert_no_secret(files, secret_forms("TE-SN4711", TOKEN))


def test_the_archive_is_size_bounded_keeping_the_newest_lines(rig, tmp_path: Path):
    records = [(T0 + timedelta(seconds=i), f"stationd.ocpp: line {i:05d} " + "x" * 100, 6) for i in range(2000)]
    calls: list[list[str]] = []
    path = diagnostics.build_archive(rig, None, None, tmp_path / "out", log_source=JournaldLogs(
        runner=journald(records, calls)), now=T0 + timedelta(hours=1), log_bytes=20_000, journal_bytes=200)
    text = by_name(extract(path))
    lines = text["logs.txt"].splitlines()
    assert 100 < len(lines) < 200 and len(text["logs.txt"].encode()) <= 20_000
    assert lines[-1].split(" ")[4] == "01999" and "--since" not in " ".join(calls[0])  # the newest, no window
    assert len(text["ocpp-journal.txt"].splitlines()) == 2 and len(text["ocpp-journal.txt"]) <= 200
    assert text["ocpp-journal.txt"].splitlines()[-1].endswith('<- [2,"h9","Heartbeat",{}]')  # the newest frames
    manifest = json.loads(text["manifest.json"])
    assert manifest["files"]["logs.txt"]["truncated"] and manifest["files"]["ocpp-journal.txt"]["truncated"]
    assert manifest["window"]["startTime"] is None


def test_logs_from_the_in_process_ring_or_a_file(rig, tmp_path: Path):
    ring = LogRing()
    root = logging.getLogger(logs.ROOT)
    root.addHandler(ring)
    root.setLevel(logging.INFO)
    logging.getLogger("stationd.test").info("the key is %s, the token %s", PASSWORD, TOKEN)
    logging.getLogger("stationd.test").info("nothing secret here")
    log_file = tmp_path / "stationd.log"
    log_file.write_text(f"2026-03-01T12:00:00.000Z INFO stationd.x: early\n"
                        f"2026-03-01T12:05:00.000Z INFO stationd.x: late {KEY_HEX}\n"
                        f"  a continuation line\n")
    from_ring = by_name(extract(diagnostics.build_archive(rig, None, None, tmp_path / "a", log_source=ring)))
    assert from_ring["logs.txt"].splitlines()[-1].endswith("INFO stationd.test: nothing secret here")
    assert "the key is ***, the token ***" in from_ring["logs.txt"]
    from_file = by_name(extract(diagnostics.build_archive(rig, T0 + timedelta(minutes=1), T0 + timedelta(minutes=9),
                                                          tmp_path / "b", log_source=LogFileLogs(log_file))))
    assert from_file["logs.txt"].splitlines() == ["2026-03-01T12:05:00.000000Z INFO stationd.x: late ***",
                                                  "2026-03-01T12:05:00.000000Z   a continuation line"]
    assert default_log_source({"JOURNAL_STREAM": "8:1234"}, lambda name: "/usr/bin/journalctl").description \
        == "journald (journalctl -u stationd)"
    assert isinstance(default_log_source({}, lambda name: None), (LogRing, diagnostics.NoLogs))


WORDS = ["héllo", "Ünïcödé", "😀", "日本語", "plain", PASSWORD, PASSWORD.upper(), KEY_HEX.upper(), TOKEN,
         "ftp://user:pw-123@127.0.0.1/x", "ß", "\ud800", "x" * 40]


def stamp(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def write_log(path: Path, first: datetime, count: int, rnd: random.Random) -> None:
    """A log file in the terminal format: non-ASCII, secrets in every form, continuation lines."""
    with open(path, "w", encoding="utf-8", errors="surrogatepass", newline="") as out:
        for i in range(count):
            out.write(f"{stamp(first + timedelta(seconds=i))} INFO stationd.x: "
                      f"{' '.join(rnd.choice(WORDS) for _ in range(8))}\n")
            if i % 50 == 0:
                out.write(f"  continued {rnd.choice(WORDS)}\r\n")


def write_journal(path: Path, first: datetime, count: int, rnd: random.Random) -> None:
    with open(path, "w", encoding="utf-8", errors="surrogatepass") as out:
        for i in range(count):
            data = " ".join(rnd.choice(WORDS) for _ in range(6))
            entry = JournalEntry(first + timedelta(seconds=i), "in" if i % 2 else "out",
                                 f'[2,"m{i}","DataTransfer",{{"vendorId":"x","data":"{data}"}}]')
            out.write(entry.line() + "\n")


def whole_text_archive(snapshot, start, stop, source, log_bytes, journal_bytes) -> dict[str, bytes]:
    """logs.txt and ocpp-journal.txt as the archive made them before it streamed: every line
    joined into one text, masked as a whole, encoded."""
    masker = SecretMasker(snapshot.registry, secrets=lambda: snapshot.secrets, include_registered=False)
    log_lines = source.excerpt(start, stop or snapshot.created, log_bytes).lines
    entries = snapshot.journal.read(start, stop or snapshot.created)
    journal, _ = newest_within((diagnostics.LogLine(e.time, e.line()) for e in entries), journal_bytes)
    return {name: masker.redact("".join(f"{line}\n" for line in lines)).encode("utf-8", "replace")
            for name, lines in (("logs.txt", [line.line() for line in log_lines]),
                                ("ocpp-journal.txt", [line.text for line in journal]))}


def test_the_streamed_archive_is_byte_identical_to_masking_the_whole_text(rig, tmp_path: Path):
    rnd = random.Random(4711)
    log_file = tmp_path / "stationd.log"
    write_log(log_file.with_name("stationd.log.1"), T0, 1500, rnd)
    write_log(log_file, T0 + timedelta(seconds=1500), 1500, rnd)
    journal_file = tmp_path / "journal" / JOURNAL_FILE
    journal_file.parent.mkdir()
    write_journal(journal_file, T0, 2500, rnd)
    journal = MessageJournal(journal_file, registry=rig.store.registry, load=False)
    snapshot = diagnostics.take_snapshot(rig, now=T0 + timedelta(days=1))
    snapshot.journal, snapshot.journal_entries = journal, None
    records = [(T0 + timedelta(seconds=i), " ".join(rnd.choice(WORDS) for _ in range(8)), i % 8) for i in range(2000)]
    for start, stop, log_bytes, journal_bytes in [(None, None, 8 << 20, 8 << 20),  # everything
                                                  (T0 + timedelta(minutes=5), T0 + timedelta(minutes=40), 60_000,
                                                   50_000)]:  # a window, the oldest lines left out
        for source in (LogFileLogs(log_file), JournaldLogs(runner=journald(records))):
            path = diagnostics.write_archive(snapshot, start, stop, tmp_path / "out", log_source=source,
                                             log_bytes=log_bytes, journal_bytes=journal_bytes)
            with tarfile.open(path, "r:gz") as tar:
                members = {m.name.split("/", 1)[1]: m for m in tar.getmembers()}
                files = {name: tar.extractfile(m).read() for name, m in members.items()}
            expected = whole_text_archive(snapshot, start, stop, source, log_bytes, journal_bytes)
            assert files["logs.txt"] == expected["logs.txt"] and files["logs.txt"]
            assert files["ocpp-journal.txt"] == expected["ocpp-journal.txt"] and files["ocpp-journal.txt"]
            assert list(members) == ["manifest.json", "logs.txt", "ocpp-journal.txt", "settings.json",
                                     "hardware.json"]
            assert all(m.size == len(files[name]) and m.mode == 0o644 and m.uname == "stationd"
                       for name, m in members.items())
            manifest = json.loads(files["manifest.json"])
            for name in ("logs.txt", "ocpp-journal.txt"):
                assert manifest["files"][name]["bytes"] == len(files[name])
                assert manifest["files"][name]["sha256"] == hashlib.sha256(files[name]).hexdigest()
                assert manifest["files"][name]["lines"] == files[name].count(b"\n")
                assert manifest["files"][name]["truncated"] == (log_bytes < 1 << 20)
            text = files["logs.txt"].decode()
            assert "héllo" in text and "😀" in text and "日本語" in text and "ftp://user:***@127.0.0.1/x" in text
            assert "\ud800" not in text  # a lone surrogate: replaced (journald "?", a file's bytes U+FFFD)
            assert_no_secret(files, secret_forms("TE-SN4711", TOKEN))
            assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [path.name]  # no temporary file left
    journal.close()


def test_building_an_archive_from_16_mb_of_logs_keeps_memory_small(rig, tmp_path: Path):
    """Streamed: log lines and frames are read, masked and written one at a time, so the
    memory the build takes does not grow with the archive (before: several copies of it)."""
    rnd = random.Random(16)
    log_file = tmp_path / "stationd.log"
    write_log(log_file.with_name("stationd.log.1"), T0, 25_000, rnd)  # ~5 MB each, non-ASCII and secrets
    write_log(log_file, T0 + timedelta(seconds=25_000), 25_000, rnd)
    journal_file = tmp_path / "journal" / JOURNAL_FILE
    journal_file.parent.mkdir()
    write_journal(journal_file, T0, 40_000, rnd)  # ~6 MB
    journal = MessageJournal(journal_file, registry=rig.store.registry, load=False)
    snapshot = diagnostics.take_snapshot(rig, now=T0 + timedelta(days=2))
    snapshot.journal, snapshot.journal_entries = journal, None
    logs_size = sum(p.stat().st_size for p in (log_file, log_file.with_name("stationd.log.1"), journal_file))
    assert logs_size > 15_000_000
    tracemalloc.start()
    try:
        path = diagnostics.write_archive(snapshot, None, None, tmp_path / "out", log_source=LogFileLogs(log_file),
                                         log_bytes=8 << 20, journal_bytes=4 << 20)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    journal.close()
    manifest = json.loads(extract(path)[f"{path.name.removesuffix('.tar.gz')}/manifest.json"])
    assert manifest["files"]["logs.txt"]["bytes"] > 5_000_000 and manifest["files"]["logs.txt"]["truncated"]
    assert manifest["files"]["ocpp-journal.txt"]["bytes"] > 2_000_000
    assert manifest["files"]["ocpp-journal.txt"]["truncated"]
    assert peak < 4 * 2**20, f"building the archive took {peak / 2**20:.1f} MiB"


# ----------------------------------------------------------------------------- GetDiagnostics end to end
@pytest.fixture
async def station(tmp_path: Path, cs: CentralSystem):
    logging.getLogger(logs.ROOT).setLevel(logging.INFO)  # as logs.configure() sets it
    world = SimWorld([SimConnectorSpec(1), SimConnectorSpec(2)], tmp_path / "sim", vehicle_reaction_s=0)
    await world.start()
    running = Station(config_for(tmp_path / "data", cs.url), world)
    await cs.wait_for("BootNotification", timeout=15)
    await cs.wait_for("StatusNotification", predicate=lambda r: r.payload["connectorId"] == 2, timeout=15)
    yield running
    await running.stop()
    await world.stop()


@pytest.fixture
def ftp_files(tmp_path: Path):
    server = FtpFiles(tmp_path / "ftp")
    yield server
    server.stop()


def statuses(cs: CentralSystem) -> list[str]:
    return [r.payload["status"] for r in cs.messages(BOX)
            if r.action == "DiagnosticsStatusNotification" and r.direction == "in" and r.message_type_id == 2]


async def wait_for_status(cs: CentralSystem, status: str, timeout: float = 15.0) -> None:
    await until(lambda: status in statuses(cs), timeout)


async def test_get_diagnostics_uploads_by_http_put_and_nothing_secret_leaves(station, cs, http_files, tmp_path):
    assert (await cs.call(BOX, "ChangeConfiguration", {"key": "AuthorizationKey", "value": KEY_HEX.upper()}))[
        "status"] == "Accepted"
    assert (await cs.call(BOX, "ChangeConfiguration", {"key": "GiroEStaticToken", "value": TOKEN}))[
        "status"] == "Accepted"
    await until(lambda: all(d.hello for d in station.station.hardware.drivers.values()))  # controllers said hello
    start = datetime.now(timezone.utc) - timedelta(hours=1)
    answer = await cs.call(BOX, "GetDiagnostics", {"location": f"{http_files.base}/upload/", "retries": 1,
                                                   "retryInterval": 1, "startTime": start.isoformat()})
    name = answer["fileName"]
    assert NAME_RE.match(name).group("serial") == "IT0001"
    await wait_for_status(cs, "Uploaded")
    assert statuses(cs) == ["Uploading", "Uploaded"]
    received = http_files.uploads[name]
    kept = tmp_path / "data" / "diagnostics" / name
    assert received == kept.read_bytes()  # the whole file, intact
    put = next(r for r in http_files.requests if r.method == "PUT")
    assert put.path == f"/upload/{name}"
    files = extract(received)
    text = by_name(files)
    assert '"key":"AuthorizationKey","value":"***"' in text["ocpp-journal.txt"]
    assert "GetDiagnostics" in text["ocpp-journal.txt"]  # the request itself is in the window
    assert '"connectorId":2' in text["ocpp-journal.txt"]
    hardware = json.loads(text["hardware.json"])
    assert [c["id"] for c in hardware["connectors"]] == [1, 2]
    assert hardware["connectors"][0]["controller"]["firmwareVersion"]  # from the simulated controller's Hello
    assert json.loads(text["manifest.json"])["station"]["chargeBoxId"] == BOX
    assert "BootNotification accepted" in text["logs.txt"]  # the daemon's log lines, from its ring
    assert json.loads(text["manifest.json"])["logSource"].startswith("in-process log ring")
    assert_no_secret(files, secret_forms(BOX, TOKEN))
    assert_no_secret({"journal": "\n".join(e.text for e in station.station.ocpp.journal.recent(500)).encode()},
                     secret_forms(BOX, TOKEN))
    trigger = await cs.call(BOX, "TriggerMessage", {"requestedMessage": "DiagnosticsStatusNotification"})
    assert trigger == {"status": "Accepted"}
    await until(lambda: statuses(cs)[-1:] == ["Idle"])  # Idle only when triggered


async def test_get_diagnostics_uploads_by_ftp(station, cs, ftp_files):
    answer = await cs.call(BOX, "GetDiagnostics", {"location": f"{ftp_files.base}/"})
    name = answer["fileName"]
    await wait_for_status(cs, "Uploaded")
    stored = ftp_files.root / name
    assert stored.exists() and extract(stored)  # a complete gzip'd tar
    assert (station.station.config.data_dir / "diagnostics" / name).read_bytes() == stored.read_bytes()
    text = by_name(extract(stored))
    assert "ftp://fw-reader:***@127.0.0.1" in text["ocpp-journal.txt"]  # the location's password masked
    assert "s3cret-pw" not in "".join(text.values())


async def test_a_server_that_is_down_gets_retries_then_upload_failed(station, cs, http_files, caplog):
    await http_files.stop()  # nothing listens there any more
    answer = await cs.call(BOX, "GetDiagnostics", {"location": f"{http_files.base}/upload/", "retries": 2,
                                                   "retryInterval": 1})
    assert answer["fileName"]
    await wait_for_status(cs, "Uploading")
    assert await cs.call(BOX, "GetDiagnostics", {"location": f"{http_files.base}/upload/"}) == {}  # busy
    await wait_for_status(cs, "UploadFailed", timeout=20)
    assert statuses(cs) == ["Uploading", "UploadFailed"]
    attempts = [r for r in caplog.records if "diagnostics upload to" in r.getMessage()]
    assert [re.search(r"attempt (\d) of 3", r.getMessage()).group(1) for r in attempts] == ["1", "2", "3"]
    with pytest.raises(CallErrorReceived) as refused:
        await cs.call(BOX, "GetDiagnostics", {"location": "sftp://127.0.0.1/up/"})
    assert refused.value.code == "PropertyConstraintViolation"
