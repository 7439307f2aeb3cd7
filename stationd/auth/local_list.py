"""The OCPP local authorization list (SendLocalList): SQLite, a change counter, an in-memory lookup.

The backend manages this list with SendLocalList (OCPP 1.6 §5.15, §6.44; OCPP-NOTES.md §4);
the station reports its version with GetLocalListVersion and the ``LocalListVersion`` key. It
is not the technician's whitelist (:mod:`stationd.auth.whitelist`), but it is built the same
way: rows in SQLite (migration 5, ``local_auth_list``), one state row with a change counter
(``local_auth_list_state``), and an in-memory dict the daemon answers cards from.

idTags
    Stored and looked up in the normal form of :mod:`stationd.auth.uid` (CiString20 is
    case-insensitive): ``AEC78085`` finds ``aec78085``. An idTag that has no normal form (empty,
    more than 20 characters, not printable ASCII) makes the whole update ``Failed``. Two entries
    of one update with the same normal form (``AEC78085`` and ``aec78085``) are duplicates:
    ``Failed``.

The rules of :meth:`LocalList.apply` (the SendLocalList.conf status it returns)
    * The update is all or nothing: one SQLite transaction (one ``executemany``, one fsync);
      on ``Failed`` / ``VersionMismatch`` the previous entries and version stay, on disk and in
      memory.
    * **Full** replaces the list with the entries given; every entry needs an idTagInfo. A Full
      update with no entries clears the list.
    * **Differential** adds or updates the entries with an idTagInfo (an updated entry keeps
      its place in the list) and deletes those without one (deleting an idTag that is not in
      the list is not an error: a retried update must not fail). A Differential update whose
      version is not greater than the current one is ``VersionMismatch`` (checked first, before
      the entries). A Differential update with no entries changes no entry, only the version
      (the listVersion of a Differential update is "the version of the list after the update").
    * Versions: 0 means "the list is empty" and -1 "not supported" (GetLocalListVersion), so a
      list that ends up empty — cleared by a Full update, emptied by Differential deletes, or
      :meth:`LocalList.clear` — has version 0, whatever listVersion the update carried, and a
      list with entries has the listVersion of the update that made it (>= 1). Hence a Full
      update with listVersion < 0, or with entries and listVersion 0, is ``Failed``; a Full
      update may lower the version (it starts the list afresh: no VersionMismatch for Full).
    * Capacity: at most ``capacity`` entries (:data:`MAX_ENTRIES`, 100,000: what
      LocalAuthListMaxLength and SendLocalListMaxLength report) in the list after the update,
      and at most ``capacity`` entries in one update; more is ``Failed``.
    * ``NotSupported`` (LocalAuthListEnabled false) and the version -1 are the OCPP layer's
      answers; this class never gives them.
    :attr:`LocalList.last_failure` says in words why the last update was not Accepted.

Who writes, who reads
    The OCPP side of the daemon writes; its own :meth:`LocalList.lookup` sees the new list as
    soon as :meth:`apply` returns (the new dict replaces the old one in one step: a lookup in
    another thread sees the old list or the new one, never half of each). Another
    :class:`LocalList` on the same file (the CLI, a second connection) catches up with
    :meth:`LocalList.refresh_if_changed` (or :meth:`LocalList.watch`): one single-row SELECT
    while nothing changed; after a Differential update that only added or changed entries, a
    scan for the rows whose ``changed_in`` is newer than what it holds; after anything that
    removed rows (Full, clear, Differential deletes), a reload.

Not here
    The authorization rules (list before cache, LocalAuthListEnabled, LocalListConflict) belong
    to the authorizer; the list just stores what the backend sent. :meth:`LocalList.lookup`
    returns the stored :class:`IdTagInfo`; ``info.status_at(now)`` turns an expired Accepted
    entry into ``Expired``.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from ..storage import Database, StorageError
from ..storage.poll import poll_changes
from .id_tag_info import IdTagInfo, InvalidIdTagInfo
from .uid import InvalidUid, normalize_uid
from .whitelist import MAX_ENTRIES

__all__ = [
    "ACCEPTED",
    "DIFFERENTIAL",
    "FAILED",
    "FULL",
    "MAX_ENTRIES",
    "UPDATE_TYPES",
    "VERSION_MISMATCH",
    "ListEntry",
    "LocalList",
]

log = logging.getLogger("stationd.auth.local_list")

FULL, DIFFERENTIAL = "Full", "Differential"
UPDATE_TYPES = (FULL, DIFFERENTIAL)
ACCEPTED, FAILED, VERSION_MISMATCH = "Accepted", "Failed", "VersionMismatch"  # SendLocalList.conf

_COLUMNS = "id_tag, status, expiry, parent_id_tag"
_INSERT = f"INSERT INTO local_auth_list ({_COLUMNS}, changed_in) VALUES (?, ?, ?, ?, ?)"
_UPSERT = (
    _INSERT + " ON CONFLICT(id_tag) DO UPDATE SET status = excluded.status, expiry = excluded.expiry, "
    "parent_id_tag = excluded.parent_id_tag, changed_in = excluded.changed_in"
)


class ListEntry(NamedTuple):
    """One entry of the list, as :meth:`LocalList.entries` pages them."""

    id_tag: str
    info: IdTagInfo


class _Refused(Exception):
    """An update that is answered ``status`` instead of being applied."""

    def __init__(self, status: str, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


class LocalList:
    """The local authorization list in ``db`` (a :class:`Database`, schema version >= 5).

    Methods are synchronous and short (async code may use ``asyncio.to_thread``), except
    :meth:`lookup`, which never touches the database (it loads the list on first use).
    """

    def __init__(self, db: Database, *, capacity: int = MAX_ENTRIES):
        if db.schema_version < 5:
            raise StorageError(f"{db.path} has no local authorization list (schema version {db.schema_version})")
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 0:
            raise ValueError(f"capacity must be an integer >= 0, got {capacity!r}")
        self.db = db
        self.capacity = capacity
        self.last_failure: str | None = None  # why the last apply() was not Accepted
        self._map: dict[str, IdTagInfo] | None = None  # normal-form idTag -> info; replaced, never edited
        self._version = 0
        self._counter = -1
        self._lock = threading.RLock()  # refreshes and writes; lookups take no lock

    # ---- reading -------------------------------------------------------------------------

    @property
    def version(self) -> int:
        """The list version (what GetLocalListVersion and LocalListVersion report): 0 while the
        list is empty. Read from the database (one single-row SELECT), so it is current even
        in a process that never loaded the list."""
        return self._state()[0]

    def count(self) -> int:
        """Entries in the list."""
        with self._lock:
            if self._map is None:
                return int(self.db.query("SELECT COUNT(*) FROM local_auth_list")[0][0])
            self._refresh()
            return len(self._map)

    def lookup(self, id_tag: str) -> IdTagInfo | None:
        """The stored IdTagInfo of a presented idTag (any case/spelling), from memory; None if
        it is not in the list or cannot be an idTag. Call :meth:`refresh_if_changed` (or run
        :meth:`watch`) to see other connections' changes."""
        entries = self._map
        if entries is None:
            self.refresh_if_changed()
            entries = self._map
            assert entries is not None
        info = entries.get(id_tag)
        if info is None:
            try:
                key = normalize_uid(id_tag)
            except InvalidUid:
                return None
            if key != id_tag:
                info = entries.get(key)
        return info

    def __contains__(self, id_tag: str) -> bool:
        return self.lookup(id_tag) is not None

    def entries(self, offset: int = 0, limit: int | None = None) -> list[ListEntry]:
        """Entries in list order (from the database); ``offset``/``limit`` page them (WebUI)."""
        rows = self.db.query(
            f"SELECT {_COLUMNS} FROM local_auth_list ORDER BY rowid LIMIT ? OFFSET ?",
            (-1 if limit is None else max(0, int(limit)), max(0, int(offset))),
        )
        return [ListEntry(row[0], IdTagInfo.from_db(row[1], row[2], row[3])) for row in rows]

    def change_counter(self) -> int:
        """A number that grows with every change of the list (one single-row SELECT)."""
        return self._state()[1]

    def _state(self) -> tuple[int, int, int]:
        row = self.db.query("SELECT list_version, counter, reset_counter FROM local_auth_list_state WHERE id = 1")[0]
        return int(row[0]), int(row[1]), int(row[2])

    # ---- the in-memory view ----------------------------------------------------------------

    def refresh_if_changed(self) -> bool:
        """Bring the in-memory view up to date; True if it changed. While nothing changed this
        is one single-row SELECT."""
        with self._lock:
            return self._refresh()

    def _refresh(self) -> bool:
        version, counter, reset_counter = self._state()
        if self._map is not None and counter == self._counter:
            return False
        if self._map is None or reset_counter > self._counter:
            shared: dict[tuple, IdTagInfo] = {}  # lists repeat a few infos: share the objects
            fresh: dict[str, IdTagInfo] = {}
            for row in self.db.query(f"SELECT {_COLUMNS} FROM local_auth_list"):
                fields = (row[1], row[2], row[3])
                info = shared.get(fields)
                if info is None:
                    info = shared[fields] = IdTagInfo.from_db(*fields)
                fresh[row[0]] = info
        else:
            fresh = dict(self._map)
            for row in self.db.query(f"SELECT {_COLUMNS} FROM local_auth_list WHERE changed_in > ?",
                                     (self._counter,)):
                fresh[row[0]] = IdTagInfo.from_db(row[1], row[2], row[3])
        # Rows read may be newer than `counter` (another writer committed in between); the
        # next refresh reads them again, and a removal since is caught by reset_counter.
        self._map, self._version, self._counter = fresh, version, counter
        return True

    async def watch(self, interval: float = 1.0) -> None:
        """Run forever: pick up changes other connections make."""
        await poll_changes(self.refresh_if_changed, "the local authorization list", interval)

    # ---- writing ---------------------------------------------------------------------------

    def apply(self, update_type: str, version: int,
              entries: Iterable[tuple[str, IdTagInfo | None]]) -> str:
        """Apply one SendLocalList update; return its status: ``Accepted``, ``Failed`` or
        ``VersionMismatch`` (the rules are in the module docstring). All or nothing.

        ``entries``: (idTag as sent, IdTagInfo or None) pairs; None deletes (Differential only).
        Bad data (an invalid idTag, duplicates, too many entries, a storage error) is answered
        ``Failed``; a wrong ``update_type`` or argument type is a programming error (ValueError
        / TypeError).
        """
        if update_type not in UPDATE_TYPES:
            raise ValueError(f"update_type must be one of {', '.join(UPDATE_TYPES)}, got {update_type!r}")
        if isinstance(version, bool) or not isinstance(version, int):
            raise TypeError(f"version must be an int, got {type(version).__name__}")
        batch = list(entries)
        for item in batch:
            if not (isinstance(item, tuple) and len(item) == 2
                    and (item[1] is None or isinstance(item[1], IdTagInfo))):
                raise TypeError(f"entries must be (idTag, IdTagInfo | None) pairs, got {item!r:.80}")
        differential = update_type == DIFFERENTIAL
        with self._lock:
            try:
                try:
                    rows = self._check(differential, version, batch)
                except _Refused:
                    # A stale Differential update is VersionMismatch whatever its entries hold.
                    current_version = self._state()[0] if differential else 0
                    if differential and version <= current_version:
                        raise _Refused(VERSION_MISMATCH, f"Differential update to version {version}, "
                                       f"but the list has version {current_version}") from None
                    raise
                with self.db.transaction():
                    self._refresh()  # we hold the write lock: memory is now exactly the database
                    if differential:
                        result = self._differential(version, rows)
                    else:
                        result = self._full(version, rows)
            except _Refused as refused:
                self.last_failure = refused.reason
                log.warning("SendLocalList %s to version %d: %s (%s)", update_type, version,
                            refused.status, refused.reason)
                return refused.status
            except (sqlite3.Error, StorageError) as exc:
                self.last_failure = f"the list cannot be stored: {exc}"
                log.error("SendLocalList %s to version %d: Failed, the list cannot be stored: %s",
                          update_type, version, exc)
                return FAILED
            # Committed: show the new list (one reference swap; lookups need no lock).
            self._map, self._version, self._counter = result
            self.last_failure = None
        log.info("SendLocalList %s: %d entries in the update, the list has %d entries, version %d",
                 update_type, len(batch), len(result[0]), result[1])
        return ACCEPTED

    def apply_request(self, payload: Any) -> str:
        """Apply the payload of a SendLocalList.req (``listVersion``, ``updateType``,
        ``localAuthorizationList``); return the status for SendLocalList.conf. A payload that
        does not make sense (a bad idTagInfo, a missing field) is ``Failed``."""
        try:
            if not isinstance(payload, dict):
                raise _Refused(FAILED, "the request is not a JSON object")
            update_type, version = payload.get("updateType"), payload.get("listVersion")
            if update_type not in UPDATE_TYPES:
                raise _Refused(FAILED, f"updateType {update_type!r} is not Full or Differential")
            if isinstance(version, bool) or not isinstance(version, int):
                raise _Refused(FAILED, f"listVersion {version!r} is not an integer")
            items = payload.get("localAuthorizationList") or []
            if not isinstance(items, list):
                raise _Refused(FAILED, "localAuthorizationList is not a list")
            entries: list[tuple[str, IdTagInfo | None]] = []
            for index, item in enumerate(items, start=1):
                if not isinstance(item, dict) or "idTag" not in item:
                    raise _Refused(FAILED, f"entry {index} has no idTag")
                info = item.get("idTagInfo")
                try:
                    entries.append((item["idTag"], None if info is None else IdTagInfo.from_ocpp(info)))
                except InvalidIdTagInfo as exc:
                    raise _Refused(FAILED, f"entry {index} ({item['idTag']!r:.30}): {exc}") from None
        except _Refused as refused:
            self.last_failure = refused.reason
            log.warning("SendLocalList: %s (%s)", refused.status, refused.reason)
            return refused.status
        return self.apply(update_type, version, entries)

    def clear(self) -> None:
        """Empty the list (version 0)."""
        with self._lock:
            with self.db.transaction():
                counter = self._bump()
                self.db.execute("DELETE FROM local_auth_list")
                self.db.execute("UPDATE local_auth_list_state SET list_version = 0, reset_counter = ? WHERE id = 1",
                                (counter,))
            self._map, self._version, self._counter = {}, 0, counter
        log.info("local authorization list cleared")

    def _check(self, differential: bool, version: int,
               batch: Sequence[tuple[Any, IdTagInfo | None]]) -> list[tuple[str, IdTagInfo | None]]:
        """The update's entries with normal-form idTags; _Refused(FAILED) for what no list state
        can make valid."""
        if not differential:
            if version < 0:
                raise _Refused(FAILED, f"listVersion {version} is negative (-1 means 'not supported')")
            if version == 0 and batch:
                raise _Refused(FAILED, "listVersion 0 means an empty list, but the Full update has entries")
        if len(batch) > self.capacity:
            raise _Refused(FAILED, f"the update has {len(batch):,} entries; at most {self.capacity:,} are allowed")
        rows: list[tuple[str, IdTagInfo | None]] = []
        seen: dict[str, int] = {}
        for index, (id_tag, info) in enumerate(batch, start=1):
            try:
                key = normalize_uid(id_tag)
            except InvalidUid as exc:
                raise _Refused(FAILED, f"entry {index}: {exc}") from None
            if key in seen:
                raise _Refused(FAILED, f"entry {index}: idTag {key} is already entry {seen[key]} "
                               f"(duplicates are not allowed; idTags are case-insensitive)")
            seen[key] = index
            if info is None and not differential:
                raise _Refused(FAILED, f"entry {index} ({key}) has no idTagInfo (only a Differential "
                               f"update can delete)")
            rows.append((key, info))
        return rows

    def _full(self, version: int, rows: list[tuple[str, IdTagInfo | None]]):
        """Inside the transaction: replace the list. Returns the new (map, version, counter)."""
        counter = self._bump()
        new_map: dict[str, IdTagInfo] = {}
        params = []
        # Lists repeat a few infos: convert each value once, and keep one object per value.
        shared: dict[tuple, tuple[IdTagInfo, tuple[str, str | None, str | None]]] = {}
        for key, info in rows:
            assert info is not None  # Full: checked
            value = (info.status, info.expiry, info.parent_id_tag)  # cheaper to hash than the dataclass
            known = shared.get(value)
            if known is None:
                known = shared[value] = (info, info.db_fields())
            new_map[key] = known[0]
            params.append((key, *known[1], counter))
        new_version = version if new_map else 0
        self.db.execute("DELETE FROM local_auth_list")
        if params:
            self.db.executemany(_INSERT, params)
        self.db.execute("UPDATE local_auth_list_state SET list_version = ?, reset_counter = ? WHERE id = 1",
                        (new_version, counter))
        return new_map, new_version, counter

    def _differential(self, version: int, rows: list[tuple[str, IdTagInfo | None]]):
        """Inside the transaction (after _refresh): apply the changes. Returns the new
        (map, version, counter); _Refused for a stale version or a list over capacity."""
        if version <= self._version:
            raise _Refused(VERSION_MISMATCH, f"Differential update to version {version}, "
                           f"but the list has version {self._version}")
        current = self._map
        assert current is not None
        upserts = [(key, info) for key, info in rows if info is not None and current.get(key) != info]
        deletes = [key for key, info in rows if info is None and key in current]
        added = sum(1 for key, _ in upserts if key not in current)
        size = len(current) + added - len(deletes)
        if size > self.capacity:
            raise _Refused(FAILED, f"the list would have {size:,} entries; at most {self.capacity:,} are allowed")
        new_map = dict(current)
        for key, info in upserts:
            new_map[key] = info  # type: ignore[assignment]
        for key in deletes:
            del new_map[key]
        new_version = version if new_map else 0
        counter = self._bump()
        if upserts:
            self.db.executemany(_UPSERT, [(key, *info.db_fields(), counter) for key, info in upserts])  # type: ignore[union-attr]
        if deletes:
            self.db.executemany("DELETE FROM local_auth_list WHERE id_tag = ?", [(key,) for key in deletes])
            self.db.execute("UPDATE local_auth_list_state SET reset_counter = ? WHERE id = 1", (counter,))
        self.db.execute("UPDATE local_auth_list_state SET list_version = ? WHERE id = 1", (new_version,))
        return new_map, new_version, counter

    def _bump(self) -> int:
        """Inside a transaction: the next counter, which the rows written now carry."""
        self.db.execute("UPDATE local_auth_list_state SET counter = counter + 1 WHERE id = 1")
        return self._state()[1]
