"""The OCPP message journal: a bounded ring, a rotating file, secrets masked, never in the way."""

from __future__ import annotations

import asyncio
import base64
import errno
import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosedOK

from stationd import logs
from stationd.config.store import ConfigStore
from stationd.config.value_types import Source
from stationd.ocpp_client.journal import JOURNAL_FILE, JournalEntry, MessageJournal
from stationd.ocpp_client.rpc import RpcEndpoint

PASSWORD = "Sesame-Open-Up-1234"  # 19 bytes: a valid AuthorizationKey from a backend, as hex
KEY_HEX = PASSWORD.encode().hex()
BOX = "TE-JOURNAL1"
BASIC = base64.b64encode(f"{BOX}:{PASSWORD}".encode()).decode()
FORMS = (PASSWORD, KEY_HEX, KEY_HEX.upper(), BASIC, base64.b64encode(PASSWORD.encode()).decode().rstrip("="))


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=10)
        return self.now


@pytest.fixture(autouse=True)
def restore_secret_sources() -> Iterator[None]:
    sources = list(logs._secret_sources)
    yield
    logs._secret_sources[:] = sources


@pytest.fixture
def store(tmp_path: Path) -> ConfigStore:
    return ConfigStore.open(tmp_path / "data", installation={"BoxId": BOX})


def journal_in(tmp_path: Path, store: ConfigStore | None = None, **kwargs) -> MessageJournal:
    registry = {"registry": store.registry} if store is not None else {}
    return MessageJournal(tmp_path / "data" / JOURNAL_FILE, clock=Clock(), **registry, **kwargs)


def change(key: str, value: str, uid: str = "c1") -> str:
    return json.dumps([2, uid, "ChangeConfiguration", {"key": key, "value": value}])


def everything(journal: MessageJournal) -> str:
    """What the journal keeps: its memory and its files."""
    memory = "\n".join(e.text for e in journal.recent(10_000))
    files = "\n".join(p.read_text() for p in journal.files())
    return memory + "\n" + files


def assert_no_secret(text: str) -> None:
    for form in FORMS:
        assert form.lower() not in text.lower(), form


# ----------------------------------------------------------------------------- the ring and the file
def test_every_frame_is_kept_in_memory_and_in_the_file_with_time_and_direction(tmp_path: Path):
    journal = journal_in(tmp_path)
    journal.record("out", '[2,"b1","BootNotification",{"chargePointVendor":"v","chargePointModel":"m"}]')
    journal.record("in", '[3,"b1",{"status":"Accepted","currentTime":"2026-03-01T12:00:00Z","interval":300}]')
    journal.record("in", b"\x00\x01")  # binary frames are noted, not kept
    recent = journal.recent(10)
    assert [e.direction for e in recent] == ["out", "in", "in"]
    assert recent[0].text.startswith('[2,"b1","BootNotification"') and recent[2].text == "<binary frame, 2 bytes>"
    assert recent[0].time < recent[1].time and recent[0].time.tzinfo is not None
    lines = (tmp_path / "data" / JOURNAL_FILE).read_text().splitlines()
    assert lines[0].endswith(' -> [2,"b1","BootNotification",{"chargePointVendor":"v","chargePointModel":"m"}]')
    assert " <- [3," in lines[1]
    assert [JournalEntry.parse(line) for line in lines] == recent  # the file says what the memory says
    assert journal.recent(1) == recent[-1:] and journal.recent(0) == []


def test_the_ring_keeps_the_last_frames_only(tmp_path: Path):
    journal = journal_in(tmp_path, memory_entries=500)
    for i in range(1200):
        journal.record("in" if i % 2 else "out", f'[2,"{i}","Heartbeat",{{}}]')
    recent = journal.recent(10_000)
    assert len(recent) == 500
    assert recent[0].text == '[2,"700","Heartbeat",{}]' and recent[-1].text == '[2,"1199","Heartbeat",{}]'
    assert [e.text for e in journal.recent(2)] == ['[2,"1198","Heartbeat",{}]', '[2,"1199","Heartbeat",{}]']
    small = journal_in(tmp_path / "chars", memory_chars=1000)  # also bounded by characters
    for i in range(100):
        small.record("in", "x" * 300)
    assert len(small.recent(100)) == 3


def test_the_file_rotates_at_its_size_and_keeps_one_older_file(tmp_path: Path):
    journal = journal_in(tmp_path, file_bytes=4096)
    for i in range(400):
        journal.record("out", f'[2,"{i:04d}","Heartbeat",{{}}]')
    files = journal.files()
    assert [p.name for p in files] == [f"{JOURNAL_FILE}.1", JOURNAL_FILE]
    assert all(p.stat().st_size <= 4096 for p in files)
    assert not (tmp_path / "data" / f"{JOURNAL_FILE}.2").exists()
    entries = list(journal.read())
    assert entries[-1].text == '[2,"0399","Heartbeat",{}]'  # the newest frames, in order
    numbers = [int(json.loads(e.text)[1]) for e in entries]
    assert numbers == sorted(numbers) and numbers == list(range(numbers[0], 400))
    window = list(journal.read(entries[10].time, entries[20].time))
    assert window == entries[10:21]


def test_a_restarted_journal_shows_the_frames_of_before(tmp_path: Path):
    first = journal_in(tmp_path)
    for i in range(5):
        first.record("in", f'[2,"{i}","Heartbeat",{{}}]')
    first.close()
    again = journal_in(tmp_path)
    assert [e.text for e in again.recent(10)] == [f'[2,"{i}","Heartbeat",{{}}]' for i in range(5)]
    again.record("out", '[3,"5",{}]')
    assert len(list(again.read())) == 6


# ----------------------------------------------------------------------------- secrets
def test_a_changed_authorization_key_is_masked_in_memory_and_in_the_file(tmp_path: Path, store: ConfigStore):
    journal = MessageJournal.for_store(tmp_path / "data" / JOURNAL_FILE, store, clock=Clock())  # as the client
    journal.record("in", change("AuthorizationKey", KEY_HEX.upper()))  # the store does not know it yet
    assert store.set("AuthorizationKey", KEY_HEX.upper(), Source.OCPP).ok  # known from the next frame on
    journal.record("out", '[3,"c1",{"status":"Accepted"}]')
    journal.record("in", change("authorizationkey", KEY_HEX, "c2"))  # any case
    journal.record("in", '[2,"c3","ChangeConfiguration",{"key":"AuthorizationKey","value":"' + KEY_HEX)  # not JSON
    # the secret as other frames might carry it: plain, hex, Basic token, base64
    journal.record("in", json.dumps([2, "d1", "DataTransfer", {"vendorId": "x", "data": " ".join(FORMS)}]))
    kept = everything(journal)
    assert_no_secret(kept)
    assert kept.count('"value":"***"') == 2 * 3  # memory and file
    assert '"key":"AuthorizationKey"' in kept  # which key changed is still there


def test_secrets_the_log_redaction_knows_are_masked_too(tmp_path: Path, store: ConfigStore):
    assert store.set("AuthorizationKey", PASSWORD, Source.LOCAL).ok
    assert store.set("GiroEStaticToken", "giro-static-token-42", Source.LOCAL).ok
    logs.add_secret_source(store.secret_values)  # as the daemon does; the journal is given nothing
    journal = journal_in(tmp_path, store)
    journal.record("in", json.dumps([2, "d1", "DataTransfer", {"vendorId": "x", "data": " ".join(FORMS)}]))
    journal.record("in", change("GiroEStaticToken", "another-static-token"))  # secret by the registry
    journal.record("in", json.dumps([2, "d2", "DataTransfer", {"vendorId": "x", "data": "giro-static-token-42"}]))
    kept = everything(journal)
    assert_no_secret(kept)
    assert "giro-static-token-42" not in kept and "another-static-token" not in kept


def test_other_frames_are_kept_verbatim_and_url_passwords_masked(tmp_path: Path, store: ConfigStore):
    journal = journal_in(tmp_path, store)
    plain = '[2, "c9", "ChangeConfiguration", {"key": "HeartbeatInterval", "value": "60"}]'
    journal.record("in", plain)
    journal.record("in", '[2,"g1","GetDiagnostics",{"location":"ftp://diag:pa55word@127.0.0.1:2121/up/"}]')
    journal.record("in", '[2,"x1","DataTransfer",{"vendorId":"x","data":{"password":"hunter2hunter2"}}]')
    texts = [e.text for e in journal.recent(3)]
    assert texts[0] == plain
    assert texts[1] == '[2,"g1","GetDiagnostics",{"location":"ftp://diag:***@127.0.0.1:2121/up/"}]'
    assert "hunter2hunter2" not in texts[2]


# ----------------------------------------------------------------------------- failures
class FullDisk:
    def write(self, data: str) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def test_a_full_disk_never_stops_the_journal(tmp_path: Path, caplog):
    seconds = [0.0]
    journal = journal_in(tmp_path, monotonic=lambda: seconds[0])
    journal.record("in", '[2,"1","Heartbeat",{}]')
    journal._file = FullDisk()  # the disk fills up
    journal.record("in", '[2,"2","Heartbeat",{}]')
    journal.record("in", '[2,"3","Heartbeat",{}]')
    assert [e.text for e in journal.recent(3)][-1] == '[2,"3","Heartbeat",{}]'  # memory goes on
    assert journal.file_errors == 1 and "cannot write" in caplog.text
    seconds[0] = 61.0  # space again; the journal tries the file again after a while
    journal.record("in", '[2,"4","Heartbeat",{}]')
    lines = (tmp_path / "data" / JOURNAL_FILE).read_text().splitlines()
    assert [json.loads(line.split(" ", 2)[2])[1] for line in lines] == ["1", "4"]


def test_an_unwritable_directory_only_costs_the_file(tmp_path: Path):
    (tmp_path / "data").write_text("a file where the data directory should be")
    journal = journal_in(tmp_path)
    journal.record("out", '[2,"1","Heartbeat",{}]')
    assert len(journal.recent(5)) == 1 and journal.files() == []


class FakeSocket:
    def __init__(self, frames: list[str]):
        self.frames, self.sent = list(frames), []

    async def recv(self) -> str:
        await asyncio.sleep(0)
        if not self.frames:
            raise ConnectionClosedOK(None, None)
        return self.frames.pop(0)

    async def send(self, text: str) -> None:
        self.sent.append(text)


class BrokenJournal:
    def record(self, direction: str, frame) -> None:
        raise RuntimeError("journal broken")


@pytest.mark.parametrize("broken", [False, True])
async def test_the_rpc_layer_journals_every_frame_and_survives_a_broken_journal(tmp_path: Path, broken: bool):
    journal = BrokenJournal() if broken else journal_in(tmp_path)
    socket = FakeSocket(['[2,"h1","Heartbeat",{}]', "not json", '[2,"x1","Nonsense",{}]'])

    async def handler(action: str, payload: dict) -> dict:
        return {"currentTime": "2026-03-01T12:00:00Z"}

    endpoint = RpcEndpoint(socket, handler, journal=journal)
    await endpoint.run()
    await endpoint.shutdown()
    assert len(socket.sent) == 2  # answered whatever the journal did
    if not broken:
        entries = journal.recent(10)
        assert [e.direction for e in entries].count("in") == 3 and [e.direction for e in entries].count("out") == 2
        assert {e.text for e in entries if e.direction == "out"} == set(socket.sent)
