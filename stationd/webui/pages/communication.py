"""Communication > OCPP and Communication > Modbus (SPEC §2, §9).

OCPP: the server (operator profile and URL), the charging station's identity (Chargebox ID
read-only, derived from the serial number by the Chargebox ID template of the station config
file) and the Authorization Key (write-only), the security profile, heartbeat and the
connection's timing. Expert users also get "custom settings": every key as GetConfiguration
lists it, each editable on its own (``/communication/ocpp/key?name=...``).

Modbus: the station's Modbus TCP server on or off; its address comes from the station config file.
"""

from __future__ import annotations

from urllib.parse import urlencode

from aiohttp import web

from ...config.registry import Access
from ...config.station_file import CUSTOM_PROFILE
from ...factory_reset import WEBUI_PASSWORD_KEY
from ..guard import SESSION_KEY, UI_KEY
from ..settings_form import post_keys, render_keys

routes = web.RouteTableDef()

PROTOCOL_VERSION = "OCPP-J 1.6 (JSON via HTTP WebSocket)"
OCPP_SECTIONS = [
    ("Server (Central System Service)", ["Endpoint", "SecurityProfile", "ServerMode"]),
    ("Charging Station (Charge Point Service)", ["BoxId", "AuthorizationKey", "CpoName"]),
    ("Connection", ["HeartbeatInterval", "WebSocketPingInterval", "RetryBackoffWaitMinimum",
                    "RetryBackoffRandomRange", "RetryRepeatTimes", "TransactionMessageAttempts",
                    "TransactionMessageRetryInterval"]),
]
OCPP_READONLY = ("BoxId",)  # the vendor's page: the Chargebox ID comes from the serial number
MODBUS_SECTIONS = [("", ["ModbusServerEnabled"])]
CONFIG_FILE_NOTE = "from the station config file; applies after a daemon restart"


def _ocpp_context(request: web.Request) -> dict:
    station = request.app[UI_KEY].station
    config = station.config
    profile = config.ocpp.selected_profile
    infos = [
        ("Operator", config.ocpp.operator_profile, CONFIG_FILE_NOTE),
        ("Protocol Version", PROTOCOL_VERSION, ""),
        ("Chargebox ID (Template)", config.identity.chargebox_id_template, CONFIG_FILE_NOTE),
    ]
    if profile is not None:
        infos[1:1] = [("Server Vendor", profile.server_vendor, CONFIG_FILE_NOTE),
                      ("Server Profile", profile.server_profile, CONFIG_FILE_NOTE)]
    notes = [("The Chargebox ID cannot be changed here: it is made from the serial number by the Chargebox ID "
              "template.")]
    if config.ocpp.operator_profile != CUSTOM_PROFILE:
        notes.append("The URL comes from the operator profile; a URL set here is used instead until the profile "
                     "is changed in the station config file.")
    session = request[SESSION_KEY]
    return {"infos": infos, "notes": notes, "expert": session.expert,
            "readings": station.store.readings() if session.expert else []}


@routes.get("/communication/ocpp")
async def ocpp_page(request: web.Request) -> web.Response:
    return render_keys(request, title="OCPP", sections=OCPP_SECTIONS, readonly=OCPP_READONLY, template="ocpp.html",
                       **_ocpp_context(request))


@routes.post("/communication/ocpp")
async def ocpp_save(request: web.Request) -> web.Response:
    return await post_keys(request, title="OCPP", sections=OCPP_SECTIONS, readonly=OCPP_READONLY,
                           template="ocpp.html", **_ocpp_context(request))


def _custom_key(request: web.Request, name: str) -> str:
    """The key the Expert edits (its registry name); 403 below Expert, 404 for an unknown or read-only key."""
    if not request[SESSION_KEY].expert:
        raise web.HTTPForbidden(text="custom settings need the Expert user level (User Profile)")
    entry = request.app[UI_KEY].station.store.resolve(name)
    if entry is None or entry.key.access is Access.R or entry.key.name == WEBUI_PASSWORD_KEY:
        raise web.HTTPNotFound(text="no writable configuration key of that name (the WebUI password: User Profile)")
    return entry.name


def _key_sections(name: str) -> list:
    return [("", [name])]


@routes.get("/communication/ocpp/key")
async def custom_key_page(request: web.Request) -> web.Response:
    name = _custom_key(request, request.query.get("name", ""))
    return render_keys(request, title="Custom settings", sections=_key_sections(name), template="ocpp_key.html",
                       key=name)


@routes.post("/communication/ocpp/key")
async def custom_key_save(request: web.Request) -> web.Response:
    form = await request.post()
    name = _custom_key(request, str(form.get("key", "")))
    return await post_keys(request, title="Custom settings", sections=_key_sections(name), form=form,
                           template="ocpp_key.html", key=name,
                           redirect=f"/communication/ocpp/key?{urlencode({'name': name})}")


@routes.get("/communication/modbus")
async def modbus_page(request: web.Request) -> web.Response:
    return render_keys(request, title="Modbus", sections=MODBUS_SECTIONS, **_modbus_context(request))


@routes.post("/communication/modbus")
async def modbus_save(request: web.Request) -> web.Response:
    return await post_keys(request, title="Modbus", sections=MODBUS_SECTIONS, **_modbus_context(request))


def _modbus_context(request: web.Request) -> dict:
    config = request.app[UI_KEY].station.config.modbus_server
    return {"notes": ["The station's Modbus TCP server for energy managers; it runs permanently while enabled."],
            "infos": [("Address", config.bind, CONFIG_FILE_NOTE), ("Unit id", config.unit_id, CONFIG_FILE_NOTE)]}

