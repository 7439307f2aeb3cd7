"""Factory reset: the Eaton special key FactoryReset (SPEC.md §4.3) and what a reset wipes.

The key (docs/factory-reset.md):

* ChangeConfiguration ``Active``: reset at the next start of the daemon, whatever starts it
  (OCPP Reset, power cut, ``systemctl restart``); ``Active-now``: reset now — the sessions end
  (reason Reboot), the station lets their StopTransactions out (at most 10 s), then restarts and
  the reset runs at that start; ``Inactive``: cancel a pending reset. Anything else: Rejected.
* GetConfiguration: ``Active`` while a reset is pending (also after ``Active-now``, until the
  restart), else ``Inactive``.

The pending flag *is* the key's value in ``settings.json``, so it survives restarts and power
cuts, and the reset clears it by wiping that very file — last, after everything else: a reset cut
short by a power cut runs again at the next start (every step can run twice).

:func:`run_pending` runs at the start of the daemon before anything else opens the data
directory. It wipes

* ``settings.json`` (+ ``.bak``, ``.corrupt``): every key changed over OCPP, the WebUI or the
  CLI goes back to the station config file's value or the default — among them the WebUI
  password (``/WebUi/password/reset``: without a stored hash the password is the serial number,
  :func:`webui_password_matches`), AuthorizationKey and SecurityProfile set over OCPP, BoxId;
* ``ocpp-connection.json`` (the security-profile trial state that goes with those keys);
* in ``station.db``: the technician's whitelist, the backend's local authorization list
  (version 0), the authorization cache, the charging profiles, the history of finished sessions
  and the saved availability (ChangeAvailability) — in one transaction.

It keeps what the station *is* and what it still owes: the station config file (serial number,
model, vendor, chargebox id, backend URL, the installation's security profile and key, the
hardware with its meters and controllers — never in the data directory), the TLS files the
config file names, the outbox of undelivered transaction and security messages with its
parked messages and the transactionIds they need, sessions still open (a power cut's: closed
with PowerLoss right after, so their StopTransaction goes out), StopTransactions waiting for a
signed meter reading, the boot log (which records the reset) and everything in the data
directory this module does not name (the simulator's ``sim/`` of the demo).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .config.settings_file import SettingsFile
from .config.store import SETTINGS_FILE_NAME, Change, ConfigStore
from .config.value_types import Source, verify_password
from .storage import Database

log = logging.getLogger("stationd.factory_reset")

KEY = "FactoryReset"
ACTIVE, ACTIVE_NOW, INACTIVE = "Active", "Active-now", "Inactive"
PENDING = (ACTIVE, ACTIVE_NOW)  # stored values that mean "reset at the next start"
WEBUI_PASSWORD_KEY = "/WebUi/password/reset"  # the WebUI admin password's scrypt hash lives here
STOP_REASON = "Reboot"  # StopTransaction reason of the sessions Active-now ends
BOOT_REASON = "factory reset"  # boot_log.reason of the start that ran it

#: Files of the data directory the reset deletes; settings.json, which holds the flag, last.
WIPED_FILES = ("ocpp-connection.json", SETTINGS_FILE_NAME + ".corrupt", SETTINGS_FILE_NAME + ".bak",
               SETTINGS_FILE_NAME)
#: (what, SQL) run in one transaction; the counts of the DELETEs are reported.
WIPED_TABLES: tuple[tuple[str, str], ...] = (
    ("whitelist", "UPDATE whitelist_state SET version = version + 1 WHERE id = 1"),
    ("whitelist", "DELETE FROM whitelist"),
    ("whitelist", "UPDATE whitelist_state SET reset_version = version WHERE id = 1"),
    ("local list", "UPDATE local_auth_list_state SET counter = counter + 1 WHERE id = 1"),
    ("local list", "DELETE FROM local_auth_list"),
    ("local list", "UPDATE local_auth_list_state SET list_version = 0, reset_counter = counter WHERE id = 1"),
    ("auth cache", "DELETE FROM auth_cache"),
    ("charging profiles", "DELETE FROM charging_profiles"),
    ("session history", "DELETE FROM sessions WHERE stopped_at IS NOT NULL"),
    ("transaction ids", "DELETE FROM ocpp_transactions WHERE session_id NOT IN (SELECT session_id FROM sessions) "
                        "AND session_id NOT IN (SELECT session_id FROM outbox WHERE session_id IS NOT NULL) "
                        "AND session_id NOT IN (SELECT session_id FROM outbox_dead_letters "
                        "WHERE session_id IS NOT NULL)"),
    ("availability", "DELETE FROM station_meta WHERE key = 'availability'"),
)


@dataclass
class ResetReport:
    """What a reset removed (rows per item, files) and the undelivered messages it kept."""

    rows: dict[str, int] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    kept_messages: int = 0


def pending(data_dir: str | os.PathLike[str]) -> bool:
    """Whether FactoryReset asks for a reset at the next start."""
    settings = SettingsFile(Path(data_dir) / SETTINGS_FILE_NAME)
    return settings.load().values.get(KEY) in PENDING


def run_pending(data_dir: str | os.PathLike[str]) -> ResetReport | None:
    """At the daemon's start, before anything else opens the data directory: the reset, if one
    is pending (None: none was)."""
    if not pending(data_dir):
        return None
    log.warning("FactoryReset is Active: resetting the station to factory settings")
    return perform(data_dir)


def perform(data_dir: str | os.PathLike[str]) -> ResetReport:
    """Wipe what a factory reset wipes (module docstring), whatever the flag says. Idempotent."""
    directory = Path(data_dir)
    report = ResetReport()
    settings = SettingsFile(directory / SETTINGS_FILE_NAME)
    with settings.locked():  # the CLI cannot change a setting halfway through
        db = Database.open(directory)
        try:
            with db.transaction():
                for what, sql in WIPED_TABLES:
                    count = db.execute(sql).rowcount
                    if sql.startswith("DELETE"):
                        report.rows[what] = report.rows.get(what, 0) + max(count, 0)
            report.kept_messages = int(db.query("SELECT count(*) FROM outbox")[0][0])
        finally:
            db.close()
        for name in WIPED_FILES:
            with contextlib.suppress(FileNotFoundError):
                (directory / name).unlink()
                report.files.append(name)
        _sync_directory(directory)
    removed = ", ".join(f"{what} {count}" for what, count in report.rows.items())
    log.warning("factory reset done: removed %s; files %s; %d undelivered messages kept",
                removed, ", ".join(report.files) or "none", report.kept_messages)
    return report


def webui_password_matches(store: ConfigStore, password: str) -> bool:
    """The WebUI admin password check: the stored hash (``/WebUi/password/reset``) when one was
    set, else the station's serial number (SPEC.md §1: out of the box and after a reset)."""
    stored = store.get(WEBUI_PASSWORD_KEY)
    if stored:
        return verify_password(password, stored)
    return password == str(store.get("SerialNumber"))


def _sync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FactoryResetKey:
    """The key at run time: ``Active-now`` becomes ``Active`` (what GetConfiguration reads until
    the restart) and restarts the station; the reset itself runs at that start.

    The WebUI uses :meth:`request` / :meth:`cancel` / :attr:`pending`, a backend ChangeConfiguration,
    a technician ``stationd config set FactoryReset …``: all three are the same stored key."""

    def __init__(self, store: ConfigStore, core, ocpp, request_restart: Callable[[str], None], *,
                 grace_s: float = 1.0, flush_s: float = 10.0, sleep=asyncio.sleep):
        self.store, self.core, self.ocpp = store, core, ocpp
        self._request_restart, self._sleep = request_restart, sleep
        self.grace_s, self.flush_s = grace_s, flush_s
        self._now = asyncio.Event()
        self._normalising = False
        store.subscribe(self._on_change, names=[KEY])

    @property
    def pending(self) -> bool:
        return self.store.get(KEY) in PENDING

    def request(self, now: bool = False, source: Source = Source.LOCAL) -> None:
        """Reset at the next start, or (``now``) restart and reset at once."""
        result = self.store.set(KEY, ACTIVE_NOW if now else ACTIVE, source)
        assert result.ok, result

    def cancel(self, source: Source = Source.LOCAL) -> None:
        self.store.set(KEY, INACTIVE, source)

    def _on_change(self, change: Change) -> None:
        if self._normalising:
            return
        if change.new == ACTIVE_NOW:
            log.warning("FactoryReset Active-now (by %s): the station restarts and resets", change.source.value)
            self._normalising = True
            try:
                self.store.set(KEY, ACTIVE, change.source)
            finally:
                self._normalising = False
            self._now.set()
        elif change.new == ACTIVE:
            log.warning("FactoryReset Active (by %s): the station resets at its next start", change.source.value)
        elif change.old in PENDING:
            log.warning("FactoryReset Inactive (by %s): the pending reset is cancelled", change.source.value)

    async def run(self) -> None:
        """A component: waits for Active-now, then ends the sessions and restarts."""
        while True:
            await self._now.wait()
            self._now.clear()
            await self._sleep(self.grace_s)  # the ChangeConfiguration.conf leaves first
            if not self.pending:
                log.info("FactoryReset was cancelled before the restart")
                continue
            await self._restart()
            return

    async def _restart(self) -> None:
        if self.ocpp is not None:
            self.ocpp.security_event("ResetOrReboot", "factory reset (FactoryReset Active-now)")
        self.core.shutdown(STOP_REASON)
        if self.ocpp is not None:
            try:
                async with asyncio.timeout(self.flush_s):
                    while self.ocpp.outbox.pending_count() and self.ocpp.connected:
                        await self._sleep(0.1)
            except TimeoutError:
                log.warning("factory reset: %d messages still queued; they are kept and go out after the "
                            "restart", self.ocpp.outbox.pending_count())
        self._request_restart("factory reset (FactoryReset Active-now)")
