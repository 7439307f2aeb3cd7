"""What a card at the reader does: enroll, stop a session, or start one if authorized.

* The ``MasterSerial`` card opens an enrollment window of ENROLLMENT_S seconds: every other
  card presented in it is added to the technician's whitelist (accepted), each addition
  extending the window; the window's state goes out on the event bus (WebUI, LEDs).
* In free charging (CsMode 1) cards are not needed and are ignored.
* A card that started a session, or an authorized card of the same parent idTag, stops it
  (reason Local) — the same card needs no authorization.
* Any other card is authorized (``Authorizer``) and, when accepted, lets the next plug-in
  (or the vehicle already waiting) charge.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from ..config.store import ConfigStore
from ..core.events import CardEnrolled, CardPresented, EnrollmentChanged
from ..core.station import StationCore
from .authorizer import AskBackend, Authorizer
from .uid import InvalidUid, normalize_uid
from .whitelist import Whitelist, WhitelistFull

log = logging.getLogger("stationd.auth")

ENROLLMENT_S = 60
FREE_MODE = 1


class CardHandler:
    def __init__(self, core: StationCore, store: ConfigStore, authorizer: Authorizer, whitelist: Whitelist, *,
                 online: Callable[[], bool], ask_backend: AskBackend, clock: Callable[[], datetime]):
        self.core, self.store, self.authorizer, self.whitelist = core, store, authorizer, whitelist
        self._online, self._ask_backend, self._clock = online, ask_backend, clock
        self.enrolling_until: datetime | None = None
        self._tasks: set[asyncio.Task] = set()
        self._deciding: set[str] = set()  # cards whose authorization is under way
        core.bus.subscribe(self._presented, CardPresented)

    def _presented(self, event: CardPresented) -> None:
        task = asyncio.get_running_loop().create_task(self.handle(event.uid))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def handle(self, uid: str) -> None:
        try:
            uid = normalize_uid(uid)
        except InvalidUid:
            log.warning("card with an unusable UID ignored")
            return
        if self._enrollment(uid):
            return
        if self.store.get("CsMode") == FREE_MODE:
            return
        for connector in self.core.connectors.values():
            if connector.session is not None and connector.session.id_tag.lower() == uid:
                self.core.stop_session(connector.id, "Local", uid)
                return
        if uid in self._deciding:
            return  # tapped again while the backend is still being asked: one decision is enough
        self._deciding.add(uid)
        try:
            decision = await self.authorizer.authorize(uid, online=self._online(), ask_backend=self._ask_backend)
        finally:
            self._deciding.discard(uid)
        parent = decision.parent_id_tag
        if decision.accepted and parent:
            for connector in self.core.connectors.values():
                if connector.session is not None and (connector.session_parent_id_tag or "").lower() == parent.lower():
                    self.core.stop_session(connector.id, "Local", uid)
                    return
        if not decision.accepted:
            log.info("card %s refused (%s: %s)", uid, decision.source,
                     decision.info.status if decision.info else "unknown")
            return
        result = self.core.authorize(None, uid, parent)
        if not result.accepted:
            log.info("card %s accepted (%s) but no connector can take it: %s", uid, decision.source, result.reason)

    def tick(self) -> None:
        """Close an enrollment window whose time ran out (call every second)."""
        if self.enrolling_until is not None and self._clock() >= self.enrolling_until:
            self.enrolling_until = None
            log.info("enrollment closed")
            self.core.bus.publish(EnrollmentChanged(False, None))

    def _enrollment(self, uid: str) -> bool:
        """True when the card was the master card or was enrolled."""
        now = self._clock()
        master = str(self.store.get("MasterSerial") or "")
        if master and uid == _normalized(master):
            self._open_window(now)
            log.info("master card: enrollment open for %d s", ENROLLMENT_S)
            return True
        self.tick()
        if self.enrolling_until is None:
            return False
        try:
            self.whitelist.add(uid)
        except (WhitelistFull, ValueError) as exc:
            log.error("card %s not enrolled: %s", uid, exc)
            return True
        log.info("card %s enrolled in the local whitelist", uid)
        self.core.bus.publish(CardEnrolled(uid))
        self._open_window(now)
        return True

    def _open_window(self, now: datetime) -> None:
        self.enrolling_until = now + timedelta(seconds=ENROLLMENT_S)
        self.core.bus.publish(EnrollmentChanged(True, self.enrolling_until))


def _normalized(text: str) -> str:
    try:
        return normalize_uid(text)
    except InvalidUid:
        return text.lower()
