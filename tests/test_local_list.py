"""The OCPP local authorization list (SendLocalList rules, atomicity, change counter) and IdTagInfo."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from stationd.auth.id_tag_info import IdTagInfo, InvalidIdTagInfo
from stationd.auth.local_list import MAX_ENTRIES, ListEntry, LocalList
from stationd.storage import MIGRATIONS, Database

UTC = timezone.utc
OK = IdTagInfo("Accepted")
BLOCKED = IdTagInfo("Blocked")


@pytest.fixture
def db(tmp_path: Path):
    database = Database.open(tmp_path)
    yield database
    database.close()


@pytest.fixture
def ll(db: Database) -> LocalList:
    return LocalList(db)


def ids(ll: LocalList) -> list[str]:
    return [entry.id_tag for entry in ll.entries()]


def snapshot(ll: LocalList):
    """Everything an update may change: version, memory (lookups) and the stored rows."""
    ll.refresh_if_changed()
    return ll.version, ll.count(), dict(ll._map), ll.entries()


# ----------------------------------------------------------------------------- IdTagInfo
def test_id_tag_info_from_and_to_ocpp():
    info = IdTagInfo.from_ocpp({"status": "Accepted", "expiryDate": "2030-01-02T03:04:05.678Z",
                                "parentIdTag": "Fleet-A", "someVendorField": 1})
    assert info == IdTagInfo("Accepted", datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC), "fleet-a")
    assert info.to_ocpp() == {"status": "Accepted", "expiryDate": "2030-01-02T03:04:05Z", "parentIdTag": "fleet-a"}
    assert IdTagInfo.from_ocpp({"status": "Blocked"}).to_ocpp() == {"status": "Blocked"}
    assert IdTagInfo.from_ocpp({"status": "Invalid", "expiryDate": None, "parentIdTag": ""}) == IdTagInfo("Invalid")
    # an offset is converted to UTC; a time without zone is UTC
    assert IdTagInfo.from_ocpp({"status": "Accepted", "expiryDate": "2030-01-02T03:04:05+01:00"}).expiry == \
        datetime(2030, 1, 2, 2, 4, 5, tzinfo=UTC)
    assert IdTagInfo.from_ocpp({"status": "Accepted", "expiryDate": "2030-01-02T03:04:05"}).expiry == \
        datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    # constructed directly: converted to UTC, whole seconds
    berlin = timezone(timedelta(hours=2))
    assert IdTagInfo("Accepted", datetime(2030, 6, 1, 12, 0, 0, 999_999, tzinfo=berlin)).expiry == \
        datetime(2030, 6, 1, 10, 0, 0, tzinfo=UTC)
    for status in ("Accepted", "Blocked", "Expired", "Invalid", "ConcurrentTx"):
        assert IdTagInfo.from_ocpp({"status": status}).status == status


@pytest.mark.parametrize("data, fragment", [
    ({"status": "accepted"}, "case-sensitive"),
    ({"status": "Unknown"}, "not one of"),
    ({}, "no status"),
    ({"status": 1}, "must be text"),
    ("Accepted", "JSON object"),
    ({"status": "Accepted", "expiryDate": "2030-01-02"}, "no time"),
    ({"status": "Accepted", "expiryDate": "tomorrow"}, "expiryDate"),
    ({"status": "Accepted", "expiryDate": ""}, "empty"),
    ({"status": "Accepted", "expiryDate": 1700000000}, "must be text"),
    ({"status": "Accepted", "parentIdTag": "x" * 21}, "parentIdTag"),
    ({"status": "Accepted", "parentIdTag": 7}, "parentIdTag"),
])
def test_id_tag_info_validation(data, fragment):
    with pytest.raises(InvalidIdTagInfo, match=fragment) as raised:
        IdTagInfo.from_ocpp(data)
    assert isinstance(raised.value, ValueError)


def test_id_tag_info_constructor_validation():
    with pytest.raises(ValueError, match="time zone"):
        IdTagInfo("Accepted", datetime(2030, 1, 1))
    with pytest.raises(ValueError, match="datetime"):
        IdTagInfo("Accepted", "2030-01-01T00:00:00Z")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="parentIdTag"):
        IdTagInfo("Accepted", None, "Müller")


def test_status_at_expires_accepted_entries_only():
    expiry = datetime(2030, 1, 1, tzinfo=UTC)
    before, at, after = expiry - timedelta(seconds=1), expiry, expiry + timedelta(days=1)
    accepted = IdTagInfo("Accepted", expiry)
    assert [accepted.status_at(t) for t in (before, at, after)] == ["Accepted", "Expired", "Expired"]
    assert IdTagInfo("ConcurrentTx", expiry).status_at(after) == "Expired"
    assert IdTagInfo("Blocked", expiry).status_at(after) == "Blocked"
    assert IdTagInfo("Invalid", expiry).status_at(after) == "Invalid"
    assert IdTagInfo("Accepted").status_at(after) == "Accepted"


# ----------------------------------------------------------------------------- basics
def test_migration_5_holds_the_list_and_the_cache(db):
    assert db.schema_version >= 5 and MIGRATIONS[4].version == 5
    names = {r[0] for r in db.query("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"local_auth_list", "local_auth_list_state", "auth_cache"} <= names


def test_a_new_list_is_empty_with_version_0(ll):
    assert (ll.version, ll.count(), ll.lookup("aec78085"), ll.entries()) == (0, 0, None, [])


def test_full_replaces_the_list(ll):
    assert ll.apply("Full", 1, [("aec78085", OK), ("ae36959e", BLOCKED)]) == "Accepted"
    assert (ll.version, ll.count()) == (1, 2)
    assert ll.lookup("ae36959e") == BLOCKED
    assert ll.apply("Full", 2, [("d2006c8e", OK), ("aec78085", BLOCKED)]) == "Accepted"
    assert (ll.version, ids(ll)) == (2, ["d2006c8e", "aec78085"])  # list order = update order
    assert ll.lookup("ae36959e") is None and ll.lookup("aec78085") == BLOCKED
    # A Full update starts the list afresh: a lower version is no mismatch
    assert ll.apply("Full", 1, [("aec78085", OK)]) == "Accepted"
    assert (ll.version, ids(ll)) == (1, ["aec78085"])


def test_full_with_an_empty_list_clears_it_and_the_version_is_0(ll):
    ll.apply("Full", 5, [("aec78085", OK)])
    assert ll.apply("Full", 6, []) == "Accepted"
    assert (ll.version, ll.count(), ll.lookup("aec78085")) == (0, 0, None)
    ll.apply("Full", 5, [("aec78085", OK)])
    assert ll.apply("Full", 0, []) == "Accepted"  # version 0 is exactly "empty"
    assert (ll.version, ll.count()) == (0, 0)


@pytest.mark.parametrize("version, entries", [
    (-1, []),                         # -1 means "not supported"
    (-5, [("d2006c8e", OK)]),
    (0, [("d2006c8e", OK)]),          # 0 means "empty"
])
def test_full_with_a_reserved_version_fails_and_changes_nothing(ll, version, entries):
    ll.apply("Full", 3, [("aec78085", OK)])
    before = snapshot(ll)
    assert ll.apply("Full", version, entries) == "Failed"
    assert snapshot(ll) == before and "listVersion" in ll.last_failure


def test_a_full_entry_without_id_tag_info_fails(ll):
    ll.apply("Full", 3, [("aec78085", OK)])
    before = snapshot(ll)
    assert ll.apply("Full", 4, [("d2006c8e", OK), ("ae36959e", None)]) == "Failed"
    assert snapshot(ll) == before and "no idTagInfo" in ll.last_failure


def test_differential_adds_updates_and_deletes(ll):
    ll.apply("Full", 1, [("aec78085", OK), ("ae36959e", OK), ("d2006c8e", OK)])
    expiring = IdTagInfo("Accepted", datetime(2031, 1, 1, tzinfo=UTC), "fleet")
    result = ll.apply("Differential", 2, [
        ("AE36959E", BLOCKED),        # update (any case)
        ("d2006c8e", None),           # delete
        ("04a1b2c3", expiring),       # add
        ("ffffffff", None),           # delete of an idTag not in the list: nothing to do, no error
    ])
    assert result == "Accepted" and ll.last_failure is None
    assert ll.version == 2
    assert ids(ll) == ["aec78085", "ae36959e", "04a1b2c3"]  # an update keeps its place, an add goes last
    assert ll.lookup("ae36959e") == BLOCKED and ll.lookup("d2006c8e") is None
    assert ll.lookup("04a1b2c3") == expiring and ll.lookup("aec78085") == OK


def test_differential_with_an_empty_list_changes_no_entry_only_the_version(ll):
    ll.apply("Full", 1, [("aec78085", OK)])
    entries = ll.entries()
    assert ll.apply("Differential", 2, []) == "Accepted"
    assert ll.entries() == entries and ll.version == 2
    assert ll.apply("Differential", 2, []) == "VersionMismatch"  # still a stale version
    assert ll.version == 2


def test_differential_version_not_above_the_current_one_is_a_mismatch(ll):
    ll.apply("Full", 5, [("aec78085", OK)])
    before = snapshot(ll)
    for version in (5, 4, 0, -1):
        assert ll.apply("Differential", version, [("d2006c8e", OK)]) == "VersionMismatch"
        assert snapshot(ll) == before
    assert "version 5" in ll.last_failure
    # the version is checked before the entries
    assert ll.apply("Differential", 5, [("x" * 21, OK), ("d2006c8e", OK), ("D2006C8E", OK)]) == "VersionMismatch"
    assert ll.apply("Differential", 6, [("d2006c8e", OK)]) == "Accepted"


def test_an_emptied_list_has_version_0_and_takes_any_differential(ll):
    ll.apply("Full", 7, [("aec78085", OK)])
    assert ll.apply("Differential", 8, [("aec78085", None)]) == "Accepted"
    assert (ll.version, ll.count()) == (0, 0)
    assert ll.apply("Differential", 1, [("aec78085", OK)]) == "Accepted"
    assert ll.version == 1


@pytest.mark.parametrize("update_type", ["Full", "Differential"])
@pytest.mark.parametrize("pair", [("aec78085", "AEC78085"), ("aec78085", "AE:C7:80:85"), ("Fleet-1", "fleet-1")])
def test_duplicates_fail_and_change_nothing(ll, update_type, pair):
    ll.apply("Full", 3, [("11111111", OK)])
    before = snapshot(ll)
    entries = [(pair[0], OK), ("22222222", OK), (pair[1], BLOCKED)]
    assert ll.apply(update_type, 4, entries) == "Failed"
    assert snapshot(ll) == before
    assert "duplicate" in ll.last_failure and "entry 3" in ll.last_failure


@pytest.mark.parametrize("update_type", ["Full", "Differential"])
@pytest.mark.parametrize("bad", ["", "   ", "x" * 21, "Müller", "tab\there"])
def test_an_invalid_id_tag_fails_and_changes_nothing(ll, update_type, bad):
    ll.apply("Full", 3, [("11111111", OK)])
    before = snapshot(ll)
    assert ll.apply(update_type, 4, [("22222222", OK), (bad, OK)]) == "Failed"
    assert snapshot(ll) == before and "entry 2" in ll.last_failure


def test_capacity(db):
    ll = LocalList(db, capacity=3)
    assert ll.apply("Full", 1, [("1", OK), ("2", OK), ("3", OK), ("4", OK)]) == "Failed"
    assert (ll.version, ll.count()) == (0, 0) and "at most 3" in ll.last_failure
    assert ll.apply("Full", 1, [("1", OK), ("2", OK), ("3", OK)]) == "Accepted"
    before = snapshot(ll)
    assert ll.apply("Differential", 2, [("4", OK)]) == "Failed"
    assert snapshot(ll) == before and "would have 4" in ll.last_failure
    # the count after the update is what counts: a delete makes room, an update takes none
    assert ll.apply("Differential", 2, [("1", None), ("4", OK), ("2", BLOCKED)]) == "Accepted"
    assert (ll.version, ids(ll)) == (2, ["2", "3", "4"])
    # and no update may carry more entries than SendLocalListMaxLength
    assert ll.apply("Differential", 3, [(str(i), None) for i in range(4)]) == "Failed"
    assert ll.version == 2


def test_case_insensitive_lookup(ll):
    ll.apply("Full", 1, [("aec78085", OK), ("FLEET-007", BLOCKED)])
    for spelling in ("aec78085", "AEC78085", "AE:C7:80:85", "ae-c7-80-85", " aec78085 "):
        assert ll.lookup(spelling) == OK, spelling
    assert ll.lookup("fleet-007") == BLOCKED and ll.lookup("Fleet-007") == BLOCKED and "Fleet-007" in ll
    assert ids(ll) == ["aec78085", "fleet-007"]  # stored in the normal form
    assert ll.lookup("x" * 30) is None and ll.lookup("") is None and "bbbbbbbb" not in ll


def test_persistence_across_reopen(tmp_path):
    info = IdTagInfo("Accepted", datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC), "Fleet")
    with Database.open(tmp_path) as db:
        ll = LocalList(db)
        ll.apply("Full", 41, [("aec78085", info), ("ae36959e", BLOCKED)])
        ll.apply("Differential", 42, [("ae36959e", None), ("d2006c8e", IdTagInfo("ConcurrentTx"))])
    with Database.open(tmp_path) as db:
        ll = LocalList(db)
        assert ll.version == 42 and ll.count() == 2
        assert ll.lookup("AEC78085") == info and ll.lookup("aec78085").parent_id_tag == "fleet"
        assert ll.entries() == [ListEntry("aec78085", info), ListEntry("d2006c8e", IdTagInfo("ConcurrentTx"))]
        assert ll.apply("Differential", 42, []) == "VersionMismatch"


def test_entries_pages(ll):
    ll.apply("Full", 1, [(f"{i:08x}", OK) for i in range(25)])
    assert [e.id_tag for e in ll.entries(offset=10, limit=10)] == [f"{i:08x}" for i in range(10, 20)]
    assert len(ll.entries(offset=20, limit=10)) == 5 and len(ll.entries()) == 25


def test_clear(ll):
    ll.apply("Full", 9, [("aec78085", OK)])
    ll.clear()
    assert (ll.version, ll.count(), ll.lookup("aec78085")) == (0, 0, None)
    assert ll.apply("Differential", 1, [("aec78085", OK)]) == "Accepted"


def test_a_storage_error_mid_update_leaves_the_previous_list(db, ll):
    ll.apply("Full", 3, [("11111111", OK), ("22222222", BLOCKED)])
    before = snapshot(ll)
    other = LocalList(Database.open(db.path.parent))
    other.refresh_if_changed()
    # the disk "fails" at the last row of the update, after thousands of rows were written
    db.execute("CREATE TRIGGER boom BEFORE INSERT ON local_auth_list WHEN NEW.id_tag = 'boom' "
               "BEGIN SELECT RAISE(ABORT, 'simulated disk error'); END")
    entries = [(f"{i:08x}", OK) for i in range(5000)] + [("boom", OK)]
    assert ll.apply("Full", 4, entries) == "Failed"
    assert "simulated disk error" in ll.last_failure
    assert snapshot(ll) == before
    assert not other.refresh_if_changed() and other.lookup("22222222") == BLOCKED
    assert ll.apply("Differential", 4, [("33333333", OK), ("boom", OK)]) == "Failed"
    assert snapshot(ll) == before
    other.db.close()


def test_wrong_arguments_are_programming_errors(ll):
    with pytest.raises(ValueError, match="update_type"):
        ll.apply("full", 1, [])
    with pytest.raises(TypeError):
        ll.apply("Full", "1", [])  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        ll.apply("Full", 1, [("aec78085", {"status": "Accepted"})])  # type: ignore[list-item]


def test_apply_request_reads_the_sendlocallist_payload(ll):
    assert ll.apply_request({"listVersion": 3, "updateType": "Full", "localAuthorizationList": [
        {"idTag": "AEC78085", "idTagInfo": {"status": "Accepted", "expiryDate": "2031-01-01T00:00:00Z"}},
        {"idTag": "ae36959e", "idTagInfo": {"status": "Blocked"}},
    ]}) == "Accepted"
    assert ll.version == 3 and ll.lookup("aec78085").expiry == datetime(2031, 1, 1, tzinfo=UTC)
    assert ll.apply_request({"listVersion": 4, "updateType": "Differential",
                             "localAuthorizationList": [{"idTag": "ae36959e"}]}) == "Accepted"
    assert ll.lookup("ae36959e") is None
    before = snapshot(ll)
    for bad in ({"listVersion": 5, "updateType": "Differential",
                 "localAuthorizationList": [{"idTag": "d2006c8e", "idTagInfo": {"status": "OK"}}]},
                {"listVersion": 5, "updateType": "Differential", "localAuthorizationList": [{"status": "x"}]},
                {"listVersion": "5", "updateType": "Full"},
                {"listVersion": 5, "updateType": "Partial"},
                [1, 2]):
        assert ll.apply_request(bad) == "Failed", bad
        assert snapshot(ll) == before
    assert ll.apply_request({"listVersion": 4, "updateType": "Differential"}) == "VersionMismatch"
    assert ll.apply_request({"listVersion": 6, "updateType": "Full"}) == "Accepted"  # no list: clears
    assert (ll.version, ll.count()) == (0, 0)


# ----------------------------------------------------------------------------- change counter
def test_a_second_instance_sees_changes_through_the_counter(tmp_path):
    writer = LocalList(Database.open(tmp_path))
    reader = LocalList(Database.open(tmp_path))
    assert reader.lookup("aec78085") is None  # loads the (empty) list
    assert not reader.refresh_if_changed()
    counter = reader.change_counter()
    writer.apply("Full", 1, [("aec78085", OK), ("ae36959e", OK)])
    assert reader.lookup("aec78085") is None  # a lookup never touches the database
    assert reader.version == 1  # the version is read from the database
    assert reader.change_counter() > counter
    assert reader.refresh_if_changed() and reader.lookup("AEC78085") == OK
    writer.apply("Differential", 2, [("aec78085", BLOCKED), ("d2006c8e", OK)])  # incremental catch-up
    assert reader.refresh_if_changed() and not reader.refresh_if_changed()
    assert reader.lookup("aec78085") == BLOCKED and reader.lookup("d2006c8e") == OK and reader.count() == 3
    writer.apply("Differential", 3, [("ae36959e", None)])  # a removal: reload
    assert reader.refresh_if_changed() and reader.lookup("ae36959e") is None and reader.count() == 2
    writer.apply("Full", 4, [("11111111", OK)])
    assert reader.count() == 1 and reader.lookup("aec78085") is None and reader.lookup("11111111") == OK
    # the reader writes too: its update is checked against the database, not its old memory
    writer.apply("Differential", 5, [("22222222", OK)])
    assert reader.apply("Differential", 5, [("33333333", OK)]) == "VersionMismatch"
    assert reader.apply("Differential", 6, [("33333333", OK)]) == "Accepted"
    assert sorted(e.id_tag for e in reader.entries()) == ["11111111", "22222222", "33333333"]
    assert reader.count() == 3 and reader.lookup("22222222") == OK
    writer.db.close()
    reader.db.close()


async def test_watch_picks_up_another_connections_change(tmp_path):
    daemon_side = LocalList(Database.open(tmp_path))
    daemon_side.refresh_if_changed()
    task = asyncio.create_task(daemon_side.watch(interval=0.01))
    try:
        other = LocalList(Database.open(tmp_path))
        other.apply("Full", 1, [("aec78085", OK)])
        for _ in range(300):
            if daemon_side.lookup("aec78085") is not None:
                break
            await asyncio.sleep(0.01)
        assert daemon_side.lookup("aec78085") == OK
        other.db.close()
    finally:
        task.cancel()
    daemon_side.db.close()


# ----------------------------------------------------------------------------- full size
def test_100k_full_update(tmp_path):
    """Not a benchmark (timings printed, not asserted): the shape of the work at full size."""
    expiry = datetime(2031, 1, 1, tzinfo=UTC)
    entries = [(f"{i:08X}", IdTagInfo("Accepted", expiry if i % 2 else None, "fleet" if i % 3 else None))
               for i in range(MAX_ENTRIES)]
    writer = LocalList(Database.open(tmp_path))
    writer.apply("Full", 1, [("aec78085", OK)])
    started = time.perf_counter()
    assert writer.apply("Full", 2, entries) == "Accepted"
    full = time.perf_counter() - started
    assert writer.count() == MAX_ENTRIES and writer.version == 2 and writer.lookup("aec78085") is None
    assert writer.apply("Differential", 3, [("ffffffff", OK)]) == "Failed"  # full
    started = time.perf_counter()
    assert writer.apply("Differential", 3, [("0001869f", BLOCKED)]) == "Accepted"
    differential = time.perf_counter() - started
    reader = LocalList(Database.open(tmp_path))
    started = time.perf_counter()
    reader.refresh_if_changed()
    loaded = time.perf_counter() - started
    started = time.perf_counter()
    for i in range(0, MAX_ENTRIES, 10):
        assert reader.lookup(f"{i:08x}") is not None
    lookups = (time.perf_counter() - started) / (MAX_ENTRIES / 10)
    assert reader.lookup("0001869F") == BLOCKED and reader.lookup("00000001").expiry == expiry
    print(f"\n100k local list: Full update {full:.2f} s (checked, stored, fsynced), Differential of one "
          f"entry {differential * 1000:.0f} ms, load in another process {loaded:.2f} s, "
          f"lookup {lookups * 1e6:.2f} µs")
    writer.db.close()
    reader.db.close()
