"""The OCPP 1.6J client: one backend, from BootNotification to every transaction message.

Per connection: the RPC endpoint answers the backend's calls from the first frame on; the
station boots (BootNotification once per start of the daemon; a plain reconnect does not boot
again), then sends the status of every connector that the backend has not heard yet, keeps
heartbeating, and delivers the outbox (transaction messages, security events) in order.

Before the boot is Accepted the station sends nothing else; while Pending it answers the
backend's calls but starts no transaction on its behalf; while Rejected it waits the interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from ..auth.authorizer import Authorizer
from ..auth.id_tag_info import IdTagInfo
from ..config.station_file import StationConfig
from ..config.store import ConfigStore
from ..config.value_types import Source
from ..core.events import SessionEnded, SessionStarted
from ..core.station import StationCore
from ..firmware.update import FirmwareUpdater
from ..hw.meters.signing import SignedReadings
from ..smart_charging import InvalidProfile, ProfileStore
from ..smart_charging.applier import ProfileApplier
from ..storage import Database
from ..system import SystemEdge
from . import security_log
from .boot import boot_payload
from .certificate_signing import renew_when_due
from .certificates import CertificateStore
from .charge_point_certificate import ChargePointCertificates
from .connection import ConnectionManager
from .errors import CallError, ConnectionLost
from .handlers import HANDLERS
from .handlers.smart_charging import parse_profile
from .journal import JOURNAL_FILE, MessageJournal
from .outbox import Outbox
from .rpc import RpcEndpoint, check_request
from .status import StatusReporter
from .timestamps import ocpp_time, parse_ocpp_time
from .transactions import Transactions
from .vendor_messages import VendorMessages

log = logging.getLogger("stationd.ocpp")

REGISTRATION_RETRY_S = 60  # when a non-Accepted BootNotification.conf gives interval 0
RESET_FLUSH_S = 10.0  # how long a Reset waits for the StopTransactions to be delivered
DAY_S = 86400
CONNECTION_STATE_FILE = "ocpp-connection.json"
BOOT_IDENTITY_TIMEOUT_S = 2.0
CLOCK_TOLERANCE_S = 2.0


class OcppClient:
    def __init__(self, config: StationConfig, store: ConfigStore, db: Database, core: StationCore, *,
                 request_restart: Callable[[str], None], authorizer: Authorizer, system: SystemEdge,
                 profiles: ProfileStore,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
                 monotonic: Callable[[], float] = time.monotonic, rng: random.Random | None = None,
                 sleep=asyncio.sleep):
        self.config, self.store, self.core = config, store, core
        self.authorizer, self.system, self.profiles = authorizer, system, profiles
        self.local_list, self.auth_cache = authorizer.local_list, authorizer.cache
        store.provide("LocalListVersion", lambda: self.local_list.version)
        self._request_restart, self.clock, self._monotonic, self._sleep = request_restart, clock, monotonic, sleep
        self.outbox = Outbox(db, attempts=lambda: int(store.get("TransactionMessageAttempts")),
                             retry_interval=lambda: float(store.get("TransactionMessageRetryInterval")),
                             clock=clock, sleep=sleep, check=check_request)
        self.status = StatusReporter(core, store, clock)
        self.transactions = Transactions(core, store, self.outbox, clock=clock, sleep=sleep,
                                         send_direct=self._send_direct,
                                         reporting=lambda: store.get("ServerMode") == "Online")
        self.vendor_messages = VendorMessages(core, store, self._send_direct)
        self.profile_applier = ProfileApplier(core, store, profiles, self.outbox.transaction_id)
        self._pending_tx_profiles: dict[int, dict] = {}  # connector -> RemoteStart's TxProfile
        core.bus.subscribe(lambda e: self.profile_applier.transaction_ended(e.session.session_id), SessionEnded)
        self.certificates = CertificateStore(Path(config.data_dir), ca_file=config.ocpp.ca_file,
                                             max_certificates=lambda: int(store.get("CertificateStoreMaxLength")),
                                             clock=clock)
        store.provide("CentralSystemRootCertificateInstalled", self.certificates.has_central_system_root)
        self.charge_point_certificate = ChargePointCertificates.for_store(Path(config.data_dir), store,
                                                                          self.certificates, clock)
        store.provide("ChargePointCertificateInstalled", self.charge_point_certificate.installed)
        self.manager = ConnectionManager(store, ca_file=self.certificates.trust_file,
                                         client_certificate=self.charge_point_certificate.credentials,
                                         state_file=Path(config.data_dir) / CONNECTION_STATE_FILE,
                                         on_event=self.security_event, rng=rng or random.Random(), sleep=sleep)
        self.registration = "none"  # none | Pending | Rejected | Accepted (this start of the daemon)
        self.diagnostics_status = "Idle"
        self.journal = MessageJournal.for_store(Path(config.data_dir) / JOURNAL_FILE, store)
        self.station = None  # the daemon's Station (GetDiagnostics archives its hardware status)
        self.firmware_status = "Idle"
        self.firmware = FirmwareUpdater.for_client(self)  # UpdateFirmware; its run() is a daemon component
        self._rpc: RpcEndpoint | None = None
        self._last_sent = monotonic()
        self._started_event_sent = False
        self._id_tags: dict[int, str] = {}  # the idTag of each connector's latest session
        self._meter_readers: dict = {}
        self._meter_identity = None  # (type, serial) of the first connector's meter, once read
        self._background: set[asyncio.Task] = set()
        core.bus.subscribe(lambda e: self._id_tags.__setitem__(e.session.connector_id, e.session.id_tag),
                           SessionStarted)

    def close(self) -> None:
        """At shutdown, after the core's last StopTransactions were queued."""
        self.outbox.close()
        self.journal.close()
        for task in list(self._background):  # e.g. a diagnostics upload still under way
            task.cancel()

    @property
    def accepted(self) -> bool:
        return self.registration == "Accepted"

    @property
    def connected(self) -> bool:
        return self._rpc is not None

    # ---- running ------------------------------------------------------------------------

    async def run(self) -> None:
        """Connect and serve while ServerMode is Online; a stand-alone station (Offline) waits,
        and switching to Offline at run time closes the connection."""
        mode_changed = asyncio.Event()
        unsubscribe = self.store.subscribe(lambda change: mode_changed.set(), names=["ServerMode"])
        connection: asyncio.Task | None = None
        try:
            while True:
                while not self._online_mode():
                    log.info("ServerMode is Offline: the station runs stand-alone, without a backend")
                    mode_changed.clear()
                    await mode_changed.wait()
                if not self._started_event_sent:
                    self.security_event("StartupOfTheDevice", "stationd started")
                    self._started_event_sent = True
                connection = asyncio.create_task(self.manager.run(self._session), name="ocpp-connection")
                while self._online_mode() and not connection.done():
                    mode_changed.clear()
                    waiter = asyncio.create_task(mode_changed.wait())
                    await asyncio.wait({connection, waiter}, return_when=asyncio.FIRST_COMPLETED)
                    waiter.cancel()
                if connection.done():
                    connection.result()
                    return
                log.info("ServerMode changed to Offline: closing the connection to the backend")
                await self.manager.stop()
                await connection
        finally:
            unsubscribe()
            if connection is not None and not connection.done():  # the daemon stops: no orphaned reconnects
                connection.cancel()
                await asyncio.gather(connection, return_exceptions=True)

    def _online_mode(self) -> bool:
        return self.store.get("ServerMode") == "Online"

    async def _session(self, websocket) -> None:
        rpc = RpcEndpoint(websocket, self._dispatch, journal=self.journal)
        self._rpc = rpc
        receiving = asyncio.create_task(rpc.run(), name="ocpp-receive")
        workers: list[asyncio.Task] = []
        try:
            if not self.accepted:
                boot = asyncio.create_task(self._register(), name="ocpp-boot")
                await asyncio.wait({boot, receiving}, return_when=asyncio.FIRST_COMPLETED)
                if not boot.done():
                    boot.cancel()
                    return  # the connection ended before the backend accepted us
                boot.result()
            self.manager.mark_stable()
            workers = [asyncio.create_task(self.status.run(self.call), name="ocpp-status"),
                       asyncio.create_task(self._heartbeats(), name="ocpp-heartbeat"),
                       asyncio.create_task(renew_when_due(self, self._sleep), name="ocpp-certificate-renewal"),
                       asyncio.create_task(self.outbox.run(self._call_checked, self._on_answer),
                                           name="ocpp-outbox"),
                       asyncio.create_task(self.firmware.send_unsent(), name="ocpp-firmware-status")]
            await receiving
        except ConnectionLost:
            pass
        finally:
            self._rpc = None
            for task in [*workers, receiving]:
                task.cancel()
            await asyncio.gather(*workers, receiving, return_exceptions=True)
            await rpc.shutdown(timeout=1.0)

    def use_meter_readers(self, readers) -> None:
        """Signed readings (OCMF) from the meters that sign, and their public keys as
        /hw/connectors/<id>/meter/key; the meters are known once the hardware is built."""
        self._meter_readers = dict(readers)
        signed = SignedReadings(readers, id_tag_of=self._id_tags.get, charge_box_id=str(self.store.get("BoxId")))
        signed.provide_keys(self.store)
        self.transactions.use_signed_readings(signed)

    async def _send_direct(self, action: str, payload: dict) -> None:
        """A message that is no transaction message: sent now if registered, else not at all."""
        if self.connected and self.accepted:
            await self.call(action, payload)

    async def call(self, action: str, payload: dict, *, checked: bool = False) -> dict:
        rpc = self._rpc
        if rpc is None:
            raise ConnectionLost("not connected to the backend")
        self._last_sent = self._monotonic()
        return await rpc.call(action, payload, checked=checked)

    async def _call_checked(self, action: str, payload: dict) -> dict:
        """For the outbox: its messages passed the schema when they were queued."""
        return await self.call(action, payload, checked=True)

    async def _dispatch(self, action: str, payload: dict):
        if self.registration == "Rejected":
            raise CallError("SecurityError", "the backend rejected this station's registration")
        handler = HANDLERS.get(action)
        if handler is None:
            raise NotImplementedError(action)
        return await handler(self, payload)

    # ---- boot and heartbeat -------------------------------------------------------------

    async def _register(self) -> None:
        while True:
            response = await self.send_boot_notification()
            if self.accepted:
                return
            interval = response.get("interval") or REGISTRATION_RETRY_S
            log.warning("BootNotification %s; trying again in %d s", self.registration, interval)
            await self._sleep(interval)

    async def send_boot_notification(self) -> dict:
        meter_type, meter_serial = await self._meter_type_and_serial()
        iccid, imsi = await self._sim_identity()
        response = await self.call("BootNotification", boot_payload(self.store, meter_type=meter_type,
                                                                    meter_serial=meter_serial, iccid=iccid, imsi=imsi))
        self.registration = response["status"]
        self._apply_time(response.get("currentTime"))
        if self.accepted:
            interval = int(response.get("interval") or 0)
            if interval > 0 and self.store.get("HeartbeatInterval") != interval:
                self.store.set("HeartbeatInterval", str(min(interval, DAY_S)), Source.OCPP)
            log.info("BootNotification accepted; heartbeat every %s s", self.store.get("HeartbeatInterval"))
        return response

    async def _meter_type_and_serial(self) -> tuple[str | None, str | None]:
        """BootNotification's meterType/meterSerialNumber: the first connector's meter, when it answers."""
        if self._meter_identity is None and self._meter_readers:
            reader = self._meter_readers[min(self._meter_readers)]
            try:
                async with asyncio.timeout(BOOT_IDENTITY_TIMEOUT_S):
                    identity = await reader.read_identity()
                self._meter_identity = (identity.model, identity.serial)
            except Exception as exc:  # noqa: BLE001 - a meter that does not say just stays unnamed
                log.info("meter identity not available for BootNotification: %s", exc)
                return None, None
        return self._meter_identity or (None, None)

    async def _sim_identity(self) -> tuple[str | None, str | None]:
        """BootNotification's iccid/imsi: the modem's SIM, when the station has one and it answers."""
        if self.system is None:
            return None, None
        try:
            async with asyncio.timeout(BOOT_IDENTITY_TIMEOUT_S):
                modem = await self.system.modem_info()
        except Exception as exc:  # noqa: BLE001 - a modem that does not answer leaves the fields out
            log.info("SIM identity not available for BootNotification: %s", exc)
            return None, None
        return (modem.iccid, modem.imsi) if modem is not None else (None, None)

    async def _heartbeats(self) -> None:
        """A Heartbeat after HeartbeatInterval of silence (at least one a day); a new interval
        applies at once."""
        changed = asyncio.Event()
        unsubscribe = self.store.subscribe(lambda change: changed.set(), names=["HeartbeatInterval"])
        try:
            while True:
                interval = int(self.store.get("HeartbeatInterval")) or DAY_S
                quiet = self._monotonic() - self._last_sent
                if quiet >= interval:
                    await self.send_heartbeat()
                    continue
                changed.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(interval - quiet):
                        await changed.wait()
        finally:
            unsubscribe()

    async def send_heartbeat(self) -> None:
        response = await self.call("Heartbeat", {})
        self._apply_time(response.get("currentTime"))

    def _apply_time(self, current_time: str | None) -> None:
        """TimeSource HeartBeat: the backend's currentTime sets the clock when it is more than
        CLOCK_TOLERANCE_S off (BootNotification.conf and Heartbeat.conf)."""
        if not current_time or self.store.get("TimeSource") != "HeartBeat":
            return
        backend_time = parse_ocpp_time(current_time)
        offset = (backend_time - self.clock()).total_seconds()
        if abs(offset) <= CLOCK_TOLERANCE_S:
            return
        log.warning("the station's clock is %.0f s off the backend's; setting it", -offset)
        task = asyncio.get_running_loop().create_task(self._set_time(backend_time, offset))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _set_time(self, moment: datetime, offset: float) -> None:
        if await self.system.set_time(moment):
            self.security_event("SettingSystemTime", f"set from the backend's currentTime ({offset:+.0f} s)")

    # ---- actions the handlers start ------------------------------------------------------

    async def reset(self, kind: str) -> None:
        """Reset Soft/Hard: end the sessions, let their StopTransactions out, restart."""
        reason = f"{kind}Reset" if self.store.get("StopTxOnReset") else "Reboot"
        self.security_event("ResetOrReboot", f"{kind} reset requested by the backend")
        self.core.shutdown(reason)
        try:
            async with asyncio.timeout(RESET_FLUSH_S):
                while self.outbox.pending_count() and self.connected:
                    await self._sleep(0.1)
        except TimeoutError:
            log.warning("reset: %d messages still queued; they go out after the restart", self.outbox.pending_count())
        self._request_restart(f"{kind} reset requested by the backend")

    async def send_triggered_meter_values(self, connector_id: int | None) -> None:
        for payload in self.transactions.triggered_meter_values(connector_id):
            await self.call("MeterValues", payload)

    def security_event(self, kind: str, tech_info: str | None = None) -> None:
        payload = {"type": kind, "timestamp": ocpp_time(self.clock())}
        if tech_info:
            payload["techInfo"] = tech_info[:255]
        security_log.record(Path(self.config.data_dir) / security_log.SECURITY_LOG_FILE, payload)  # GetLog
        self.outbox.enqueue("SecurityEventNotification", payload)

    def _install_remote_start_profile(self, connector_id: int, transaction_id: int | None) -> None:
        data = self._pending_tx_profiles.pop(connector_id)
        try:
            profile = parse_profile(self, data)
        except InvalidProfile as problem:
            log.warning("RemoteStartTransaction's charging profile not usable: %s", problem.reason)
            return
        result = self.profiles.install(connector_id, profile, active_transaction=transaction_id, now=self.clock())
        log.info("RemoteStartTransaction's charging profile: %s %s", result.status, result.reason or "")
        self.profile_applier.changed()

    # ---- authorization ---------------------------------------------------------------------

    def online(self) -> bool:
        """Connected and registered: the backend can be asked."""
        return self.connected and self.accepted

    async def ask_backend(self, id_tag: str) -> IdTagInfo | None:
        """Authorize.req; None when the backend does not answer (the card is decided offline)."""
        if not self.online():
            return None
        try:
            answer = await self.call("Authorize", {"idTag": id_tag})
            return IdTagInfo.from_ocpp(answer["idTagInfo"])
        except Exception as exc:  # noqa: BLE001 - an unanswered Authorize is an offline one
            log.warning("Authorize of %s got no usable answer (%s); deciding offline", id_tag, exc)
            return None

    def remember_remote_start_profile(self, connector_id: int, profile: dict) -> None:
        """RemoteStartTransaction's TxProfile: installed once the transaction has its id."""
        self._pending_tx_profiles[connector_id] = profile

    def _on_answer(self, action: str, payload: dict, response: dict) -> None:
        """Answers to queued messages: the transactions react; idTagInfo teaches the cache."""
        self.transactions.on_answer(action, payload, response)
        if action == "StartTransaction" and payload.get("connectorId") in self._pending_tx_profiles:
            self._install_remote_start_profile(payload["connectorId"], response.get("transactionId"))
        info, id_tag = response.get("idTagInfo"), payload.get("idTag")
        if info is not None and id_tag:
            try:
                self.authorizer.learn(id_tag, IdTagInfo.from_ocpp(info))
            except ValueError as exc:
                log.warning("%s.conf idTagInfo not usable: %s", action, exc)
