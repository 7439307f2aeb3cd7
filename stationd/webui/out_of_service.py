"""The WebUI while the station cannot start because its storage refuses (a full or read-only
data directory): every request is answered 503 with the reason, so an installer at the station
reads why instead of meeting a refused connection. Nothing can be changed here; there is no login.

It serves the certificate the full WebUI would serve. Where that would first have to be made
(nothing to write it to), there is no page: the reason is in the log and the systemd status.
"""

from __future__ import annotations

import asyncio
import html
import logging
from collections.abc import Callable
from pathlib import Path

from aiohttp import web

from . import certificate
from .guard import HEADERS

log = logging.getLogger("stationd.webui")

RETRY_AFTER_S = 10
PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>stationd: out of service</title></head>
<body>
<h1>The station is out of service</h1>
<p>stationd cannot start: <strong>{reason}</strong>.</p>
<p>Nothing is charged and the backend is not contacted until the data directory takes writes
again; the station then starts by itself. Free space on the device or repair its storage.</p>
<hr><p lang="de">Die Station ist außer Betrieb: ihr Datenspeicher nimmt nichts auf. Sie startet
von selbst, sobald wieder geschrieben werden kann.</p>
</body></html>
"""


async def serve_out_of_service(config, reason: Callable[[], str]) -> None:
    """Serve the out-of-service page on the WebUI's address until cancelled."""
    webui = config.webui
    host, port = webui.address
    data_dir = Path(config.data_dir)
    if certificate.self_signed_to_make(data_dir, webui.tls_cert, webui.tls_key) is not None:
        log.warning("WebUI: no certificate yet and none can be made; no out-of-service page")
        return
    try:
        cert, key, _ = certificate.server_files(data_dir, webui.tls_cert, webui.tls_key, host)
        context = certificate.server_context(cert, key)
    except (OSError, ValueError) as error:
        log.warning("WebUI: cannot load its certificate (%s); no out-of-service page", error)
        return

    async def answer(request: web.Request) -> web.Response:
        response = web.Response(status=503, text=PAGE.format(reason=html.escape(reason())),
                                content_type="text/html")
        response.headers.update(HEADERS)
        response.headers["Cache-Control"] = "no-store"
        response.headers["Retry-After"] = str(RETRY_AFTER_S)
        return response

    app = web.Application(client_max_size=1024)
    app.router.add_route("*", "/{tail:.*}", answer)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0, handle_signals=False)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port, ssl_context=context, reuse_address=True).start()
        log.info("WebUI: out-of-service page on https://%s:%s", host if ":" not in host else f"[{host}]",
                 runner.addresses[0][1])
        await asyncio.Future()
    except OSError as error:
        log.warning("WebUI: cannot listen on %s:%s for the out-of-service page: %s", host, port,
                    error.strerror or error)
    finally:
        await runner.cleanup()
