"""User Management > Authentication (SPEC §6): what a user needs to provide, and the whitelist source.

"User needs to provide" is not a key of its own; it is two keys together:

* **any unknown RFID or a whitelisted RFID**: CsMode 0 (authenticated) and
  AllowOfflineTxForUnknownId true (online the backend decides; offline any card starts);
* **no RFID** (free charging): CsMode 1; each session is authorized with the dummy id
  (``/hw/auth/device/Dummy/id/value``, set here in Expert mode), which the backend must accept;
* **a whitelisted RFID**: CsMode 0 and AllowOfflineTxForUnknownId false (the local whitelist
  first, then the backend).

Whitelist source: WhitelistSource (OCPP managed, or the local whitelist). Expert users also
see the keys that refine offline and cached authorization.
"""

from __future__ import annotations

from aiohttp import web

from ..guard import SESSION_KEY, UI_KEY
from ..settings_form import flash_saved, render_keys, save

routes = web.RouteTableDef()

MODES = {  # mode -> the key values it stands for
    "any": {"CsMode": "0", "AllowOfflineTxForUnknownId": "true"},
    "none": {"CsMode": "1"},
    "whitelisted": {"CsMode": "0", "AllowOfflineTxForUnknownId": "false"},
}
MODE_TEXT = {"any": "any unknown RFID or a whitelisted RFID", "none": "no RFID (free charging)",
             "whitelisted": "a whitelisted RFID"}
MODE_KEYS = ("CsMode", "AllowOfflineTxForUnknownId")
SOURCE_KEYS = ["WhitelistSource"]
EXPERT_KEYS = ["/hw/auth/device/Dummy/id/value", "/hw/auth/device/Dummy/allowStop", "LocalAuthorizeOffline",
               "LocalPreAuthorize", "AuthorizationCacheEnabled", "AuthCacheLifeTime", "LocalAuthListEnabled",
               "AuthorizeRemoteTxRequests", "MasterSerial"]


def current_mode(store) -> str:
    if store.get("CsMode") == 1:
        return "none"
    return "any" if store.get("AllowOfflineTxForUnknownId") else "whitelisted"


def _sections(request: web.Request) -> list:
    sections = [("Whitelist source", SOURCE_KEYS)]
    if request[SESSION_KEY].expert:
        sections.append(("Reader", EXPERT_KEYS))
    return sections


def _context(request: web.Request, mode: str | None = None, mode_error: str | None = None) -> dict:
    store = request.app[UI_KEY].station.store
    return {"modes": MODE_TEXT, "mode": mode or current_mode(store), "mode_error": mode_error}


@routes.get("/users/authentication")
async def authentication_page(request: web.Request) -> web.Response:
    return render_keys(request, title="Authentication", sections=_sections(request), template="authentication.html",
                       **_context(request))


@routes.post("/users/authentication")
async def authentication_save(request: web.Request) -> web.Response:
    form = dict(await request.post())
    mode = str(form.get("mode", ""))
    if mode not in MODES:
        return render_keys(request, title="Authentication", sections=_sections(request),
                           template="authentication.html", http_status=400,
                           **_context(request, mode_error="choose one of the listed modes"))
    form.update(MODES[mode])
    sections = _sections(request)
    names = [*MODE_KEYS, *(name for _, group in sections for name in group)]
    outcome = await save(request, names, form=form)
    if not outcome.ok:
        return render_keys(request, title="Authentication", sections=sections, outcome=outcome,
                           template="authentication.html", http_status=400, **_context(request, mode))
    flash_saved(request, outcome)
    raise web.HTTPSeeOther(request.path)
