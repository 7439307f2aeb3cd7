"""Software: the versions (OS, Station Client, Webinterface, the installed firmware package, the
EVSE controllers' firmware), the state of a firmware update, and — at the Expert user level — a
firmware package upload with a progress bar (SPEC §9).

- **OS**: ``PRETTY_NAME`` of ``/etc/os-release`` (the system edge reports no OS version).
  **Station Client** and **Webinterface** are both this stationd's version (one program).
- **Update**: ``station.ocpp.firmware`` (:class:`stationd.firmware.update.FirmwareUpdater`) —
  the status a FirmwareStatusNotification last reported and the pending job's phase; live from
  ``GET /api/software``.
- **Upload** (Expert): the package is streamed into a temporary file under
  ``<data dir>/uploads/`` (at most :data:`MAX_PACKAGE_BYTES`, never held in memory), verified
  with :func:`stationd.firmware.package.verify_package` against the station's model
  (chargePointModel, as the updater checks it) — a package for another model or a corrupted
  one is refused with the reason and deleted — and handed to
  :meth:`FirmwareUpdater.install_local`: it is installed as soon as no session is open, then
  the station reboots (the backend hears the FirmwareStatusNotifications). The page's script
  (static/station_pages.js) sends it with ``XMLHttpRequest`` to show the upload's progress;
  without script the form posts normally.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
from pathlib import Path

from aiohttp import web

from ... import __version__
from ...firmware.package import PackageError, verify_package
from ...transfer import redact
from ..guard import SESSION_KEY, UI_KEY
from ..i18n import translator
from ..templating import render
from ..uploads import UploadRefused, copy_part, parts

log = logging.getLogger("stationd.webui")

routes = web.RouteTableDef()

MAX_PACKAGE_BYTES = 512 * 1024 * 1024
OS_RELEASE = Path("/etc/os-release")


def os_version(path: Path = OS_RELEASE) -> str:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return "unknown"
    values = dict(line.split("=", 1) for line in lines if "=" in line)
    return (values.get("PRETTY_NAME") or values.get("NAME") or "unknown").strip().strip('"')


def station_model(station) -> str:
    """The model a package must be built for: chargePointModel (as BootNotification sends it)."""
    return str(station.store.get("ModelId") or "stationd")[:20]


def software(station) -> dict:
    updater = station.ocpp.firmware if station.ocpp is not None else None
    drivers = getattr(station.hardware, "drivers", {}) or {}
    job = updater.pending if updater is not None else None
    return {
        "versions": {"os": os_version(), "stationClient": __version__, "webinterface": __version__,
                     "firmware": updater.firmware_version() if updater is not None else __version__,
                     "model": station_model(station)},
        "controllers": [{"id": cid, "firmware": ".".join(map(str, d.hello.firmware_version)) if d.hello else None,
                         "hardwareId": d.hello.hardware_id if d.hello else None}
                        for cid, d in sorted(drivers.items())],
        "install": {"status": getattr(station.ocpp, "firmware_status", "Idle"),
                   "signedStatus": updater.signed_status()["status"] if updater is not None else "Idle",
                   "phase": job.phase if job is not None else None,
                   "source": (job.location.removeprefix("local:") if job.location.startswith("local:")
                              else redact(job.location)) if job is not None else None},
    }


def _page(request: web.Request, *, http_status: int = 200, message: str | None = None, ok: bool = True):
    return render(request, "software.html", http_status=http_status, title="Software",
                  data=software(request.app[UI_KEY].station), message=message, ok=ok,
                  max_package_mib=MAX_PACKAGE_BYTES // 1048576)


@routes.get("/software")
async def software_page(request: web.Request) -> web.Response:
    return _page(request)


@routes.get("/api/software")
async def software_api(request: web.Request) -> web.Response:
    return web.json_response(software(request.app[UI_KEY].station))


def _answer(request: web.Request, status: int, message: str) -> web.Response:
    if "application/json" in request.headers.get("Accept", ""):
        return web.json_response({"ok": status == 200, "message": message}, status=status)
    return _page(request, http_status=status, message=message, ok=status == 200)


async def _receive(request: web.Request, directory: Path) -> tuple[Path, str]:
    """The uploaded package in a temporary file, and its file name."""
    path: Path | None = None
    filename = ""
    directory.mkdir(parents=True, exist_ok=True)
    try:
        async for part in parts(request):
            if part.name != "package" or part.filename is None or path is not None:
                raise UploadRefused(f"{part.name or 'a part'}: not a field of this form")
            filename = Path(part.filename).name[:100] or "package"
            descriptor, name = tempfile.mkstemp(prefix="package-", suffix=".part", dir=directory)
            path = Path(name)
            with os.fdopen(descriptor, "wb") as output:
                await copy_part(part, MAX_PACKAGE_BYTES, output.write)
    except BaseException:
        if path is not None:
            with contextlib.suppress(OSError):
                path.unlink()
        raise
    if path is None:
        raise UploadRefused("choose a firmware package first")
    return path, filename


@routes.post("/software/upload")
async def upload(request: web.Request) -> web.Response:
    session = request[SESSION_KEY]
    t = translator(session.language)
    if not session.expert:
        raise web.HTTPForbidden(text="the firmware upload needs the Expert user level (User Profile)")
    station = request.app[UI_KEY].station
    updater = station.ocpp.firmware
    if (request.content_length or 0) > MAX_PACKAGE_BYTES + 64 * 1024:
        return _answer(request, 413, t("The package is too large: at most {mib} MiB.", mib=MAX_PACKAGE_BYTES // 1048576))
    try:
        path, filename = await _receive(request, Path(station.config.data_dir) / "uploads")
    except UploadRefused as problem:
        too_large = problem.too_large
        return _answer(request, 413 if too_large else 400, t("The package is too large: at most {mib} MiB.",
                                                             mib=MAX_PACKAGE_BYTES // 1048576) if too_large else str(problem))
    try:
        verified = await asyncio.to_thread(verify_package, path, expected_model=station_model(station))
        await asyncio.to_thread(updater.install_local, path, filename)
    except PackageError as problem:
        log.warning("WebUI: firmware package %s refused (%s): %s", filename, problem.kind, problem.message)
        return _answer(request, 400, t("Package refused: {reason}", reason=problem.message))
    except RuntimeError as problem:
        return _answer(request, 409, str(problem))
    finally:
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)  # moved by install_local when it was taken
    version = verified.manifest.version
    log.warning("WebUI: firmware package %s (%s) uploaded by %s; it installs once no session is open", filename,
                version, session.user)
    return _answer(request, 200, t("Package {version} verified: it is installed as soon as no charging session "
                                   "is open, then the station reboots.", version=version))
