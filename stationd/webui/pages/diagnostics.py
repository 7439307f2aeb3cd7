"""Diagnostics (Expert level only): the OCPP message log and the outbox's dead letters.

- ``GET /ocpp/log`` and ``GET /api/ocpp/log?action=&n=``: the last frames in both directions
  from the OCPP journal (secrets are masked by the journal before it keeps a frame), with
  time, direction and action (a CALLRESULT/CALLERROR gets the action of its CALL when that is
  still in the journal); ``static/ocpp_log.js`` refreshes the table live.
- ``GET /ocpp/dead-letters``: the messages (the oldest ``MAX_LETTERS``) the outbox parked after
  the backend kept refusing them, with reason, attempts, last error and time. The outbox keeps
  them until someone acts on them: ``POST /ocpp/dead-letters`` with the ticked ``letter`` ids
  and ``operation`` ``requeue`` (send again, at the end of the queue; a StartTransaction takes
  its session's parked messages along) or ``discard`` (delete for good, after a confirmation).

A Default-level session gets 403 with a message (the pages are for the Expert level).
"""

from __future__ import annotations

import json
import logging

from aiohttp import web

from ..guard import SESSION_KEY, UI_KEY
from ..i18n import translator
from ..templating import flash, render

log = logging.getLogger("stationd.webui")

routes = web.RouteTableDef()

DEFAULT_FRAMES = 200
MAX_FRAMES = 500
MAX_LETTERS = 1000
CALL, RESULT, ERROR = 2, 3, 4
EXPERT_ONLY = "This page needs the Expert user level (User Profile)."


def _require_expert(request: web.Request) -> web.Response | None:
    session = request[SESSION_KEY]
    if session.expert:
        return None
    if request.path.startswith("/api/"):
        raise web.HTTPForbidden(text=EXPERT_ONLY)
    return render(request, "expert_only.html", http_status=403, message=translator(session.language)(EXPERT_ONLY))


def frames(journal, n: int, action: str = "") -> list[dict]:
    """The last ``n`` journal frames, newest first, as dicts; only ``action``'s when given."""
    entries = journal.recent(MAX_FRAMES) if journal is not None else []
    actions: dict[str, str] = {}
    out = []
    for entry in entries:
        kind, unique_id, name = _frame_parts(entry.text)
        if kind == CALL and unique_id is not None:
            actions[unique_id] = name
        elif unique_id is not None:
            name = actions.get(unique_id, "")
        out.append({"time": entry.time.isoformat(timespec="milliseconds"), "direction": entry.direction,
                    "type": {CALL: "CALL", RESULT: "CALLRESULT", ERROR: "CALLERROR"}.get(kind, "?"),
                    "action": name, "id": unique_id or "", "frame": entry.text})
    if action:
        out = [frame for frame in out if frame["action"] == action]
    return out[::-1][:n]


def _frame_parts(text: str) -> tuple[int | None, str | None, str]:
    try:
        message = json.loads(text)
    except ValueError:
        return None, None, ""
    if not isinstance(message, list) or len(message) < 3 or message[0] not in (CALL, RESULT, ERROR):
        return None, None, ""
    unique_id = str(message[1])
    return message[0], unique_id, str(message[2]) if message[0] == CALL else ""


def _query(request: web.Request) -> tuple[int, str]:
    text = request.query.get("n", "")
    n = min(int(text), MAX_FRAMES) if text.isdigit() and int(text) > 0 else DEFAULT_FRAMES
    return n, request.query.get("action", "").strip()[:64]


def _journal(request: web.Request):
    ocpp = request.app[UI_KEY].station.ocpp
    return getattr(ocpp, "journal", None)


@routes.get("/ocpp/log")
async def ocpp_log(request: web.Request) -> web.Response:
    refused = _require_expert(request)
    if refused is not None:
        return refused
    n, action = _query(request)
    journal = _journal(request)
    every = frames(journal, MAX_FRAMES)
    actions = sorted({frame["action"] for frame in every if frame["action"]} | ({action} if action else set()))
    return render(request, "ocpp_log.html", frames=frames(journal, n, action), actions=actions, action=action, n=n)


@routes.get("/api/ocpp/log")
async def api_ocpp_log(request: web.Request) -> web.Response:
    _require_expert(request)
    n, action = _query(request)
    return web.json_response({"frames": frames(_journal(request), n, action)})


@routes.get("/ocpp/dead-letters")
async def dead_letters(request: web.Request) -> web.Response:
    refused = _require_expert(request)
    if refused is not None:
        return refused
    ocpp = request.app[UI_KEY].station.ocpp
    letters = ocpp.outbox.dead_letters(MAX_LETTERS) if ocpp is not None else []
    counts = ocpp.outbox.counts() if ocpp is not None else {}
    return render(request, "dead_letters.html", letters=letters, counts=counts,
                  payload=lambda letter: json.dumps(letter.payload, indent=1, sort_keys=True))


@routes.post("/ocpp/dead-letters")
async def dead_letters_act(request: web.Request) -> web.Response:
    refused = _require_expert(request)
    if refused is not None:
        return refused
    session = request[SESSION_KEY]
    t = translator(session.language)
    ocpp = request.app[UI_KEY].station.ocpp
    form = await request.post()
    operation = form.get("operation")
    ids = [int(value) for value in form.getall("letter", []) if isinstance(value, str) and value.isdigit()]
    if ocpp is None or operation not in ("requeue", "discard"):
        raise web.HTTPBadRequest(text="operation must be requeue or discard")
    if not ids:
        flash(request, t("Tick the messages first."), "error")
        raise web.HTTPSeeOther("/ocpp/dead-letters")
    if operation == "requeue":
        try:
            queued = ocpp.outbox.requeue(ids)
        except ValueError as problem:
            flash(request, t("Nothing was queued: {problem}", problem=str(problem)), "error")
            raise web.HTTPSeeOther("/ocpp/dead-letters") from None
        log.warning("WebUI: %d dead letter(s) queued again by %s", len(queued), session.user)
        flash(request, t("Queued again: {count} message(s).", count=len(queued)))
    else:
        gone = ocpp.outbox.discard(ids)
        log.warning("WebUI: %d dead letter(s) discarded by %s", len(gone), session.user)
        flash(request, t("Discarded: {count} message(s).", count=len(gone)))
    raise web.HTTPSeeOther("/ocpp/dead-letters")
