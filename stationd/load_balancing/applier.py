"""Sets the core's "load balancing" limit on this station's connectors (only what changed)."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from .settings import SOURCE

log = logging.getLogger("stationd.load_balancing")

NO_SESSION = "cluster: no session"


class LimitApplier:
    def __init__(self, core):
        self.core = core
        self._applied: dict[int, tuple[float | None, str | None]] = {}
        self._unknown_logged: set[int] = set()

    @property
    def applied(self) -> dict[int, tuple[float | None, str | None]]:
        return dict(self._applied)

    def set(self, connector_id: int, amps: float | None, reason: str | None) -> None:
        wanted = (None if amps is None else float(amps), reason if amps is not None else None)
        if self._applied.get(connector_id) == wanted:
            return
        self._applied[connector_id] = wanted
        self.core.set_limit(connector_id, SOURCE, wanted[0], reason=wanted[1])

    def set_all(self, amps: float | None, reason: str | None) -> None:
        for connector_id in self.core.connectors:
            self.set(connector_id, amps, reason)

    def apply(self, limits: Mapping[int, tuple[float, str]], missing: tuple[float, str] = (0.0, NO_SESSION)) -> None:
        """``limits``: connector id → (A, reason); a connector not listed gets ``missing``."""
        for connector_id in limits:
            if connector_id not in self.core.connectors and connector_id not in self._unknown_logged:
                self._unknown_logged.add(connector_id)
                log.warning("cluster: an allocation names connector %d, which this station does not have; ignored",
                            connector_id)
        for connector_id in self.core.connectors:
            amps, reason = limits.get(connector_id, missing)
            self.set(connector_id, amps, reason)

    def clear(self) -> None:
        """No load-balancing limit on any connector any more."""
        for connector_id, connector in self.core.connectors.items():
            if SOURCE in getattr(connector, "limits", {SOURCE: None}):
                self.core.set_limit(connector_id, SOURCE, None)
            self._applied[connector_id] = (None, None)
