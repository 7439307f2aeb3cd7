"""What every WebUI request passes through: security headers, the session, CSRF and Origin.

- **Headers** on every answer: a Content-Security-Policy without inline script or style and
  without any other host (``default-src 'self'``), frame denial (``frame-ancestors 'none'``,
  X-Frame-Options DENY), ``nosniff``, no referrer to other sites, HSTS, and ``no-store`` for
  everything but static assets.
- **Session**: every path except ``/login`` and ``/static/`` needs one. Without it a page
  (GET of HTML) is redirected to the login page; everything else — JSON under ``/api/``, any
  POST — is answered 401. A session whose password must still be changed reaches only the
  password form, ``/logout`` and static assets.
- **CSRF**: every POST/PUT/PATCH/DELETE with a session carries the session's token, as the
  form field ``csrf_token`` or the header ``X-CSRF-Token`` (multipart uploads: the header, or
  the first part named ``csrf_token`` — checked by :func:`stationd.webui.uploads`), and an
  ``Origin`` header, when the browser sends one, must name this server. The login form has
  no session yet: its Origin is checked, and SameSite=Strict cookies do the rest.
"""

from __future__ import annotations

import hmac
from urllib.parse import quote, urlsplit

from aiohttp import web

from .sessions import COOKIE

PUBLIC_PREFIXES = ("/static/",)
PUBLIC_PATHS = frozenset({"/login"})
PASSWORD_CHANGE_PATHS = frozenset({"/password", "/logout"})
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SESSION_KEY: web.RequestKey = web.RequestKey("session", object)  # the Session or None
UI_KEY: web.AppKey = web.AppKey("ui", object)  # the UiContext

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    # not "no-referrer": with it a browser sends "Origin: null" on its own form posts, and the
    # Origin check below would refuse every one of them; no request ever goes to another host
    "Referrer-Policy": "same-origin",
    "Strict-Transport-Security": "max-age=31536000",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def wants_html(request: web.Request) -> bool:
    return request.method == "GET" and not request.path.startswith("/api/")


def same_origin(request: web.Request) -> bool:
    """False when the browser says the request comes from another site."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True  # not a browser's cross-site form or fetch (they always send Origin on POST)
    parts = urlsplit(origin)
    return parts.scheme in ("https", "http") and parts.netloc == request.host


def csrf_ok(request: web.Request, session, form_token: str | None) -> bool:
    token = request.headers.get(CSRF_HEADER) or form_token or ""
    return hmac.compare_digest(token.encode(), session.csrf.encode())


@web.middleware
async def security_headers(request: web.Request, handler):
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        response = exc
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    if not request.path.startswith(PUBLIC_PREFIXES):
        response.headers["Cache-Control"] = "no-store"
    if isinstance(response, web.HTTPException):
        raise response
    return response


@web.middleware
async def require_session(request: web.Request, handler):
    session = request.app[UI_KEY].sessions.get(request.cookies.get(COOKIE))
    request[SESSION_KEY] = session
    path = request.path
    if is_public(path):
        if request.method in STATE_CHANGING and not same_origin(request):
            raise web.HTTPForbidden(text="cross-site request refused")
        return await handler(request)
    if session is None:
        if wants_html(request):
            target = request.path_qs if request.path != "/" else "/dashboard"
            raise web.HTTPSeeOther(f"/login?next={quote(target, safe='/')}")
        raise web.HTTPUnauthorized(text="log in first", headers={"WWW-Authenticate": 'FormLogin realm="stationd"'})
    if request.method in STATE_CHANGING:
        if not same_origin(request):
            raise web.HTTPForbidden(text="cross-site request refused")
        if not request.content_type.startswith("multipart/"):
            form = await request.post() if request.content_type == "application/x-www-form-urlencoded" else {}
            token = form.get(CSRF_FIELD)
            if not csrf_ok(request, session, token if isinstance(token, str) else None):
                raise web.HTTPForbidden(text="CSRF token missing or wrong; reload the page")
    if session.must_change_password and path not in PASSWORD_CHANGE_PATHS:
        if wants_html(request):
            raise web.HTTPSeeOther("/password")
        raise web.HTTPForbidden(text="change the default password first")
    return await handler(request)
