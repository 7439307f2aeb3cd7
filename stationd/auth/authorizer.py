"""Who may charge: the OCPP 1.6 authorization rules over the local lists, the cache and the backend.

Where a card is known locally, in this order:
* ``WhitelistSource`` OCPP: the list the backend manages (SendLocalList), when
  ``LocalAuthListEnabled``;
* while the backend is unreachable, the technician's whitelist (CSV, and the cards enrolled at
  the station with the master card): with ``WhitelistSource`` Local it is the station's only
  list ("offline only", as the vendor's Users page says); with OCPP it comes after the backend's;
* then the authorization cache (``AuthorizationCacheEnabled``, entries younger than
  ``AuthCacheLifeTime``), which learns from every answer the backend gives. A list's card never
  enters the cache: the list wins.

Online: a card the local sources accept starts at once when ``LocalPreAuthorize``; otherwise
the backend decides (Authorize.req) and its answer is cached. A backend that does not answer
counts as offline. Offline: a card known locally starts when it is Accepted there and
``LocalAuthorizeOffline`` is true; known but Blocked/Expired/Invalid is refused; an unknown
card starts only with ``AllowOfflineTxForUnknownId``.

The vendor's authentication modes are these keys: "no RFID" = CsMode 1 (free charging with
the dummy idTag), "any unknown RFID or a whitelisted RFID" = AllowOfflineTxForUnknownId true,
"a whitelisted RFID" = AllowOfflineTxForUnknownId false.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from ..config.store import ConfigStore
from .cache import AuthCache
from .id_tag_info import IdTagInfo
from .local_list import LocalList
from .uid import InvalidUid, normalize_uid
from .whitelist import Whitelist

log = logging.getLogger("stationd.auth")

ACCEPTED = "Accepted"
AskBackend = Callable[[str], Awaitable[IdTagInfo | None]]  # None: no answer (offline)


@dataclass(frozen=True)
class Decision:
    accepted: bool
    id_tag: str
    info: IdTagInfo | None  # what the deciding source said (None: unknown everywhere)
    source: str  # "local list", "whitelist", "cache", "backend", "offline rule", "invalid"

    @property
    def parent_id_tag(self) -> str | None:
        return self.info.parent_id_tag if self.info else None


class Authorizer:
    def __init__(self, store: ConfigStore, local_list: LocalList, cache: AuthCache, whitelist: Whitelist,
                 clock: Callable[[], datetime], *, on_conflict: Callable[[str], None] = lambda id_tag: None):
        self.store, self.local_list, self.cache, self.whitelist, self.clock = (
            store, local_list, cache, whitelist, clock)
        self._on_conflict = on_conflict  # the backend contradicts its own local list (LocalListConflict)

    async def authorize(self, id_tag: str, *, online: bool, ask_backend: AskBackend) -> Decision:
        try:
            id_tag = normalize_uid(id_tag)
        except InvalidUid:
            return Decision(False, id_tag, None, "invalid")
        known = self.known_locally(id_tag, online=online)
        if online:
            if known is not None and self.store.get("LocalPreAuthorize") and self._accepted(known[1]):
                return self._decided(id_tag, known[1], known[0])
            answer = await ask_backend(id_tag)
            if answer is not None:
                if known is not None and known[0] == "local list" and known[1].status != answer.status:
                    log.warning("local list says %s for %s, the backend %s (LocalListConflict)",
                                known[1].status, id_tag, answer.status)
                    self._on_conflict(id_tag)
                self.learn(id_tag, answer)
                return self._decided(id_tag, answer, "backend")
            known = self.known_locally(id_tag, online=False)  # no answer: decide as offline
        if known is not None:
            source, info = known
            accepted = self._accepted(info) and bool(self.store.get("LocalAuthorizeOffline"))
            return Decision(accepted, id_tag, info, source)
        allowed = bool(self.store.get("AllowOfflineTxForUnknownId"))
        return Decision(allowed, id_tag, None, "offline rule")

    def known_locally(self, id_tag: str, *, online: bool) -> tuple[str, IdTagInfo] | None:
        """(source, what it says) of the first local source that knows the card."""
        if self._list_in_use():
            listed = self.local_list.lookup(id_tag)
            if listed is not None:
                return "local list", listed
        if not online:
            entry = self.whitelist.lookup(id_tag)
            if entry is not None:
                return "whitelist", IdTagInfo(entry.status_at(self.clock()), entry.expiry, entry.gid)
        if self.store.get("AuthorizationCacheEnabled"):
            cached = self.cache.lookup(id_tag, int(self.store.get("AuthCacheLifeTime")))
            if cached is not None:
                return "cache", cached
        return None

    def learn(self, id_tag: str, info: IdTagInfo) -> None:
        """An IdTagInfo from the backend (Authorize, StartTransaction, StopTransaction .conf)."""
        if not self.store.get("AuthorizationCacheEnabled"):
            return
        if self._list_in_use() and self.local_list.lookup(id_tag) is not None:
            return  # list ids never enter the cache
        try:
            self.cache.update(id_tag, info)
        except (InvalidUid, ValueError) as exc:
            log.warning("not caching the answer for %s: %s", id_tag, exc)

    def _list_in_use(self) -> bool:
        return self.store.get("WhitelistSource") == "OCPP" and bool(self.store.get("LocalAuthListEnabled"))

    def _accepted(self, info: IdTagInfo) -> bool:
        return info.status_at(self.clock()) == ACCEPTED

    def _decided(self, id_tag: str, info: IdTagInfo, source: str) -> Decision:
        return Decision(self._accepted(info), id_tag, info, source)
