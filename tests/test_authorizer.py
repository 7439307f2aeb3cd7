"""The authorization precedence rules (OCPP-NOTES.md §4, SPEC.md §6, ``stationd/auth/authorizer.py``).

Real SQLite (LocalList, AuthCache, Whitelist in one Database), a real ConfigStore, a fake clock
and a fake backend. The matrix below is the specification: one row per case, the sources
that know the card, the keys that differ from their defaults, whether the station is online
and what the backend answers, and the decision expected (accepted, source, Authorize.req sent).

Defaults of the keys (the station's, unless a row says otherwise): WhitelistSource OCPP,
LocalAuthListEnabled true, AuthorizationCacheEnabled true, LocalPreAuthorize false,
LocalAuthorizeOffline true, AllowOfflineTxForUnknownId false; AuthCacheLifeTime is set to
3600 s here so that "older than the lifetime" is a short step of the fake clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from stationd.auth.authorizer import Authorizer, Decision
from stationd.auth.cache import AuthCache
from stationd.auth.id_tag_info import IdTagInfo
from stationd.auth.local_list import LocalList
from stationd.auth.uid import normalize_uid
from stationd.auth.whitelist import Whitelist
from stationd.config.store import ConfigStore
from stationd.config.value_types import Source
from stationd.storage import Database

UTC = timezone.utc
CARD = "aec78085"
LIFETIME_S = 3600  # AuthCacheLifeTime in these tests
T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
PAST = T0 - timedelta(days=1)  # an expiry that has passed
FUTURE = T0 + timedelta(days=365)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class Backend:
    """The fake ``ask_backend``: answers ``answer`` (None = no answer) and records every call."""

    def __init__(self, answer: IdTagInfo | None = None) -> None:
        self.answer = answer
        self.calls: list[str] = []

    async def __call__(self, id_tag: str) -> IdTagInfo | None:
        self.calls.append(id_tag)
        return self.answer


class Station:
    def __init__(self, data_dir: Path, **settings: str) -> None:
        self.clock = Clock()
        self.store = ConfigStore.open(data_dir, installation={"NumberOfConnectors": "1"})
        self.set(AuthCacheLifeTime=str(LIFETIME_S), **settings)
        self.db = Database.open(data_dir)
        self.local_list = LocalList(self.db)
        self.cache = AuthCache(self.db, clock=self.clock)
        self.whitelist = Whitelist(self.db, clock=self.clock)
        self.authorizer = Authorizer(self.store, self.local_list, self.cache, self.whitelist, self.clock)
        self.backend = Backend()

    def set(self, **settings: str) -> None:
        for name, value in settings.items():
            result = self.store.set(name, value, Source.LOCAL)
            assert result.ok, (name, value, result)

    async def decide(self, id_tag: str = CARD, *, online: bool = False) -> Decision:
        return await self.authorizer.authorize(id_tag, online=online, ask_backend=self.backend)

    def close(self) -> None:
        self.db.close()


@pytest.fixture
def station(tmp_path: Path):
    built = Station(tmp_path)
    yield built
    built.close()


# ----------------------------------------------------------------------------- placing the card
def place(station: Station, where: str, id_tag: str = CARD) -> None:
    """Put the card into one local source. ``where`` is SOURCE:STATE:

    list:Accepted|Blocked|Expired|Invalid  (Expired = Accepted with an expiryDate that has passed)
    cache:Accepted|Blocked|Expired|Old     (Old = Accepted, updated AuthCacheLifeTime seconds ago;
                                            the fresh states were updated LIFETIME_S - 1 s ago)
    wl:accepted|blocked|expired            (the technician's whitelist)
    """
    source, state = where.split(":")
    if source == "list":
        info = IdTagInfo("Accepted", PAST) if state == "Expired" else IdTagInfo(state)
        assert station.local_list.apply("Differential", station.local_list.version + 1, [(id_tag, info)]) == "Accepted"
    elif source == "cache":
        info = {"Accepted": IdTagInfo("Accepted", FUTURE), "Blocked": IdTagInfo("Blocked"),
                "Expired": IdTagInfo("Accepted", PAST), "Old": IdTagInfo("Accepted")}[state]
        station.cache.update(id_tag, info)
    elif source == "wl":
        if state == "expired":
            station.whitelist.add(id_tag, expiry=PAST)
        else:
            station.whitelist.add(id_tag, authorization=state)
    else:
        raise AssertionError(f"unknown place {where!r}")


def age_cache(station: Station, placed: tuple[str, ...]) -> None:
    """Let the cache's entries age: past the lifetime for cache:Old, one second short of it otherwise."""
    station.clock.advance(LIFETIME_S if "cache:Old" in placed else LIFETIME_S - 1)


# ----------------------------------------------------------------------------- the matrix
OFF, ON = "false", "true"
OFFLINE = "offline"  # not connected: the backend is not asked
NO_ANSWER = "no answer"  # online, but Authorize.req gets no (usable) answer


@dataclass(frozen=True)
class Case:
    name: str
    placed: tuple[str, ...]  # where the card is known (see place()); () = unknown everywhere
    backend: str  # OFFLINE, NO_ANSWER, or the status the backend answers
    expected: tuple[bool, str]  # (accepted, source)
    asked: bool = False  # an Authorize.req was sent
    keys: dict[str, str] = field(default_factory=dict)  # keys that differ from the defaults


LPA_ON = {"LocalPreAuthorize": ON}
LAO_OFF = {"LocalAuthorizeOffline": OFF}
UNKNOWN_OK = {"AllowOfflineTxForUnknownId": ON}
LIST_OFF = {"LocalAuthListEnabled": OFF}
CACHE_OFF = {"AuthorizationCacheEnabled": OFF}
WL_LOCAL = {"WhitelistSource": "Local"}

MATRIX = [
    # ---- offline: the local list (WhitelistSource OCPP) ------------------------------------------
    Case("offline list Accepted", ("list:Accepted",), OFFLINE, (True, "local list")),
    Case("offline list Blocked", ("list:Blocked",), OFFLINE, (False, "local list")),
    Case("offline list Expired by its expiryDate", ("list:Expired",), OFFLINE, (False, "local list")),
    Case("offline list Invalid", ("list:Invalid",), OFFLINE, (False, "local list")),
    Case("offline list Accepted, LocalAuthorizeOffline off", ("list:Accepted",), OFFLINE,
         (False, "local list"), keys=LAO_OFF),
    Case("offline list Blocked is refused even with unknown ids allowed", ("list:Blocked",), OFFLINE,
         (False, "local list"), keys=UNKNOWN_OK),
    Case("offline list Expired is refused even with unknown ids allowed", ("list:Expired",), OFFLINE,
         (False, "local list"), keys=UNKNOWN_OK),
    Case("offline list Accepted, LocalAuthorizeOffline off, unknown ids allowed: still refused",
         ("list:Accepted",), OFFLINE, (False, "local list"), keys={**LAO_OFF, **UNKNOWN_OK}),
    Case("offline list disabled: its Accepted card is unknown", ("list:Accepted",), OFFLINE,
         (False, "offline rule"), keys=LIST_OFF),
    Case("offline list disabled: its Blocked card is unknown, unknown ids allowed", ("list:Blocked",), OFFLINE,
         (True, "offline rule"), keys={**LIST_OFF, **UNKNOWN_OK}),
    Case("offline list wins over the cache (list Blocked, cache Accepted)", ("cache:Accepted", "list:Blocked"),
         OFFLINE, (False, "local list")),
    Case("offline list wins over the cache (list Accepted, cache Blocked)", ("cache:Blocked", "list:Accepted"),
         OFFLINE, (True, "local list")),
    Case("offline list disabled: the cache decides", ("cache:Accepted", "list:Blocked"), OFFLINE,
         (True, "cache"), keys=LIST_OFF),
    # ---- offline: the cache ---------------------------------------------------------------------
    Case("offline cache Accepted, fresh", ("cache:Accepted",), OFFLINE, (True, "cache")),
    Case("offline cache Blocked", ("cache:Blocked",), OFFLINE, (False, "cache")),
    Case("offline cache Blocked is refused even with unknown ids allowed", ("cache:Blocked",), OFFLINE,
         (False, "cache"), keys=UNKNOWN_OK),
    Case("offline cache Expired by its expiryDate", ("cache:Expired",), OFFLINE, (False, "cache")),
    Case("offline cache Expired is refused even with unknown ids allowed", ("cache:Expired",), OFFLINE,
         (False, "cache"), keys=UNKNOWN_OK),
    Case("offline cache older than AuthCacheLifeTime: unknown", ("cache:Old",), OFFLINE, (False, "offline rule")),
    Case("offline cache older than AuthCacheLifeTime: unknown, unknown ids allowed", ("cache:Old",), OFFLINE,
         (True, "offline rule"), keys=UNKNOWN_OK),
    Case("offline cache disabled: its card is unknown", ("cache:Accepted",), OFFLINE,
         (False, "offline rule"), keys=CACHE_OFF),
    Case("offline cache Accepted, LocalAuthorizeOffline off", ("cache:Accepted",), OFFLINE,
         (False, "cache"), keys=LAO_OFF),
    # ---- offline: the technician's whitelist (WhitelistSource Local) ----------------------------
    Case("offline whitelist accepted", ("wl:accepted",), OFFLINE, (True, "whitelist"), keys=WL_LOCAL),
    Case("offline whitelist blocked", ("wl:blocked",), OFFLINE, (False, "whitelist"), keys=WL_LOCAL),
    Case("offline whitelist expired", ("wl:expired",), OFFLINE, (False, "whitelist"), keys=WL_LOCAL),
    Case("offline whitelist blocked is refused even with unknown ids allowed", ("wl:blocked",), OFFLINE,
         (False, "whitelist"), keys={**WL_LOCAL, **UNKNOWN_OK}),
    Case("offline whitelist expired is refused even with unknown ids allowed", ("wl:expired",), OFFLINE,
         (False, "whitelist"), keys={**WL_LOCAL, **UNKNOWN_OK}),
    Case("offline whitelist accepted, LocalAuthorizeOffline off", ("wl:accepted",), OFFLINE,
         (False, "whitelist"), keys={**WL_LOCAL, **LAO_OFF}),
    Case("offline whitelist consulted after the OCPP list too", ("wl:accepted",), OFFLINE, (True, "whitelist")),
    Case("offline local list ignored with WhitelistSource Local", ("list:Accepted",), OFFLINE,
         (False, "offline rule"), keys=WL_LOCAL),
    Case("offline whitelist wins over the cache", ("cache:Accepted", "wl:blocked"), OFFLINE,
         (False, "whitelist"), keys=WL_LOCAL),
    Case("offline WhitelistSource Local: the cache still decides", ("cache:Accepted",), OFFLINE,
         (True, "cache"), keys=WL_LOCAL),
    # ---- offline: unknown -------------------------------------------------------------------------
    Case("offline unknown", (), OFFLINE, (False, "offline rule")),
    Case("offline unknown, AllowOfflineTxForUnknownId", (), OFFLINE, (True, "offline rule"), keys=UNKNOWN_OK),
    # ---- online: the backend decides (LocalPreAuthorize off) ----------------------------------------
    Case("online unknown, backend Accepted", (), "Accepted", (True, "backend"), asked=True),
    Case("online unknown, backend Blocked", (), "Blocked", (False, "backend"), asked=True),
    Case("online unknown, backend Invalid even with unknown ids allowed", (), "Invalid", (False, "backend"),
         asked=True, keys=UNKNOWN_OK),
    Case("online list Accepted, pre-authorize off: backend asked, Accepted", ("list:Accepted",), "Accepted",
         (True, "backend"), asked=True),
    Case("online list Accepted, pre-authorize off: backend asked, Blocked", ("list:Accepted",), "Blocked",
         (False, "backend"), asked=True),
    Case("online cache Accepted, pre-authorize off: backend Blocked", ("cache:Accepted",), "Blocked",
         (False, "backend"), asked=True),
    Case("online whitelist accepted is not consulted online", ("wl:accepted",), "Blocked",
         (False, "backend"), asked=True, keys={**WL_LOCAL, **LPA_ON}),
    Case("online whitelist blocked is not consulted online", ("wl:blocked",), "Accepted",
         (True, "backend"), asked=True, keys=WL_LOCAL),
    # ---- online: LocalPreAuthorize ------------------------------------------------------------------
    Case("online list Accepted, pre-authorize: no Authorize.req", ("list:Accepted",), "Blocked",
         (True, "local list"), keys=LPA_ON),
    Case("online list Accepted, pre-authorize, LocalAuthorizeOffline off (offline only)", ("list:Accepted",),
         "Blocked", (True, "local list"), keys={**LPA_ON, **LAO_OFF}),
    Case("online cache Accepted, pre-authorize: no Authorize.req", ("cache:Accepted",), "Blocked",
         (True, "cache"), keys=LPA_ON),
    Case("online list Blocked, pre-authorize: the backend decides", ("list:Blocked",), "Accepted",
         (True, "backend"), asked=True, keys=LPA_ON),
    Case("online list Expired, pre-authorize: the backend decides", ("list:Expired",), "Blocked",
         (False, "backend"), asked=True, keys=LPA_ON),
    Case("online cache Blocked, pre-authorize: the backend decides", ("cache:Blocked",), "Accepted",
         (True, "backend"), asked=True, keys=LPA_ON),
    Case("online cache Old, pre-authorize: not known locally", ("cache:Old",), "Accepted",
         (True, "backend"), asked=True, keys=LPA_ON),
    Case("online list Blocked over cache Accepted, pre-authorize: not pre-authorized",
         ("cache:Accepted", "list:Blocked"), "Blocked", (False, "backend"), asked=True, keys=LPA_ON),
    Case("online list disabled, pre-authorize: its card goes to the backend", ("list:Accepted",), "Blocked",
         (False, "backend"), asked=True, keys={**LPA_ON, **LIST_OFF}),
    Case("online cache disabled, pre-authorize: its card goes to the backend", ("cache:Accepted",), "Blocked",
         (False, "backend"), asked=True, keys={**LPA_ON, **CACHE_OFF}),
    Case("online unknown, pre-authorize: backend Accepted", (), "Accepted", (True, "backend"), asked=True,
         keys=LPA_ON),
    # ---- online, no answer: decided as offline ------------------------------------------------------
    Case("no answer, unknown", (), NO_ANSWER, (False, "offline rule"), asked=True),
    Case("no answer, unknown, AllowOfflineTxForUnknownId", (), NO_ANSWER, (True, "offline rule"), asked=True,
         keys=UNKNOWN_OK),
    Case("no answer, list Accepted", ("list:Accepted",), NO_ANSWER, (True, "local list"), asked=True),
    Case("no answer, list Blocked", ("list:Blocked",), NO_ANSWER, (False, "local list"), asked=True),
    Case("no answer, list Accepted, LocalAuthorizeOffline off", ("list:Accepted",), NO_ANSWER,
         (False, "local list"), asked=True, keys=LAO_OFF),
    Case("no answer, list Blocked, pre-authorize, unknown ids allowed", ("list:Blocked",), NO_ANSWER,
         (False, "local list"), asked=True, keys={**LPA_ON, **UNKNOWN_OK}),
    Case("no answer, cache Accepted", ("cache:Accepted",), NO_ANSWER, (True, "cache"), asked=True),
    Case("no answer, cache Expired", ("cache:Expired",), NO_ANSWER, (False, "cache"), asked=True),
    Case("no answer, whitelist accepted (consulted once the backend is unreachable)", ("wl:accepted",),
         NO_ANSWER, (True, "whitelist"), asked=True, keys=WL_LOCAL),
    Case("no answer, whitelist blocked", ("wl:blocked",), NO_ANSWER, (False, "whitelist"), asked=True,
         keys={**WL_LOCAL, **UNKNOWN_OK}),
]


def test_the_matrix_has_no_duplicate_names():
    names = [case.name for case in MATRIX]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("case", MATRIX, ids=[case.name for case in MATRIX])
async def test_precedence_matrix(station: Station, case: Case):
    station.set(**case.keys)
    for where in case.placed:
        place(station, where)
    age_cache(station, case.placed)
    online = case.backend != OFFLINE
    if online and case.backend != NO_ANSWER:
        station.backend.answer = IdTagInfo(case.backend)

    decision = await station.decide(online=online)

    assert (decision.accepted, decision.source) == case.expected
    assert station.backend.calls == ([CARD] if case.asked else [])
    assert decision.id_tag == CARD


# ----------------------------------------------------------------------------- learning (the cache)
async def test_the_cache_learns_from_the_backend_and_the_next_offline_decision_uses_it(station: Station):
    station.backend.answer = IdTagInfo("Accepted", parent_id_tag="Fleet-1")
    assert (await station.decide(online=True)).accepted
    assert station.cache.lookup(CARD, LIFETIME_S) == IdTagInfo("Accepted", parent_id_tag="fleet-1")
    decision = await station.decide(online=False)
    assert (decision.accepted, decision.source, decision.parent_id_tag) == (True, "cache", "fleet-1")
    # the backend changes its mind: the cache follows, also towards a refusal
    station.backend.answer = IdTagInfo("Blocked")
    assert not (await station.decide(online=True)).accepted
    station.set(**UNKNOWN_OK)  # a cached refusal is no unknown id
    decision = await station.decide(online=False)
    assert (decision.accepted, decision.source) == (False, "cache")


async def test_a_backend_answer_restarts_the_cache_lifetime(station: Station):
    station.backend.answer = IdTagInfo("Accepted")
    await station.decide(online=True)
    station.clock.advance(LIFETIME_S - 10)
    await station.decide(online=True)  # answered again: its life starts again
    station.clock.advance(LIFETIME_S - 10)
    assert (await station.decide(online=False)).source == "cache"
    station.clock.advance(10)
    assert (await station.decide(online=False)).source == "offline rule"


async def test_list_ids_never_enter_the_cache(station: Station):
    place(station, "list:Accepted")
    station.backend.answer = IdTagInfo("Accepted")
    await station.decide(online=True)  # the backend answered about a list id
    station.authorizer.learn(CARD, IdTagInfo("Blocked"))  # e.g. a StartTransaction.conf
    station.authorizer.learn("AEC78085", IdTagInfo("Blocked"))  # in another spelling
    assert station.cache.count() == 0
    assert station.cache.lookup(CARD, LIFETIME_S) is None


async def test_the_cache_is_not_learned_while_disabled(station: Station):
    station.set(**CACHE_OFF)
    station.backend.answer = IdTagInfo("Accepted")
    assert (await station.decide(online=True)).accepted
    station.authorizer.learn("4b13b318", IdTagInfo("Accepted"))
    assert station.cache.count() == 0
    station.set(AuthorizationCacheEnabled=ON)  # enabling it later finds nothing learned meanwhile
    assert (await station.decide(online=False)).source == "offline rule"


async def test_learn_ignores_an_unusable_id_tag(station: Station):
    station.authorizer.learn("", IdTagInfo("Accepted"))
    station.authorizer.learn("x" * 21, IdTagInfo("Accepted"))
    assert station.cache.count() == 0


async def test_a_card_the_backend_does_not_answer_is_decided_offline_and_not_learned(station: Station):
    place(station, "cache:Accepted")
    station.clock.advance(LIFETIME_S - 1)
    station.backend.answer = None
    decision = await station.decide(online=True)
    assert (decision.accepted, decision.source, station.backend.calls) == (True, "cache", [CARD])
    station.clock.advance(1)  # LIFETIME_S after the entry's update: no answer did not refresh it
    assert (await station.decide(online=False)).source == "offline rule"


# ----------------------------------------------------------------------------- spelling
SPELLINGS = [("AEC78085", "aec78085"), ("aec78085", "AEC78085"), ("AE:C7:80:85", "aec78085"),
             ("aec78085", "ae-c7-80-85"), ("Fleet-007", "FLEET-007")]


@pytest.mark.parametrize("stored, presented", SPELLINGS)
@pytest.mark.parametrize("source, keys", [("list", {}), ("cache", {}), ("wl", WL_LOCAL)])
async def test_matching_is_case_insensitive(station: Station, stored: str, presented: str, source: str,
                                            keys: dict[str, str]):
    station.set(**keys)
    place(station, f"{source}:{'accepted' if source == 'wl' else 'Accepted'}", id_tag=stored)
    decision = await station.decide(presented, online=False)
    expected_source = {"list": "local list", "cache": "cache", "wl": "whitelist"}[source]
    assert (decision.accepted, decision.source) == (True, expected_source)
    assert decision.id_tag == normalize_uid(presented)  # the normal form: what the session carries


async def test_a_blocked_list_entry_refuses_every_spelling(station: Station):
    place(station, "list:Blocked", id_tag="AEC78085")
    place(station, "cache:Accepted", id_tag="aec78085")
    for spelling in ("aec78085", "AEC78085", "Ae:C7:80:85"):
        decision = await station.decide(spelling, online=False)
        assert (decision.accepted, decision.source) == (False, "local list"), spelling


# ----------------------------------------------------------------------------- invalid UIDs
INVALID = ["", "   ", "0123456789abcdef01234", "Müller", "ab\x07cd", "ae:c7\n80:85"]


@pytest.mark.parametrize("uid", INVALID, ids=repr)
@pytest.mark.parametrize("online", [False, True], ids=["offline", "online"])
async def test_invalid_uids_are_refused_without_asking(station: Station, uid: str, online: bool):
    station.set(**UNKNOWN_OK, **LPA_ON)
    station.backend.answer = IdTagInfo("Accepted")
    decision = await station.decide(uid, online=online)
    assert (decision.accepted, decision.source, decision.info) == (False, "invalid", None)
    assert decision.id_tag == uid  # as presented: it has no normal form
    assert station.backend.calls == []
    assert station.cache.count() == 0
