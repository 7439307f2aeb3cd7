"""Login, logout, the password change, the user profile (level, language) and the admin menu's
Restart Daemon / Reboot System.

The only user is ``admin``. Its password is the serial number until it is changed (DESIGN
§5.6): the first login with it leads to the password form and nowhere else. The password is
the key ``/WebUi/password/reset`` (scrypt hash, the same key a CLI or backend would set).
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from ...config.value_types import Source
from ...factory_reset import WEBUI_PASSWORD_KEY, webui_password_matches
from ..guard import SESSION_KEY, UI_KEY
from ..i18n import LANGUAGE_COOKIE, LANGUAGES, translator
from ..sessions import COOKIE, LEVELS
from ..templating import flash, language_of, render

log = logging.getLogger("stationd.webui")

routes = web.RouteTableDef()
USER = "admin"
MAX_RESTART_DELAY_S = 3600


def client_of(request: web.Request) -> str:
    return request.remote or "unknown"


def safe_next(target: str | None) -> str:
    """Only a path on this server (never ``//host`` or a scheme) is followed after login."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/dashboard"


@routes.get("/")
async def root(request: web.Request) -> web.Response:
    raise web.HTTPSeeOther("/dashboard")


@routes.get("/login")
async def login_form(request: web.Request) -> web.Response:
    if request.get(SESSION_KEY) is not None:
        raise web.HTTPSeeOther("/dashboard")
    response = render(request, "login.html", next=safe_next(request.query.get("next")), error=None)
    requested = request.query.get("lang")
    if requested in LANGUAGES:
        response.set_cookie(LANGUAGE_COOKIE, requested, secure=True, httponly=True, samesite="Strict", path="/")
    return response


@routes.post("/login")
async def login(request: web.Request) -> web.Response:
    ui = request.app[UI_KEY]
    form = await request.post()
    user, password = str(form.get("user", "")), str(form.get("password", ""))
    target = safe_next(str(form.get("next", "")))
    t = translator(language_of(request))
    client = client_of(request)
    wait = ui.limiter.wait_s(client)
    if wait > 0:
        log.warning("WebUI login from %s refused: locked out for %.0f s more", client, wait)
        return render(request, "login.html", http_status=429, next=target,
                      error=t("Too many failed logins; try again in {seconds} s.", seconds=int(wait + 0.999)))
    store = ui.station.store
    if user != USER or not await asyncio.to_thread(webui_password_matches, store, password):
        ui.limiter.failed(client)
        log.warning("WebUI login from %s failed (user %r)", client, user[:40])
        return render(request, "login.html", http_status=401, next=target, error=t("Wrong user or password."))
    ui.limiter.succeeded(client)
    must_change = not store.is_set(WEBUI_PASSWORD_KEY)
    session = ui.sessions.create(USER, must_change_password=must_change, language=language_of(request))
    log.info("WebUI login of %s from %s%s", USER, client, " (default password: must change it)" if must_change else "")
    response = web.HTTPSeeOther("/password" if must_change else target)
    response.set_cookie(COOKIE, session.token, secure=True, httponly=True, samesite="Strict", path="/")
    raise response


@routes.get("/logout")
async def logout_form(request: web.Request) -> web.Response:
    return render(request, "logout.html")


@routes.post("/logout")
async def logout(request: web.Request) -> web.Response:
    session = request[SESSION_KEY]
    request.app[UI_KEY].sessions.end(session.token)
    response = web.HTTPSeeOther("/login?bye=1")
    response.del_cookie(COOKIE, path="/")
    raise response


@routes.get("/password")
async def password_form(request: web.Request) -> web.Response:
    return render(request, "password.html", errors={})


@routes.post("/password")
async def change_password(request: web.Request) -> web.Response:
    session = request[SESSION_KEY]
    ui = request.app[UI_KEY]
    store = ui.station.store
    t = translator(session.language)
    form = await request.post()
    old, new, repeat = (str(form.get(name, "")) for name in ("old", "new", "repeat"))
    errors: dict[str, str] = {}
    if not await asyncio.to_thread(webui_password_matches, store, old):
        errors["old"] = t("The old password is wrong.")
    if new != repeat:
        errors["repeat"] = t("The new passwords differ.")
    elif new == str(store.get("SerialNumber")):
        errors["new"] = t("The new password must differ from the serial number.")
    else:
        problem = store.check(WEBUI_PASSWORD_KEY, new, Source.LOCAL)
        if not problem.ok:
            errors["new"] = problem.reason.split(": ", 1)[-1]
    if errors:
        return render(request, "password.html", http_status=400, errors=errors)
    result = await asyncio.to_thread(store.set, WEBUI_PASSWORD_KEY, new, Source.LOCAL)
    if not result.ok:
        return render(request, "password.html", http_status=400, errors={"new": result.reason})
    session.must_change_password = False
    ui.sessions.end_all(session.user, keep=session.token)
    log.info("WebUI password of %s changed", session.user)
    flash(request, t("Password changed."))
    raise web.HTTPSeeOther("/dashboard")


@routes.get("/profile")
async def profile_form(request: web.Request) -> web.Response:
    return render(request, "profile.html", levels=LEVELS)


@routes.post("/profile")
async def save_profile(request: web.Request) -> web.Response:
    session = request[SESSION_KEY]
    form = await request.post()
    level, language = str(form.get("level", session.level)), str(form.get("language", session.language))
    if level not in LEVELS or language not in LANGUAGES:
        raise web.HTTPBadRequest(text="unknown user level or language")
    session.level, session.language = level, language
    flash(request, translator(language)("Saved."))
    response = web.HTTPSeeOther("/profile")
    response.set_cookie(LANGUAGE_COOKIE, language, secure=True, httponly=True, samesite="Strict", path="/")
    raise response


@routes.get("/admin/restart")
async def restart_form(request: web.Request) -> web.Response:
    return render(request, "restart.html", error=None)


@routes.post("/admin/restart")
async def restart(request: web.Request) -> web.Response:
    form = await request.post()
    text = str(form.get("seconds", "0")).strip() or "0"
    if not text.isdigit() or int(text) > MAX_RESTART_DELAY_S:
        return render(request, "restart.html", http_status=400, error=f"seconds: a whole number from 0 to {MAX_RESTART_DELAY_S}")
    delay = int(text)
    system = request.app[UI_KEY].station.system
    log.warning("WebUI: daemon restart in %d s requested by %s", delay, request[SESSION_KEY].user)

    async def later() -> None:
        await asyncio.sleep(delay)
        await system.restart_daemon("WebUI: Restart Daemon")

    request.app[UI_KEY].background(later())
    return render(request, "restarting.html", seconds=delay, what="Restart Daemon")


@routes.get("/admin/reboot")
async def reboot_form(request: web.Request) -> web.Response:
    return render(request, "reboot.html")


@routes.post("/admin/reboot")
async def reboot(request: web.Request) -> web.Response:
    system = request.app[UI_KEY].station.system
    log.warning("WebUI: system reboot requested by %s", request[SESSION_KEY].user)

    async def soon() -> None:
        await asyncio.sleep(1)  # the answer reaches the browser first
        await system.reboot("WebUI: Reboot System")

    request.app[UI_KEY].background(soon())
    return render(request, "restarting.html", seconds=1, what="Reboot System")
