"""Storage foundation: real SQLite files in tmp_path (WAL, migrations, crash safety)."""

from __future__ import annotations

import os
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from stationd.storage import MIGRATIONS, Database, Migration, StorageError
from stationd.storage.database import DB_FILENAME, split_statements

BASE = Migration(1, "base", "CREATE TABLE a (id INTEGER PRIMARY KEY, note TEXT NOT NULL);")


def raw(data_dir: Path) -> sqlite3.Connection:
    """A plain sqlite3 connection, to look at the file behind Database's back."""
    return sqlite3.connect(data_dir / DB_FILENAME)


def tables(data_dir: Path) -> set[str]:
    with raw(data_dir) as conn:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


# --------------------------------------------------------------------------- pragmas


def test_durable_open_sets_wal_full_sync_foreign_keys_busy_timeout(tmp_path: Path) -> None:
    with Database.open(tmp_path) as db:
        assert db.query("PRAGMA journal_mode")[0][0] == "wal"
        assert db.query("PRAGMA synchronous")[0][0] == 2  # FULL
        assert db.query("PRAGMA foreign_keys")[0][0] == 1
        assert db.query("PRAGMA busy_timeout")[0][0] == 5000
    assert (tmp_path / DB_FILENAME).is_file()
    # WAL is persistent in the file itself.
    with raw(tmp_path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_non_durable_open_uses_normal_sync(tmp_path: Path) -> None:
    with Database.open(tmp_path, durable=False) as db:
        assert db.query("PRAGMA synchronous")[0][0] == 1  # NORMAL
        assert db.query("PRAGMA journal_mode")[0][0] == "wal"


def test_creates_missing_data_dir_without_world_access(tmp_path: Path) -> None:
    data_dir = tmp_path / "var" / "lib" / "stationd"
    with Database.open(data_dir):
        pass
    mode = stat.S_IMODE(data_dir.stat().st_mode)
    assert mode & 0o007 == 0
    assert mode & ~0o750 == 0


def test_foreign_keys_are_enforced(tmp_path: Path) -> None:
    migrations = (
        Migration(1, "parent", "CREATE TABLE p (id INTEGER PRIMARY KEY);"),
        Migration(2, "child", "CREATE TABLE c (pid INTEGER NOT NULL REFERENCES p(id));"),
    )
    with Database.open(tmp_path, migrations=migrations) as db:
        with pytest.raises(sqlite3.IntegrityError):
            db.execute("INSERT INTO c (pid) VALUES (42)")


# --------------------------------------------------------------------------- migrations


def test_default_migrations_create_meta_and_boot_log(tmp_path: Path) -> None:
    with Database.open(tmp_path) as db:
        assert db.schema_version == len(MIGRATIONS) == MIGRATIONS[-1].version
    assert {"station_meta", "boot_log"} <= tables(tmp_path)


def test_migrations_are_applied_once(tmp_path: Path) -> None:
    migrations = (
        BASE,
        Migration(2, "seed", "INSERT INTO a (note) VALUES ('seeded once');"),
    )
    for _ in range(2):
        with Database.open(tmp_path, migrations=migrations) as db:
            assert db.schema_version == 2
    with raw(tmp_path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 2
        assert conn.execute("SELECT note FROM a").fetchall() == [("seeded once",)]


def test_new_migration_is_applied_on_next_open(tmp_path: Path) -> None:
    with Database.open(tmp_path, migrations=(BASE,)) as db:
        db.execute("INSERT INTO a (note) VALUES ('kept')")
    extended = (BASE, Migration(2, "add column", "ALTER TABLE a ADD COLUMN extra TEXT;"))
    with Database.open(tmp_path, migrations=extended) as db:
        assert db.schema_version == 2
        rows = db.query("SELECT note, extra FROM a")
        assert [(r["note"], r["extra"]) for r in rows] == [("kept", None)]


def test_failing_migration_rolls_back_and_keeps_previous_version(tmp_path: Path) -> None:
    with Database.open(tmp_path, migrations=(BASE,)) as db:
        db.execute("INSERT INTO a (note) VALUES ('before')")
    broken = (
        BASE,
        Migration(
            2,
            "half good",
            """
            CREATE TABLE b (id INTEGER PRIMARY KEY);
            INSERT INTO a (note) VALUES ('inside the failed migration');
            INSERT INTO no_such_table VALUES (1);
            """,
        ),
    )
    with pytest.raises(StorageError) as excinfo:
        Database.open(tmp_path, migrations=broken)
    message = str(excinfo.value)
    assert "migration 2 (half good) failed" in message
    assert "no_such_table" in message
    assert "stays at schema version 1" in message

    assert "a" in tables(tmp_path)
    assert "b" not in tables(tmp_path)
    with raw(tmp_path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
        assert conn.execute("SELECT note FROM a").fetchall() == [("before",)]

    # With the migration fixed, the next start applies it.
    fixed = (BASE, Migration(2, "half good", "CREATE TABLE b (id INTEGER PRIMARY KEY);"))
    with Database.open(tmp_path, migrations=fixed) as db:
        assert db.schema_version == 2
    assert "b" in tables(tmp_path)


def test_failing_first_migration_leaves_empty_database(tmp_path: Path) -> None:
    broken = (Migration(1, "typo", "CREATE TABLE ok (x); CREAT TABLE oops (y);"),)
    with pytest.raises(StorageError, match="migration 1 \\(typo\\) failed"):
        Database.open(tmp_path, migrations=broken)
    with raw(tmp_path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 0
    assert tables(tmp_path) == set()


@pytest.mark.parametrize(
    "versions",
    [
        pytest.param((1, 3), id="gap"),
        pytest.param((1, 1), id="duplicate"),
        pytest.param((2, 3), id="not-from-1"),
        pytest.param((2, 1), id="descending"),
    ],
)
def test_bad_version_sequences_are_refused(tmp_path: Path, versions: tuple[int, ...]) -> None:
    migrations = [Migration(v, f"m{v}", f"CREATE TABLE t{i} (x);") for i, v in enumerate(versions)]
    with pytest.raises(StorageError, match="without gaps or duplicates"):
        Database.open(tmp_path, migrations=migrations)
    # Refused before anything was written.
    assert not (tmp_path / DB_FILENAME).exists()


def test_migration_with_its_own_transaction_control_is_refused(tmp_path: Path) -> None:
    bad = (Migration(1, "commits", "CREATE TABLE x (a);\n-- done\nCOMMIT;"),)
    with pytest.raises(StorageError, match="COMMIT"):
        Database.open(tmp_path, migrations=bad)


def test_migration_definition_is_checked() -> None:
    with pytest.raises(ValueError):
        Migration(0, "zero", "SELECT 1;")
    with pytest.raises(ValueError):
        Migration(1, "", "SELECT 1;")
    with pytest.raises(ValueError):
        Migration(1, "empty", "  ")


def test_newer_schema_on_disk_is_refused_not_downgraded(tmp_path: Path) -> None:
    three = tuple(Migration(v, f"m{v}", f"CREATE TABLE t{v} (x);") for v in (1, 2, 3))
    with Database.open(tmp_path, migrations=three):
        pass
    with raw(tmp_path) as conn:
        conn.execute("PRAGMA user_version = 7")
    with pytest.raises(StorageError) as excinfo:
        Database.open(tmp_path, migrations=three)
    assert (
        "database schema version 7 is newer than this stationd (knows up to 3); refusing to open"
        in str(excinfo.value)
    )
    with raw(tmp_path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 7
    assert {"t1", "t2", "t3"} <= tables(tmp_path)


def test_split_statements_respects_triggers_strings_and_comments() -> None:
    script = """
        -- leading comment; with a semicolon
        CREATE TABLE t (x TEXT);
        CREATE TRIGGER trg AFTER INSERT ON t BEGIN
            INSERT INTO t2 VALUES ('a;b');
            UPDATE t SET x = x || ';' WHERE rowid = NEW.rowid;
        END;
        /* block; comment */
        INSERT INTO t VALUES ('semi;colon')
    """
    statements = split_statements(script)
    assert len(statements) == 3
    assert statements[1].startswith("CREATE TRIGGER") and statements[1].endswith("END;")
    assert statements[2].endswith("INSERT INTO t VALUES ('semi;colon')")
    assert split_statements("-- nothing here;\n  ;  ") == []


def test_migration_with_trigger_runs(tmp_path: Path) -> None:
    migrations = (
        Migration(
            1,
            "trigger",
            """
            CREATE TABLE t (x TEXT);
            CREATE TABLE audit (x TEXT);
            CREATE TRIGGER t_audit AFTER INSERT ON t BEGIN
                INSERT INTO audit VALUES (NEW.x || ';seen');
            END;
            """,
        ),
    )
    with Database.open(tmp_path, migrations=migrations) as db:
        db.execute("INSERT INTO t VALUES ('v')")
        assert [r[0] for r in db.query("SELECT x FROM audit")] == ["v;seen"]


# --------------------------------------------------------------------------- bad files


def test_garbage_file_gives_storage_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / DB_FILENAME
    garbage = b"this is not a database, it is a shopping list\n" * 200
    path.write_bytes(garbage)
    with pytest.raises(StorageError) as excinfo:
        Database.open(tmp_path)
    message = str(excinfo.value)
    assert str(path) in message
    assert "not a valid SQLite database" in message
    assert path.read_bytes() == garbage  # left alone for a person to look at


def test_unopenable_path_gives_storage_error(tmp_path: Path) -> None:
    (tmp_path / DB_FILENAME).mkdir()  # a directory where the file should be
    with pytest.raises(StorageError, match=DB_FILENAME):
        Database.open(tmp_path)


def test_data_dir_that_is_a_file_gives_storage_error(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "data"
    not_a_dir.write_text("x")
    with pytest.raises(StorageError, match="data directory"):
        Database.open(not_a_dir)


# --------------------------------------------------------------------------- durability


def test_committed_data_is_visible_after_reopening(tmp_path: Path) -> None:
    with Database.open(tmp_path) as db:
        db.execute("INSERT INTO station_meta (key, value) VALUES (?, ?)", ("serial", "SN-1"))
        with db.transaction():
            db.execute("INSERT INTO station_meta (key, value) VALUES ('a', '1')")
            db.execute("INSERT INTO station_meta (key, value) VALUES ('b', '2')")
    with Database.open(tmp_path) as db:
        rows = db.query("SELECT key, value FROM station_meta ORDER BY key")
        assert [(r["key"], r["value"]) for r in rows] == [("a", "1"), ("b", "2"), ("serial", "SN-1")]


def test_write_committed_by_sigkilled_process_survives(tmp_path: Path) -> None:
    child = textwrap.dedent(
        """
        import sys, time
        from pathlib import Path
        from stationd.storage import Database
        db = Database.open(Path(sys.argv[1]))
        db.execute("INSERT INTO station_meta (key, value) VALUES ('crash', 'survived')")
        print("committed", flush=True)
        time.sleep(60)
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", child, str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        assert line.strip() == "committed", proc.stderr.read()  # type: ignore[union-attr]
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=10) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()  # type: ignore[union-attr]
        proc.stderr.close()  # type: ignore[union-attr]
    # The commit is still in the WAL (no clean close, no checkpoint); reopening recovers it.
    assert (tmp_path / f"{DB_FILENAME}-wal").exists()
    with Database.open(tmp_path) as db:
        rows = db.query("SELECT value FROM station_meta WHERE key = 'crash'")
        assert [r["value"] for r in rows] == ["survived"]
        assert db.integrity_check() == []


def test_transaction_rolls_back_on_error(tmp_path: Path) -> None:
    with Database.open(tmp_path) as db:
        with pytest.raises(RuntimeError):
            with db.transaction():
                db.execute("INSERT INTO station_meta (key, value) VALUES ('gone', 'x')")
                raise RuntimeError("boom")
        assert db.query("SELECT * FROM station_meta") == []


def test_nested_transaction_is_a_savepoint(tmp_path: Path) -> None:
    with Database.open(tmp_path) as db:
        with db.transaction():
            db.execute("INSERT INTO station_meta (key, value) VALUES ('outer', '1')")
            with pytest.raises(RuntimeError):
                with db.transaction():
                    db.execute("INSERT INTO station_meta (key, value) VALUES ('inner', '2')")
                    raise RuntimeError("inner fails")
            with db.transaction():
                db.execute("INSERT INTO station_meta (key, value) VALUES ('inner2', '3')")
        keys = [r["key"] for r in db.query("SELECT key FROM station_meta ORDER BY key")]
        assert keys == ["inner2", "outer"]


# --------------------------------------------------------------------------- concurrency


def test_second_writer_waits_for_first_instead_of_failing(tmp_path: Path) -> None:
    first = Database.open(tmp_path)
    second = Database.open(tmp_path)
    holding = threading.Event()
    release = threading.Event()
    errors: list[BaseException] = []

    def hold_write_lock() -> None:
        try:
            with first.transaction():
                first.execute("INSERT INTO station_meta (key, value) VALUES ('first', '1')")
                holding.set()
                release.wait(timeout=0.3)  # hold the write lock for a moment
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
            holding.set()

    try:
        # Control: without a busy timeout the second writer would fail at once.
        second.execute("PRAGMA busy_timeout = 0")
        holder = threading.Thread(target=hold_write_lock)
        holder.start()
        assert holding.wait(timeout=5)
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            second.execute("INSERT INTO station_meta (key, value) VALUES ('second', '2')")
        release.set()
        holder.join(timeout=5)
        assert not errors

        # With busy_timeout (as Database.open sets it) the second writer waits.
        second.execute("PRAGMA busy_timeout = 5000")
        release.clear()
        holding.clear()
        first.execute("DELETE FROM station_meta")
        holder = threading.Thread(target=hold_write_lock)
        holder.start()
        assert holding.wait(timeout=5)
        with second.transaction():  # blocks until the first writer commits
            seen = [r["key"] for r in second.query("SELECT key FROM station_meta")]
            second.execute("INSERT INTO station_meta (key, value) VALUES ('second', '2')")
        holder.join(timeout=5)
        assert not errors
        assert seen == ["first"]  # it ran after the first commit, not beside it
        keys = sorted(r["key"] for r in first.query("SELECT key FROM station_meta"))
        assert keys == ["first", "second"]
    finally:
        release.set()
        first.close()
        second.close()


# --------------------------------------------------------------------------- small helpers


def test_record_boot_returns_increasing_ids(tmp_path: Path) -> None:
    with Database.open(tmp_path) as db:
        first = db.record_boot("0.1.0", "power-on", "2025-01-01T00:00:00Z")
        second = db.record_boot("0.1.0", None, "2025-01-01T00:05:00Z")
        assert second > first
    with Database.open(tmp_path) as db:
        third = db.record_boot("0.1.1", "watchdog", "2025-01-02T00:00:00Z")
        assert third > second
        rows = db.query("SELECT boot_id, version, reason FROM boot_log ORDER BY boot_id")
        assert [(r["boot_id"], r["version"], r["reason"]) for r in rows] == [
            (first, "0.1.0", "power-on"),
            (second, "0.1.0", None),
            (third, "0.1.1", "watchdog"),
        ]


def test_integrity_check_ok_on_fresh_database(tmp_path: Path) -> None:
    with Database.open(tmp_path) as db:
        assert db.integrity_check() == []


def test_closed_database_raises_storage_error(tmp_path: Path) -> None:
    db = Database.open(tmp_path)
    db.close()
    db.close()  # idempotent
    assert db.closed
    with pytest.raises(StorageError, match="closed"):
        db.query("SELECT 1")
    with pytest.raises(StorageError, match="closed"):
        _ = db.schema_version
