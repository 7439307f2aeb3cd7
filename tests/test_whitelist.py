"""The local whitelist: UID normal form, the SQLite-backed list, its change counter and lookup."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from stationd.auth import (
    Entry,
    InvalidEntry,
    InvalidUid,
    UnknownUid,
    Whitelist,
    WhitelistFull,
    normalize_uid,
)
from stationd.auth.whitelist import MAX_ENTRIES, parse_expiry
from stationd.hw.rfid import parse_uid
from stationd.storage import Database

UTC = timezone.utc


@pytest.fixture
def db(tmp_path: Path):
    database = Database.open(tmp_path)
    yield database
    database.close()


@pytest.fixture
def wl(db: Database) -> Whitelist:
    return Whitelist(db)


# ----------------------------------------------------------------------------- UID normal form
@pytest.mark.parametrize("given, normal", [
    ("aec78085", "aec78085"),                 # the reader's form: unchanged
    ("AEC78085", "aec78085"),                 # a backend's or a person's: case folded
    ("AE:C7:80:85", "aec78085"),              # byte pairs with separators
    ("ae-c7-80-85", "aec78085"),
    ("AE C7 80 85", "aec78085"),
    ("04:88:DD:2A:56:1D:80", "0488dd2a561d80"),  # 7 bytes
    ("01:02:03:04:05:06:07:08:09:0A", "0102030405060708090a"),  # 10 bytes, 29 characters as typed
    ("  aec78085\t", "aec78085"),
    ("Fleet-007", "fleet-007"),               # any CiString20
    ("12-34-5678", "12-34-5678"),             # not every pair separated: kept as typed (lower case)
    ("AE:C7-80:85", "ae:c7-80:85"),           # mixed separators: kept
    ("11:22:33:44:55", "11:22:33:44:55"),     # 5 bytes: no reader reports those
    ("abc def", "abc def"),                   # blanks inside are CiString characters
    ("=1+2", "=1+2"),
    ("x" * 20, "x" * 20),
])
def test_uid_normal_form(given, normal):
    assert normalize_uid(given) == normal
    assert normalize_uid(normal) == normal  # idempotent


@pytest.mark.parametrize("given, fragment", [
    ("", "empty"),
    ("   ", "empty"),
    ("x" * 21, "at most 20"),
    ("0123456789abcdef01234", "at most 20"),
    ("müller", "non-ASCII"),
    ("aec7\x078085", "control character"),
    ("aec7\n8085", "control character"),
])
def test_invalid_uids_are_refused_with_a_reason(given, fragment):
    with pytest.raises(InvalidUid, match=fragment):
        normalize_uid(given)


def test_reader_backend_and_csv_spellings_find_the_same_entry(wl):
    wl.add("AE:C7:80:85")                       # typed by a technician
    reader_uid = parse_uid(b"AEC78085\r\n")     # what stationd/hw/rfid.py passes on
    assert reader_uid == "aec78085"
    for presented in (reader_uid, "AEC78085", "aec78085", "ae-c7-80-85"):
        assert wl.lookup(presented) is not None, presented
        assert wl.get(presented).uid == "aec78085"
    assert wl.lookup("aec78086") is None
    assert wl.lookup("") is None and wl.lookup("x" * 40) is None  # not a UID: not found, no error


# ----------------------------------------------------------------------------- values
@pytest.mark.parametrize("text, expected", [
    ("2020-01-01T12:00:00", datetime(2020, 1, 1, 12, tzinfo=UTC)),
    ("2020-01-01 12:00:00", datetime(2020, 1, 1, 12, tzinfo=UTC)),
    ("2020-01-01T12:00", datetime(2020, 1, 1, 12, tzinfo=UTC)),
    ("2020-01-01T12:00:00Z", datetime(2020, 1, 1, 12, tzinfo=UTC)),
    ("2020-01-01T12:00:00.999Z", datetime(2020, 1, 1, 12, tzinfo=UTC)),   # fractions dropped
    ("2020-01-01T13:00:00+01:00", datetime(2020, 1, 1, 12, tzinfo=UTC)),
    ("2020-01-01T07:00:00-0500", datetime(2020, 1, 1, 12, tzinfo=UTC)),
    ("", None),
])
def test_expiry_forms(text, expected):
    assert parse_expiry(text) == expected


@pytest.mark.parametrize("text, fragment", [
    ("2020-01-01", "has no time"),
    ("01.01.2020 12:00", "spreadsheet"),
    ("1/1/2020", "spreadsheet"),
    ("2020-02-30T12:00:00", "not a valid date"),
    ("2020-01-01T25:00:00", "not a valid date"),
    ("2020-01-01T12:00:00+24:00", "not a valid date"),
    ("soon", "not a date and time"),
])
def test_bad_expiries(text, fragment):
    with pytest.raises(InvalidEntry, match=fragment):
        parse_expiry(text)


def test_entry_status():
    now = datetime(2025, 1, 1, tzinfo=UTC)
    assert Entry.make("aec78085").status_at(now) == "Accepted"
    assert Entry.make("aec78085", authorization="Blocked").status_at(now) == "Blocked"
    assert Entry.make("aec78085", expiry="2024-12-31T23:59:59").status_at(now) == "Expired"
    assert Entry.make("aec78085", expiry="2025-01-01T00:00:01").status_at(now) == "Accepted"
    with pytest.raises(InvalidEntry, match="accepted or blocked"):
        Entry.make("aec78085", authorization="Invalid")


# ----------------------------------------------------------------------------- editing
def test_add_block_accept_delete_restore(wl):
    wl.add("AEC78085", gid="GROUP-1", expiry="2030-01-01T00:00:00")
    entry = wl.get("aec78085")
    assert entry == Entry("aec78085", "group-1", datetime(2030, 1, 1, tzinfo=UTC), "accepted")
    assert wl.block("aec78085").authorization == "blocked"
    assert wl.lookup("aec78085").blocked
    assert wl.accept("AEC78085").authorization == "accepted"
    deleted = wl.delete("aec78085")
    assert deleted.deleted and wl.lookup("aec78085") is None and wl.count() == 0
    assert wl.count(include_deleted=True) == 1
    assert [e.uid for e in wl.entries(include_deleted=True)] == ["aec78085"]
    assert wl.entries(hide_deleted=False) == wl.entries(include_deleted=True)
    assert wl.entries() == []
    restored = wl.restore("aec78085")
    assert not restored.deleted and restored.gid == "group-1"  # comes back as it was
    assert wl.lookup("aec78085") == restored


def test_add_of_a_listed_uid_updates_it_in_place(wl):
    for uid in ("aaaaaaaa", "bbbbbbbb", "cccccccc"):
        wl.add(uid)
    wl.add("BBBBBBBB", authorization="blocked")
    assert [(e.uid, e.authorization) for e in wl.entries()] == [
        ("aaaaaaaa", "accepted"), ("bbbbbbbb", "blocked"), ("cccccccc", "accepted")]


def test_unknown_and_wrong_state_uids_are_errors(wl):
    with pytest.raises(UnknownUid, match="not in the whitelist"):
        wl.block("aec78085")
    with pytest.raises(UnknownUid, match="not in the whitelist"):
        wl.delete("aec78085")
    with pytest.raises(UnknownUid, match="not in the whitelist"):
        wl.restore("aec78085")
    wl.add("aec78085")
    with pytest.raises(UnknownUid, match="not deleted"):
        wl.restore("aec78085")
    wl.delete("aec78085")
    with pytest.raises(UnknownUid, match="is deleted"):
        wl.block("aec78085")
    with pytest.raises(UnknownUid, match="is deleted"):
        wl.delete("aec78085")
    with pytest.raises(InvalidUid):
        wl.add("x" * 21)
    with pytest.raises(InvalidEntry):
        wl.add("aec78085", expiry="2020-01-01")


def test_paging_ten_rows_at_a_time(wl):
    wl.merge([Entry.make(f"{i:08x}") for i in range(25)])
    pages = [wl.entries(offset=offset, limit=10) for offset in (0, 10, 20)]
    assert [len(p) for p in pages] == [10, 10, 5]
    assert [e.uid for page in pages for e in page] == [f"{i:08x}" for i in range(25)]
    wl.delete("0000000a")
    assert wl.entries(offset=10, limit=1)[0].uid == "0000000b"
    assert wl.entries(offset=10, limit=1, hide_deleted=False)[0].uid == "0000000a"


# ----------------------------------------------------------------------------- deleted until the next start
def test_deleted_entries_are_restorable_until_the_daemon_starts_again(db, wl):
    wl.merge([Entry.make("aaaaaaaa"), Entry.make("bbbbbbbb")])
    wl.delete("aaaaaaaa")
    db.record_boot("test", None, "2025-01-01T00:00:00+00:00")  # the daemon starts again
    assert wl.get("aaaaaaaa") is None
    assert wl.count(include_deleted=True) == 1
    with pytest.raises(UnknownUid, match="can no longer be restored"):
        wl.restore("aaaaaaaa")
    wl.delete("bbbbbbbb")  # deleted during this boot: restorable
    assert wl.restore("bbbbbbbb").uid == "bbbbbbbb"
    wl.add("aaaaaaaa")  # a gone entry can be added again
    assert wl.get("aaaaaaaa").authorization == "accepted"


def test_purge_at_daemon_start_removes_deleted_rows(db, wl):
    wl.merge([Entry.make(f"{i:08x}") for i in range(5)])
    wl.delete("00000001")
    wl.delete("00000003")
    other = Whitelist(Database.open(db.path.parent))
    assert other.lookup("00000000") is not None  # a reader with a loaded view
    assert wl.purge_deleted() == 2
    assert wl.purge_deleted() == 0
    assert db.query("SELECT COUNT(*) FROM whitelist")[0][0] == 3
    assert other.refresh_if_changed()
    assert sorted(other._cache) == ["00000000", "00000002", "00000004"]
    other.db.close()


# ----------------------------------------------------------------------------- bulk writes
def test_merge_adds_and_updates_and_keeps_the_rest(wl):
    wl.merge([Entry.make("aaaaaaaa"), Entry.make("bbbbbbbb"), Entry.make("cccccccc")])
    summary = wl.merge([Entry.make("BBBBBBBB", authorization="blocked"), Entry.make("dddddddd"),
                        Entry.make("cccccccc")])
    assert (summary.added, summary.changed, summary.unchanged, summary.removed) == (1, 1, 1, 0)
    assert [(e.uid, e.authorization) for e in wl.entries()] == [
        ("aaaaaaaa", "accepted"), ("bbbbbbbb", "blocked"), ("cccccccc", "accepted"), ("dddddddd", "accepted")]


def test_replace_makes_the_list_exactly_the_new_entries_and_keeps_the_removed_restorable(wl):
    wl.merge([Entry.make("aaaaaaaa"), Entry.make("bbbbbbbb"), Entry.make("cccccccc")])
    summary = wl.replace_all([Entry.make("cccccccc"), Entry.make("dddddddd", gid="aaaaaaaa")])
    assert (summary.added, summary.changed, summary.unchanged, summary.removed) == (1, 0, 1, 2)
    assert [e.uid for e in wl.entries()] == ["cccccccc", "dddddddd"]
    assert {e.uid for e in wl.entries(include_deleted=True) if e.deleted} == {"aaaaaaaa", "bbbbbbbb"}
    wl.restore("aaaaaaaa")
    assert wl.count() == 3
    assert wl.replace_all([]).removed == 3 and wl.count() == 0


def test_an_unchanged_import_writes_nothing(wl):
    entries = [Entry.make(f"{i:08x}") for i in range(10)]
    wl.merge(entries)
    before = wl.change_counter()
    assert wl.merge(entries).total_changes == 0
    assert wl.replace_all(entries).total_changes == 0
    assert wl.change_counter() == before


def test_bulk_writes_are_all_or_nothing(wl, db):
    wl.merge([Entry.make("aaaaaaaa")])
    before = (wl.entries(include_deleted=True), wl.change_counter())
    with pytest.raises(InvalidEntry, match="more than once"):
        wl.replace_all([Entry.make("bbbbbbbb"), Entry.make("BBBBBBBB")])
    with pytest.raises(TypeError):
        wl.merge([Entry.make("bbbbbbbb"), ("cccccccc", None, None, "accepted")])  # type: ignore[list-item]
    # a failure inside the transaction (here: the database refuses a row) rolls everything back
    broken = Entry("cccccccc", None, None, "maybe")  # bypasses Entry.make: the CHECK constraint refuses it
    with pytest.raises(sqlite3.IntegrityError):
        wl.replace_all([Entry.make("bbbbbbbb"), broken])
    assert (wl.entries(include_deleted=True), wl.change_counter()) == before


# ----------------------------------------------------------------------------- capacity
def test_capacity_limit_is_a_clear_error_and_changes_nothing(db):
    wl = Whitelist(db, capacity=3)
    wl.merge([Entry.make("aaaaaaaa"), Entry.make("bbbbbbbb")])
    wl.add("cccccccc")
    with pytest.raises(WhitelistFull, match="at most 3 entries"):
        wl.add("dddddddd")
    wl.add("CCCCCCCC", authorization="blocked")  # an update needs no room
    with pytest.raises(WhitelistFull) as caught:
        wl.merge([Entry.make("aaaaaaaa"), Entry.make("eeeeeeee")])
    assert caught.value.index == 1 and caught.value.capacity == 3
    with pytest.raises(WhitelistFull) as caught:
        wl.replace_all([Entry.make(f"{i:08x}") for i in range(4)])
    assert caught.value.index == 3
    assert [e.uid for e in wl.entries()] == ["aaaaaaaa", "bbbbbbbb", "cccccccc"]
    wl.delete("aaaaaaaa")
    wl.add("dddddddd")
    with pytest.raises(WhitelistFull):
        wl.restore("aaaaaaaa")
    assert MAX_ENTRIES == 100_000


def test_the_config_keys_report_the_capacity():
    from stationd.config.keys import REGISTRY
    assert REGISTRY.key("LocalAuthListMaxLength").default == MAX_ENTRIES
    assert REGISTRY.key("SendLocalListMaxLength").default >= MAX_ENTRIES


# ----------------------------------------------------------------------------- change counter and lookup
def test_a_second_instance_sees_changes_through_the_counter(tmp_path):
    writer = Whitelist(Database.open(tmp_path))
    reader = Whitelist(Database.open(tmp_path))
    assert reader.lookup("aec78085") is None  # loads the (empty) list
    assert not reader.refresh_if_changed()
    counter = reader.change_counter()
    writer.add("aec78085")
    assert reader.lookup("aec78085") is None  # lookup never touches the database
    assert reader.change_counter() > counter
    assert reader.refresh_if_changed()
    assert reader.lookup("aec78085").authorization == "accepted"
    writer.block("aec78085")
    writer.add("ae36959e")
    writer.delete("ae36959e")
    writer.add("d2006c8e")
    assert reader.refresh_if_changed() and not reader.refresh_if_changed()
    assert reader.lookup("aec78085").blocked and reader.lookup("ae36959e") is None
    assert reader.lookup("d2006c8e") is not None
    writer.db.close()
    reader.db.close()


def test_the_own_writes_show_in_the_lookup_at_once(wl):
    assert wl.lookup("aec78085") is None
    wl.add("aec78085")
    assert wl.lookup("aec78085") is not None
    wl.delete("aec78085")
    assert wl.lookup("aec78085") is None


async def test_watch_picks_up_another_connections_change(tmp_path):
    daemon_side = Whitelist(Database.open(tmp_path))
    daemon_side.refresh_if_changed()
    task = asyncio.create_task(daemon_side.watch(interval=0.01))
    try:
        cli_side = Whitelist(Database.open(tmp_path))
        cli_side.add("aec78085")
        for _ in range(300):
            if daemon_side.lookup("aec78085") is not None:
                break
            await asyncio.sleep(0.01)
        assert daemon_side.lookup("aec78085") is not None
        cli_side.db.close()
    finally:
        task.cancel()
    daemon_side.db.close()


def test_100k_entries_merge_lookup_and_incremental_refresh(tmp_path):
    """Not a benchmark (timings printed, not asserted): the shape of the work at full size."""
    entries = [Entry(f"{i:08x}", None, None, "accepted") for i in range(MAX_ENTRIES)]
    writer = Whitelist(Database.open(tmp_path))
    started = time.perf_counter()
    summary = writer.merge(entries)
    merged = time.perf_counter() - started
    assert summary.added == MAX_ENTRIES and writer.count() == MAX_ENTRIES
    with pytest.raises(WhitelistFull):
        writer.add("ffffffff0")
    reader = Whitelist(Database.open(tmp_path))
    started = time.perf_counter()
    reader.refresh_if_changed()
    loaded = time.perf_counter() - started
    writer.block("0001869f")
    started = time.perf_counter()
    assert reader.refresh_if_changed()
    incremental = time.perf_counter() - started
    started = time.perf_counter()
    for i in range(0, MAX_ENTRIES, 10):
        assert reader.lookup(f"{i:08x}") is not None
    lookups = (time.perf_counter() - started) / (MAX_ENTRIES / 10)
    assert reader.lookup("0001869f").blocked
    print(f"\n100k: merge {merged:.2f} s, full load {loaded:.2f} s, refresh after one change "
          f"{incremental * 1000:.1f} ms, lookup {lookups * 1e6:.2f} µs")
    writer.db.close()
    reader.db.close()


def test_timestamps_use_the_injected_clock(db):
    moment = datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)
    wl = Whitelist(db, clock=lambda: moment)
    wl.add("aec78085")
    wl.delete("aec78085")
    assert wl.get("aec78085").deleted_at == moment
    assert db.query("SELECT updated_at FROM whitelist")[0][0] == "2025-03-04T05:06:07Z"
    assert moment + timedelta(0) == wl.entries(include_deleted=True)[0].deleted_at
