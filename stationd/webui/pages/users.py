"""User Management > Users: the local RFID whitelist editor (SPEC §6).

The table ``#, UID, GID, Expiry, status`` shows 10 rows a page, in list order, with the row
actions accept / block / delete / restore and an edit form (GID, expiry, authorization);
"Hide deleted entries" (ticked by default) hides deleted rows, which stay restorable until the
daemon starts again (:mod:`stationd.auth.whitelist` purges them at start).

When changes apply — as the vendor's editor, which installers know:

- **Editor changes wait for "Save"**: adding a card, editing a row and the row actions are kept
  for the login session (:mod:`stationd.webui.whitelist_edits`) and shown marked "unsaved";
  "Save" writes them, "Discard" drops them, a logout forgets them. Once saved they apply at
  once: the daemon answers cards from the list as soon as it is written (no reboot needed,
  unlike the vendor's station).
- **Import (Update)** / **Import (Replace)** apply at once, all or nothing: the CSV
  (:mod:`stationd.auth.csv_io`, the same reader as ``stationd whitelist import``) is read
  whole; "Processed: N" counts its rows, the header included; a file with any error changes
  nothing and its errors are listed with their line numbers. Unsaved editor changes stay
  unsaved.
- **Export** downloads the saved list as ``user-export.csv``, streamed.

Expiry dates are UTC (the list's time base): the date picker is a ``datetime-local`` input
read as UTC, and the page says so.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from aiohttp import web

from ...auth.csv_io import EXPORT_FILENAME, import_csv, iter_csv
from ...auth.uid import InvalidUid, normalize_optional_uid, normalize_uid
from ...auth.whitelist import ACCEPTED, AUTHORIZATIONS, Entry, InvalidEntry, format_expiry, parse_authorization, parse_expiry
from ..guard import SESSION_KEY, UI_KEY
from ..i18n import translator
from ..templating import flash, render
from ..uploads import Upload, UploadRefused, read_form
from ..whitelist_edits import ACTIONS, PendingEdits

routes = web.RouteTableDef()

PAGE_SIZE = 10
MAX_CSV_BYTES = 16 * 1024 * 1024  # 100,000 rows of the longest plausible entries (~140 bytes)
FORM_OVERHEAD = 64 * 1024  # the token, the mode and the multipart headers around the file
PENDING_KEY = "users.pending"
MODES = {"update": "Import (Update)", "replace": "Import (Replace)"}


def _whitelist(request: web.Request):
    return request.app[UI_KEY].station.whitelist


def _pending(request: web.Request) -> PendingEdits:
    pages = request[SESSION_KEY].pages
    edits = pages.get(PENDING_KEY)
    if not isinstance(edits, PendingEdits):
        edits = pages[PENDING_KEY] = PendingEdits()
    return edits


def _now() -> datetime:
    return datetime.now(UTC)


def _view(values) -> tuple[int, bool]:
    """(page, hide deleted) from the query or a form's hidden fields."""
    text = str(values.get("page", "1"))
    page = int(text) if text.isdigit() and 0 < int(text) < 1_000_000 else 1
    hide = values.getall("hide", ["1"])[-1] != "0"
    return page, hide


def _back(page: int, hide: bool) -> str:
    return f"/users/list?page={page}&hide={1 if hide else 0}"


def _status(entry: Entry, now: datetime) -> str:
    status = entry.status_at(now)
    return "Deleted" if status == "Invalid" else status


def _rows(request: web.Request, page: int, hide: bool) -> tuple[list[dict], int, int]:
    """The rows of ``page`` (stored entries with their unsaved targets, then unsaved new
    cards), the page shown (clamped) and the number of pages."""
    whitelist, edits, now = _whitelist(request), _pending(request), _now()
    stored_total = whitelist.count(include_deleted=not hide)
    new = edits.new_entries(whitelist)
    pages = max(1, -(-(stored_total + len(new)) // PAGE_SIZE))
    page = min(page, pages)
    offset = (page - 1) * PAGE_SIZE
    stored = whitelist.entries(offset=offset, limit=PAGE_SIZE, hide_deleted=hide)
    shown = [(entry, edits.targets.get(entry.uid)) for entry in stored]
    first_new = max(0, offset - stored_total)
    shown += [(None, entry) for entry in new[first_new:first_new + PAGE_SIZE - len(shown)]]
    rows = []
    for index, (saved, target) in enumerate(shown):
        entry = target or saved
        rows.append({"number": offset + index + 1, "uid": entry.uid, "gid": entry.gid or "",
                     "expiry": format_expiry(entry.expiry), "status": _status(entry, now),
                     "deleted": entry.deleted, "blocked": entry.blocked, "unsaved": target is not None})
    return rows, page, pages


def _page(request: web.Request, *, view=None, http_status: int = 200, add_errors: dict | None = None,
          add_values=None, edit: dict | None = None, imported: dict | None = None) -> web.Response:
    """The page; ``view``: the (page, hide) a form came from (default: the query's)."""
    page, hide = view or _view(request.query)
    rows, page, pages = _rows(request, page, hide)
    whitelist = _whitelist(request)
    if edit is None and request.query.get("edit"):
        edit = _edit_form(request, request.query["edit"])
    return render(request, "users.html", http_status=http_status, title="Users", rows=rows, page=page, pages=pages,
                  hide=hide, unsaved=len(_pending(request)), count=whitelist.count(), capacity=whitelist.capacity,
                  add_errors=add_errors or {}, add_values=add_values or {"authorization": ACCEPTED},
                  authorizations=AUTHORIZATIONS, edit=edit, imported=imported, modes=MODES,
                  max_csv_mib=MAX_CSV_BYTES // 1048576)


def _edit_form(request: web.Request, uid_text: str, errors: dict | None = None, values: dict | None = None):
    try:
        uid = normalize_uid(uid_text)
    except InvalidUid:
        return None
    entry = _pending(request).current(_whitelist(request), uid)
    if entry is None or entry.deleted:
        return None
    return {"uid": uid, "errors": errors or {},
            "fields": values or {"gid": entry.gid or "", "expiry": format_expiry(entry.expiry),
                                 "authorization": entry.authorization}}


def _checked_fields(form) -> tuple[dict, dict]:
    """GID, expiry and authorization of a form: (values, errors by field)."""
    values = {name: str(form.get(name, "")).strip() for name in ("gid", "expiry", "authorization")}
    checked, errors = {}, {}
    try:
        checked["gid"] = normalize_optional_uid(values["gid"])
    except InvalidUid as problem:
        errors["gid"] = str(problem).replace("the UID", "the GID")
    try:
        checked["expiry"] = parse_expiry(values["expiry"])
    except InvalidEntry as problem:
        errors["expiry"] = str(problem)
    try:
        checked["authorization"] = parse_authorization(values["authorization"])
    except InvalidEntry as problem:
        errors["authorization"] = str(problem)
    return {"values": values, "checked": checked}, errors


@routes.get("/users/list")
async def users(request: web.Request) -> web.Response:
    return _page(request)


@routes.post("/users/list/add")
async def add(request: web.Request) -> web.Response:
    form = await request.post()
    t = translator(request[SESSION_KEY].language)
    whitelist, edits = _whitelist(request), _pending(request)
    fields, errors = _checked_fields(form)
    values = {**fields["values"], "uid": str(form.get("uid", "")).strip()}
    uid = None
    try:
        uid = normalize_uid(values["uid"])
    except InvalidUid as problem:
        errors["uid"] = str(problem)
    if uid is not None:
        existing = edits.current(whitelist, uid)
        if existing is not None and not existing.deleted:
            errors["uid"] = t("UID {uid} is already in the list: edit its row instead.", uid=uid)
    if errors:
        return _page(request, view=_view(form), http_status=400, add_errors=errors, add_values=values)
    edits.stage(whitelist, Entry(uid, **fields["checked"]))
    flash(request, t("Card {uid} added: unsaved until you press Save.", uid=uid))
    page, hide = _view(form)
    raise web.HTTPSeeOther(_back(page, hide))


@routes.post("/users/list/edit")
async def edit(request: web.Request) -> web.Response:
    form = await request.post()
    t = translator(request[SESSION_KEY].language)
    whitelist, edits = _whitelist(request), _pending(request)
    uid_text = str(form.get("uid", ""))
    current = _edit_form(request, uid_text)
    if current is None:
        raise web.HTTPBadRequest(text="no such entry (deleted or not in the list)")
    fields, errors = _checked_fields(form)
    if errors:
        return _page(request, view=_view(form), http_status=400, edit=_edit_form(request, uid_text, errors, fields["values"]))
    entry = edits.current(whitelist, current["uid"])
    edits.stage(whitelist, entry._replace(**fields["checked"]))
    flash(request, t("Card {uid} changed: unsaved until you press Save.", uid=current["uid"]))
    page, hide = _view(form)
    raise web.HTTPSeeOther(_back(page, hide))


@routes.post("/users/list/action")
async def action(request: web.Request) -> web.Response:
    form = await request.post()
    what = str(form.get("action", ""))
    if what not in ACTIONS:
        raise web.HTTPBadRequest(text=f"unknown action; one of {', '.join(ACTIONS)}")
    try:
        uid = normalize_uid(str(form.get("uid", "")))
    except InvalidUid as problem:
        raise web.HTTPBadRequest(text=str(problem)) from None
    problem = _pending(request).act(_whitelist(request), uid, what, _now())
    if problem:
        flash(request, problem, "error")
    page, hide = _view(form)
    raise web.HTTPSeeOther(_back(page, hide))


@routes.post("/users/list/save")
async def save(request: web.Request) -> web.Response:
    form = await request.post()
    t = translator(request[SESSION_KEY].language)
    written, problems = await asyncio.to_thread(_pending(request).save, _whitelist(request))
    flash(request, t("Saved: {count} change(s).", count=written))
    for problem in problems:
        flash(request, t("Not saved: {problem}", problem=problem), "error")
    page, hide = _view(form)
    raise web.HTTPSeeOther(_back(page, hide))


@routes.post("/users/list/discard")
async def discard(request: web.Request) -> web.Response:
    form = await request.post()
    _pending(request).targets.clear()
    flash(request, translator(request[SESSION_KEY].language)("Unsaved changes discarded."))
    page, hide = _view(form)
    raise web.HTTPSeeOther(_back(page, hide))


@routes.post("/users/list/import")
async def import_(request: web.Request) -> web.Response:
    t = translator(request[SESSION_KEY].language)
    refused = None
    if (request.content_length or 0) > MAX_CSV_BYTES + FORM_OVERHEAD:
        refused = (413, t("The file is too large: at most {mib} MiB.", mib=MAX_CSV_BYTES // 1048576))
    else:
        try:
            form = await read_form(request, {"file": MAX_CSV_BYTES})
        except UploadRefused as problem:
            too_large = problem.too_large
            refused = (413, t("The file is too large: at most {mib} MiB.", mib=MAX_CSV_BYTES // 1048576)) \
                if too_large else (400, str(problem))
    if refused is not None:
        return _page(request, http_status=refused[0],
                     imported={"mode": None, "processed": None, "errors": [refused[1]], "summary": None})
    mode, received = form.get("mode"), form.get("file")
    if mode not in MODES:
        raise web.HTTPBadRequest(text="mode: update or replace")
    if not isinstance(received, Upload) or not received.filename and not received.data:
        return _page(request, http_status=400, imported={"mode": MODES[mode], "processed": None, "summary": None,
                                                         "errors": [t("Choose a CSV file first.")]})
    result = await asyncio.to_thread(import_csv, _whitelist(request), received.data, mode == "replace")
    imported = {"mode": MODES[mode], "processed": result.processed, "summary": result.summary,
                "errors": [str(error) for error in result.errors]}
    return _page(request, http_status=200 if result.ok else 400, imported=imported)


@routes.get("/users/list/export")
async def export(request: web.Request) -> web.StreamResponse:
    chunks = iter_csv(_whitelist(request))
    response = web.StreamResponse(headers={"Content-Type": "text/csv; charset=utf-8",
                                           "Content-Disposition": f'attachment; filename="{EXPORT_FILENAME}"'})
    await response.prepare(request)
    while (chunk := await asyncio.to_thread(next, chunks, None)) is not None:
        await response.write(chunk)
    await response.write_eof()
    return response
