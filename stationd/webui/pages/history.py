"""History: the charging sessions (filter, pages, CSV export) and the live power/energy charts.

- ``GET /sessions``: the session history, newest first, ``PAGE_SIZE`` a page, filtered by
  date range (UTC), connector and idTag (:mod:`stationd.webui.session_history`).
- ``GET /sessions/export.csv``: every session of the same filter as CSV, streamed a batch at a
  time (no row cap), named ``sessions-<serial>-<YYYYMMDD>.csv``.
- ``GET /charts`` and ``GET /api/charts``: the last hour of meter samples per connector
  (:mod:`stationd.webui.meter_history`), drawn by ``static/charts.js``.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

from aiohttp import web

from .. import session_history as history
from ..guard import UI_KEY
from ..i18n import translator
from ..templating import language_of, render

routes = web.RouteTableDef()


def _anonymous_tag(station) -> str:
    return str(station.store.get("/hw/auth/device/Dummy/id/value"))


def _serial(station) -> str:
    return str(station.store.get("SerialNumber") or station.config.identity.serial_number)


def duration(seconds: int | None) -> str:
    """``H:MM:SS`` (empty while the session is open)."""
    if seconds is None:
        return ""
    minutes, secs = divmod(max(0, seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}"


@routes.get("/sessions")
async def sessions(request: web.Request) -> web.Response:
    station = request.app[UI_KEY].station
    connector_ids = sorted(station.core.connectors)
    where, errors = history.parse_filter(request.query, connector_ids)
    t = translator(language_of(request))
    errors = {name: t(message) for name, message in errors.items()}
    number = request.query.get("page", "1")
    number = int(number) if number.isdigit() and int(number) > 0 else 1
    total = await asyncio.to_thread(history.count, station.db, where)
    pages = max(1, -(-total // history.PAGE_SIZE))
    number = min(number, pages)
    rows = await asyncio.to_thread(history.page, station.db, where, number, _anonymous_tag(station))
    return render(request, "sessions.html", http_status=400 if errors else 200, rows=rows, total=total,
                  page=number, pages=pages, query=where.query(), form=request.query, errors=errors,
                  connector_ids=connector_ids, duration=duration)


@routes.get("/sessions/export.csv")
async def export(request: web.Request) -> web.StreamResponse:
    station = request.app[UI_KEY].station
    where, errors = history.parse_filter(request.query, sorted(station.core.connectors))
    if errors:
        raise web.HTTPBadRequest(text="; ".join(f"{name}: {message}" for name, message in errors.items()))
    today = datetime.now(timezone.utc).strftime("%Y%m%d")
    name = f"sessions-{_serial(station)}-{today}.csv".replace('"', "")
    response = web.StreamResponse(headers={"Content-Type": "text/csv; charset=utf-8",
                                           "Content-Disposition": f'attachment; filename="{name}"'})
    await response.prepare(request)
    await response.write(history.csv_lines([], header=True).encode())
    tag, before = _anonymous_tag(station), None
    while True:
        rows = await asyncio.to_thread(history.batch_after, station.db, where, before, tag)
        if not rows:
            break
        await response.write(history.csv_lines(rows).encode())
        before = rows[-1].session_id
    await response.write_eof()
    return response


@routes.get("/charts")
async def charts(request: web.Request) -> web.Response:
    station = request.app[UI_KEY].station
    return render(request, "charts.html", connector_ids=sorted(station.core.connectors),
                  window_min=int(request.app[UI_KEY].meter_history.window_s // 60))


@routes.get("/api/charts")
async def api_charts(request: web.Request) -> web.Response:
    ui = request.app[UI_KEY]
    return web.json_response(ui.meter_history.as_json(sorted(ui.station.core.connectors)))
