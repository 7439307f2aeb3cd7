"""Station > Components (the EVSE controllers and "Flash Firmware") and Station > Connectors
(generic info, status, meter and power of every connector), SPEC §9.

Both pages are live: ``GET /api/station/connectors`` is the diagnostics' ``hardware(station)``
(what ``/api/status`` carries) with display texts added (the current limit and its sources,
the offered current per phase); ``GET /api/station/flash`` is the flasher's progress and its
last report.

Flash Firmware (:class:`stationd.hw.flashing.ControllerFlasher`, ``station.flasher``) applies at
once: the image goes to every controller, or one. A request the flasher refuses — an invalid
image, a controller not connected, a session open without "force" — is answered with the reason
and nothing happens; with "force" open sessions end first (StopTransaction reason Other). The
controllers' bootloaders verify the image: a corrupted one is refused there and the old firmware
keeps running; the outcome per connector shows on the page.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from ...diagnostics.sections import hardware
from ...hw.flashing import HEADER_SIZE, MAX_IMAGE_SIZE, FlashRefused
from ..guard import SESSION_KEY, UI_KEY
from ..i18n import translator
from ..templating import flash, render
from ..uploads import Upload, UploadRefused, read_form

log = logging.getLogger("stationd.webui")

routes = web.RouteTableDef()

MAX_IMAGE_BYTES = HEADER_SIZE + MAX_IMAGE_SIZE


def _version(parts) -> str | None:
    return None if parts is None else ".".join(map(str, parts))


def connectors(station) -> dict:
    """``hardware(station)`` with the texts the Connectors page shows."""
    data = hardware(station)
    for row in data["connectors"]:
        limits = row["limitsA"]
        row["currentLimitA"] = min(limits.values()) if limits else None
        row["limitsText"] = ", ".join(f"{source} {value:g} A" for source, value in sorted(limits.items())) or "-"
        offered = row["controller"]["offeredA"]
        row["perPhase"] = " / ".join(f"L{n}: {offered:g} A" for n in range(1, row["phases"] + 1)) \
            if offered is not None else "-"
    return data


def flash_state(station) -> dict:
    flasher = station.flasher
    progress, report = flasher.progress, flasher.last_report
    return {
        "busy": flasher.busy,
        "progress": None if progress is None else {
            "connectorId": progress.connector_id, "state": progress.state, "percent": progress.percent,
            "connectorPercent": progress.connector_percent, "detail": progress.detail},
        "report": None if report is None else {
            "version": _version(report.version), "ok": report.ok,
            "results": [{"connectorId": r.connector_id, "outcome": r.outcome, "before": _version(r.version_before),
                         "after": _version(r.version_after), "error": r.error} for r in report.results]},
        "versions": {str(cid): _version(version) for cid, version in flasher.versions().items()},
    }


@routes.get("/station/connectors")
async def connectors_page(request: web.Request) -> web.Response:
    return render(request, "connectors.html", title="Connectors", data=connectors(request.app[UI_KEY].station))


@routes.get("/api/station/connectors")
async def connectors_api(request: web.Request) -> web.Response:
    return web.json_response(connectors(request.app[UI_KEY].station))


def _components(request: web.Request, *, http_status: int = 200, error: str | None = None) -> web.Response:
    station = request.app[UI_KEY].station
    return render(request, "components.html", http_status=http_status, title="Components",
                  data=connectors(station), state=flash_state(station), error=error,
                  max_image_mib=MAX_IMAGE_BYTES // 1048576)


@routes.get("/station/components")
async def components_page(request: web.Request) -> web.Response:
    return _components(request)


@routes.get("/api/station/flash")
async def flash_api(request: web.Request) -> web.Response:
    return web.json_response(flash_state(request.app[UI_KEY].station))


@routes.post("/station/components/flash")
async def flash_firmware(request: web.Request) -> web.Response:
    ui = request.app[UI_KEY]
    t = translator(request[SESSION_KEY].language)
    try:
        form = await read_form(request, {"image": MAX_IMAGE_BYTES})
    except UploadRefused as problem:
        return _components(request, http_status=400, error=str(problem))
    image = form.get("image")
    if not isinstance(image, Upload) or not image.data:
        return _components(request, http_status=400, error=t("Choose a controller image file first."))
    target = str(form.get("connector", "all"))
    flasher = ui.station.flasher
    if target != "all" and not (target.isdigit() and int(target) in flasher.drivers):
        return _components(request, http_status=400, error=t("Unknown connector {id}.", id=target))
    connector_id = None if target == "all" else int(target)
    force = form.get("force") == "1"
    task = asyncio.ensure_future(flasher.flash(image.data, connector_id, force=force))
    await asyncio.sleep(0)  # the flasher checks the request before its first wait: a refusal is known now
    if task.done() and task.exception() is not None:
        problem = task.exception()
        if isinstance(problem, FlashRefused):
            return _components(request, http_status=409, error=str(problem))
        log.error("Flash Firmware failed: %r", problem)
        return _components(request, http_status=500, error=str(problem))
    ui.background(_finish(task))
    log.warning("WebUI: Flash Firmware of %s (%s, %d bytes) by %s%s", image.filename or "an image",
                "every controller" if connector_id is None else f"connector {connector_id}", len(image.data),
                request[SESSION_KEY].user, " with force" if force else "")
    flash(request, t("Flash Firmware started."))
    raise web.HTTPSeeOther("/station/components")


async def _finish(task: asyncio.Future) -> None:
    """Wait for the flash (its outcome is the flasher's last report)."""
    try:
        report = await task
    except FlashRefused as problem:
        log.warning("Flash Firmware refused: %s", problem)
        return
    except Exception:
        log.exception("Flash Firmware failed")
        return
    log.info("Flash Firmware %s: %s", "done" if report.ok else "failed",
             "; ".join(f"connector {r.connector_id} {r.outcome}" for r in report.results))
