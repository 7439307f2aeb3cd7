"""Rendering pages: Jinja2 templates (autoescaped) with what every page needs.

Every template gets ``t`` (the translator of the session's language), ``session``, ``csrf``
(the token for forms), ``menu`` / ``admin_menu`` (filtered by user level), ``current`` (the
request path, for the menu's highlight), ``station_name`` and ``flashes`` (messages shown once).
"""

from __future__ import annotations

from typing import Any

import jinja2
from aiohttp import web

from .guard import SESSION_KEY, UI_KEY
from .i18n import LANGUAGE_COOKIE, LANGUAGES, pick_language, translator
from .navigation import ADMIN_MENU, MENU

ENVIRONMENT = jinja2.Environment(
    loader=jinja2.PackageLoader("stationd.webui", "templates"),
    autoescape=jinja2.select_autoescape(("html",), default=True),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def language_of(request: web.Request) -> str:
    session = request.get(SESSION_KEY)
    if session is not None:
        return session.language
    return pick_language(request.cookies.get(LANGUAGE_COOKIE), request.headers.get("Accept-Language"))


def render(request: web.Request, template: str, *, http_status: int = 200, **context: Any) -> web.Response:
    session = request.get(SESSION_KEY)
    expert = session is not None and session.expert
    menu = [(section, [page for page in section.pages if expert or not page.expert]) for section in MENU]
    flashes = []
    if session is not None:
        flashes, session.flash = session.flash, []
    station = request.app[UI_KEY].station
    values = {
        "t": translator(language_of(request)),
        "session": session,
        "csrf": session.csrf if session else "",
        "menu": [(section, pages) for section, pages in menu if pages],
        "admin_menu": ADMIN_MENU,
        "current": request.path,
        "languages": LANGUAGES,
        "language": language_of(request),
        "station_name": station.store.get("BoxId") or station.config.identity.serial_number,
        "flashes": flashes,
        **context,
    }
    body = ENVIRONMENT.get_template(template).render(values)
    return web.Response(text=body, status=http_status, content_type="text/html", charset="utf-8")


def flash(request: web.Request, message: str, kind: str = "ok") -> None:
    """A message for the next page the session sees (after a redirect)."""
    session = request.get(SESSION_KEY)
    if session is not None:
        session.flash.append((kind, message))
