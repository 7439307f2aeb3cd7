"""The installer WebUI: an aiohttp application over HTTPS, a daemon component.

``WebUi(station).run()`` serves on ``webui.bind`` of the station config file (192.168.32.1:443
on the device; 127.0.0.1 in the demo and tests) with the certificate of
:mod:`stationd.webui.certificate`. Pages live in :mod:`stationd.webui.pages` (one module per
menu section, each with its ``routes``), templates in ``templates/``, the stylesheet and
scripts in ``static/`` — every asset served by the station itself. Requests pass
:mod:`stationd.webui.guard` (headers, session, CSRF).

Form posts are limited to ``MAX_FORM_BYTES``; uploads (whitelist CSV, firmware, certificates)
stream through :mod:`stationd.webui.uploads` with their own limits.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from . import certificate
from .guard import UI_KEY, require_session, security_headers
from .login_limiter import LoginLimiter
from .meter_history import MeterHistory
from .pages import ROUTE_TABLES
from .sessions import SessionStore

log = logging.getLogger("stationd.webui")

STATIC_DIR = Path(__file__).parent / "static"
MAX_FORM_BYTES = 256 * 1024
LISTEN_RETRY_S = 30.0


@dataclass
class UiContext:
    """What the pages share: the station, the sessions, the login limiter, the TLS state."""

    station: object  # stationd.daemon.Station
    sessions: SessionStore
    limiter: LoginLimiter
    clock: Callable[[], float]
    started: float
    tls_origin: str = "self-signed"
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_context: ssl.SSLContext | None = None
    tasks: set[asyncio.Task] = field(default_factory=set)
    meter_history: MeterHistory = field(default_factory=MeterHistory)  # the Charts page's samples

    def background(self, coroutine) -> None:
        """Run ``coroutine`` after the answer (a delayed restart, a reboot); kept until done."""
        task = asyncio.ensure_future(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def reload_certificate(self) -> None:
        """After an upload: new connections get the new certificate (the context is shared)."""
        config = self.station.config.webui
        cert, key, self.tls_origin = certificate.server_files(Path(self.station.config.data_dir), config.tls_cert,
                                                              config.tls_key, config.address[0])
        self.tls_cert, self.tls_key = cert, key
        if self.tls_context is not None:
            self.tls_context.load_cert_chain(cert, key)


def create_app(station, *, clock: Callable[[], float] = time.monotonic, sessions: SessionStore | None = None,
               limiter: LoginLimiter | None = None) -> tuple[web.Application, UiContext]:
    ui = UiContext(station, sessions or SessionStore(clock), limiter or LoginLimiter(clock), clock, clock())
    app = web.Application(middlewares=[security_headers, require_session], client_max_size=MAX_FORM_BYTES)
    app[UI_KEY] = ui
    ui.meter_history.attach(station.core.bus)
    for table in ROUTE_TABLES:
        app.add_routes(table)
    app.router.add_static("/static/", STATIC_DIR, append_version=False)
    return app, ui


class WebUi:
    """The daemon component: serve until cancelled."""

    def __init__(self, station, *, clock: Callable[[], float] = time.monotonic):
        self.station = station
        self.app, self.ui = create_app(station, clock=clock)
        self.port: int | None = None

    async def run(self) -> None:
        config = self.station.config.webui
        host, port = config.address
        to_make = certificate.self_signed_to_make(Path(self.station.config.data_dir), config.tls_cert, config.tls_key)
        if to_make is not None:
            await certificate.make_self_signed_in_child(*to_make, host)
        self.ui.reload_certificate()
        context = certificate.server_context(self.ui.tls_cert, self.ui.tls_key)
        self.ui.tls_context = context
        runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=2.0, handle_signals=False)
        await runner.setup()
        try:
            site = web.TCPSite(runner, host, port, ssl_context=context, reuse_address=True)
            while True:
                try:
                    await site.start()
                    break
                except OSError as error:  # e.g. the address is taken, or not yet configured
                    log.error("WebUI cannot listen on %s:%s: %s; trying again in %g s", host, port, error.strerror or error,
                              LISTEN_RETRY_S)
                    await asyncio.sleep(LISTEN_RETRY_S)
            self.port = runner.addresses[0][1]
            log.info("WebUI on https://%s:%s (%s certificate)", host if ":" not in host else f"[{host}]", self.port,
                     self.ui.tls_origin)
            await asyncio.Future()
        finally:
            for task in list(self.ui.tasks):
                task.cancel()
            await runner.cleanup()
