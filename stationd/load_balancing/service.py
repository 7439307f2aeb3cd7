"""The load-balancing service: this station's part in an Eaton load-balancing cluster.

``LoadBalancingService.run()`` (the daemon's "load-balancing" component) picks the role from
the keys and runs it:

* LoadBalancingEnabled FALSE: no "load balancing" limit on any connector; wait for a change.
* LoadBalancingMode Master: ``ClusterMaster`` on the port of LoadBalancingMasterURI, with the
  building meter (``BuildingMeter``) when LoadBalancingEnergyMeterEnabled is TRUE.
* LoadBalancingMode Slave: ``ClusterSlave`` connecting to LoadBalancingMasterURI.

A change of a key in ``settings.ROLE_KEYS`` (enabled, mode, master URI, meter keys, BoxId) stops
the role and starts the right one again, at once; the limits (MaxCluster, MaxBuilding,
MinCluster, Algo, PhaseBal*, ChargerPrivilege, Fallback/StartCurrent) are read live.

``wss://`` master URIs: the master serves TLS with the station config file's WebUI certificate
(``webui.tls_cert``/``tls_key``); the slaves verify the master's certificate and host name
against ``ocpp.ca_file`` (or the system's CA store).

For tests and commissioning the environment may shorten two waits of a slave:
``STATIOND_LB_FALLBACK_HOLD_S`` (how long LoadBalancingFallbackCurrent is held, default 30) and
``STATIOND_LB_BACKOFF_MAX_S`` (longest wait between reconnects, default 30).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
from pathlib import Path

from ..config.store import Change
from .applier import LimitApplier
from .building_load import SETTLE_S
from .building_meter import BuildingMeter
from .master import ClusterMaster
from .settings import ROLE_KEYS, listen_address, member_url
from .slave import BACKOFF_MAX_S, FALLBACK_HOLD_S, ClusterSlave

log = logging.getLogger("stationd.load_balancing")

FALLBACK_HOLD_ENV = "STATIOND_LB_FALLBACK_HOLD_S"
BACKOFF_MAX_ENV = "STATIOND_LB_BACKOFF_MAX_S"
ROLE_RETRY_S = 30.0  # a role that failed (e.g. a wss:// master without certificate) is tried again after this


class LoadBalancingService:
    def __init__(self, core, store, *, fallback_hold_s: float | None = None, backoff_max_s: float | None = None,
                 tick_s: float = 1.0, settle_s: float = SETTLE_S, tls_cert: Path | None = None, tls_key: Path | None = None,
                 ca_file: Path | None = None, config=None):
        self.core, self.store = core, store
        if config is not None:  # the station config file: TLS material for wss:// clusters
            tls_cert = tls_cert or config.webui.tls_cert
            tls_key = tls_key or config.webui.tls_key
            ca_file = ca_file or config.ocpp.ca_file
        self.tls_cert, self.tls_key, self.ca_file = tls_cert, tls_key, ca_file
        self.fallback_hold_s = _seconds(fallback_hold_s, FALLBACK_HOLD_ENV, FALLBACK_HOLD_S)
        self.backoff_max_s = _seconds(backoff_max_s, BACKOFF_MAX_ENV, BACKOFF_MAX_S)
        self.tick_s, self.settle_s = tick_s, settle_s
        self.role: ClusterMaster | ClusterSlave | None = None
        self.meter: BuildingMeter | None = None
        self._restart = asyncio.Event()

    async def run(self) -> None:
        unsubscribe = self.store.subscribe(self._key_changed, names=ROLE_KEYS)
        try:
            while True:
                self._restart.clear()
                role = asyncio.create_task(self._run_role(), name="load-balancing-role")
                restart = asyncio.create_task(self._restart.wait())
                try:
                    await asyncio.wait({role, restart}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for task in (role, restart):
                        task.cancel()
                        with contextlib.suppress(asyncio.CancelledError, Exception):
                            await task  # a role's failure is looked at below
                self.role, self.meter = None, None
                if role.done() and not role.cancelled() and role.exception() is not None:
                    self._failed(role.exception())
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(ROLE_RETRY_S):
                            await self._restart.wait()
        finally:
            unsubscribe()
            LimitApplier(self.core).clear()

    def _failed(self, error: BaseException) -> None:
        fallback = int(self.store.get("LoadBalancingFallbackCurrent"))
        log.error("load balancing cannot run: %s; fallback current %d A on every connector, trying again in %g s",
                  error, fallback, ROLE_RETRY_S)
        LimitApplier(self.core).set_all(fallback, f"cluster not running: fallback {fallback} A")

    def _key_changed(self, change: Change) -> None:
        log.info("load balancing: %s changed; starting the cluster role again", change.key)
        self._restart.set()

    async def _run_role(self) -> None:
        store = self.store
        if not store.get("LoadBalancingEnabled"):
            LimitApplier(self.core).clear()
            log.info("load balancing is off")
            await asyncio.Future()
        uri = str(store.get("LoadBalancingMasterURI"))
        if store.get("LoadBalancingMode") == "Master":
            await self._run_master(uri)
        else:
            await self._run_slave(uri)

    async def _run_master(self, uri: str) -> None:
        address = listen_address(uri)
        context = self._server_ssl() if address.tls else None
        meter = self._building_meter()
        self.role = master = ClusterMaster(self.core, self.store, address, meter=meter, ssl_context=context,
                                           tick_s=self.tick_s, settle_s=self.settle_s)
        self.meter = meter
        log.info("load balancing: this station is the cluster master (%s)", address)
        async with asyncio.TaskGroup() as group:
            if meter is not None:
                group.create_task(_keep_reading(meter), name="load-balancing-meter")
            group.create_task(master.run(), name="load-balancing-master")

    async def _run_slave(self, uri: str) -> None:
        box_id = self.store.get("BoxId")
        if not box_id:
            raise ValueError("BoxId is not set: a slave names itself to the master with it")
        url = member_url(uri, str(box_id))
        listen_address(url)  # refuses a URI without host or with another scheme
        context = _client_ssl(self.ca_file) if url.lower().startswith("wss:") else None
        self.role = slave = ClusterSlave(self.core, self.store, url, ssl_context=context,
                                         fallback_hold_s=self.fallback_hold_s, backoff_max_s=self.backoff_max_s)
        log.info("load balancing: this station is a cluster slave of %s", url)
        await slave.run()

    def _building_meter(self) -> BuildingMeter | None:
        if not self.store.get("LoadBalancingEnergyMeterEnabled"):
            return None
        try:
            return BuildingMeter.from_settings(str(self.store.get("LoadBalancingEnergyMeterIP")),
                                               str(self.store.get("LoadBalancingEnergyMeterType")))
        except ValueError as problem:
            log.error("load balancing: the building meter cannot be used: %s; sharing as without its reading",
                      problem)
            return _MissingMeter()

    def _server_ssl(self) -> ssl.SSLContext:
        if self.tls_cert is None or self.tls_key is None:
            raise ValueError("a wss:// LoadBalancingMasterURI needs a certificate: set webui.tls_cert and "
                             "webui.tls_key in the station config file, or use ws://")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.tls_cert, self.tls_key)
        return context


class _MissingMeter:
    """An enabled building meter whose address or type is unusable: it never answers."""

    reading = None

    async def run(self) -> None:
        await asyncio.Future()


async def _keep_reading(meter) -> None:
    """The meter's polling, started again if it ever fails (the master goes on without it)."""
    while True:
        try:
            await meter.run()
        except Exception:
            log.exception("%s: reading failed; starting again in %g s", meter, ROLE_RETRY_S)
        await asyncio.sleep(ROLE_RETRY_S)


def _client_ssl(ca_file: Path | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def _seconds(given: float | None, variable: str, default: float) -> float:
    if given is not None:
        return float(given)
    text = os.environ.get(variable)
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        log.error("%s=%r is not a number of seconds; using %g", variable, text, default)
        return default
    if not 0 < value <= 3600:
        log.error("%s=%r must be within 0..3600 s; using %g", variable, text, default)
        return default
    log.warning("load balancing: %s=%g s from the environment (product default %g s)", variable, value, default)
    return value
