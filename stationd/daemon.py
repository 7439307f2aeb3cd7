"""The daemon's lifecycle: start the station's components, run them, stop them in time.

One asyncio event loop. Startup opens the settings and the database, records the boot, then
runs every component under the supervisor. SIGTERM or SIGINT stops the components, each
getting at most ``shutdown_timeout`` seconds all together; the process then exits 0. A
critical component that keeps failing ends the daemon with exit status 1, so systemd
restarts the whole service. A start the storage refuses (full, read-only, failing) is not
an exit: the daemon waits out of service and starts once the data directory takes writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from . import __version__, factory_reset, logs
from .auth.authorizer import Authorizer
from .auth.cache import AuthCache
from .auth.cards import CardHandler
from .auth.local_list import LocalList
from .auth.whitelist import Whitelist
from .config.installation import installation_values
from .config.station_file import StationConfig
from .config.store import Change, ConfigStore
from .core.sessions import SessionStore
from .core.station import StationCore
from .diagnostics.log_sources import install_log_ring
from .hw.assembly import (
    Hardware,
    build_hardware,
    connector_specs,
    needs_simulator,
    simulator_for,
)
from .hw.flashing import ControllerFlasher
from .hw.modbus_server import ModbusServer
from .load_balancing.service import LoadBalancingService
from .ocpp_client.client import OcppClient
from .smart_charging import ProfileStore
from .sdnotify import SystemdNotifier, run_watchdog
from .storage import Database
from .storage.health import is_storage_error, write_problem
from .supervisor import Component, ComponentFailed, Supervisor
from .system import system_edge
from .system.monitor import SystemMonitor
from .system.options import DeviceOptions
from .system.settings_bridge import SystemSettings
from .webui.app import WebUi
from .webui.out_of_service import serve_out_of_service

log = logging.getLogger("stationd.daemon")

EXIT_OK = 0
EXIT_COMPONENT_FAILED = 1
STORAGE_RETRY_S = 10.0  # a start the storage refused is tried again this often

# Builds extra components once the store and database are open (later features plug in here).
ComponentFactory = Callable[["Station"], list[Component]]


@dataclass
class Station:
    """What the components share: the config, settings, database, core and hardware."""

    config: StationConfig
    store: ConfigStore
    db: Database
    boot_id: int
    core: StationCore
    hardware: Hardware
    world: object | None = None  # the firmware_sim world behind "sim" transports
    ocpp: object | None = None  # the OcppClient
    whitelist: object | None = None  # the technician's RFID whitelist
    flasher: object | None = None  # the EVSE controllers' "Flash Firmware" (stationd.hw.flashing)
    factory_reset: object | None = None  # the FactoryReset key at run time (stationd.factory_reset)
    system: object | None = None  # the operating-system edge (stationd.system)
    supervisor: object | None = None  # the components' supervisor (the WebUI's daemon status)
    webui: object | None = None  # the installer WebUI (stationd.webui.app.WebUi)


class Daemon:
    def __init__(
        self,
        config: StationConfig,
        *,
        component_factories: list[ComponentFactory] | None = None,
        notifier: SystemdNotifier | None = None,
        shutdown_timeout: float = 10.0,
        supervisor_options: dict | None = None,
        world=None,
        handle_signals: bool = True,
        storage_retry_s: float = STORAGE_RETRY_S,
    ):
        self.config = config
        self.world = world  # a started firmware_sim world (stationd demo); else made when needed
        self.handle_signals = handle_signals  # False: the caller turns SIGTERM/SIGINT into request_stop
        self.notifier = notifier or SystemdNotifier.from_env()
        self.shutdown_timeout = shutdown_timeout
        self.storage_retry_s = storage_retry_s
        self._factories = component_factories or []
        self._supervisor_options = supervisor_options or {}
        self._stop = asyncio.Event()
        self.restart_requested: str | None = None  # why the station should start again (Reset, WebUI)
        self._storage_refused: str | None = None  # why the storage refused the last start (logged once)

    def request_restart(self, reason: str) -> None:
        """Stop, and tell whoever runs the daemon to start it again (``stationd demo`` does so in
        place; under systemd the process exits and the service restarts)."""
        self.restart_requested = reason
        self.request_stop(f"restart: {reason}")

    def request_stop(self, reason: str) -> None:
        if not self._stop.is_set():
            log.info("stopping: %s", reason)
            self._stop.set()

    async def run(self) -> int:
        """Start the station and run it until stopped; return the exit status.

        A start the storage refuses (the data directory full, read-only or failing) does not
        end the daemon, which under systemd would be a restart loop that gives up after
        StartLimitBurst: the daemon stays up out of service (no charging, no backend link),
        says why in the log and the systemd status, and starts once the directory takes a
        write again.
        """
        loop = asyncio.get_running_loop()
        signals = (signal.SIGTERM, signal.SIGINT) if self.handle_signals else ()
        for signum in signals:
            loop.add_signal_handler(signum, self.request_stop, signal.Signals(signum).name)
        try:
            while True:
                try:
                    return await self._run_station()
                except Exception as exc:
                    problem, error = self._storage_refusal(exc), exc
                    if problem is None or self._stop.is_set():
                        raise
                if not await self._wait_for_storage(problem, error):
                    return EXIT_OK
        finally:
            for signum in signals:
                loop.remove_signal_handler(signum)

    def _storage_refusal(self, error: Exception) -> str | None:
        """Why the storage refused the start that failed with ``error``; None when it did not."""
        problem = write_problem(self.config.data_dir)
        if problem is None and is_storage_error(error):
            problem = f"{error}"
        return problem

    async def _wait_for_storage(self, problem: str, error: Exception) -> bool:
        """Out of service until the data directory takes a write; False when stopped first."""
        if problem != self._storage_refused:  # a start refused again for the same reason is not news
            log.critical("storage: the station cannot start: %s (%s: %s); it stays out of service (no charging, "
                         "no backend connection) and tries again every %g s", problem, type(error).__name__,
                         error, self.storage_retry_s)
            self._storage_refused = problem
        self.notifier.ready(f"out of service: storage: {problem}")  # up: systemd neither waits nor restarts
        watchdog = asyncio.create_task(run_watchdog(self.notifier, lambda: True), name="watchdog")
        page = asyncio.create_task(serve_out_of_service(self.config, lambda: problem),
                                   name="webui-out-of-service")
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.storage_retry_s):
                        await self._stop.wait()
                if self._stop.is_set():
                    return False
                now = write_problem(self.config.data_dir)
                if now is None:
                    log.warning("storage: the data directory takes writes again; starting the station")
                    self.notifier.status("starting: storage writable again")
                    return True
                if now != problem:
                    log.error("storage: still out of service: %s", now)
                    self.notifier.status(f"out of service: storage: {now}")
                    problem = self._storage_refused = now
        finally:
            watchdog.cancel()
            page.cancel()
            await asyncio.wait({page})  # its port is free before the station's WebUI takes it
            if not page.cancelled() and page.exception() is not None:
                log.error("WebUI: the out-of-service page failed: %r", page.exception())

    async def _run_station(self) -> int:
        reset = factory_reset.run_pending(self.config.data_dir)  # before anything opens the data
        store = ConfigStore.open(self.config.data_dir, installation=installation_values(self.config))
        remove_secrets = logs.add_secret_source(store.secret_values)
        install_log_ring()  # the log lines GetDiagnostics archives when journald does not keep them
        db: Database | None = None
        cleanup = contextlib.AsyncExitStack()
        try:  # whatever fails from here on, everything opened is closed again, in reverse order
            for key in logs.LEVEL_KEYS:
                logs.apply_level_key(key, store.get(key))
            store.subscribe(_apply_log_level, names=logs.LEVEL_KEYS)
            started = datetime.now(timezone.utc)
            db, corrupt = Database.open_or_replace(self.config.data_dir, now=started.strftime("%Y%m%dT%H%M%SZ"))
            if corrupt is not None:
                log.critical("the station database was corrupt: moved aside to %s; starting with a fresh database "
                             "(open transactions, queued messages and lists in it are not carried over)", corrupt)
            boot_id = db.record_boot(__version__, factory_reset.BOOT_REASON if reset else (
                f"database replaced (corrupt copy {corrupt.name})" if corrupt is not None else None),
                started.isoformat(timespec="seconds"))
            log.info("stationd %s starting (boot %d, chargebox %s, %d connectors, data in %s)", __version__,
                     boot_id, store.get("BoxId"), store.connectors, self.config.data_dir)
            progress_db = Database.open(self.config.data_dir, durable=False)
            cleanup.callback(progress_db.close)
            whitelist = Whitelist(db)
            whitelist.purge_deleted()  # deleted entries are restorable until the daemon restarts
            core = StationCore(store, SessionStore(db, progress_db), connector_specs(self.config))
            if corrupt is not None:  # reported on connector 0 (a warning: the station stays usable)
                core.station_fault("DatabaseReplaced", True, source="storage")
            authorizer = Authorizer(store, LocalList(db), AuthCache(db), whitelist, core.clock,
                                    on_conflict=lambda id_tag: _report_list_conflict(core))
            system = system_edge(self.config.system_backend, on_reboot=self.request_restart,
                                 on_restart=self.request_restart, simulate_modem=self.config.hardware.modem == "sim",
                                 options=DeviceOptions(state_dir=str(Path(self.config.data_dir).resolve() / "system")))
            system_settings = SystemSettings(store, system)
            await system.startup()
            cleanup.callback(system.close)
            if self.config.system_backend == "device":
                await system.configure_usb_gadget()
            monitor = SystemMonitor(system, on_weak_signal=lambda weak: core.station_fault("WeakSignal", weak, "modem"))
            monitor.provide_keys(store)
            ocpp = OcppClient(self.config, store, db, core, request_restart=self.request_restart,
                              authorizer=authorizer, system=system, profiles=ProfileStore(db))
            cards = CardHandler(core, store, authorizer, whitelist, online=ocpp.online,
                                ask_backend=ocpp.ask_backend, clock=core.clock)
            cleanup.callback(ocpp.close)  # runs after core.shutdown (registered later, runs earlier)
            core.start()  # after every listener subscribed: a power cut's PowerLoss stops reach the outbox
            if self.world is None and needs_simulator(self.config):
                world = simulator_for(self.config, Path(self.config.data_dir) / "sim")
                await world.start()
                cleanup.push_async_callback(world.stop)
            else:
                world = self.world
            hardware = await build_hardware(self.config, core, world)
            cleanup.callback(hardware.close)
            ocpp.use_meter_readers(hardware.readers)
            cleanup.callback(core.shutdown)  # runs first: sessions end before the links close
            station = Station(self.config, store, db, boot_id, core, hardware, world, ocpp, whitelist,
                              flasher=ControllerFlasher(core, hardware.drivers),
                              factory_reset=factory_reset.FactoryResetKey(store, core, ocpp, self.request_restart),
                              system=system)
            ocpp.station = station  # GetDiagnostics archives the hardware status
            station.webui = WebUi(station)
            components = [
                Component("settings-watch", store.watch),
                Component("whitelist-watch", whitelist.watch),
                Component("local-list-watch", authorizer.local_list.watch),
                Component("core-tick", lambda: _tick(core, cards)),
                Component("ocpp", ocpp.run, critical=False),
                Component("ocpp-meter-values", ocpp.transactions.run, critical=False),
                Component("smart-charging", ocpp.profile_applier.run, critical=False),
                Component("factory-reset", station.factory_reset.run, critical=False),
                Component("system-settings", system_settings.run, critical=False),
                Component("system-monitor", monitor.run, critical=False),
                Component("firmware-update", ocpp.firmware.run, critical=False),
                Component("load-balancing", LoadBalancingService(core, store, config=self.config).run,
                          critical=False),
                Component("webui", station.webui.run, critical=False),
                Component("modbus-server", ModbusServer.from_config(
                    core, store, self.config.modbus_server, enabled=lambda: store.get("ModbusServerEnabled")).run,
                    critical=False),
                *hardware.components,
            ]
            for factory in self._factories:
                components.extend(factory(station))
            supervisor = station.supervisor = Supervisor(components, **self._supervisor_options)
            return await self._run_until_stopped(supervisor)
        finally:
            await cleanup.aclose()
            if db is not None:
                db.close()
            remove_secrets()

    async def _run_until_stopped(self, supervisor: Supervisor) -> int:
        supervised = asyncio.create_task(supervisor.run(), name="supervisor")
        watchdog = asyncio.create_task(run_watchdog(self.notifier, lambda: supervisor.healthy), name="watchdog")
        stop = asyncio.create_task(self._stop.wait(), name="stop")
        self._storage_refused = None  # started: a later refusal is news again
        self.notifier.ready(f"running: {supervisor.summary()}")
        log.info("stationd ready: %s", supervisor.summary())
        try:
            await asyncio.wait({supervised, stop}, return_when=asyncio.FIRST_COMPLETED)
            exit_code = EXIT_OK
            if supervised.done():
                exit_code = self._exit_code(supervised)
            self.notifier.stopping("stopping")
            await self._cancel(supervised)
            log.info("stationd stopped (exit status %d)", exit_code)
            return exit_code
        finally:
            if not supervised.done():  # run() itself was cancelled: the components stop too
                await self._cancel(supervised)
            for task in (watchdog, stop):
                task.cancel()

    def _exit_code(self, supervised: asyncio.Task) -> int:
        error = supervised.exception()
        if error is None:
            log.info("every component finished")
            return EXIT_OK
        failed = error.exceptions if isinstance(error, BaseExceptionGroup) else [error]
        for problem in failed:
            if isinstance(problem, ComponentFailed):
                log.critical("stopping the station: component %s", problem)
            else:
                log.critical("stopping the station: supervisor error %r", problem)
        return EXIT_COMPONENT_FAILED

    async def _cancel(self, supervised: asyncio.Task) -> None:
        supervised.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            async with asyncio.timeout(self.shutdown_timeout):
                await asyncio.shield(supervised)
        if not supervised.done():
            log.error("components did not stop within %.0f s; leaving them behind: %s", self.shutdown_timeout,
                      _pending_tasks())


def _pending_tasks() -> str:
    """The tasks still running, each with the line it waits on (for the log of a slow shutdown)."""
    described = []
    for task in asyncio.all_tasks():
        if task.done() or task is asyncio.current_task():
            continue
        stack = task.get_stack()
        where = f"{stack[-1].f_code.co_filename}:{stack[-1].f_lineno}" if stack else "?"
        described.append(f"{task.get_name()} at {where}")
    return "; ".join(sorted(described)) or "none"


async def _tick(core: StationCore, cards: CardHandler) -> None:
    while True:
        core.tick()
        cards.tick()
        await asyncio.sleep(1.0)


def _report_list_conflict(core: StationCore) -> None:
    """LocalListConflict on connector 0 (StatusNotification), until the backend next changes
    its local list (SendLocalList clears it)."""
    core.station_fault("LocalListConflict", True, source="local list")


def _apply_log_level(change: Change) -> None:
    logs.apply_level_key(change.key, change.new)
