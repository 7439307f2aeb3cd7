"""Applies the installed charging profiles to the connectors, as the core's "smart charging" limit.

Every second (and at once when a profile changes) each connector's composite limit at this
instant becomes ``core.set_limit(connector, "smart charging", A)``; a connector no profile
limits has no such limit. The core turns limits into PWM offers (an offer below 6 A pauses).
A TxProfile ends with its transaction.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from ..config.store import ConfigStore
from ..core.station import StationCore
from .composite import limit_at
from .profile_store import ProfileStore

log = logging.getLogger("stationd.smart_charging")

SOURCE = "smart charging"
TICK_S = 1.0


class ProfileApplier:
    def __init__(self, core: StationCore, store: ConfigStore, profiles: ProfileStore,
                 transaction_id_of: Callable[[int], int | None]):
        self.core, self.store, self.profiles = core, store, profiles
        self._transaction_id_of = transaction_id_of  # session id -> OCPP transactionId
        self._changed = asyncio.Event()
        self._applied: dict[int, float | None] = {}

    def changed(self) -> None:
        """A profile was installed or cleared: apply at once."""
        self._changed.set()

    def transaction_ended(self, session_id: int) -> None:
        transaction_id = self._transaction_id_of(session_id)
        if transaction_id is not None and self.profiles.remove_tx_profiles(transaction_id):
            log.info("TxProfile of transaction %d removed (the transaction ended)", transaction_id)
            self.changed()

    def apply(self) -> None:
        now = self.core.clock()
        voltage = float(self.store.get("GridVoltage"))
        for connector in self.core.connectors.values():
            session = connector.session
            limit = limit_at(self.profiles.profiles_for(connector.id), connector.id, now,
                             transaction_start=session.started_at if session is not None else None,
                             voltage=voltage, phases_of_connector=connector.phases)
            if self._applied.get(connector.id, "unset") != limit:
                self._applied[connector.id] = limit
                self.core.set_limit(connector.id, SOURCE, limit)

    async def run(self) -> None:
        while True:
            self.apply()
            self._changed.clear()
            try:
                async with asyncio.timeout(TICK_S):
                    await self._changed.wait()
            except TimeoutError:
                pass
