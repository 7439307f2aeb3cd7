"""The authorization cache (OCPP 1.6 §3.5.1): the backend's last answer for recently seen idTags.

The cache learns from every IdTagInfo the backend sends (Authorize, StartTransaction and
StopTransaction answers) and lets the station decide offline, or without waiting, about an
idTag that is not in the local list. It lives in SQLite (migration 5, ``auth_cache``), so it
survives a restart, with an in-memory dict for lookups; ClearCache empties it
(:meth:`AuthCache.clear`).

Rules kept here
    * idTags are stored and looked up in the normal form of :mod:`stationd.auth.uid`
      (case-insensitive: ``AEC78085`` finds ``aec78085``).
    * Lifetime (the AuthCacheLifeTime key, 2592000 s by default): :meth:`AuthCache.lookup`
      treats an entry updated ``lifetime_s`` or more seconds ago as absent (its life is counted
      from its last update: a new answer from the backend starts it again). ``lifetime_s`` 0
      makes every entry absent. Expired entries are not deleted by a lookup: they make room
      through eviction, and a new answer replaces them.
    * The IdTagInfo's own expiry: an Accepted (or ConcurrentTx) entry whose ``expiryDate`` has
      passed is returned with status ``Expired`` (:meth:`IdTagInfo.status_at`).
    * Bounded: at most ``capacity`` entries (10,000 by default); adding one more evicts the
      least recently updated entry (an update moves an entry to the back of the queue).
      Capacity 0 keeps nothing.

Rules the caller keeps (the authorizer)
    * The local list wins, and **list ids never enter the cache**: check the local list before
      calling :meth:`AuthCache.update` (and before :meth:`AuthCache.lookup`). The cache does
      not know the list.
    * AuthorizationCacheEnabled: when it is false, neither look up nor update.

One writer: the daemon. Another :class:`AuthCache` on the same file sees the cache as it was
when it was created (nothing else needs a live view of the cache).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

from ..storage import Database, StorageError
from .id_tag_info import DB_TIME, IdTagInfo
from .uid import InvalidUid, normalize_uid

__all__ = ["DEFAULT_CAPACITY", "DEFAULT_LIFETIME_S", "AuthCache"]

log = logging.getLogger("stationd.auth.cache")

DEFAULT_CAPACITY = 10_000
DEFAULT_LIFETIME_S = 2_592_000  # AuthCacheLifeTime's default: 30 days

_UTC = timezone.utc


def _utc_now() -> datetime:
    return datetime.now(_UTC)


class AuthCache:
    """The authorization cache in ``db`` (a :class:`Database`, schema version >= 5).

    ``clock`` returns the current time (aware). Methods are synchronous and short (one small
    transaction per write); :meth:`lookup` never touches the database.
    """

    def __init__(self, db: Database, *, capacity: int = DEFAULT_CAPACITY,
                 clock: Callable[[], datetime] = _utc_now):
        if db.schema_version < 5:
            raise StorageError(f"{db.path} has no authorization cache (schema version {db.schema_version})")
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 0:
            raise ValueError(f"capacity must be an integer >= 0, got {capacity!r}")
        self.db = db
        self.capacity = capacity
        self._clock = clock
        self._lock = threading.Lock()
        # normal-form idTag -> (info, updated_at); dict order is update order (oldest first)
        self._entries: dict[str, tuple[IdTagInfo, datetime]] = {}
        for row in db.query("SELECT id_tag, status, expiry, parent_id_tag, updated_at FROM auth_cache ORDER BY rowid"):
            updated = datetime.strptime(row[4], DB_TIME).replace(tzinfo=_UTC)
            self._entries[row[0]] = (IdTagInfo.from_db(row[1], row[2], row[3]), updated)
        if len(self._entries) > capacity:  # the capacity was lowered since
            with self._lock, db.transaction():
                self._evict(len(self._entries) - capacity)

    def count(self) -> int:
        """Entries in the cache (expired ones included until they are evicted or replaced)."""
        return len(self._entries)

    def lookup(self, id_tag: str, lifetime_s: int) -> IdTagInfo | None:
        """The cached IdTagInfo of a presented idTag (any case/spelling), with status Expired if
        its expiryDate has passed; None if it is not cached, was last updated ``lifetime_s`` or
        more seconds ago, or cannot be an idTag."""
        entries = self._entries
        item = entries.get(id_tag)
        if item is None:
            try:
                key = normalize_uid(id_tag)
            except InvalidUid:
                return None
            if key == id_tag or (item := entries.get(key)) is None:
                return None
        info, updated = item
        now = self._clock()
        if now - updated >= timedelta(seconds=max(0, lifetime_s)):
            return None
        status = info.status_at(now)
        return info if status == info.status else dataclasses.replace(info, status=status)

    def update(self, id_tag: str, info: IdTagInfo) -> None:
        """Store the backend's answer for ``id_tag`` (insert or replace; its lifetime starts
        now). When the cache is full, the least recently updated entry goes. InvalidUid if
        ``id_tag`` cannot be an idTag. The caller makes sure ``id_tag`` is not in the local list."""
        if not isinstance(info, IdTagInfo):
            raise TypeError(f"info must be an IdTagInfo, not {type(info).__name__}")
        key = normalize_uid(id_tag)
        if self.capacity == 0:
            return
        now = self._clock().astimezone(_UTC).replace(microsecond=0)
        with self._lock:
            with self.db.transaction():
                # Delete and insert (not UPDATE): the row gets the largest rowid, so rowid order
                # stays update order after a restart.
                self.db.execute("DELETE FROM auth_cache WHERE id_tag = ?", (key,))
                excess = len(self._entries) + (0 if key in self._entries else 1) - self.capacity
                evicted = self._evict_rows(excess, skip=key) if excess > 0 else []
                self.db.execute(
                    "INSERT INTO auth_cache (id_tag, status, expiry, parent_id_tag, updated_at) VALUES (?, ?, ?, ?, ?)",
                    (key, *info.db_fields(), now.strftime(DB_TIME)))
            # Committed: the memory follows.
            for old in evicted:
                self._entries.pop(old, None)
            self._entries.pop(key, None)
            self._entries[key] = (info, now)

    def remove(self, id_tag: str) -> bool:
        """Forget ``id_tag``; True if it was cached."""
        try:
            key = normalize_uid(id_tag)
        except InvalidUid:
            return False
        with self._lock:
            removed = self.db.execute("DELETE FROM auth_cache WHERE id_tag = ?", (key,)).rowcount > 0
            self._entries.pop(key, None)
        return removed

    def clear(self) -> None:
        """Empty the cache (ClearCache)."""
        with self._lock:
            self.db.execute("DELETE FROM auth_cache")
            self._entries = {}
        log.info("authorization cache cleared")

    def _evict_rows(self, n: int, skip: str) -> list[str]:
        """Inside a transaction: delete the ``n`` least recently updated rows other than
        ``skip``; return their idTags (memory untouched)."""
        victims = []
        for key in self._entries:
            if len(victims) == n:
                break
            if key != skip:
                victims.append(key)
        self.db.executemany("DELETE FROM auth_cache WHERE id_tag = ?", [(key,) for key in victims])
        if victims:
            log.debug("authorization cache full (%d): evicted %s", self.capacity, ", ".join(victims))
        return victims

    def _evict(self, n: int) -> None:
        for key in self._evict_rows(n, skip=""):
            self._entries.pop(key, None)
