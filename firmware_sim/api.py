"""The firmware_sim control API (DESIGN.md §5.2): plain HTTP + JSON, loopback only, no auth.

It drives a :class:`~firmware_sim.world.SimWorld` the way a person in a car park would:

=============================================  ==============================================
``GET /state``                                 every connector: cp_state, pwm_current_a,
                                               contactor, locked, energy_wh, power_w, faults
``POST /connectors/{id}/plug``                 ``{"cable_max_a": 32}`` (optional, default 32;
                                               null = tethered connector)
``POST /connectors/{id}/charge``               ``{"max_current_a": 16, "phases": 3}`` (optional)
``POST /connectors/{id}/suspend``              the vehicle pauses (B, stays plugged)
``POST /connectors/{id}/unplug``               the vehicle leaves (A)
``POST /rfid``                                 ``{"uid": "aec78085"}``
``POST /connectors/{id}/fault``                ``{"code": "GroundFailure", "active": true}``
                                               (``active`` optional, default true)
``POST /meters/{id}``                          ``{"online": false}``; ``id`` is the connector id
=============================================  ==============================================

Success: 200 with the connector's new state (``{"ok": true}`` for /rfid). Unknown connector or
path: 404; bad JSON, wrong types, out-of-range values, unknown fields or fault codes: 400;
wrong method: 405 — every error as ``{"error": "…"}`` naming the field.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from .world import SimWorld

__all__ = ["LOOPBACK_HOSTS", "ControlApi"]

log = logging.getLogger("firmware_sim.api")

LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")
MAX_BODY = 64 * 1024
_ID_RE = re.compile(r"[0-9]{1,6}")
_MISSING = object()

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)


@web.middleware
async def _json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return _error(exc.status, exc.message)
    except web.HTTPMethodNotAllowed as exc:
        allowed = ", ".join(sorted(exc.allowed_methods))
        return _error(405, f"method {request.method} not allowed for {request.path}; allowed: {allowed}",
                      {"Allow": allowed})
    except web.HTTPNotFound:
        return _error(404, f"no such resource: {request.method} {request.path}")
    except web.HTTPRequestEntityTooLarge:
        return _error(413, f"request body larger than {MAX_BODY} bytes")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _error(exc.status, exc.reason)


class ControlApi:
    def __init__(self, world: SimWorld, host: str = "127.0.0.1", port: int = 8090) -> None:
        if host not in LOOPBACK_HOSTS:
            raise ValueError(f"the control API binds only to loopback ({', '.join(LOOPBACK_HOSTS)}), not {host!r}")
        if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
            raise ValueError(f"port must be 0-65535, got {port!r}")
        self.world = world
        self.host = "127.0.0.1" if host == "localhost" else host
        self.port = port
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def app(self) -> web.Application:
        app = web.Application(middlewares=[_json_errors], client_max_size=MAX_BODY)
        app.router.add_get("/state", self._state)
        app.router.add_post("/connectors/{id}/plug", self._plug)
        app.router.add_post("/connectors/{id}/charge", self._charge)
        app.router.add_post("/connectors/{id}/suspend", self._suspend)
        app.router.add_post("/connectors/{id}/unplug", self._unplug)
        app.router.add_post("/connectors/{id}/fault", self._fault)
        app.router.add_post("/rfid", self._rfid)
        app.router.add_post("/meters/{id}", self._meter)
        return app

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("the control API is already running")
        runner = web.AppRunner(self.app(), access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self.port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = runner.addresses[0][1]
        log.info("firmware_sim control API on %s", self.url)

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    # ------------------------------------------------------------------ handlers
    async def _state(self, request: web.Request) -> web.Response:
        return web.json_response(self.world.state())

    async def _plug(self, request: web.Request) -> web.Response:
        cid = self._connector_id(request)
        body = await _body(request, ("cable_max_a",))
        cable = body.get("cable_max_a", 32)
        if cable is not None:
            cable = _integral(cable)
            if cable is None or cable not in (13, 20, 32, 63):
                raise ApiError(400, "cable_max_a must be 13, 20, 32, 63 or null (tethered), "
                                    f"got {body['cable_max_a']!r}")
        return self._act(cid, "plug", lambda: self.world.plug(cid, cable))

    async def _charge(self, request: web.Request) -> web.Response:
        cid = self._connector_id(request)
        body = await _body(request, ("max_current_a", "phases"))
        current = body.get("max_current_a", 16)
        if not _is_number(current) or not 0 < current <= 80:
            raise ApiError(400, f"max_current_a must be a number above 0 and at most 80, got {current!r}")
        phases = _integral(body.get("phases", 3))
        if phases not in (1, 3):
            raise ApiError(400, f"phases must be 1 or 3, got {body.get('phases')!r}")
        return self._act(cid, "charge", lambda: self.world.charge(cid, current, phases))

    async def _suspend(self, request: web.Request) -> web.Response:
        cid = self._connector_id(request)
        await _body(request, ())
        return self._act(cid, "suspend", lambda: self.world.suspend(cid))

    async def _unplug(self, request: web.Request) -> web.Response:
        cid = self._connector_id(request)
        await _body(request, ())
        return self._act(cid, "unplug", lambda: self.world.unplug(cid))

    async def _fault(self, request: web.Request) -> web.Response:
        cid = self._connector_id(request)
        body = await _body(request, ("code", "active"))
        code = body.get("code", _MISSING)
        if code is _MISSING:
            raise ApiError(400, "code is required (a fault code of SPEC.md §7)")
        if not isinstance(code, str):
            raise ApiError(400, f"code must be a string, got {code!r}")
        active = body.get("active", True)
        if not isinstance(active, bool):
            raise ApiError(400, f"active must be true or false, got {active!r}")
        return self._act(cid, "fault", lambda: self.world.set_fault(cid, code, active))

    async def _meter(self, request: web.Request) -> web.Response:
        cid = self._connector_id(request)
        body = await _body(request, ("online",))
        online = body.get("online", _MISSING)
        if not isinstance(online, bool):
            raise ApiError(400, "online is required: true or false"
                           + ("" if online is _MISSING else f", got {online!r}"))
        return self._act(cid, "meter", lambda: self.world.set_meter_online(cid, online))

    async def _rfid(self, request: web.Request) -> web.Response:
        body = await _body(request, ("uid",))
        uid = body.get("uid", _MISSING)
        if not isinstance(uid, str):
            raise ApiError(400, "uid is required: 8, 14 or 20 hexadecimal digits"
                           + ("" if uid is _MISSING else f", got {uid!r}"))
        try:
            self.world.present_card(uid)
        except ValueError as exc:
            raise ApiError(400, str(exc)) from None
        log.info("sim api: card %s presented", uid.upper())
        return web.json_response({"ok": True})

    # ------------------------------------------------------------------ helpers
    def _connector_id(self, request: web.Request) -> int:
        raw = request.match_info["id"]
        if not _ID_RE.fullmatch(raw) or int(raw) not in self.world.specs:
            raise ApiError(404, f"no connector {raw!r}; connectors: {', '.join(map(str, self.world.specs))}")
        return int(raw)

    def _act(self, cid: int, what: str, action: Callable[[], None]) -> web.Response:
        try:
            action()
        except KeyError as exc:
            raise ApiError(404, str(exc.args[0]) if exc.args else "unknown connector") from None
        except ValueError as exc:
            raise ApiError(400, str(exc)) from None
        log.info("sim api: connector %d %s", cid, what)
        return web.json_response(self.world.connector_state(cid))


async def _body(request: web.Request, fields: tuple[str, ...]) -> dict[str, Any]:
    """The request's JSON object (an empty body = {}); unknown fields are refused."""
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise ApiError(400, f"the body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object")
    unknown = sorted(set(body) - set(fields))
    if unknown:
        allowed = ", ".join(fields) if fields else "none"
        raise ApiError(400, f"unknown field {unknown[0]!r}; allowed fields: {allowed}")
    return body


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _integral(value: Any) -> int | None:
    """An int from a JSON number without fraction (32 or 32.0); None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return None
