"""The local RFID whitelist (SPEC.md §6): entries in SQLite, a change counter, an in-memory lookup.

One table (migration 4, ``whitelist``) holds the entries: ``uid`` (the normal form of
:mod:`stationd.auth.uid`), ``gid`` (the parent idTag, may be empty), ``expiry`` (UTC, may be
empty) and ``authorization`` (``accepted`` or ``blocked``). Row order is list order: the order
in which entries were first added, the "#" of the WebUI and the order of an export. An update
keeps an entry's place; an import appends new entries in file order.

Who writes, who reads
    The CLI, the WebUI and the OCPP side write through a :class:`Whitelist` on their own
    connection; every write is one transaction (``BEGIN IMMEDIATE``; a bulk import is one
    ``executemany`` and one fsync, never one per row) and bumps ``whitelist_state.version``.
    The daemon answers cards from an in-memory dict (:meth:`Whitelist.lookup`, a dict lookup)
    and keeps it current with :meth:`Whitelist.refresh_if_changed` (or :meth:`Whitelist.watch`):
    one single-row SELECT while nothing changed; after a change one scan for the rows whose
    ``changed_in`` is newer than what it holds (a CLI ``add`` on a list of 100,000 costs the
    daemon that scan, not a reload). ``PRAGMA data_version`` is not used on purpose: it changes
    with every commit of any table (the outbox writes all the time) and not at all for writes
    on the same connection.

Deleted entries ("restorable until the next reboot", as the vendor's UI has it)
    :meth:`Whitelist.delete` (and a Replace import, for entries missing from the file) keeps
    the row with ``deleted_at`` and ``deleted_boot`` = the latest ``boot_log`` entry. Such an
    entry no longer authorizes anything, is listed only when deleted entries are asked for, and
    :meth:`Whitelist.restore` brings it back — until the daemon starts again: an entry deleted
    before the latest daemon start (``deleted_boot`` < the latest ``boot_id``) counts as gone,
    whether or not anyone purged it. :meth:`Whitelist.purge_deleted` (the daemon calls it at
    start) removes deleted rows for good.

Capacity
    :data:`MAX_ENTRIES` (100,000; what LocalAuthListMaxLength reports) entries that are not
    deleted. A write that would exceed it raises :class:`WhitelistFull` and changes nothing.

Expiry dates (:func:`parse_expiry`)
    ``YYYY-MM-DDTHH:MM:SS`` as in the vendor's example, a time without zone meaning UTC (the
    station's clock and OCPP's dateTime are UTC; a list that mixes backend and technician
    entries needs one time base). Also accepted: a space for the ``T``, no seconds, fractions
    (dropped: an entry expires up to a second early, never late), ``Z`` or an offset
    (``+01:00``, converted to UTC). Refused with a hint: a date without time (midnight at the
    start or at the end of the day?) and the forms spreadsheets turn dates into
    (``01.01.2020 12:00``, ``1/1/2020``).
"""

from __future__ import annotations

import functools
import logging
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import NamedTuple

from ..storage import Database, StorageError
from ..storage.poll import poll_changes
from .uid import InvalidUid, normalize_optional_uid, normalize_uid

__all__ = [
    "ACCEPTED",
    "AUTHORIZATIONS",
    "BLOCKED",
    "MAX_ENTRIES",
    "ChangeSummary",
    "Entry",
    "InvalidEntry",
    "UnknownUid",
    "Whitelist",
    "WhitelistError",
    "WhitelistFull",
    "format_expiry",
    "parse_authorization",
    "parse_expiry",
]

log = logging.getLogger("stationd.auth.whitelist")

MAX_ENTRIES = 100_000  # LocalAuthListMaxLength / SendLocalListMaxLength report this
ACCEPTED, BLOCKED = "accepted", "blocked"
AUTHORIZATIONS = (ACCEPTED, BLOCKED)

_DB_TIME = "%Y-%m-%dT%H:%M:%SZ"  # how times are stored
_CSV_TIME = "%Y-%m-%dT%H:%M:%S"  # the vendor's form: the CSV, the CLI


# ----------------------------------------------------------------------------- values
class InvalidEntry(ValueError):
    """A field of an entry that cannot be stored (bad expiry, authorization, ...)."""


_EXPIRY = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})[Tt ](?P<h>\d{2}):(?P<m>\d{2})(?::(?P<s>\d{2})(?:[.,]\d{1,9})?)?"
    r"\s*(?P<zone>[Zz]|[+-]\d{2}(?::?\d{2})?)?"
)
_DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}")
_SPREADSHEET_DATE = re.compile(r"\d{1,2}[./]\d{1,2}[./]\d{2,4}(?:[ T,]+\d{1,2}:\d{2}(?::\d{2})?(?:\s*[AaPp][Mm])?)?")
_EXAMPLE = "2020-01-01T12:00:00"


def parse_expiry(text: str | datetime | None) -> datetime | None:
    """An expiry date as an aware UTC datetime (whole seconds); None for empty text.

    The accepted forms are listed in the module docstring; anything else raises
    :class:`InvalidEntry` with a message that shows the expected form.
    """
    if text is None:
        return None
    if isinstance(text, datetime):
        if text.tzinfo is None:
            raise InvalidEntry("an expiry datetime needs a time zone (naive datetimes are ambiguous)")
        return text.astimezone(timezone.utc).replace(microsecond=0)
    value = text.strip()
    if not value:
        return None
    match = _EXPIRY.fullmatch(value)
    if match is None:
        if _DATE_ONLY.fullmatch(value):
            raise InvalidEntry(f"the expiry {value!r} has no time: write e.g. {value}T23:59:59 "
                               f"(times without zone are UTC)")
        if _SPREADSHEET_DATE.fullmatch(value):
            raise InvalidEntry(f"the expiry {value!r} is not in the form {_EXAMPLE} (a spreadsheet may have "
                               f"reformatted it: format the column as text)")
        raise InvalidEntry(f"the expiry {_clip(value)!r} is not a date and time like {_EXAMPLE}")
    zone = match["zone"]
    try:
        naive = datetime.fromisoformat(f"{match['date']}T{match['h']}:{match['m']}:{match['s'] or '00'}")
        if not zone or zone in "Zz":
            offset = timedelta(0)
        else:
            digits = zone[1:].replace(":", "")
            hours, minutes = int(digits[:2]), int(digits[2:] or 0)
            if hours > 23 or minutes > 59:
                raise ValueError(f"offset {zone} out of range")
            offset = timedelta(hours=hours, minutes=minutes) * (1 if zone[0] == "+" else -1)
        return (naive - offset).replace(tzinfo=timezone.utc)
    except (ValueError, OverflowError) as exc:
        raise InvalidEntry(f"the expiry {value!r} is not a valid date and time ({exc})") from None


def format_expiry(expiry: datetime | None) -> str:
    """The vendor's form ``YYYY-MM-DDTHH:MM:SS`` (UTC), or ``""``."""
    return "" if expiry is None else expiry.strftime(_CSV_TIME)


def parse_authorization(text: str) -> str:
    """``accepted`` or ``blocked``, in any case; InvalidEntry otherwise."""
    value = text.strip().lower() if isinstance(text, str) else ""
    if value in AUTHORIZATIONS:
        return value
    if not value:
        raise InvalidEntry("the authorization is empty: write accepted or blocked")
    hint = " (an expiry date makes an entry expire)" if value in ("expired", "invalid", "concurrenttx") else ""
    raise InvalidEntry(f"unknown authorization {_clip(text.strip())!r}: write accepted or blocked{hint}")


def _clip(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _db_time(moment: datetime | None) -> str | None:
    return None if moment is None else moment.strftime(_DB_TIME)


@functools.lru_cache(maxsize=4096)  # lists repeat a few expiry dates: share their datetime objects
def _from_db_time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


class Entry(NamedTuple):
    """One whitelist entry. Build checked entries with :meth:`Entry.make`.

    A NamedTuple on purpose: the daemon holds up to 100,000 of them in memory.
    """

    uid: str
    gid: str | None = None
    expiry: datetime | None = None  # aware, UTC
    authorization: str = ACCEPTED
    deleted_at: datetime | None = None

    @classmethod
    def make(cls, uid: str, gid: str | None = None, expiry: str | datetime | None = None,
             authorization: str = ACCEPTED) -> Entry:
        """Normalize and check every field (InvalidUid / InvalidEntry, both ValueErrors)."""
        return cls(normalize_uid(uid), normalize_optional_uid(gid), parse_expiry(expiry),
                   parse_authorization(authorization))

    @property
    def deleted(self) -> bool:
        return self.deleted_at is not None

    @property
    def blocked(self) -> bool:
        return self.authorization == BLOCKED

    def expired(self, now: datetime) -> bool:
        return self.expiry is not None and now >= self.expiry

    def status_at(self, now: datetime) -> str:
        """The OCPP AuthorizationStatus this entry gives at ``now``: Accepted, Blocked or Expired
        (Invalid for a deleted entry)."""
        if self.deleted_at is not None:
            return "Invalid"
        if self.authorization == BLOCKED:
            return "Blocked"
        return "Expired" if self.expired(now) else "Accepted"

    def row(self) -> tuple[str, str | None, str | None, str]:
        """What the database stores of it: (uid, gid, expiry text, authorization)."""
        return (self.uid, self.gid, None if self.expiry is None else self.expiry.strftime(_DB_TIME),
                self.authorization)


# ----------------------------------------------------------------------------- errors
class WhitelistError(Exception):
    """A whitelist operation that cannot be done; the message is for a technician."""


class UnknownUid(WhitelistError):
    """The UID is not in the list (or, for restore, not deleted / no longer restorable)."""


class WhitelistFull(WhitelistError):
    """The write would put more than ``capacity`` entries in the list; nothing was changed.

    ``index``: for a bulk write, the position (0-based, in the given entries) of the first
    entry that did not fit; None for a single entry."""

    def __init__(self, message: str, capacity: int, index: int | None = None):
        super().__init__(message)
        self.capacity = capacity
        self.index = index


@dataclass(frozen=True)
class ChangeSummary:
    """What a bulk write did. ``removed``: entries a Replace deleted (restorable until restart)."""

    added: int = 0
    changed: int = 0
    unchanged: int = 0
    removed: int = 0

    @property
    def total_changes(self) -> int:
        return self.added + self.changed + self.removed


# ----------------------------------------------------------------------------- the list
_COLUMNS = "uid, gid, expiry, authorization, deleted_at"
_UPSERT = (
    "INSERT INTO whitelist (uid, gid, expiry, authorization, deleted_at, deleted_boot, updated_at, changed_in) "
    "VALUES (?, ?, ?, ?, NULL, NULL, ?, ?) "
    "ON CONFLICT(uid) DO UPDATE SET gid = excluded.gid, expiry = excluded.expiry, "
    "authorization = excluded.authorization, deleted_at = NULL, deleted_boot = NULL, "
    "updated_at = excluded.updated_at, changed_in = excluded.changed_in"
)
_LIVE = "deleted_at IS NULL"


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


class Whitelist:
    """The whitelist in ``db`` (a :class:`stationd.storage.Database`, schema version >= 4).

    Methods are synchronous and short (async code may use ``asyncio.to_thread``), except
    :meth:`lookup`, which never touches the database.
    """

    def __init__(self, db: Database, *, capacity: int = MAX_ENTRIES,
                 clock: Callable[[], datetime] = _utc_now):
        if db.schema_version < 4:
            raise StorageError(f"{db.path} has no whitelist table (schema version {db.schema_version})")
        self.db = db
        self.capacity = capacity
        self._clock = clock
        self._cache: dict[str, Entry] | None = None
        self._cache_version = -1
        self._refresh_lock = threading.Lock()  # watch() refreshes in a thread, own writes in the caller's

    # ---- reading (from the database) ---------------------------------------------------

    def get(self, uid: str) -> Entry | None:
        """The entry of ``uid`` (any spelling; InvalidUid if it cannot be a UID), live or
        restorable-deleted; None if there is none."""
        key = normalize_uid(uid)
        rows = self.db.query(
            f"SELECT {_COLUMNS} FROM whitelist WHERE uid = ? AND (deleted_at IS NULL OR deleted_boot >= ?)",
            (key, self._boot()),
        )
        return _entry(rows[0]) if rows else None

    def entries(self, include_deleted: bool = False, offset: int = 0, limit: int | None = None,
                hide_deleted: bool = True) -> list[Entry]:
        """Entries in list order; ``offset``/``limit`` page them (the WebUI shows 10 at a time).
        Deleted (still restorable) entries are included when ``include_deleted`` is true or
        ``hide_deleted`` false (the WebUI's "Hide deleted entries" box)."""
        show_deleted = include_deleted or not hide_deleted
        where, params = self._visible(show_deleted)
        rows = self.db.query(
            f"SELECT {_COLUMNS} FROM whitelist WHERE {where} ORDER BY rowid LIMIT ? OFFSET ?",
            (*params, -1 if limit is None else max(0, int(limit)), max(0, int(offset))),
        )
        return [_entry(row) for row in rows]

    def count(self, include_deleted: bool = False) -> int:
        """Entries in the list (with ``include_deleted``: plus the restorable deleted ones)."""
        where, params = self._visible(include_deleted)
        return int(self.db.query(f"SELECT COUNT(*) FROM whitelist WHERE {where}", params)[0][0])

    def rows_for_export(self) -> list[tuple[str, str | None, str | None, str]]:
        """(uid, gid, expiry text, authorization) of every live entry in list order: the CSV
        export's fast path (no Entry objects)."""
        return [tuple(r) for r in self.db.query(
            f"SELECT uid, gid, expiry, authorization FROM whitelist WHERE {_LIVE} ORDER BY rowid")]

    def change_counter(self) -> int:
        """A number that grows with every change of the list (cheap: one single-row SELECT)."""
        return self._state()[0]

    def _visible(self, show_deleted: bool) -> tuple[str, tuple[int, ...]]:
        if show_deleted:
            return "(deleted_at IS NULL OR deleted_boot >= ?)", (self._boot(),)
        return _LIVE, ()

    def _boot(self) -> int:
        """The latest daemon start (boot_log); entries deleted before it are gone."""
        return int(self.db.query("SELECT COALESCE(MAX(boot_id), 0) FROM boot_log")[0][0])

    def _state(self) -> tuple[int, int]:
        row = self.db.query("SELECT version, reset_version FROM whitelist_state WHERE id = 1")[0]
        return int(row[0]), int(row[1])

    # ---- single-entry writes -----------------------------------------------------------

    def add(self, uid: str, gid: str | None = None, expiry: str | datetime | None = None,
            authorization: str = ACCEPTED) -> Entry:
        """Add ``uid``, or update it if it is in the list (a deleted entry comes back).
        InvalidUid / InvalidEntry for bad values, WhitelistFull when the list is full."""
        entry = Entry.make(uid, gid, expiry, authorization)
        with self.db.transaction():
            if not self._is_live(entry.uid):
                self._check_room(1)
            version, now = self._bump(), self._now()
            self.db.execute(_UPSERT, (*entry.row(), now, version))
        self._after_write()
        return entry

    def block(self, uid: str) -> Entry:
        """Set ``uid`` to blocked (UnknownUid if it is not in the list)."""
        return self._set_authorization(uid, BLOCKED)

    def accept(self, uid: str) -> Entry:
        """Set ``uid`` to accepted (UnknownUid if it is not in the list)."""
        return self._set_authorization(uid, ACCEPTED)

    def _set_authorization(self, uid: str, authorization: str) -> Entry:
        return self._update_live(uid, "authorization = ?", lambda now: (authorization,))

    def delete(self, uid: str) -> Entry:
        """Delete ``uid``; it stays restorable until the daemon starts again."""
        return self._update_live(uid, "deleted_at = ?, deleted_boot = ?", lambda now: (now, self._boot()))

    def _update_live(self, uid: str, assignments: str, values: Callable[[str], tuple]) -> Entry:
        """Change a live (not deleted) entry in one transaction; UnknownUid if there is none."""
        key = normalize_uid(uid)
        with self.db.transaction():
            version, now = self._bump(), self._now()
            cursor = self.db.execute(
                f"UPDATE whitelist SET {assignments}, updated_at = ?, changed_in = ? WHERE uid = ? AND {_LIVE}",
                (*values(now), now, version, key))
            if cursor.rowcount == 0:
                raise self._not_live(key)
        self._after_write()
        entry = self.get(key)
        assert entry is not None
        return entry

    def restore(self, uid: str) -> Entry:
        """Bring back a deleted entry (only until the daemon starts again)."""
        key = normalize_uid(uid)
        with self.db.transaction():
            rows = self.db.query("SELECT deleted_at, deleted_boot FROM whitelist WHERE uid = ?", (key,))
            if not rows:
                raise UnknownUid(f"UID {key} is not in the whitelist")
            deleted_at, deleted_boot = rows[0]
            if deleted_at is None:
                raise UnknownUid(f"UID {key} is not deleted")
            if deleted_boot < self._boot():
                raise UnknownUid(f"UID {key} was deleted before the daemon last started; "
                                 f"it can no longer be restored (add it again)")
            self._check_room(1)
            version, now = self._bump(), self._now()
            self.db.execute(
                "UPDATE whitelist SET deleted_at = NULL, deleted_boot = NULL, updated_at = ?, changed_in = ? "
                "WHERE uid = ?", (now, version, key))
        self._after_write()
        entry = self.get(key)
        assert entry is not None
        return entry

    def purge_deleted(self) -> int:
        """Remove deleted entries for good (the daemon calls this when it starts); returns how many."""
        with self.db.transaction():
            count = self.db.execute("DELETE FROM whitelist WHERE deleted_at IS NOT NULL").rowcount
            if count:
                version = self._bump()
                self.db.execute("UPDATE whitelist_state SET reset_version = ? WHERE id = 1", (version,))
        if count:
            log.info("whitelist: %d deleted entries removed for good", count)
            self._after_write()
        return count

    def _is_live(self, key: str) -> bool:
        return bool(self.db.query(f"SELECT 1 FROM whitelist WHERE uid = ? AND {_LIVE}", (key,)))

    def _not_live(self, key: str) -> UnknownUid:
        entry = self.get(key)
        if entry is not None and entry.deleted:
            return UnknownUid(f"UID {key} is deleted (restore it first)")
        return UnknownUid(f"UID {key} is not in the whitelist")

    def _check_room(self, extra: int) -> None:
        live = self.count()
        if live + extra > self.capacity:
            raise WhitelistFull(f"the whitelist is full: it holds at most {self.capacity:,} entries "
                                f"(it has {live:,})", self.capacity)

    def _bump(self) -> int:
        """Inside a transaction: the next version, which the rows written now carry."""
        self.db.execute("UPDATE whitelist_state SET version = version + 1 WHERE id = 1")
        return self._state()[0]

    def _now(self) -> str:
        return self._clock().astimezone(timezone.utc).strftime(_DB_TIME)

    # ---- bulk writes (imports, SendLocalList) --------------------------------------------

    def merge(self, entries: Iterable[Entry]) -> ChangeSummary:
        """Add or update every entry (Import (Update)); others stay. All or nothing."""
        return self._bulk(entries, replace=False)

    def replace_all(self, entries: Iterable[Entry]) -> ChangeSummary:
        """Make the list exactly ``entries`` (Import (Replace)): entries not among them are
        deleted (restorable until the daemon starts again). All or nothing."""
        return self._bulk(entries, replace=True)

    def _bulk(self, entries: Iterable[Entry], *, replace: bool) -> ChangeSummary:
        batch = list(entries)
        for item in batch:
            if not isinstance(item, Entry):
                raise TypeError(f"expected Entry objects (Entry.make), got {type(item).__name__}")
        rows = [item.row() for item in batch]
        seen: set[str] = set()
        for index, row in enumerate(rows):
            if row[0] in seen:
                raise InvalidEntry(f"UID {row[0]} appears more than once (entry {index + 1})")
            seen.add(row[0])
        with self.db.transaction():
            current = {r[0]: (r[1], r[2], r[3], r[4]) for r in self.db.query(
                "SELECT uid, gid, expiry, authorization, deleted_at IS NULL FROM whitelist")}
            writes, added, changed = [], 0, 0
            new_positions = []
            for index, row in enumerate(rows):
                old = current.get(row[0])
                if old is None or not old[3]:
                    added += 1
                    new_positions.append(index)
                    writes.append(row)
                elif old[:3] != row[1:]:
                    changed += 1
                    writes.append(row)
            live = sum(1 for old in current.values() if old[3])
            removed = [(uid,) for uid, old in current.items() if old[3] and uid not in seen] if replace else []
            after = len(rows) if replace else live + added
            if after > self.capacity:
                first = self.capacity if replace else new_positions[max(0, self.capacity - live)]
                raise WhitelistFull(f"the whitelist holds at most {self.capacity:,} entries; this would make "
                                    f"it {after:,}", self.capacity, first)
            summary = ChangeSummary(added, changed, len(rows) - added - changed, len(removed))
            if summary.total_changes:
                version, now = self._bump(), self._now()
                self.db.executemany(_UPSERT, [(*row, now, version) for row in writes])
                if removed:
                    self.db.executemany(
                        "UPDATE whitelist SET deleted_at = ?, deleted_boot = ?, updated_at = ?, changed_in = ? "
                        "WHERE uid = ?", [(now, self._boot(), now, version, uid) for (uid,) in removed])
        if summary.total_changes:
            self._after_write()
        return summary

    # ---- the daemon's in-memory view ---------------------------------------------------

    def lookup(self, uid: str) -> Entry | None:
        """The live entry of a presented idTag, from memory (loads the list on first use).

        Any spelling works (``AEC78085``, ``ae:c7:80:85``); text that cannot be a UID finds
        nothing. Call :meth:`refresh_if_changed` (or run :meth:`watch`) to see other
        processes' changes."""
        cache = self._cache
        if cache is None:
            self.refresh_if_changed()
            cache = self._cache
            assert cache is not None
        entry = cache.get(uid)
        if entry is None:
            try:
                key = normalize_uid(uid)
            except InvalidUid:
                return None
            entry = cache.get(key)
        return entry

    def refresh_if_changed(self) -> bool:
        """Bring the in-memory view up to date; True if it changed. While nothing changed this
        is one single-row SELECT."""
        with self._refresh_lock:
            return self._refresh()

    def _refresh(self) -> bool:
        version, reset_version = self._state()
        if self._cache is not None and version == self._cache_version:
            return False
        if self._cache is None or reset_version > self._cache_version:
            rows = self.db.query(f"SELECT {_COLUMNS} FROM whitelist WHERE {_LIVE}")
            self._cache = {row[0]: _entry(row) for row in rows}  # a new dict: lookups never see half
        else:
            cache = self._cache
            for row in self.db.query(f"SELECT {_COLUMNS} FROM whitelist WHERE changed_in > ?",
                                     (self._cache_version,)):
                if row[4] is None:
                    cache[row[0]] = _entry(row)
                else:
                    cache.pop(row[0], None)
        # Rows read may already be newer than `version`; the next refresh reads them again,
        # which is harmless. Rows purged since are caught by reset_version.
        self._cache_version = version
        return True

    def _after_write(self) -> None:
        if self._cache is not None:
            self.refresh_if_changed()

    async def watch(self, interval: float = 1.0) -> None:
        """Run forever: pick up changes other processes (the CLI, the WebUI) make."""
        await poll_changes(self.refresh_if_changed, "the whitelist", interval)


def _entry(row: Sequence) -> Entry:
    return Entry(row[0], row[1], _from_db_time(row[2]), row[3], _from_db_time(row[4]))
