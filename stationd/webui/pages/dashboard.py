"""Dashboard: the Web Interface, the OCPP Server connection and the Station Middleware Daemon
(SPEC §9), and every connector live — status, current limit and why, power and energy.

``GET /api/status`` is the same as JSON; the page's script (static/live.js) refreshes the
tables from it every 2 s.
"""

from __future__ import annotations

import time

from aiohttp import web

from ... import __version__
from ...diagnostics.sections import hardware
from ..guard import UI_KEY
from ..templating import render

routes = web.RouteTableDef()


def status(request: web.Request) -> dict:
    ui = request.app[UI_KEY]
    station = ui.station
    ocpp = station.ocpp
    supervisor = getattr(station, "supervisor", None)
    connection = ocpp.manager.status if ocpp is not None else None
    return {
        "webInterface": {"state": "running", "uptimeS": int(ui.clock() - ui.started), "version": __version__,
                         "certificate": ui.tls_origin},
        "ocpp": {
            "connected": bool(ocpp is not None and ocpp.connected),
            "registration": getattr(ocpp, "registration", None),
            "state": getattr(connection, "state", None),
            "url": getattr(connection, "url", None),
            "securityProfile": station.store.get("SecurityProfile"),
            "lastFailure": getattr(connection, "last_failure", None),
            "nextAttemptInS": getattr(connection, "next_attempt_in", None),
        },
        "daemon": {"state": "running" if supervisor is None or supervisor.healthy else "degraded",
                   "summary": supervisor.summary() if supervisor is not None else "starting",
                   "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")},
        **hardware(station),
    }


@routes.get("/dashboard")
async def dashboard(request: web.Request) -> web.Response:
    return render(request, "dashboard.html", status=status(request))


@routes.get("/api/status")
async def api_status(request: web.Request) -> web.Response:
    return web.json_response(status(request))
