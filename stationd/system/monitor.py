"""Live system values for the configuration keys and the station's faults.

The keys' providers are called synchronously inside a GetConfiguration, so the values that
need commands (``ip -j addr``, ``mmcli``) are refreshed in the background (:meth:`run`, a
supervised component) and read from here: NetworkStatus, RSSI and
/Network/Gateway/Device/Connection/signal. NetworkConfig is read from the edge directly (a
file read). WeakSignal is raised below -95 dBm and cleared at -92 dBm or better (see
``modem``); without a modem (RSSI unknown) it is never raised.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from ..config.value_types import MAX_VALUE_LENGTH, Json
from .edge import SystemEdge
from .modem import WEAK_SIGNAL_CLEAR_DBM, WEAK_SIGNAL_DBM, SignalReading

log = logging.getLogger("stationd.system")

REFRESH_S = 60.0
KEY_PROVIDERS = ("NetworkConfig", "NetworkStatus", "RSSI", "/Network/Gateway/Device/Connection/signal")


class SystemMonitor:
    def __init__(self, edge: SystemEdge, *, interval_s: float = REFRESH_S,
                 on_weak_signal: Callable[[bool], None] | None = None,
                 weak_dbm: int = WEAK_SIGNAL_DBM, clear_dbm: int = WEAK_SIGNAL_CLEAR_DBM,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep):
        self.edge = edge
        self.interval_s = interval_s
        self.on_weak_signal = on_weak_signal  # e.g. lambda weak: core.station_fault("WeakSignal", weak, "modem")
        self.weak_dbm, self.clear_dbm = weak_dbm, clear_dbm
        self._sleep = sleep
        self.network_status: list[dict[str, Any]] = []
        self.signal = SignalReading()
        self.weak_signal = False

    @property
    def rssi(self) -> int:
        return self.signal.rssi_key

    async def refresh(self) -> None:
        try:
            self.network_status = fit(prioritized(await self.edge.network_status(), self.edge.network_config()))
        except Exception:  # noqa: BLE001 - a broken reading keeps the last value; the next one may work
            log.exception("network status not available")
        try:
            self.signal = await self.edge.modem_signal()
        except Exception:  # noqa: BLE001
            log.exception("modem signal not available")
            self.signal = SignalReading()
        self._update_weak_signal()

    async def run(self) -> None:
        while True:
            await self.refresh()
            await self._sleep(self.interval_s)

    def provide_keys(self, store: Any) -> None:
        """Register the providers of the live keys with the ConfigStore."""
        store.provide("NetworkConfig", self.edge.network_config)
        store.provide("NetworkStatus", lambda: self.network_status)
        store.provide("RSSI", lambda: self.rssi)
        store.provide("/Network/Gateway/Device/Connection/signal", lambda: self.rssi)

    def _update_weak_signal(self) -> None:
        rssi = self.signal.rssi_dbm
        if rssi is None:
            weak = False
        else:
            weak = rssi < (self.clear_dbm if self.weak_signal else self.weak_dbm)
        if weak == self.weak_signal:
            return
        self.weak_signal = weak
        reading = f"{rssi} dBm" if rssi is not None else "no reading"
        log.warning("mobile signal %s: %s", "weak" if weak else "good again", reading)
        if self.on_weak_signal is not None:
            self.on_weak_signal(weak)


def prioritized(status: list[dict[str, Any]], config: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The configured interfaces (WAN, USB) first, in NetworkConfig's order, then the rest."""
    order = [entry.get("link") for entry in config]
    return sorted(status, key=lambda e: order.index(e.get("link")) if e.get("link") in order else len(order))


def fit(entries: list[dict[str, Any]], limit: int = MAX_VALUE_LENGTH) -> list[dict[str, Any]]:
    """As many entries as fit into a GetConfiguration value (CiString500), from the front."""
    render = Json().render
    while entries and len(render(entries)) > limit:
        entries = entries[:-1]
    return entries
