"""Station > Date/Time and Station > Power (SPEC §9).

Date/Time: the time zone (from a list, or the browser's: static/settings.js fills the list
from ``Intl.DateTimeFormat().resolvedOptions().timeZone``) and where the clock is set from —
NTP, the backend's Heartbeat answers, or the browser once: a button posts the browser's
current time, the key TimeSource becomes Browser (NTP off) and the system clock is set.
The keys TimeZone and TimeSource act on the system through stationd.system.settings_bridge.

Power: the mains and grid limits, with the vendor's warning; the load-balancing keys for
Expert users.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from aiohttp import web

from ...config.value_types import Source
from ..guard import SESSION_KEY, UI_KEY
from ..i18n import translator
from ..settings_form import post_keys, render_keys
from ..templating import flash

log = logging.getLogger("stationd.webui")

routes = web.RouteTableDef()

TIME_SECTIONS = [("", ["TimeZone", "TimeSource"])]
POWER_KEYS = ["/power/station/mainsMaxCurrent", "GridMaxPower", "GridVoltage", "GridPhaseConnection",
              "ConnectorPhaseRotation", "MaxCurrentLimit"]
LOAD_BALANCING_KEYS = ["LoadBalancingEnabled", "LoadBalancingMode", "LoadBalancingMasterURI", "LoadBalancingAlgo",
                       "LoadBalancingChargerPrivilege", "LoadBalancingMaxBuilding", "LoadBalancingMaxCluster",
                       "LoadBalancingMinCluster", "LoadBalancingStartCurrent", "LoadBalancingFallbackCurrent",
                       "LoadBalancingPhaseBalTrigger", "LoadBalancingPhaseBalBound", "LoadBalancingEnergyMeterEnabled",
                       "LoadBalancingEnergyMeterType", "LoadBalancingEnergyMeterIP"]
POWER_WARNING = "Setting wrong values may cause damage! Ask the electricity supply company for the allowed maximum values."
POWER_NOTE = ("Ideally 63000 mA are available to the station: each charge point can charge with 22 kW. A lower limit "
              "is given fully to the first charging session and shared when a second one starts.")
MAX_CLOCK_TEXT = 64


async def _time_context(request: web.Request) -> dict:
    system = request.app[UI_KEY].station.system
    status = await system.time_status()
    now = datetime.now(UTC).isoformat(timespec="seconds")
    ntp = {True: "on", False: "off", None: "unknown"}[status.ntp]
    synced = {True: "yes", False: "no", None: "unknown"}[status.synchronized]
    return {"infos": [("Station time (UTC)", now, ""), ("System time zone", status.timezone, ""),
                      ("NTP", ntp, ""), ("Synchronized", synced, "")]}


@routes.get("/station/datetime")
async def datetime_page(request: web.Request) -> web.Response:
    return render_keys(request, title="Date/Time", sections=TIME_SECTIONS, template="datetime.html",
                       **await _time_context(request))


@routes.post("/station/datetime")
async def datetime_save(request: web.Request) -> web.Response:
    return await post_keys(request, title="Date/Time", sections=TIME_SECTIONS, template="datetime.html",
                           **await _time_context(request))


@routes.post("/station/datetime/browser")
async def browser_time(request: web.Request) -> web.Response:
    """The browser's clock sets the station's once; TimeSource becomes Browser (NTP off)."""
    form = await request.post()
    t = translator(request[SESSION_KEY].language)
    text = str(form.get("time", ""))[:MAX_CLOCK_TEXT]
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        flash(request, t("The browser sent no time; nothing was changed."), "error")
        raise web.HTTPSeeOther("/station/datetime")
    station = request.app[UI_KEY].station
    station.store.set("TimeSource", "Browser", Source.LOCAL)
    log.info("WebUI: system clock set from the browser to %s", moment.isoformat())
    if await station.system.set_time(moment):
        flash(request, t("The station's clock was set from the browser."))
    else:
        flash(request, t("The station's clock could not be set."), "error")
    raise web.HTTPSeeOther("/station/datetime")


def _power_sections(request: web.Request) -> list:
    sections = [("", POWER_KEYS)]
    if request[SESSION_KEY].expert:
        sections.append(("Load Balancing", LOAD_BALANCING_KEYS))
    return sections


POWER_CONTEXT = {"warning": POWER_WARNING, "notes": [POWER_NOTE]}


@routes.get("/station/power")
async def power_page(request: web.Request) -> web.Response:
    return render_keys(request, title="Power", sections=_power_sections(request), **POWER_CONTEXT)


@routes.post("/station/power")
async def power_save(request: web.Request) -> web.Response:
    return await post_keys(request, title="Power", sections=_power_sections(request), **POWER_CONTEXT)
