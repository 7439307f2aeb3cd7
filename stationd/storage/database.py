"""The station database: one SQLite file, ``<data_dir>/station.db``, in WAL mode.

It holds what must survive a power cut. ``Database.open`` configures the connection for
that (WAL journal, ``synchronous=FULL`` so a commit is on disk before it returns, foreign
keys on, a busy timeout because the CLI and the daemon may open the file at the same time)
and brings the schema up to date from :data:`stationd.storage.migrations.MIGRATIONS`.

The API is synchronous on purpose: SQLite calls here are short. Async code may wrap them in
``asyncio.to_thread``; the connection is shared between threads behind a lock, and a
``transaction()`` block holds that lock until it ends (so never ``await`` inside one).

Errors: opening and migrating raise :class:`StorageError` with a readable message. The
small helpers (``execute``, ``query``, ``transaction``) let ``sqlite3`` errors through
unchanged, so callers can tell e.g. ``sqlite3.IntegrityError`` apart; using a closed
database raises :class:`StorageError`.
"""

from __future__ import annotations

import os
import re
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .migrations import MIGRATIONS, Migration

__all__ = ["CorruptDatabase", "Database", "StorageError", "DB_FILENAME", "split_statements"]

DB_FILENAME = "station.db"
DATA_DIR_MODE = 0o750
BUSY_TIMEOUT_MS = 5000

_SYNCHRONOUS_FULL = 2
_SYNCHRONOUS_NORMAL = 1

# Statements a migration must not contain: they would end (or escape) the transaction the
# migration runs in, so a crash could leave it half applied.
_FORBIDDEN_IN_MIGRATION = frozenset(
    {"BEGIN", "COMMIT", "END", "ROLLBACK", "SAVEPOINT", "RELEASE", "VACUUM", "ATTACH", "DETACH"}
)
_COMMENTS = re.compile(r"--[^\n]*(?:\n|$)|/\*.*?(?:\*/|$)", re.DOTALL)
_FIRST_WORD = re.compile(r"[A-Za-z_]+")


class StorageError(Exception):
    """The station database cannot be opened, migrated or used."""


def _strip_comments(sql: str) -> str:
    return _COMMENTS.sub(" ", sql)


def _has_code(sql: str) -> bool:
    return bool(_strip_comments(sql).replace(";", " ").strip())


def split_statements(script: str) -> list[str]:
    """Split an SQL script into single statements, the way SQLite reads them.

    A ``;`` ends a statement only where :func:`sqlite3.complete_statement` agrees, so
    semicolons inside string literals, comments and ``CREATE TRIGGER ... BEGIN ... END;``
    bodies stay where they are. Empty and comment-only pieces are dropped.
    """
    statements: list[str] = []
    start = 0
    for index, char in enumerate(script):
        if char == ";" and sqlite3.complete_statement(script[start : index + 1]):
            piece = script[start : index + 1]
            if _has_code(piece):
                statements.append(piece.strip())
            start = index + 1
    tail = script[start:]
    if _has_code(tail):
        statements.append(tail.strip())
    return statements


def _first_keyword(statement: str) -> str:
    match = _FIRST_WORD.search(_strip_comments(statement))
    return match.group(0).upper() if match else ""


def _validate_migrations(migrations: Sequence[Migration]) -> tuple[Migration, ...]:
    """Check the list: versions 1, 2, 3, ... in order, no gaps, no duplicates, no BEGIN/COMMIT."""
    plan = tuple(migrations)
    for expected, migration in enumerate(plan, start=1):
        if not isinstance(migration, Migration):
            raise StorageError(f"migration list entry {expected} is not a Migration: {migration!r}")
        if migration.version != expected:
            versions = ", ".join(str(m.version) for m in plan)
            raise StorageError(
                f"migration versions must run 1, 2, 3, ... without gaps or duplicates; "
                f"expected version {expected} at position {expected}, got {migration.version} "
                f"(versions: {versions})"
            )
        for statement in split_statements(migration.sql):
            keyword = _first_keyword(statement)
            if keyword in _FORBIDDEN_IN_MIGRATION:
                raise StorageError(
                    f"migration {migration.version} ({migration.name}) contains a {keyword} "
                    f"statement; migrations run inside their own transaction"
                )
    return plan


class CorruptDatabase(StorageError):
    """The file is not a (sound) SQLite database."""


def _corrupt(exc: StorageError) -> bool:
    cause = exc.__cause__
    return isinstance(exc, CorruptDatabase) or (isinstance(cause, sqlite3.DatabaseError) and getattr(
        cause, "sqlite_errorname", "") in ("SQLITE_NOTADB", "SQLITE_CORRUPT", "SQLITE_IOERR_SHORT_READ"))


def _open_error(path: Path, exc: sqlite3.Error) -> StorageError:
    name = getattr(exc, "sqlite_errorname", "")
    if name in ("SQLITE_NOTADB", "SQLITE_CORRUPT") or (
        type(exc) is sqlite3.DatabaseError and "not a database" in str(exc)
    ):
        return CorruptDatabase(f"{path} is not a valid SQLite database ({exc})")
    if name == "SQLITE_BUSY" or "locked" in str(exc):
        return StorageError(f"{path} is locked by another process and stayed busy ({exc})")
    return StorageError(f"cannot open database {path}: {exc}")


class Database:
    """One connection to ``<data_dir>/station.db``. Create it with :meth:`Database.open`."""

    def __init__(self, connection: sqlite3.Connection, path: Path, *, durable: bool) -> None:
        self._conn: sqlite3.Connection | None = connection
        self._path = path
        self._durable = durable
        self._lock = threading.RLock()
        self._savepoint_depth = 0

    # ------------------------------------------------------------------ opening

    @classmethod
    def open(
        cls,
        data_dir: str | os.PathLike[str],
        *,
        migrations: Sequence[Migration] = MIGRATIONS,
        durable: bool = True,
    ) -> Database:
        """Open (creating if needed) ``<data_dir>/station.db`` and apply pending migrations.

        ``durable=True`` sets ``synchronous=FULL``: every commit is on disk before it
        returns (transaction data). ``durable=False`` uses ``NORMAL`` (still crash-safe in
        WAL mode, but the last commits may be lost on power loss).
        """
        data_dir = Path(data_dir)
        plan = _validate_migrations(migrations)
        try:
            data_dir.mkdir(mode=DATA_DIR_MODE, parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create data directory {data_dir}: {exc.strerror or exc}") from exc
        if not data_dir.is_dir():
            raise StorageError(f"data directory {data_dir} is not a directory")
        path = data_dir / DB_FILENAME
        try:
            connection = sqlite3.connect(
                path,
                timeout=BUSY_TIMEOUT_MS / 1000,
                isolation_level=None,  # we issue BEGIN/COMMIT ourselves
                check_same_thread=False,  # shared via asyncio.to_thread, guarded by a lock
            )
        except sqlite3.Error as exc:
            raise _open_error(path, exc) from exc
        connection.row_factory = sqlite3.Row
        db = cls(connection, path, durable=durable)
        try:
            db._configure()
            db._migrate(plan)
        except BaseException:
            connection.close()
            db._conn = None
            raise
        return db

    @classmethod
    def open_or_replace(cls, data_dir: str | os.PathLike[str], *, now: str,
                        migrations: Sequence[Migration] = MIGRATIONS) -> tuple[Database, Path | None]:
        """Open the database; a corrupt one (not SQLite, a damaged page, a truncated file, a WAL
        that does not belong to it) is moved aside as ``station.db.corrupt-<now>`` (its -wal and
        -shm beside it) and a fresh one is made, so the daemon starts instead of failing at every
        start (a systemd restart loop). Returns the database and where the corrupt one went."""
        path = Path(data_dir) / DB_FILENAME
        try:
            db = cls.open(data_dir, migrations=migrations)
        except StorageError as exc:
            if not _corrupt(exc):
                raise
            problem = str(exc)
        else:
            problems = db.integrity_check()
            if not problems:
                return db, None
            db.close()
            problem = f"{path} is damaged: {'; '.join(problems[:3])}"
        aside = path.with_name(f"{DB_FILENAME}.corrupt-{now}")
        for suffix in ("", "-wal", "-shm"):
            source = Path(f"{path}{suffix}")
            if source.exists():
                try:
                    os.replace(source, Path(f"{aside}{suffix}"))
                except OSError as exc:
                    raise StorageError(f"{problem}; cannot move it aside: {exc.strerror or exc}") from exc
        return cls.open(data_dir, migrations=migrations), aside

    def _configure(self) -> None:
        conn = self._connection()
        synchronous = _SYNCHRONOUS_FULL if self._durable else _SYNCHRONOUS_NORMAL
        try:
            # busy_timeout first: switching a new file to WAL needs a lock another
            # process may briefly hold.
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            conn.execute(f"PRAGMA synchronous = {synchronous}")
            conn.execute("PRAGMA foreign_keys = ON")
            got_synchronous = conn.execute("PRAGMA synchronous").fetchone()[0]
            got_foreign_keys = conn.execute("PRAGMA foreign_keys").fetchone()[0]
        except sqlite3.Error as exc:
            raise _open_error(self._path, exc) from exc
        if str(mode).lower() != "wal":
            raise StorageError(
                f"cannot switch {self._path} to WAL journal mode (SQLite answered {mode!r}); "
                f"is the data directory on a file system without shared-memory support?"
            )
        if got_synchronous != synchronous:
            raise StorageError(f"{self._path}: PRAGMA synchronous stayed {got_synchronous}, wanted {synchronous}")
        if got_foreign_keys != 1:
            raise StorageError(f"{self._path}: this SQLite build cannot enforce foreign keys")

    def _refuse_newer(self, on_disk: int, known: int) -> None:
        if on_disk > known:
            raise StorageError(
                f"database schema version {on_disk} is newer than this stationd "
                f"(knows up to {known}); refusing to open {self._path}"
            )

    def _migrate(self, plan: tuple[Migration, ...]) -> None:
        conn = self._connection()
        known = len(plan)
        try:
            on_disk = self._read_user_version()
        except sqlite3.Error as exc:
            raise _open_error(self._path, exc) from exc
        self._refuse_newer(on_disk, known)
        for migration in plan[on_disk:]:
            with self._lock:
                try:
                    conn.execute("BEGIN IMMEDIATE")
                except sqlite3.Error as exc:
                    raise _open_error(self._path, exc) from exc
                try:
                    # Another process (CLI / daemon) may have migrated while we waited.
                    on_disk = self._read_user_version()
                    self._refuse_newer(on_disk, known)
                    if on_disk < migration.version:
                        for statement in split_statements(migration.sql):
                            conn.execute(statement)
                        conn.execute(f"PRAGMA user_version = {int(migration.version)}")
                    conn.execute("COMMIT")
                except BaseException as exc:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    if isinstance(exc, sqlite3.Error):
                        raise StorageError(
                            f"migration {migration.version} ({migration.name}) failed on "
                            f"{self._path}: {exc}; the database stays at schema version "
                            f"{migration.version - 1}"
                        ) from exc
                    raise

    # ------------------------------------------------------------------ helpers

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StorageError(f"database {self._path} is closed")
        return self._conn

    def _read_user_version(self) -> int:
        return int(self._connection().execute("PRAGMA user_version").fetchone()[0])

    @property
    def path(self) -> Path:
        """The database file."""
        return self._path

    @property
    def durable(self) -> bool:
        """True when every commit is synced to disk (``synchronous=FULL``)."""
        return self._durable

    @property
    def schema_version(self) -> int:
        """The applied schema version (``PRAGMA user_version``)."""
        with self._lock:
            return self._read_user_version()

    @contextmanager
    def transaction(self) -> Iterator[Database]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``, or ``ROLLBACK`` if the block raises.

        Nested use becomes a SAVEPOINT, so a helper that needs atomicity can open its own
        transaction whether or not its caller already has one.
        """
        with self._lock:
            conn = self._connection()
            if conn.in_transaction:
                self._savepoint_depth += 1
                name = f"stationd_sp{self._savepoint_depth}"
                conn.execute(f"SAVEPOINT {name}")
                try:
                    yield self
                except BaseException:
                    if conn.in_transaction:
                        conn.execute(f"ROLLBACK TO {name}")
                        conn.execute(f"RELEASE {name}")
                    raise
                else:
                    conn.execute(f"RELEASE {name}")
                finally:
                    self._savepoint_depth -= 1
            else:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield self
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
                else:
                    conn.execute("COMMIT")

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> sqlite3.Cursor:
        """Run one statement. Outside ``transaction()`` it commits on its own."""
        with self._lock:
            return self._connection().execute(sql, params)

    def executemany(self, sql: str, rows: Any) -> sqlite3.Cursor:
        """Run one statement for each parameter set in ``rows``."""
        with self._lock:
            return self._connection().executemany(sql, rows)

    def query(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[sqlite3.Row]:
        """Run a query and return all rows (``sqlite3.Row``: index by position or name)."""
        with self._lock:
            return self._connection().execute(sql, params).fetchall()

    def record_boot(self, version: str, reason: str | None, started_at: str) -> int:
        """Record one daemon start in ``boot_log``; return its ``boot_id``."""
        with self._lock:
            cursor = self._connection().execute(
                "INSERT INTO boot_log (started_at, version, reason) VALUES (?, ?, ?)",
                (started_at, version, reason),
            )
            boot_id = cursor.lastrowid
        assert boot_id is not None
        return boot_id

    def integrity_check(self) -> list[str]:
        """Run ``PRAGMA quick_check``; return the problems found (empty list: all fine)."""
        with self._lock:
            try:
                rows = self._connection().execute("PRAGMA quick_check").fetchall()
            except sqlite3.DatabaseError as exc:
                return [f"quick_check failed: {exc}"]
        problems = [str(row[0]) for row in rows]
        return [] if problems == ["ok"] else problems

    def close(self) -> None:
        """Close the connection (idempotent). An open transaction is rolled back."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    @property
    def closed(self) -> bool:
        return self._conn is None

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._conn is None else "open"
        return f"<Database {self._path} {state}>"
