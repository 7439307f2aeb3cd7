"""The cluster master: a WebSocket server for the slaves, and the allocation rounds.

Each slave connects to ``/<its BoxId>`` and sends reports (``protocol.Report``). Every second,
and at once when a report shows a session that started or ended (or one of this station's own
sessions does), the master runs ``stationd.power.cluster.allocate_cluster`` over its own
connectors and those of every connected slave, applies its own share as the core's
"load balancing" limit and sends every slave its allocation. A connector without a session gets
limit 0 (a session that starts there waits for the next round, which it triggers at once).

While any session still has to come down, no session goes up (``decreases_first``): the
stations apply a change at different moments, and the cluster's total must not exceed the old
or the new allocation in between. With the building meter, the rest of the building is estimated
only while the offers are settled (``building_load.RestOfBuilding``).

A slave that disconnects, or whose reports stop for ``report_timeout_s``, is out of the
cluster: its reports are dropped (it falls back to LoadBalancingFallbackCurrent on its side).
A second connection with the same BoxId replaces the first (a slave that reconnected before the
master noticed the old link was dead).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request

from ..config.keys.shapes import CHARGEBOX_ID_PATTERN
from ..core.demand import ConnectorDemand
from ..core.events import SessionEnded, SessionStarted
from ..power.allocation import PAUSED_NOT_ENOUGH, Allocation
from ..power.cluster import ClusterSession, allocate_cluster
from .applier import NO_SESSION, LimitApplier
from .building_load import SETTLE_S, RestOfBuilding
from .protocol import WEBSOCKET_MAX_SIZE, ProtocolError, Report, allocation_json, parse
from .settings import SOURCE, ListenAddress, box_id_of, cluster_limits

log = logging.getLogger("stationd.load_balancing")

TICK_S = 1.0
REPORT_TIMEOUT_S = 5.0  # a slave silent this long is out of the cluster
SEND_TIMEOUT_S = 2.0
LISTEN_RETRY_S = 5.0
PING_INTERVAL_S = 5.0  # a dead link is noticed within ping interval + timeout
STEP_A = 0.05  # offers closer than this are the same offer
WAITING = "cluster: waiting for other sessions to reduce"
_BOX_ID = re.compile(CHARGEBOX_ID_PATTERN)


@dataclass
class SlaveLink:
    box_id: str
    ws: ServerConnection
    report: Report | None = None
    received_at: float = 0.0
    sessions: frozenset = field(default_factory=frozenset)  # (connector, started_at) of its sessions


def session_keys(demands: list[ConnectorDemand]) -> frozenset:
    return frozenset((d.connector_id, d.started_at) for d in demands if d.started_at is not None)


class ClusterMaster:
    def __init__(self, core, store, address: ListenAddress, *, meter=None, ssl_context: ssl.SSLContext | None = None,
                 tick_s: float = TICK_S, report_timeout_s: float = REPORT_TIMEOUT_S, settle_s: float = SETTLE_S,
                 clock: Callable[[], float] = time.monotonic):
        self.core, self.store, self.address, self.meter = core, store, address, meter
        self.ssl_context = ssl_context
        self.tick_s, self.report_timeout_s = tick_s, report_timeout_s
        self._clock = clock
        self.applier = LimitApplier(core)
        self.slaves: dict[str, SlaveLink] = {}
        self.rounds = 0
        self.last_allocation: dict[tuple[str, int], Allocation] = {}
        self._wake = asyncio.Event()
        self._paused_since: dict[tuple[str, int, object], float] = {}  # the turns of SUSPENDABLE
        self._charging_since: dict[tuple[str, int, object], float] = {}
        self._server: Server | None = None
        self._failure_logged: str | None = None
        self._tasks: set[asyncio.Task] = set()
        self._wiring_warned: set[tuple[str, int]] = set()
        self.rest = RestOfBuilding(settle_s)
        self._sent: dict[tuple[str, int], float] = {}

    # ---- running ----------------------------------------------------------------------

    async def run(self) -> None:
        unsubscribe = [self.core.bus.subscribe(lambda _event: self._wake.set(), kind)
                       for kind in (SessionStarted, SessionEnded)]
        listener = asyncio.create_task(self._listen(), name="load-balancing-listen")
        try:
            while True:
                self._wake.clear()
                await self.run_round()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.tick_s):
                        await self._wake.wait()
        finally:
            for stop in unsubscribe:
                stop()
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
            await self._close_server()

    async def _listen(self) -> None:
        while True:
            try:
                self._server = await serve(
                    self._handle, self.address.host, self.address.port, process_request=self._check_request,
                    ssl=self.ssl_context, max_size=WEBSOCKET_MAX_SIZE, ping_interval=PING_INTERVAL_S,
                    ping_timeout=PING_INTERVAL_S, open_timeout=5, close_timeout=2)
            except OSError as error:
                log.error("cluster master cannot listen on %s: %s; trying again in %g s", self.address, error,
                          LISTEN_RETRY_S)
                await asyncio.sleep(LISTEN_RETRY_S)
                continue
            log.info("cluster master listening on %s/<BoxId>", self.address)
            await asyncio.Future()  # until cancelled

    async def _close_server(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                await server.wait_closed()
        self.slaves.clear()

    @property
    def port(self) -> int | None:
        """The port listened on (the URI's; tells the real one when that was 0)."""
        if self._server is None or not self._server.sockets:
            return None
        return self._server.sockets[0].getsockname()[1]

    @property
    def own_box(self) -> str:
        return str(self.store.get("BoxId") or "master")

    # ---- slaves -----------------------------------------------------------------------

    def _check_request(self, connection: ServerConnection, request: Request):
        box_id = box_id_of(request.path)
        if not _BOX_ID.fullmatch(box_id):
            log.warning("cluster: refused a connection from %s: path %r does not end in a BoxId",
                        _peer(connection), request.path[:100])
            return connection.respond(HTTPStatus.NOT_FOUND, "the path must end in the member's BoxId\n")
        if box_id == self.own_box:
            log.warning("cluster: refused a connection from %s: it uses the master's own BoxId %s",
                        _peer(connection), box_id)
            return connection.respond(HTTPStatus.CONFLICT, "that is the master's BoxId\n")
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        box_id = box_id_of(ws.request.path)
        old = self.slaves.get(box_id)
        link = SlaveLink(box_id, ws)
        self.slaves[box_id] = link
        if old is not None:
            log.warning("cluster: %s connected again from %s; closing its previous connection", box_id, _peer(ws))
            await old.ws.close(4000, "replaced by a new connection")
        log.info("cluster: slave %s connected from %s", box_id, _peer(ws))
        try:
            async for frame in ws:
                self._received(link, frame)
        except ConnectionClosed:
            pass
        finally:
            if self.slaves.get(box_id) is link:
                del self.slaves[box_id]
                log.warning("cluster: slave %s disconnected (%s); its reports are dropped", box_id,
                            _close_reason(ws))
                self._wake.set()

    def _received(self, link: SlaveLink, frame: str | bytes) -> None:
        try:
            report = parse(frame, Report)
        except ProtocolError as problem:
            log.warning("cluster: message from %s refused: %s", link.box_id, problem)
            return
        if report.boxId != link.box_id:
            log.warning("cluster: message from %s refused: boxId %r is not the BoxId it connected with",
                        link.box_id, report.boxId)
            return
        demands = report.demands()
        sessions = session_keys(demands)
        first = link.report is None
        link.report, link.received_at = report, self._clock()
        if first or sessions != link.sessions:
            link.sessions = sessions
            self._wake.set()

    # ---- rounds -----------------------------------------------------------------------

    async def run_round(self) -> None:
        """One allocation: own limits applied, every slave sent its allocation."""
        now = self._clock()
        members: dict[str, tuple[str, list[ConnectorDemand]]] = {}
        own_box = self.own_box
        members[own_box] = (str(self.store.get("LoadBalancingChargerPrivilege")),
                            self.core.connector_demands(exclude=(SOURCE,)))
        for box_id, link in list(self.slaves.items()):
            if link.report is None:
                continue
            if now - link.received_at > self.report_timeout_s:
                log.warning("cluster: no report from %s for %.0f s; closing its connection", box_id,
                            now - link.received_at)
                del self.slaves[box_id]
                self._spawn(link.ws.close(4001, "no report"))
                continue
            members[box_id] = (link.report.privilege, link.report.demands())
        try:
            allocation = self._allocate(members)
        except Exception as error:  # a bad round must not stop the cluster: the next one may work
            if self._failure_logged != repr(error):
                self._failure_logged = repr(error)
                log.exception("cluster allocation failed; the limits stay as they are")
            return
        self._failure_logged = None
        self.rounds += 1
        self.last_allocation = allocation
        per_member = decreases_first(members, allocation)
        sent = {(box_id, cid): amps for box_id, limits in per_member.items() for cid, (amps, _) in limits.items()}
        if sent != self._sent:
            self._sent = sent
            self.rest.offers_changed()
        self.applier.apply(per_member.pop(own_box))
        sends = [self._send(self.slaves[box_id], limits) for box_id, limits in per_member.items()
                 if box_id in self.slaves]
        await asyncio.gather(*sends)

    def _allocate(self, members: dict[str, tuple[str, list[ConnectorDemand]]]) -> dict[tuple[str, int], Allocation]:
        wall = self.core.clock().timestamp()
        sessions, live = [], set()
        for box_id, (privilege, demands) in members.items():
            for d in demands:
                if d.started_at is None:
                    continue
                key = (box_id, d.connector_id, d.started_at)
                live.add(key)
                paused = [t for t in (d.paused_since, self._paused_since.get(key)) if t is not None]
                sessions.append(ClusterSession(
                    station=box_id, connector_id=d.connector_id, privilege=privilege,
                    started_at=d.started_at.timestamp(), caps=dict(d.caps), grid=frozenset(d.grid),
                    phases=d.phases, draw_a=d.draw_a, offered_a=d.offered_a,
                    paused_since=min(paused) if paused else None, current_a=dict(d.current_a),
                    charging_since=self._charging_since.get(key)))
        meter_enabled = self.meter is not None
        building = None
        if meter_enabled:
            self._warn_unknown_wiring(sessions)
            own = tuple(sum(float(s.current_a.get(p, 0.0)) for s in sessions) for p in (1, 2, 3))
            building = self.rest.building(self.meter.reading, own)  # type: ignore[arg-type]
        limits = cluster_limits(self.store, building, meter_enabled)
        allocation = allocate_cluster(limits, sessions, wall)
        self._keep_turn_clocks(allocation, live, wall)
        return allocation

    def _keep_turn_clocks(self, allocation: dict[tuple[str, int], Allocation], live: set, wall: float) -> None:
        """Since when each session has been paused for lack of current, and since when it has been
        charging (the turns of SUSPENDABLE, stationd.power.cluster rule 4)."""
        for clocks in (self._paused_since, self._charging_since):
            for key in [k for k in clocks if k not in live]:
                del clocks[key]
        for box_id, connector_id, started in live:
            result = allocation.get((box_id, connector_id))
            key = (box_id, connector_id, started)
            if result is None:
                continue
            if result.offer_a > 0:
                self._paused_since.pop(key, None)
                self._charging_since.setdefault(key, wall)
            else:
                self._charging_since.pop(key, None)
                if result.reason == PAUSED_NOT_ENOUGH:
                    self._paused_since.setdefault(key, wall)

    def _warn_unknown_wiring(self, sessions: list[ClusterSession]) -> None:
        for session in sessions:
            if not session.current_a and session.phases is not None and session.key not in self._wiring_warned:
                self._wiring_warned.add(session.key)
                log.warning("cluster: %s connector %d reports no current per grid phase (its ConnectorPhaseRotation "
                            "is not known): the building meter's reading counts its draw as the rest of the building",
                            session.station, session.connector_id)

    def _spawn(self, coroutine) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, link: SlaveLink, limits: dict[int, tuple[float, str]]) -> None:
        text = json.dumps(allocation_json(limits))
        try:
            async with asyncio.timeout(SEND_TIMEOUT_S):
                await link.ws.send(text)
        except (ConnectionClosed, TimeoutError) as error:
            log.warning("cluster: cannot send %s its allocation: %s", link.box_id, error or "timeout")


def decreases_first(members: dict[str, tuple[str, list[ConnectorDemand]]],
                    allocation: dict) -> dict[str, dict[int, tuple[float, str]]]:
    """The limits to send: the allocation, except that while any session still has to come down
    (its offer now is above its new limit) no session goes up. The others get more only in a
    later round, once the reports show the lower offers applied, so the cluster's total never
    exceeds the old or the new allocation while stations apply a change at different moments."""
    limits: dict[str, dict[int, tuple[float, str]]] = {}
    offers: dict[tuple[str, int], float] = {}
    pending = False
    for box_id, (_privilege, demands) in members.items():
        limits[box_id] = {}
        for demand in demands:
            result = allocation.get((box_id, demand.connector_id))
            if result is None or demand.started_at is None:
                limits[box_id][demand.connector_id] = (0.0, NO_SESSION)
                continue
            now_offered = demand.offered_a or 0.0
            offers[box_id, demand.connector_id] = now_offered
            limits[box_id][demand.connector_id] = (float(result.offer_a), str(result.reason))
            pending = pending or result.offer_a < now_offered - STEP_A
    if pending:
        for (box_id, connector_id), now_offered in offers.items():
            amps, reason = limits[box_id][connector_id]
            if amps > now_offered + STEP_A:
                limits[box_id][connector_id] = (now_offered, WAITING)
    return limits


def _peer(ws: ServerConnection) -> str:
    address = ws.remote_address
    return f"{address[0]}:{address[1]}" if address else "?"


def _close_reason(ws: ServerConnection) -> str:
    code = ws.close_code
    reason = ws.close_reason
    if code is None:
        return "connection lost"
    return f"code {code}{': ' + reason if reason else ''}"
