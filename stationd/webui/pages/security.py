"""User Management > Security: vendor access for maintenance, and the WebUI's TLS certificate.

Vendor access (keys /Security/enableLocalVendorAccess: the local terminal;
/Security/enableRemoteVendorAccess: ssh and the vendor's OpenVPN) is switched on for a limited
time only (stationd.system.settings_bridge; the system edge ends it at expiry and the key reads
false again). It must only be used on the manufacturer's instruction and with the customer's
consent; the page says so.

The certificate: the one the WebUI serves now (from the station config file, uploaded, or
self-signed), and an upload of the installer's own certificate and key (PEM, 64 KiB each,
stationd.webui.uploads): checked, kept, and served to new connections at once.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from aiohttp import web

from .. import certificate
from ..guard import SESSION_KEY, UI_KEY
from ..i18n import translator
from ..settings_form import post_keys, render_keys
from ..templating import flash
from ..uploads import Upload, UploadRefused, read_form

log = logging.getLogger("stationd.webui")

routes = web.RouteTableDef()

SECTIONS = [("Vendor Access (Maintenance)", ["/Security/enableLocalVendorAccess", "/Security/enableRemoteVendorAccess"])]
NOTES = ["Temporarily enable vendor access for maintenance purpose.",
         ("Use it only on the manufacturer's instruction and with the customer's consent: it opens the station's "
          "operating system to the vendor (otherwise the warranty may be void). Access ends by itself after one "
          "hour, at a reboot and at a daemon restart.")]
UPLOAD_LIMITS = {"certificate": certificate.MAX_PEM_BYTES, "key": certificate.MAX_PEM_BYTES}


def _context(request: web.Request, cert_error: str | None = None) -> dict:
    ui = request.app[UI_KEY]
    access = ui.station.system.vendor_access()
    infos = [(f"Vendor access {kind}", f"on until {expiry:%Y-%m-%d %H:%M} UTC" if expiry else "off", "")
             for kind, expiry in access.items()]
    try:
        current = certificate.describe_file(ui.tls_cert, ui.tls_origin) if ui.tls_cert else None
    except (OSError, ValueError):
        current = None
    return {"notes": NOTES, "infos": infos, "certificate": current, "cert_error": cert_error,
            "from_config_file": ui.station.config.webui.tls_cert is not None,
            "limit_kib": certificate.MAX_PEM_BYTES // 1024}


@routes.get("/users/security")
async def security_page(request: web.Request) -> web.Response:
    return render_keys(request, title="Security", sections=SECTIONS, template="security.html", **_context(request))


@routes.post("/users/security")
async def security_save(request: web.Request) -> web.Response:
    return await post_keys(request, title="Security", sections=SECTIONS, template="security.html",
                           **_context(request))


@routes.post("/users/security/certificate")
async def upload_certificate(request: web.Request) -> web.Response:
    ui = request.app[UI_KEY]
    t = translator(request[SESSION_KEY].language)
    try:
        form = await read_form(request, UPLOAD_LIMITS)
        cert, key = form.get("certificate"), form.get("key")
        if not isinstance(cert, Upload) or not isinstance(key, Upload) or not cert.data or not key.data:
            raise UploadRefused("choose a certificate file and a key file")
        if ui.station.config.webui.tls_cert is not None:
            raise UploadRefused("the station config file names the WebUI certificate (webui.tls_cert); "
                                "an uploaded one would not be used")
        info = await asyncio.to_thread(certificate.install_upload, Path(ui.station.config.data_dir), cert.data,
                                       key.data)
    except (UploadRefused, certificate.CertificateRefused) as refused:
        return render_keys(request, title="Security", sections=SECTIONS, template="security.html", http_status=400,
                           **_context(request, cert_error=str(refused)))
    ui.reload_certificate()
    log.warning("WebUI certificate uploaded by %s: %s, valid until %s", request[SESSION_KEY].user, info.subject,
                info.not_after.isoformat())
    flash(request, t("Certificate installed: new connections get it."))
    raise web.HTTPSeeOther("/users/security")
