"""A card at the reader (``stationd/auth/cards.py``): start, stop by the same card or the same
parent, refusals, free mode, and enrollment with the MasterSerial card.

A real StationCore (the Rig pattern of test_core_station.py: real settings and database, fake
hardware inputs, a fake clock) and a real Authorizer over a real LocalList, AuthCache and
Whitelist; the backend is a fake ``ask_backend``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from stationd.auth.authorizer import Authorizer
from stationd.auth.cache import AuthCache
from stationd.auth.cards import ENROLLMENT_S, CardHandler
from stationd.auth.id_tag_info import IdTagInfo
from stationd.auth.local_list import LocalList
from stationd.auth.whitelist import Whitelist
from stationd.config.store import ConfigStore
from stationd.config.value_types import Source
from stationd.core.connector import ControllerState
from stationd.core.events import (
    CardEnrolled,
    EnrollmentChanged,
    SessionEnded,
    SessionStarted,
)
from stationd.core.iec61851 import CpState
from stationd.core.sessions import SessionStore
from stationd.core.station import ConnectorSpec, StationCore
from stationd.storage import Database

A, B, C = CpState.A, CpState.B, CpState.C
UTC = timezone.utc

ALICE, BOB, CAROL, MALLORY, DAVE = "aec78085", "4b13b318", "0488dd2a561d80", "deadbeef", "12345678"
MASTER = "CAFE0001"  # as the key is set; the reader reports it as cafe0001


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class Sample:
    energy_import_wh: float


class Backend:
    """The fake ``ask_backend``: answers ``answer`` (None = no answer) and records every call."""

    def __init__(self) -> None:
        self.answer: IdTagInfo | None = None
        self.calls: list[str] = []

    async def __call__(self, id_tag: str) -> IdTagInfo | None:
        self.calls.append(id_tag)
        return self.answer


class Rig:
    """A core, the authorization around it, and what the bus carried."""

    def __init__(self, data_dir: Path, connectors: int = 1, **settings: str):
        self.clock = Clock()
        self.store = ConfigStore.open(data_dir, installation={"NumberOfConnectors": str(connectors)})
        self.set(CsMode="0", **settings)
        self.db = Database.open(data_dir)
        self.core = StationCore(self.store, SessionStore(self.db),
                                [ConnectorSpec(i, 32, 3) for i in range(1, connectors + 1)], clock=self.clock)
        self.events: list[object] = []
        self.core.bus.subscribe(self.events.append)
        self.local_list = LocalList(self.db)
        self.cache = AuthCache(self.db, clock=self.clock)
        self.whitelist = Whitelist(self.db, clock=self.clock)
        self.authorizer = Authorizer(self.store, self.local_list, self.cache, self.whitelist, self.clock)
        self.backend = Backend()
        self.online = False
        self.cards = CardHandler(self.core, self.store, self.authorizer, self.whitelist,
                                 online=lambda: self.online, ask_backend=self.backend, clock=self.clock)
        self.core.start()
        for i in range(1, connectors + 1):
            self.core.controller_link(i, True)
            self.core.meter_sample(i, Sample(1000.0 * i))

    def set(self, **settings: str) -> None:
        for name, value in settings.items():
            result = self.store.set(name, value, Source.LOCAL)
            assert result.ok, (name, value, result)

    def listed(self, *entries: tuple[str, str, str | None]) -> None:
        """Local list entries (idTag, status, parentIdTag), as a SendLocalList would bring them."""
        version = self.local_list.version + 1
        batch = [(id_tag, IdTagInfo(status, parent_id_tag=parent)) for id_tag, status, parent in entries]
        assert self.local_list.apply("Differential", version, batch) == "Accepted"

    async def card(self, uid: str) -> None:
        await self.cards.handle(uid)

    def plug(self, connector: int = 1, cp: CpState = B) -> None:
        self.core.controller_state(connector, ControllerState(cp_state=cp), set())

    def session(self, connector: int = 1):
        return self.core.connectors[connector].session

    def of(self, kind: type) -> list:
        return [e for e in self.events if isinstance(e, kind)]

    def close(self) -> None:
        self.db.close()


@pytest.fixture
def rig(tmp_path: Path):
    built = Rig(tmp_path)
    yield built
    built.close()


# ----------------------------------------------------------------------------- start
async def test_an_accepted_card_then_the_plug_start_a_session_with_that_id_tag(rig: Rig):
    rig.listed((ALICE, "Accepted", None))
    await rig.card(ALICE)
    assert rig.session() is None and rig.core.connectors[1].pending.id_tag == ALICE
    rig.plug()
    assert rig.session().id_tag == ALICE
    assert [e.session.id_tag for e in rig.of(SessionStarted)] == [ALICE]
    assert rig.backend.calls == []  # offline: decided by the list


async def test_a_waiting_vehicle_starts_when_the_card_comes(rig: Rig):
    rig.listed((ALICE, "Accepted", None))
    rig.plug(cp=C)
    assert rig.session() is None  # CsMode 0: the vehicle waits for a card
    await rig.card("AEC78085")  # any spelling of the card
    assert rig.session().id_tag == ALICE


async def test_online_the_backend_authorizes_the_card(rig: Rig):
    rig.online = True
    rig.backend.answer = IdTagInfo("Accepted")
    rig.plug()
    await rig.card(BOB)
    assert rig.session().id_tag == BOB and rig.backend.calls == [BOB]


async def test_a_card_presented_on_the_bus_is_handled(rig: Rig):
    rig.listed((ALICE, "Accepted", None))
    rig.plug()
    rig.core.card_presented(ALICE)  # what the RFID driver does: CardPresented on the bus
    for _ in range(20):
        if rig.session() is not None:
            break
        await asyncio.sleep(0)
    assert rig.session().id_tag == ALICE


# ----------------------------------------------------------------------------- stop
async def test_the_same_card_stops_the_session_with_reason_local(rig: Rig):
    rig.listed((ALICE, "Accepted", None))
    rig.plug(cp=C)
    await rig.card(ALICE)
    rig.online = True  # the same card needs no authorization: the backend is not asked
    await rig.card("AEC78085")
    assert rig.session() is None
    ended = rig.of(SessionEnded)[-1].session
    assert (ended.id_tag, ended.stop_reason, ended.stop_id_tag) == (ALICE, "Local", ALICE)
    assert rig.backend.calls == []
    assert len(rig.of(SessionStarted)) == 1  # the vehicle still plugged in does not start again


async def test_the_same_card_stops_its_session_even_when_blocked_meanwhile(rig: Rig):
    rig.listed((ALICE, "Accepted", None))
    rig.plug(cp=C)
    await rig.card(ALICE)
    rig.listed((ALICE, "Blocked", None))
    await rig.card(ALICE)
    assert rig.session() is None and rig.of(SessionEnded)[-1].session.stop_reason == "Local"


async def test_a_card_with_the_same_parent_stops_the_session(rig: Rig):
    rig.listed((ALICE, "Accepted", "fleet-1"), (BOB, "Accepted", "FLEET-1"))  # parents compare case-insensitively
    rig.plug(cp=C)
    await rig.card(ALICE)
    await rig.card(BOB)
    assert rig.session() is None
    ended = rig.of(SessionEnded)[-1].session
    assert (ended.id_tag, ended.stop_reason, ended.stop_id_tag) == (ALICE, "Local", BOB)
    assert len(rig.of(SessionStarted)) == 1


async def test_a_card_with_the_same_parent_learned_from_the_backend_stops_the_session(rig: Rig):
    rig.online = True
    rig.backend.answer = IdTagInfo("Accepted", parent_id_tag="Fleet-9")
    rig.plug(cp=C)
    await rig.card(ALICE)
    await rig.card(BOB)  # the backend gives it the same parent
    ended = rig.of(SessionEnded)[-1].session
    assert (ended.stop_reason, ended.stop_id_tag) == ("Local", BOB)


async def test_a_card_with_another_parent_neither_stops_the_session_nor_starts_a_second(rig: Rig):
    rig.listed((ALICE, "Accepted", "fleet-1"), (CAROL, "Accepted", "fleet-2"), (DAVE, "Accepted", None))
    rig.plug(cp=C)
    await rig.card(ALICE)
    await rig.card(CAROL)
    await rig.card(DAVE)  # no parent at all
    assert rig.session().id_tag == ALICE
    assert rig.of(SessionEnded) == [] and len(rig.of(SessionStarted)) == 1
    assert rig.core.connectors[1].pending is None


async def test_a_refused_card_of_the_same_parent_does_not_stop_the_session(rig: Rig):
    rig.listed((ALICE, "Accepted", "fleet-1"), (MALLORY, "Blocked", "fleet-1"))
    rig.plug(cp=C)
    await rig.card(ALICE)
    await rig.card(MALLORY)
    assert rig.session().id_tag == ALICE and rig.of(SessionEnded) == []


async def test_a_card_of_another_parent_starts_on_a_second_free_connector(tmp_path: Path):
    rig = Rig(tmp_path, connectors=2)
    try:
        rig.listed((ALICE, "Accepted", "fleet-1"), (CAROL, "Accepted", "fleet-2"))
        rig.plug(1, C)
        await rig.card(ALICE)
        rig.plug(2, B)
        await rig.card(CAROL)
        assert (rig.session(1).id_tag, rig.session(2).id_tag) == (ALICE, CAROL)
    finally:
        rig.close()


# ----------------------------------------------------------------------------- refusals, free mode
@pytest.mark.parametrize("online, answer, listed", [
    (False, None, None),  # offline, unknown, AllowOfflineTxForUnknownId false
    (False, None, "Blocked"),
    (True, IdTagInfo("Blocked"), None),
    (True, IdTagInfo("Invalid"), None),
    (True, IdTagInfo("Accepted", datetime(2020, 1, 1, tzinfo=UTC)), None),  # accepted, but expired
], ids=["offline-unknown", "offline-blocked", "backend-blocked", "backend-invalid", "backend-expired"])
async def test_a_refused_card_does_nothing(rig: Rig, online: bool, answer: IdTagInfo | None, listed: str | None):
    if listed:
        rig.listed((MALLORY, listed, None))
    rig.online, rig.backend.answer = online, answer
    rig.plug()
    rig.events.clear()
    await rig.card(MALLORY)
    assert rig.session() is None and rig.core.connectors[1].pending is None
    assert rig.events == []  # no session, no status change


async def test_a_refused_card_does_not_prepare_a_connector(rig: Rig):
    await rig.card(MALLORY)
    assert rig.core.connectors[1].pending is None
    rig.plug()
    assert rig.session() is None


async def test_an_invalid_uid_is_ignored(rig: Rig):
    rig.set(AllowOfflineTxForUnknownId="true")
    rig.plug()
    await rig.card("")
    await rig.card("x" * 21)
    assert rig.session() is None and rig.backend.calls == []


async def test_free_mode_ignores_cards(tmp_path: Path):
    rig = Rig(tmp_path)
    try:
        rig.set(CsMode="1", AllowOfflineTxForUnknownId="true")
        rig.listed((ALICE, "Accepted", None))
        rig.online = True
        rig.backend.answer = IdTagInfo("Accepted")
        await rig.card(ALICE)  # before the plug: prepares nothing
        assert rig.core.connectors[1].pending is None
        rig.plug(cp=C)
        free = rig.session()
        assert free is not None and free.id_tag != ALICE
        await rig.card(ALICE)
        await rig.card(free.id_tag)  # not even the dummy idTag stops it
        assert rig.session() is free and rig.of(SessionEnded) == []
        assert rig.backend.calls == []
    finally:
        rig.close()


# ----------------------------------------------------------------------------- enrollment
def enrollment(rig: Rig) -> list[tuple[bool, datetime | None]]:
    return [(e.active, e.until) for e in rig.of(EnrollmentChanged)]


@pytest.fixture
def master_rig(tmp_path: Path):
    built = Rig(tmp_path, MasterSerial=MASTER)
    yield built
    built.close()


async def test_the_master_card_opens_enrollment_and_the_next_cards_are_enrolled(master_rig: Rig):
    rig = master_rig
    t0 = rig.clock.now
    await rig.card(MASTER.lower())  # the reader's spelling of the key's value
    assert enrollment(rig) == [(True, t0 + timedelta(seconds=ENROLLMENT_S))]
    assert rig.whitelist.lookup(MASTER) is None

    rig.clock.advance(30)
    await rig.card(ALICE)
    entry = rig.whitelist.lookup(ALICE)
    assert entry is not None and entry.authorization == "accepted" and entry.status_at(rig.clock.now) == "Accepted"
    assert [e.uid for e in rig.of(CardEnrolled)] == [ALICE]
    assert enrollment(rig)[-1] == (True, t0 + timedelta(seconds=30 + ENROLLMENT_S))  # the window extends

    rig.clock.advance(ENROLLMENT_S - 1)  # 89 s after the master card: open only thanks to the extension
    await rig.card("4B13B318")
    assert rig.whitelist.lookup(BOB) is not None
    assert [e.uid for e in rig.of(CardEnrolled)] == [ALICE, BOB]
    assert enrollment(rig)[-1] == (True, rig.clock.now + timedelta(seconds=ENROLLMENT_S))
    assert rig.whitelist.count() == 2


async def test_enrolled_cards_do_not_start_or_stop_anything(master_rig: Rig):
    rig = master_rig
    rig.listed((ALICE, "Accepted", None))
    rig.plug(cp=C)
    await rig.card(MASTER)
    await rig.card(ALICE)  # listed and accepted, but the window takes it
    assert rig.session() is None and rig.backend.calls == []
    assert rig.whitelist.lookup(ALICE) is not None


async def test_the_master_card_is_never_enrolled_and_reopens_the_window(master_rig: Rig):
    rig = master_rig
    await rig.card(MASTER)
    rig.clock.advance(10)
    await rig.card(MASTER)  # inside the window: not added, the window starts again
    assert rig.whitelist.lookup(MASTER) is None and rig.of(CardEnrolled) == []
    assert enrollment(rig) == [(True, rig.clock.now - timedelta(seconds=10) + timedelta(seconds=ENROLLMENT_S)),
                               (True, rig.clock.now + timedelta(seconds=ENROLLMENT_S))]
    assert rig.whitelist.count() == 0


async def test_after_the_window_the_next_card_is_authorized_normally(master_rig: Rig):
    rig = master_rig
    rig.listed((DAVE, "Accepted", None))
    rig.plug()
    await rig.card(MASTER)
    rig.clock.advance(ENROLLMENT_S)  # the window ends at exactly this moment
    await rig.card(DAVE)
    assert enrollment(rig)[-1] == (False, None)
    assert rig.whitelist.lookup(DAVE) is None and rig.of(CardEnrolled) == []
    assert rig.session().id_tag == DAVE  # authorized by the list, the waiting vehicle starts
    await rig.card(MALLORY)  # the window stays closed
    assert rig.whitelist.count() == 0 and [a for a, _ in enrollment(rig)] == [True, False]


async def test_an_enrolled_card_then_charges_offline_from_the_technicians_whitelist(master_rig: Rig):
    rig = master_rig
    rig.set(WhitelistSource="Local")
    await rig.card(MASTER)
    await rig.card(CAROL)
    rig.clock.advance(ENROLLMENT_S)
    rig.plug()
    await rig.card(CAROL)  # offline: the whitelist (WhitelistSource Local) accepts it
    assert rig.session().id_tag == CAROL


async def test_without_the_master_card_nothing_is_enrolled(rig: Rig):
    rig.set(MasterSerial=MASTER)
    await rig.card(ALICE)
    assert enrollment(rig) == [] and rig.whitelist.count() == 0


# ----------------------------------------------------------------------------- known defects
async def test_a_second_tap_during_a_slow_authorize_prepares_nothing_more(tmp_path: Path):
    rig = Rig(tmp_path, connectors=2)
    try:
        gate = asyncio.Event()

        async def slow_backend(id_tag: str) -> IdTagInfo | None:
            rig.backend.calls.append(id_tag)
            await gate.wait()
            return IdTagInfo("Accepted")

        rig.cards._ask_backend = slow_backend
        rig.online = True
        rig.plug(1, C)
        first = asyncio.create_task(rig.card(ALICE))
        await asyncio.sleep(0)
        second = asyncio.create_task(rig.card(ALICE))  # the driver taps again: nothing happened yet
        await asyncio.sleep(0)
        gate.set()
        await asyncio.gather(first, second)
        assert rig.session(1).id_tag == ALICE
        assert rig.core.connectors[2].pending is None  # fails: connector 2 waits for ALICE too
    finally:
        rig.close()


async def test_the_enrollment_window_closes_by_itself(master_rig: Rig):
    rig = master_rig
    await rig.card(rig.store.get("MasterSerial"))
    assert enrollment(rig)[-1][0] is True
    rig.clock.advance(ENROLLMENT_S - 1)
    rig.cards.tick()
    assert enrollment(rig)[-1][0] is True
    rig.clock.advance(1)
    rig.cards.tick()  # the daemon ticks every second: no card needed to close it
    assert enrollment(rig)[-1] == (False, None)


async def test_a_backend_contradicting_its_local_list_is_reported(rig: Rig):
    conflicts: list[str] = []
    rig.authorizer._on_conflict = conflicts.append
    rig.listed(("aec78085", "Accepted", None))
    rig.online = True
    rig.backend.answer = IdTagInfo("Blocked")
    await rig.card("aec78085")
    assert conflicts == ["aec78085"]
    assert rig.session() is None  # the backend's answer decides


async def test_with_the_local_list_off_its_cards_are_cached_like_any(rig: Rig):
    rig.listed(("aec78085", "Blocked", None))
    rig.set(LocalAuthListEnabled="false")
    rig.authorizer.learn("aec78085", IdTagInfo("Accepted"))
    assert rig.cache.lookup("aec78085", 3600).status == "Accepted"
