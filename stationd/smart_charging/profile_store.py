"""The installed charging profiles: SQLite (migration 6, ``charging_profiles``) plus a dict.

:class:`ProfileStore` is the only writer of the table. It loads every row when created (the
profiles survive a restart) and answers from memory afterwards.

Rules of :meth:`ProfileStore.install` (SetChargingProfile)
    * Placement (:func:`~stationd.smart_charging.profiles.check_placement`): ChargePointMaxProfile
      only on connector 0; TxDefaultProfile on 0 (all connectors) or one connector; TxProfile only
      on a connector > 0 with an active transaction, whose id must match the profile's
      transactionId when it has one. A TxProfile without transactionId is bound to the running
      transaction (stored with its id), so it ends with that transaction
      (:meth:`ProfileStore.remove_tx_profiles`).
    * Replacement: an installed profile with the same chargingProfileId (on any connector) is
      replaced; so is one on the same connector with the same stackLevel and purpose.
    * Capacity: at most ``max_installed`` (MaxChargingProfilesInstalled) after the replacement;
      one more is Rejected.
    * An Absolute profile without startSchedule starts when it is installed (``now``): it gets
      that startSchedule, so its schedule stays put across a restart.
    The replaced rows and the new one are written in one SQLite transaction.

:meth:`ProfileStore.clear` (ClearChargingProfile): with ``id`` only that profile (the other
criteria are then ignored, as OCPP 2.0.1 states explicitly); otherwise every profile matching all
given criteria (connector 0 means the profiles installed on connector 0; no criteria: all).
``Accepted`` when something was removed, else ``Unknown``.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from datetime import UTC, datetime
from typing import NamedTuple

from ..storage import Database
from .profiles import (
    CHARGE_POINT_MAX,
    TX,
    TX_DEFAULT,
    ChargingProfile,
    InstalledProfile,
    check_placement,
    format_time,
)

__all__ = ["ACCEPTED", "DEFAULT_MAX_INSTALLED", "REJECTED", "UNKNOWN", "InstallResult", "ProfileStore"]

ACCEPTED = "Accepted"
REJECTED = "Rejected"
UNKNOWN = "Unknown"
DEFAULT_MAX_INSTALLED = 32  # MaxChargingProfilesInstalled


class InstallResult(NamedTuple):
    status: str  # "Accepted" or "Rejected"
    reason: str | None = None  # why Rejected; for Accepted, what was replaced (or None)


class ProfileStore:
    def __init__(self, db: Database, *, max_installed: int = DEFAULT_MAX_INSTALLED) -> None:
        self._db = db
        self._max = max_installed
        self._lock = threading.RLock()
        self._profiles: dict[int, InstalledProfile] = {}
        for row in db.query("SELECT profile_id, connector_id, profile FROM charging_profiles ORDER BY rowid"):
            # Stored profiles were checked when installed; re-check leniently (no limits on
            # stack level / periods: a lowered limit must not lose installed profiles).
            profile = ChargingProfile.from_ocpp(
                json.loads(row["profile"]), max_stack_level=10**9, max_periods=10**9
            )
            self._profiles[profile.id] = InstalledProfile(int(row["connector_id"]), profile)

    # ------------------------------------------------------------------ reading

    def all(self) -> list[InstalledProfile]:
        """Every installed profile, in installation order."""
        with self._lock:
            return list(self._profiles.values())

    def __len__(self) -> int:
        return len(self._profiles)

    def get(self, profile_id: int) -> InstalledProfile | None:
        return self._profiles.get(profile_id)

    def profiles_for(self, connector_id: int) -> list[InstalledProfile]:
        """The profiles that apply to ``connector_id`` (input of ``composite_schedule``).

        ChargePointMaxProfiles (connector 0), TxDefaultProfiles of connector 0 and of the
        connector, TxProfiles of the connector. For connector 0: the profiles installed on 0.
        """
        with self._lock:
            out = []
            for item in self._profiles.values():
                purpose = item.profile.purpose
                if item.connector_id == connector_id or (
                    item.connector_id == 0 and purpose in (CHARGE_POINT_MAX, TX_DEFAULT)
                ):
                    out.append(item)
            return out

    # ------------------------------------------------------------------ writing

    def install(
        self,
        connector_id: int,
        profile: ChargingProfile,
        *,
        active_transaction: int | None,
        now: datetime | None = None,
    ) -> InstallResult:
        """SetChargingProfile: ``Accepted`` (stored, replacing per the rules) or ``Rejected``."""
        reason = check_placement(profile, connector_id, active_transaction)
        if reason is not None:
            return InstallResult(REJECTED, reason)
        if profile.purpose == TX and profile.transaction_id is None:
            profile = dataclasses.replace(profile, transaction_id=active_transaction)
        moment = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
        if profile.kind == "Absolute" and profile.schedule.start_schedule is None:
            profile = dataclasses.replace(
                profile, schedule=dataclasses.replace(profile.schedule, start_schedule=moment)
            )
        with self._lock:
            replaced = [
                pid
                for pid, item in self._profiles.items()
                if pid == profile.id
                or (
                    item.connector_id == connector_id
                    and item.profile.purpose == profile.purpose
                    and item.profile.stack_level == profile.stack_level
                )
            ]
            if len(self._profiles) - len(replaced) + 1 > self._max:
                return InstallResult(
                    REJECTED, f"{self._max} charging profiles are installed (MaxChargingProfilesInstalled)"
                )
            with self._db.transaction() as db:
                db.executemany("DELETE FROM charging_profiles WHERE profile_id = ?", [(pid,) for pid in replaced])
                db.execute(
                    "INSERT INTO charging_profiles (profile_id, connector_id, purpose, stack_level, "
                    "transaction_id, profile, installed_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        profile.id,
                        connector_id,
                        profile.purpose,
                        profile.stack_level,
                        profile.transaction_id,
                        json.dumps(profile.to_ocpp(), separators=(",", ":")),
                        format_time(moment),
                    ),
                )
            for pid in replaced:
                del self._profiles[pid]
            self._profiles[profile.id] = InstalledProfile(connector_id, profile)
        note = f"replaced profile(s) {', '.join(map(str, replaced))}" if replaced else None
        return InstallResult(ACCEPTED, note)

    def clear(
        self,
        id: int | None = None,
        connector_id: int | None = None,
        purpose: str | None = None,
        stack_level: int | None = None,
    ) -> str:
        """ClearChargingProfile: ``Accepted`` if at least one profile was removed, else ``Unknown``."""
        with self._lock:
            if id is not None:
                doomed = [id] if id in self._profiles else []
            else:
                doomed = [
                    pid
                    for pid, item in self._profiles.items()
                    if (connector_id is None or item.connector_id == connector_id)
                    and (purpose is None or item.profile.purpose == purpose)
                    and (stack_level is None or item.profile.stack_level == stack_level)
                ]
            self._delete(doomed)
        return ACCEPTED if doomed else UNKNOWN

    def remove_tx_profiles(self, transaction_id: int) -> int:
        """A transaction ended: remove its TxProfiles; return how many."""
        with self._lock:
            doomed = [
                pid
                for pid, item in self._profiles.items()
                if item.profile.purpose == TX and item.profile.transaction_id == transaction_id
            ]
            self._delete(doomed)
        return len(doomed)

    def _delete(self, ids: list[int]) -> None:
        if not ids:
            return
        with self._db.transaction() as db:
            db.executemany("DELETE FROM charging_profiles WHERE profile_id = ?", [(pid,) for pid in ids])
        for pid in ids:
            del self._profiles[pid]

