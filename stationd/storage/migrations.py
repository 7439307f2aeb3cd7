"""The station database schema, as one append-only list of migrations.

``MIGRATIONS`` is the single list of schema changes for ``station.db``. Rules:

* **One list.** Every feature that needs tables (transaction-message queue, open
  transactions, local auth list and cache, session history, changed settings, ...) adds
  its schema here, not in a private list of its own.
* **Append-only.** A new schema change is a new ``Migration`` at the end of the tuple, with
  the next version number (versions run 1, 2, 3, ... without gaps; ``Database.open``
  refuses anything else).
* **Never edit an applied migration.** Once a version has shipped, stations in the field
  have already run it and will never run it again; change the schema with a new migration
  (``ALTER TABLE``, or create-copy-drop-rename for what ALTER cannot do).
* Each migration runs in its own transaction together with the ``PRAGMA user_version``
  bump, so a migration is applied completely or not at all. Its SQL therefore must not
  contain ``BEGIN``/``COMMIT``, ``VACUUM`` or ``PRAGMA journal_mode``; statements are split
  on ``;`` the way SQLite itself does (trigger bodies and string literals are safe).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Migration", "MIGRATIONS"]


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema step: ``sql`` (one or more statements) takes the schema to ``version``."""

    version: int
    name: str
    sql: str

    def __post_init__(self) -> None:
        if isinstance(self.version, bool) or not isinstance(self.version, int) or self.version < 1:
            raise ValueError(f"migration version must be an integer >= 1, got {self.version!r}")
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError(f"migration {self.version} needs a non-empty name")
        if not isinstance(self.sql, str) or not self.sql.strip():
            raise ValueError(f"migration {self.version} ({self.name}) has no SQL")


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "station meta and boot log",
        """
        CREATE TABLE station_meta (
            key   TEXT PRIMARY KEY,
            value TEXT NOT NULL
        );
        -- one row per daemon start, for diagnostics
        CREATE TABLE boot_log (
            boot_id    INTEGER PRIMARY KEY AUTOINCREMENT,
            started_at TEXT NOT NULL,
            version    TEXT NOT NULL,
            reason     TEXT
        );
        """,
    ),
    Migration(
        2,
        "charging sessions",
        """
        -- one row per charging session; an open session has no stopped_at
        CREATE TABLE sessions (
            session_id     INTEGER PRIMARY KEY AUTOINCREMENT,
            connector_id   INTEGER NOT NULL,
            id_tag         TEXT NOT NULL,
            started_at     TEXT NOT NULL,
            meter_start_wh REAL NOT NULL,
            last_meter_wh  REAL,
            stopped_at     TEXT,
            meter_stop_wh  REAL,
            stop_reason    TEXT,
            stop_id_tag    TEXT
        );
        CREATE INDEX sessions_open ON sessions(connector_id) WHERE stopped_at IS NULL;
        """,
    ),
)
