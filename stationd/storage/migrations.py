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
    Migration(
        3,
        "ocpp outbox",
        """
        -- Outgoing OCPP messages that must not be lost (stationd/ocpp_client/outbox.py): written
        -- before they are sent, removed when their answer arrives. AUTOINCREMENT: ids are never
        -- reused, so id order is enqueue order and an id stays unique in the dead letters too.
        -- queue: independent FIFOs ('transaction', 'security'), no CHECK so a new one needs no
        -- table rebuild. session_id: the core session (no foreign key on purpose: pruning
        -- session history must never take a queued message with it); MeterValues and
        -- StopTransaction of a session are stored without transactionId, filled in at send time.
        CREATE TABLE outbox (
            id         INTEGER PRIMARY KEY AUTOINCREMENT,
            queue      TEXT NOT NULL,
            action     TEXT NOT NULL,
            payload    TEXT NOT NULL,             -- JSON object
            session_id INTEGER,
            created_at TEXT NOT NULL,
            attempts   INTEGER NOT NULL DEFAULT 0, -- CALLERRORs so far
            last_error TEXT
        );
        -- Few indexes on purpose: removing a delivered message is the one write per message on
        -- the replay path, and every index is one more page written. The transaction FIFO
        -- (the bulk) is read in rowid order; a smaller FIFO gets a partial index of its own.
        CREATE INDEX outbox_security ON outbox(id) WHERE queue = 'security';
        -- The OCPP transaction of a session: the transactionId of its StartTransaction.conf.
        -- Not unique: backends have been seen to reuse ids (ConcurrentTx with transactionId 0).
        CREATE TABLE ocpp_transactions (
            session_id     INTEGER PRIMARY KEY,
            transaction_id INTEGER NOT NULL,
            confirmed_at   TEXT NOT NULL
        );
        CREATE INDEX ocpp_transactions_by_id ON ocpp_transactions(transaction_id);
        -- Messages the backend kept refusing (or that can never be sent): never dropped, kept
        -- here for the WebUI. id is the message's outbox id.
        CREATE TABLE outbox_dead_letters (
            id         INTEGER PRIMARY KEY,
            queue      TEXT NOT NULL,
            action     TEXT NOT NULL,
            payload    TEXT NOT NULL,
            session_id INTEGER,
            created_at TEXT NOT NULL,
            attempts   INTEGER NOT NULL,
            last_error TEXT,
            reason     TEXT NOT NULL,
            parked_at  TEXT NOT NULL
        );
        CREATE INDEX outbox_dead_letters_session ON outbox_dead_letters(session_id)
            WHERE session_id IS NOT NULL;
        """,
    ),
    Migration(
        4,
        "local whitelist",
        """
        -- The technician's RFID whitelist (SPEC.md section 6; stationd/auth/whitelist.py). Written
        -- only through stationd.auth.Whitelist, which keeps whitelist_state in step.
        -- uid: the normal form of stationd/auth/uid.py. Row order (rowid) is list order, the
        -- "#" of the WebUI and the order of an export. gid: parent idTag, NULL = none.
        -- expiry: UTC 'YYYY-MM-DDTHH:MM:SSZ', NULL = never. A deleted entry keeps its row until
        -- the daemon starts again (restorable until then): deleted_at says when,
        -- deleted_boot which boot_log entry was the latest then. changed_in: the
        -- whitelist_state.version that last changed the row, so a reader catches up with
        -- one scan instead of reloading the list.
        CREATE TABLE whitelist (
            uid           TEXT PRIMARY KEY,
            gid           TEXT,
            expiry        TEXT,
            authorization TEXT NOT NULL CHECK (authorization IN ('accepted', 'blocked')),
            deleted_at    TEXT,
            deleted_boot  INTEGER,
            updated_at    TEXT NOT NULL,
            changed_in    INTEGER NOT NULL
        );
        -- One row. version: bumped by every change of the list (the daemon polls it);
        -- reset_version: the version of the last change that removed rows for good (purge),
        -- a reader that saw an older version reloads everything.
        CREATE TABLE whitelist_state (
            id            INTEGER PRIMARY KEY CHECK (id = 1),
            version       INTEGER NOT NULL,
            reset_version INTEGER NOT NULL
        );
        INSERT INTO whitelist_state (id, version, reset_version) VALUES (1, 0, 0);
        """,
    ),
    Migration(
        5,
        "local authorization list and authorization cache",
        """
        -- The backend's local authorization list (OCPP SendLocalList; stationd/auth/local_list.py),
        -- written only through stationd.auth.local_list.LocalList, which keeps
        -- local_auth_list_state in step. id_tag / parent_id_tag: the normal form of
        -- stationd/auth/uid.py. Row order (rowid) is the order of the update that added the row
        -- (the WebUI's order). expiry: UTC 'YYYY-MM-DDTHH:MM:SSZ', NULL = none. changed_in: the
        -- local_auth_list_state.counter of the write that last set the row, so a reader catches
        -- up with one scan instead of a reload.
        CREATE TABLE local_auth_list (
            id_tag        TEXT PRIMARY KEY,
            status        TEXT NOT NULL
                          CHECK (status IN ('Accepted', 'Blocked', 'Expired', 'Invalid', 'ConcurrentTx')),
            expiry        TEXT,
            parent_id_tag TEXT,
            changed_in    INTEGER NOT NULL
        );
        -- One row. list_version: the OCPP listVersion (0 = the list is empty; GetLocalListVersion
        -- and the LocalListVersion key report it). counter: bumped by every change;
        -- reset_counter: the counter of the last change that removed rows (a reader that saw an
        -- older counter reloads everything).
        CREATE TABLE local_auth_list_state (
            id            INTEGER PRIMARY KEY CHECK (id = 1),
            list_version  INTEGER NOT NULL,
            counter       INTEGER NOT NULL,
            reset_counter INTEGER NOT NULL
        );
        INSERT INTO local_auth_list_state (id, list_version, counter, reset_counter) VALUES (1, 0, 0, 0);
        -- The authorization cache (OCPP 1.6 section 3.5.1; stationd/auth/cache.py): the IdTagInfo
        -- of idTags the backend answered for, list ids excepted. Written only by
        -- stationd.auth.cache.AuthCache. Row order (rowid) is update order: an update deletes
        -- and re-inserts the row, the smallest rowid is the least recently updated (evicted
        -- first). updated_at: UTC 'YYYY-MM-DDTHH:MM:SSZ', the start of AuthCacheLifeTime.
        CREATE TABLE auth_cache (
            id_tag        TEXT PRIMARY KEY,
            status        TEXT NOT NULL
                          CHECK (status IN ('Accepted', 'Blocked', 'Expired', 'Invalid', 'ConcurrentTx')),
            expiry        TEXT,
            parent_id_tag TEXT,
            updated_at    TEXT NOT NULL
        );
        """,
    ),
    Migration(
        6,
        "charging profiles",
        """
        -- The installed OCPP smart-charging profiles (SetChargingProfile; stationd/smart_charging/
        -- profile_store.py), written only through stationd.smart_charging.ProfileStore.
        -- profile_id: the chargingProfileId (unique on the station: the same id replaces).
        -- connector_id: 0 = the whole station. purpose / stack_level / transaction_id are copies of
        -- fields of the profile for the replacement and clear rules; profile: the profile as
        -- OCPP JSON (csChargingProfiles, limits already rounded down to 0.1).
        -- installed_at: UTC 'YYYY-MM-DDTHH:MM:SSZ'.
        CREATE TABLE charging_profiles (
            profile_id     INTEGER PRIMARY KEY,
            connector_id   INTEGER NOT NULL CHECK (connector_id >= 0),
            purpose        TEXT NOT NULL
                           CHECK (purpose IN ('ChargePointMaxProfile', 'TxDefaultProfile', 'TxProfile')),
            stack_level    INTEGER NOT NULL,
            transaction_id INTEGER,
            profile        TEXT NOT NULL,
            installed_at   TEXT NOT NULL
        );
        CREATE INDEX charging_profiles_by_connector ON charging_profiles(connector_id);
        """,
    ),
)
