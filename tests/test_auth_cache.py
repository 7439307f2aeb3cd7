"""The authorization cache: lifetime, expiry, eviction at capacity, ClearCache, persistence."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from stationd.auth.cache import DEFAULT_CAPACITY, DEFAULT_LIFETIME_S, AuthCache
from stationd.auth.id_tag_info import IdTagInfo
from stationd.auth.uid import InvalidUid
from stationd.storage import Database

UTC = timezone.utc
OK = IdTagInfo("Accepted")
BLOCKED = IdTagInfo("Blocked")
DAY = 86_400


class FakeClock:
    def __init__(self, start: datetime = datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)):
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def db(tmp_path: Path):
    database = Database.open(tmp_path)
    yield database
    database.close()


@pytest.fixture
def cache(db, clock) -> AuthCache:
    return AuthCache(db, clock=clock)


def test_defaults():
    assert DEFAULT_CAPACITY == 10_000 and DEFAULT_LIFETIME_S == 2_592_000


def test_lookup_within_and_after_the_lifetime(cache, clock):
    assert cache.lookup("aec78085", DAY) is None
    cache.update("aec78085", OK)
    assert cache.lookup("aec78085", DAY) == OK
    clock.advance(DAY - 1)
    assert cache.lookup("aec78085", DAY) == OK
    clock.advance(1)  # exactly lifetime_s after the update: gone
    assert cache.lookup("aec78085", DAY) is None
    assert cache.lookup("aec78085", 2 * DAY) == OK  # the lifetime is the caller's (AuthCacheLifeTime)
    assert cache.lookup("aec78085", 0) is None
    assert cache.count() == 1  # an outlived entry stays until it is replaced or evicted


def test_an_update_starts_the_lifetime_again(cache, clock):
    cache.update("aec78085", OK)
    clock.advance(DAY - 10)
    cache.update("aec78085", BLOCKED)
    clock.advance(DAY - 10)
    assert cache.lookup("aec78085", DAY) == BLOCKED
    clock.advance(10)
    assert cache.lookup("aec78085", DAY) is None


def test_the_id_tag_info_expiry_is_honoured(cache, clock):
    expiry = clock.now + timedelta(hours=1)
    cache.update("aec78085", IdTagInfo("Accepted", expiry, "fleet"))
    cache.update("ae36959e", IdTagInfo("Blocked", expiry))
    assert cache.lookup("aec78085", DAY).status == "Accepted"
    clock.advance(3600)
    expired = cache.lookup("aec78085", DAY)
    assert expired == IdTagInfo("Expired", expiry, "fleet")
    assert cache.lookup("ae36959e", DAY).status == "Blocked"  # blocked stays blocked
    clock.advance(DAY)
    assert cache.lookup("aec78085", DAY) is None  # and the cache lifetime still applies


def test_eviction_of_the_least_recently_updated_at_capacity(tmp_path, clock):
    with Database.open(tmp_path) as db:
        cache = AuthCache(db, capacity=3, clock=clock)
        for uid in ("11111111", "22222222", "33333333"):
            cache.update(uid, OK)
            clock.advance(1)
        cache.update("11111111", BLOCKED)  # 1 is now the most recently updated
        cache.update("33333333", OK)       # so is 3
        cache.update("44444444", OK)       # full: 2 goes
        assert cache.count() == 3
        assert cache.lookup("22222222", DAY) is None
        assert cache.lookup("11111111", DAY) == BLOCKED
        cache.update("55555555", OK)       # then 1
        assert [u for u in ("11111111", "33333333", "44444444", "55555555") if cache.lookup(u, DAY)] == \
            ["33333333", "44444444", "55555555"]
    with Database.open(tmp_path) as db:  # the order survives a restart
        cache = AuthCache(db, capacity=3, clock=clock)
        cache.update("66666666", OK)
        assert cache.lookup("33333333", DAY) is None
        assert all(cache.lookup(u, DAY) for u in ("44444444", "55555555", "66666666"))
        assert db.query("SELECT COUNT(*) FROM auth_cache")[0][0] == 3
    with Database.open(tmp_path) as db:  # a lower capacity at start evicts the oldest
        cache = AuthCache(db, capacity=1, clock=clock)
        assert cache.count() == 1 and cache.lookup("66666666", DAY) == OK
        assert db.query("SELECT id_tag FROM auth_cache")[0][0] == "66666666"


def test_capacity_0_keeps_nothing(db, clock):
    cache = AuthCache(db, capacity=0, clock=clock)
    cache.update("aec78085", OK)
    assert cache.count() == 0 and cache.lookup("aec78085", DAY) is None


def test_clear_and_remove(tmp_path, clock):
    with Database.open(tmp_path) as db:
        cache = AuthCache(db, clock=clock)
        for uid in ("11111111", "22222222", "33333333"):
            cache.update(uid, OK)
        assert cache.remove("22222222") and not cache.remove("22222222") and not cache.remove("x" * 30)
        assert cache.count() == 2 and cache.lookup("22222222", DAY) is None
        cache.clear()
        assert cache.count() == 0 and cache.lookup("11111111", DAY) is None
    with Database.open(tmp_path) as db:
        assert AuthCache(db, clock=clock).count() == 0


def test_persistence_across_restart(tmp_path, clock):
    info = IdTagInfo("Accepted", datetime(2030, 1, 1, tzinfo=UTC), "Fleet")
    with Database.open(tmp_path) as db:
        cache = AuthCache(db, clock=clock)
        cache.update("AEC78085", info)
        cache.update("ae36959e", BLOCKED)
    clock.advance(DAY - 1)
    with Database.open(tmp_path) as db:
        cache = AuthCache(db, clock=clock)
        assert cache.count() == 2
        assert cache.lookup("aec78085", DAY) == info and cache.lookup("aec78085", DAY).parent_id_tag == "fleet"
        assert cache.lookup("ae36959e", DAY) == BLOCKED
        clock.advance(1)  # the lifetime counts from the stored update time
        assert cache.lookup("aec78085", DAY) is None


def test_case_insensitive_id_tags(cache):
    cache.update("AEC78085", OK)
    for spelling in ("aec78085", "AEC78085", "AE:C7:80:85", "ae-c7-80-85"):
        assert cache.lookup(spelling, DAY) == OK, spelling
    cache.update("ae:c7:80:85", BLOCKED)  # the same idTag: replaced, not added
    assert cache.count() == 1 and cache.lookup("aec78085", DAY) == BLOCKED
    cache.update("Fleet-7", OK)
    assert cache.lookup("FLEET-7", DAY) == OK
    assert cache.lookup("x" * 30, DAY) is None and cache.lookup("", DAY) is None


def test_bad_arguments(cache):
    with pytest.raises(InvalidUid):
        cache.update("x" * 21, OK)
    with pytest.raises(TypeError):
        cache.update("aec78085", {"status": "Accepted"})  # type: ignore[arg-type]
    assert cache.count() == 0
