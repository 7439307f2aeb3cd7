"""OCPP-J 1.6 RPC layer of the station (charge point side): one :class:`RpcEndpoint` per
WebSocket connection.

It replaces the ``ocpp`` package's ``ChargePoint.start()``/``call()``/``@on`` routing, whose
traps are listed in ``/work/shared/OCPP-NOTES.md`` §1; only the package's JSON schemas are used
(see :mod:`stationd.ocpp_client.schemas`).

API
---
::

    endpoint = RpcEndpoint(websocket, handler, call_timeout=30.0, max_frame_bytes=64 * 1024)
    task = asyncio.create_task(endpoint.run())        # receive loop; returns when the socket closes
    conf = await endpoint.call("Heartbeat", {})        # CALL → CALLRESULT payload

* ``handler(action, payload)`` is the station's dispatcher. It returns the response dict, or
  ``HandlerResult(response, after=coroutine_function)``: ``after()`` is awaited once the
  CALLRESULT has been handed to the socket (TriggerMessage: the .conf goes out before the
  triggered message); it is not run when the CALLRESULT could not be sent. The handler raises
  ``CallError(code, description, details)`` to answer with that code (a code that is not a
  1.6 code becomes ``GenericError``), ``NotImplementedError`` for a known action the station
  does not support (→ ``NotSupported``); any other exception → ``InternalError`` (logged with
  its traceback). Each incoming CALL runs in its own task, so a handler may ``await
  endpoint.call(...)`` and a slow handler never stops the receive loop; responses may leave in
  another order than the CALLs came in.
* :meth:`RpcEndpoint.call` sends one CALL at a time (an ``asyncio.Lock``, FIFO: later calls
  wait their turn; ``timeout`` counts from the moment the CALL is sent, not the wait for the
  lock). Our request is validated first (a bug of ours → ``ValueError``, nothing sent); the
  answer: CALLRESULT payload validated against the .conf schema (invalid → ``CallError`` with
  the 1.6 code and a description starting with ``response``), CALLERROR → ``CallError(code,
  description, details)`` (the peer's code verbatim, even if it is not a 1.6 code), no answer →
  :class:`CallTimeout`, socket gone → :class:`ConnectionLost`.
* :attr:`RpcEndpoint.stats` counts frames and outcomes (:class:`RpcStats`).
* ``journal`` (optional, :class:`stationd.ocpp_client.journal.MessageJournal`) gets
  ``record("in", frame)`` for every frame received and ``record("out", text)`` for every
  frame sent; whatever it raises is logged and ignored.
* :data:`KNOWN_ACTIONS` (CS → station) and :data:`STATION_ACTIONS` (station → CS) come from
  :mod:`stationd.ocpp_client.actions`.

Frames (DESIGN.md §5.3)
-----------------------
Only a JSON text frame ``[2, "<string id>", "<Action>", {…}]`` is a CALL; every CALL with a
string id gets exactly one answer. Nothing ever ends the receive loop but the socket closing.

==============================================  ==============================================
incoming frame                                  what the station does
==============================================  ==============================================
binary frame                                    ignored, logged (OCPP-J uses text frames)
not JSON / not an array / empty array           ignored, logged
MessageTypeId not the integer 2, 3 or 4         ignored, logged (``[7, …]``, ``["2", …]``,
                                                ``[2.0, …]``)
id missing or not a string (null, number, …)    ignored, logged — no answer
``[3, id, …]`` / ``[4, id, …]`` for an id we    ignored, logged (stray or late answer)
are not waiting for
``[2, id]`` / ``[2, id, action]``               ProtocolError ("payload for action is
                                                incomplete", table 7)
action not a string, more than 4 elements       FormationViolation
nested deeper than 32 levels                    FormationViolation (also 10 000 levels: the
                                                parser's RecursionError; id from the frame start)
number out of range: non-finite float           TypeConstraintViolation (no 1.6 data type holds
(``1e400``), integer beyond signed 64 bit       it; id from the frame start). ``NaN`` and
(``2**63``), ``NaN``/``Infinity`` literals      ``Infinity`` are not JSON but get the same answer
frame over ``max_frame_bytes`` (UTF-8)          FormationViolation "frame too large (N bytes),
                                                limit M bytes", not parsed; id from the frame start
unknown action                                  NotImplemented
1.6 action the station sends but never receives NotSupported ("recognized but not supported by
(``BootNotification`` sent to the station)      the receiver")
known action, payload not an object / breaks    the schema code (see
its schema                                      :mod:`~stationd.ocpp_client.schemas`)
known action, a string with a lone surrogate    TypeConstraintViolation (``"\\ud800"`` is JSON but
escape (``"\\ud800"``)                            no Unicode string; it used to reach the handler
                                                and fail as InternalError, e.g. in SQLite)
handler raises NotImplementedError              NotSupported
handler fails, is slower than handler_timeout,  InternalError (only for the station's own
or returns an invalid response                  faults)
==============================================  ==============================================

"id from the frame start": a frame we refuse to parse is answered only when its first 1024
characters match ``^\\s*\\[\\s*2\\s*,\\s*"([^"\\\\]{0,255})"`` — a CALL id without escapes;
otherwise it has no usable id and is ignored. A frame of that kind that starts like an answer
(``[3, "<id>"`` / ``[4, "<id>"``) to our pending CALL fails that call at once with a
``CallError`` instead of letting it time out.

Decisions
---------
* **Two size limits.** ``max_frame_bytes`` (default 64 kB, :data:`DEFAULT_MAX_FRAME_BYTES`)
  is the station's documented OCPP frame limit: bigger frames are answered with
  FormationViolation and the connection stays open. The WebSocket library's ``max_size`` is a
  separate, larger limit set by the connection owner (recommended
  :data:`WEBSOCKET_MAX_SIZE`, 8 MiB): a message above *that* makes ``websockets`` close the
  connection with 1009 before we see it, so it must stay well above ``max_frame_bytes``. A
  text frame with invalid UTF-8 is closed by ``websockets`` with 1007 (RFC 6455 requires it).
* **Message ids.** Ours are ``str(uuid4())`` (36 characters). An incoming id longer than 36
  characters breaks OCPP-J §4.1.4, but the CALL is handled normally and answered with the id
  verbatim (logged as a warning): answering with any other id is useless to the peer, and
  refusing the call only hurts interoperability. The frame limit bounds its length.
* **Number parsing.** ``json.loads`` with ``parse_float=float`` (never ``Decimal``) and
  guarded hooks: an integer literal longer than 19 digits is refused before ``int()`` is
  called (no 4300-digit ``ValueError``, no quadratic conversion of ``10**10000``).
* **CALL with 3 elements** is ProtocolError: table 7 defines it as "payload for Action is
  incomplete", which is exactly a missing payload; a structurally wrong CALL (action not a
  string, extra elements) is FormationViolation.
* **A malformed CALLERROR answering our CALL** is read leniently: a string errorCode is enough
  (description/details default to ""/{}); without one the call fails at once with
  ``CallError("FormationViolation", "response …")`` — it never waits for the timeout. A
  malformed CALLRESULT (no payload object) is the same.
* **Logging.** One DEBUG line per frame in and out (``<-``/``->``, type, action, id and the
  payload cut to 300 characters with secrets masked: ``value`` next to a ``key`` that looks
  secret — AuthorizationKey —, and any field named like password/secret/psk/…key). INFO and
  above never carry a payload; a frame we cannot parse is logged with its size and its first
  32 characters only.
* **Handler deadline.** ``handler_timeout`` (default 10 s): after it the CALL is answered with
  InternalError so the peer is not left waiting; the handler is *not* cancelled (it may be
  half-way through a state change), its late result is logged and dropped, and ``after`` is
  not run. :meth:`RpcEndpoint.shutdown` cancels handlers that are still running.
* **Outgoing JSON** is made of plain types only (``Decimal`` → int/float, enums → values),
  with ``allow_nan=False`` and ASCII escapes (an echoed id with a lone surrogate still
  encodes).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import math
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, fields
from typing import Any

from websockets.exceptions import ConnectionClosed

from stationd.ocpp_client import schemas
from stationd.ocpp_client.actions import KNOWN_ACTIONS, STATION_ACTIONS
from stationd.ocpp_client.errors import (
    ERROR_CODES,
    CallError,
    CallTimeout,
    ConnectionLost,
)

__all__ = [
    "CALL",
    "CALLERROR",
    "CALLRESULT",
    "DEFAULT_MAX_FRAME_BYTES",
    "KNOWN_ACTIONS",
    "MAX_MESSAGE_ID_LENGTH",
    "MAX_NESTING",
    "STATION_ACTIONS",
    "WEBSOCKET_MAX_SIZE",
    "Handler",
    "HandlerResult",
    "RpcEndpoint",
    "RpcStats",
    "mask_secrets",
]

CALL, CALLRESULT, CALLERROR = 2, 3, 4
_TYPE_NAMES = {CALL: "CALL", CALLRESULT: "CALLRESULT", CALLERROR: "CALLERROR"}

#: The station's OCPP frame limit (UTF-8 bytes); bigger frames get FormationViolation.
DEFAULT_MAX_FRAME_BYTES = 64 * 1024
#: Recommended ``max_size`` for ``websockets.connect``: above it the library closes with 1009.
WEBSOCKET_MAX_SIZE = 8 * 2**20
#: OCPP-J §4.1.4: message ids are at most 36 characters (we send uuid4 strings).
MAX_MESSAGE_ID_LENGTH = 36
#: Deepest nesting accepted in a frame (the frame array itself is level 1). 1.6 needs about 7.
MAX_NESTING = 32

_MAX_INT = 2**63 - 1
_ID_SCAN_CHARS = 1024
_CALL_ID_RE = re.compile(r'^\s*\[\s*2\s*,\s*"([^"\\]{0,255})"')
_ANSWER_ID_RE = re.compile(r'^\s*\[\s*([34])\s*,\s*"([^"\\]{0,255})"')
_SURROGATE_ESCAPE_RE = re.compile(r"\\u[dD][89abcdefABCDEF]")
_SURROGATE_RE = re.compile("[\ud800-\udfff]")
_SECRET_NAME_RE = re.compile(r"password|passwd|secret|psk|privatekey|authorizationkey|authkey|apikey", re.IGNORECASE)
_LOG_PAYLOAD_CHARS = 300
_MAX_DESCRIPTION = 255
_LOG = logging.getLogger("stationd.ocpp")

Handler = Callable[[str, dict], Awaitable[Any]]


@dataclass
class HandlerResult:
    """What a handler may return instead of a plain dict: ``after`` (a coroutine function
    without arguments) is awaited once the CALLRESULT carrying ``response`` has been sent."""

    response: dict
    after: Callable[[], Awaitable[Any]] | None = None


@dataclass
class RpcStats:
    """Counters of one :class:`RpcEndpoint`."""

    frames_received: int = 0  # every WebSocket message, text or binary
    frames_sent: int = 0
    frames_ignored: int = 0  # binary, not JSON, unknown type, no usable id, stray answers
    calls_received: int = 0  # CALLs with a string id (each gets one answer)
    results_sent: int = 0
    errors_sent: int = 0
    calls_sent: int = 0
    results_received: int = 0  # CALLRESULTs that answered our pending CALL
    errors_received: int = 0  # CALLERRORs (or malformed answers) that answered our pending CALL
    call_timeouts: int = 0
    handler_failures: int = 0  # handler exceptions, invalid responses, handler timeouts

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class _NumberOutOfRange(ValueError):
    pass


def _parse_int(text: str) -> int:
    if len(text) > 20 or len(text.lstrip("-")) > 19:
        raise _NumberOutOfRange(f"integer with {len(text.lstrip('-'))} digits")
    value = int(text)
    if not -_MAX_INT - 1 <= value <= _MAX_INT:
        raise _NumberOutOfRange("integer beyond signed 64 bit")
    return value


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NumberOutOfRange(f"number {text[:20]} is not a finite double")
    return value


def _parse_constant(name: str) -> Any:
    raise _NumberOutOfRange(f"{name} is not a JSON number")


def _loads(text: str) -> Any:
    return json.loads(text, parse_int=_parse_int, parse_float=_parse_float, parse_constant=_parse_constant)


def _has_lone_surrogate(value: Any) -> bool:
    """Whether a string (or object key) in a parsed value holds a lone UTF-16 surrogate."""
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            if _SURROGATE_RE.search(node):
                return True
        elif isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return False


def _dumps(message: list) -> str:
    return json.dumps(message, separators=(",", ":"), allow_nan=False)


def _mask(value: Any, depth: int = 0) -> Any:
    """A copy for log lines: secret values replaced by ``***``."""
    if depth > 40:
        return "…"
    if isinstance(value, list):
        return [_mask(item, depth + 1) for item in value]
    if not isinstance(value, dict):
        return value
    masked = {}
    for name, item in value.items():
        masked[name] = "***" if _SECRET_NAME_RE.search(str(name)) else _mask(item, depth + 1)
    key = value.get("key")
    if isinstance(key, str) and _SECRET_NAME_RE.search(key) and "value" in masked:
        masked["value"] = "***"
    return masked


def mask_secrets(payload: Any) -> Any:
    """A copy of a payload for logs and journals: the ``value`` next to a secret-looking
    ``key`` (AuthorizationKey, …Password, …PSK) and fields named like password/secret/psk/
    …key are replaced by ``***``."""
    return _mask(payload)


def _preview(payload: Any) -> str:
    try:
        text = json.dumps(_mask(payload), separators=(",", ":"), default=str)
    except (TypeError, ValueError, RecursionError):
        text = "<unprintable>"
    return text if len(text) <= _LOG_PAYLOAD_CHARS else text[:_LOG_PAYLOAD_CHARS] + "…"


@dataclass
class _Pending:
    uid: str
    action: str
    future: asyncio.Future


def check_request(action: str, payload: dict, *, validate: bool = True) -> dict:
    """The wire form of a request the station sends; ValueError when it would break OCPP 1.6."""
    if action not in STATION_ACTIONS:
        raise ValueError(f"{action!r} is not an OCPP 1.6 action a charge point sends")
    try:
        wire = schemas.to_wire(schemas.REQUEST, action, payload)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{action} not sent: {error}") from error
    if validate:
        violation = schemas.validate(schemas.REQUEST, action, wire)
        if violation is not None:
            raise ValueError(f"{action} not sent: {violation.code}: {violation.description}")
    return wire


class RpcEndpoint:
    """The OCPP-J 1.6 RPC layer over one WebSocket connection (see the module docstring)."""

    def __init__(
        self,
        websocket: Any,
        handler: Handler,
        *,
        call_timeout: float = 30.0,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        handler_timeout: float = 10.0,
        log: logging.Logger = _LOG,
        journal: Any = None,
    ) -> None:
        self._ws = websocket
        self._journal = journal  # MessageJournal: record(direction, frame) for every frame, never raises
        self._handler = handler
        self.call_timeout = call_timeout
        self.max_frame_bytes = max_frame_bytes
        self.handler_timeout = handler_timeout
        self._log = log
        self.stats = RpcStats()
        self._call_lock = asyncio.Lock()
        self._pending: _Pending | None = None
        self._tasks: set[asyncio.Task] = set()
        self._running = False
        self._closed = False
        ws_limit = getattr(getattr(websocket, "protocol", None), "max_message_size", None)
        if isinstance(ws_limit, int) and ws_limit <= max_frame_bytes:
            log.warning("websocket max_size %d is not above max_frame_bytes %d: an oversized frame closes "
                        "the connection instead of getting a CALLERROR", ws_limit, max_frame_bytes)

    # --- public ---------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once :meth:`run` has seen the connection close."""
        return self._closed

    async def run(self) -> None:
        """Receive and dispatch frames until the connection closes; then fail a pending
        :meth:`call` with :class:`ConnectionLost`. Never raises for anything the peer sends."""
        if self._running:
            raise RuntimeError("RpcEndpoint.run() is already running")
        self._running = True
        try:
            while True:
                try:
                    frame = await self._ws.recv()
                except ConnectionClosed as closed:
                    self._log.info("OCPP connection closed (%s)", closed)
                    break
                self._journal_frame("in", frame)
                try:
                    self._on_frame(frame)
                except Exception:  # noqa: BLE001 - one frame must never end the receive loop
                    self._log.exception("error while handling a frame of %d characters", len(frame))
        finally:
            self._closed = True
            self._running = False
            pending = self._pending
            if pending is not None and not pending.future.done():
                pending.future.set_exception(ConnectionLost(f"connection closed while waiting for {pending.action}"))

    async def call(self, action: str, payload: dict, *, timeout: float | None = None,
                   checked: bool = False) -> dict:
        """Send a CALL and return the CALLRESULT payload (see the module docstring).
        ``checked``: the payload is already the wire form :func:`check_request` made of it and
        passed its schema (the outbox checks each message once, when it is queued, stores that
        form and reads it back from JSON), so it is neither copied nor walked again."""
        if checked:
            if action not in STATION_ACTIONS:
                raise ValueError(f"{action!r} is not an OCPP 1.6 action a charge point sends")
            wire = payload
        else:
            wire = check_request(action, payload)
        wait = self.call_timeout if timeout is None else timeout
        async with self._call_lock:  # OCPP-J §4.1.1: one CALL in flight
            if self._closed:
                raise ConnectionLost(f"{action} not sent: the connection is closed")
            uid = str(uuid.uuid4())
            future = asyncio.get_running_loop().create_future()
            self._pending = _Pending(uid, action, future)
            try:
                if not await self._send(CALL, uid, action, [CALL, uid, action, wire], wire):
                    raise ConnectionLost(f"{action} not sent: the connection is closed")
                self.stats.calls_sent += 1
                try:
                    async with asyncio.timeout(wait):
                        answer = await future
                except TimeoutError:
                    self.stats.call_timeouts += 1
                    self._log.warning("no answer to %s %s within %s s", action, uid, wait)
                    raise CallTimeout(f"no answer to {action} within {wait} s") from None
            finally:
                self._pending = None
        violation = schemas.validate(schemas.RESPONSE, action, answer)
        if violation is not None:
            self._log.warning("invalid %s.conf %s: %s %s", action, uid, violation.code, violation.description)
            raise CallError(violation.code, f"response {violation.description}", violation.details)
        return schemas.round_incoming(schemas.RESPONSE, action, answer)

    async def shutdown(self, timeout: float = 2.0) -> None:
        """Wait up to ``timeout`` s for running handlers (and ``after`` hooks), then cancel
        the rest. For the connection owner once :meth:`run` has returned."""
        tasks = [task for task in self._tasks if not task.done()]
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=timeout)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late, timeout=timeout)

    # --- receiving ------------------------------------------------------------------------

    def _ignore(self, reason: str, *args: Any) -> None:
        self.stats.frames_ignored += 1
        self._log.warning("<- frame ignored: " + reason, *args)

    def _on_frame(self, frame: str | bytes) -> None:
        self.stats.frames_received += 1
        if not isinstance(frame, str):
            self._ignore("binary frame of %d bytes (OCPP-J uses text frames)", len(frame))
            return
        size = len(frame)
        if size * 4 > self.max_frame_bytes:  # else it fits whatever its characters
            size = len(frame.encode("utf-8", "surrogatepass"))
        if size > self.max_frame_bytes:
            self._refuse_unparsed(frame, "FormationViolation",
                                  f"frame too large ({size} bytes), limit {self.max_frame_bytes} bytes")
            return
        try:
            message = _loads(frame)
        except _NumberOutOfRange as error:
            self._refuse_unparsed(frame, "TypeConstraintViolation", f"number out of range: {error}")
            return
        except RecursionError:
            self._refuse_unparsed(frame, "FormationViolation", f"nested deeper than {MAX_NESTING} levels")
            return
        except ValueError as error:
            self._ignore("not JSON (%s), %d characters: %r", str(error)[:80], len(frame), frame[:32])
            return
        if not isinstance(message, list) or not message:
            self._ignore("not a non-empty JSON array: %r", frame[:32])
            return
        type_id = message[0]
        if type(type_id) is not int or type_id not in _TYPE_NAMES:
            self._ignore("unknown MessageTypeId %r", frame[:32])
            return
        if len(message) < 2 or not isinstance(message[1], str):
            self._ignore("%s without a usable message id: %r", _TYPE_NAMES[type_id], frame[:32])
            return
        uid: str = message[1]
        too_deep = schemas.nesting_depth(message, MAX_NESTING) > MAX_NESTING
        surrogates = "\\u" in frame and _SURROGATE_ESCAPE_RE.search(frame) is not None  # then look closer
        if type_id == CALL:
            self._on_call(uid, message, too_deep, surrogates)
        else:
            self._on_answer(type_id, uid, message, too_deep, surrogates)

    def _refuse_unparsed(self, frame: str, code: str, description: str) -> None:
        """A frame we do not parse: answer a CALL whose id is readable at the frame start, fail
        our pending CALL if it is its answer, else ignore it."""
        head = frame[:_ID_SCAN_CHARS]
        match = _CALL_ID_RE.match(head)
        if match is not None:
            uid = match.group(1)
            self.stats.calls_received += 1
            self._log.warning("<- CALL %s refused: %s", uid, description)
            self._spawn(self._send_error(uid, "?", code, description))
            return
        match = _ANSWER_ID_RE.match(head)
        pending = self._pending
        if match is not None and pending is not None and match.group(2) == pending.uid:
            self._log.warning("<- answer to %s %s refused: %s", pending.action, pending.uid, description)
            self._settle(pending, error=CallError(code, f"response {description}"))
            return
        self._ignore("%s, no usable id: %r", description, frame[:32])

    def _on_call(self, uid: str, message: list, too_deep: bool, surrogates: bool = False) -> None:
        self.stats.calls_received += 1
        action = message[2] if len(message) > 2 else None
        if self._log.isEnabledFor(logging.DEBUG):
            self._log.debug("<- CALL %s %s %s", action if isinstance(action, str) else "?", uid,
                            _preview(message[3]) if len(message) > 3 else "")
        if len(uid) > MAX_MESSAGE_ID_LENGTH:
            self._log.warning("<- CALL with a message id of %d characters (OCPP-J allows %d): answered anyway",
                              len(uid), MAX_MESSAGE_ID_LENGTH)
        if len(message) < 4:
            problem = ("ProtocolError", f"CALL incomplete: {len(message)} elements, expected 4")
        elif not isinstance(action, str):
            problem = ("FormationViolation", "CALL action is not a string")
        elif len(message) > 4:
            problem = ("FormationViolation", f"CALL has {len(message)} elements, expected 4")
        elif too_deep:
            problem = ("FormationViolation", f"nested deeper than {MAX_NESTING} levels")
        else:
            self._spawn(self._serve(uid, action, message[3], surrogates))
            return
        self._log.warning("<- CALL %s refused: %s", uid, problem[1])
        self._spawn(self._send_error(uid, action if isinstance(action, str) else "?", *problem))

    def _on_answer(self, type_id: int, uid: str, message: list, too_deep: bool, surrogates: bool = False) -> None:
        name = _TYPE_NAMES[type_id]
        pending = self._pending
        if pending is None or pending.uid != uid or pending.future.done():
            self._ignore("%s for unknown message id %r (stray or late)", name, uid[:40])
            return
        if self._log.isEnabledFor(logging.DEBUG):
            self._log.debug("<- %s %s %s %s", name, pending.action, uid, _preview(message[2:]))
        if too_deep:
            self._settle(pending, error=CallError("FormationViolation",
                                                  f"response nested deeper than {MAX_NESTING} levels"))
        elif type_id == CALLRESULT:
            if len(message) != 3 or not isinstance(message[2], dict):
                has_object = len(message) > 2 and isinstance(message[2], dict)
                self._settle(pending, error=CallError(
                    "FormationViolation", f"response malformed CALLRESULT ({len(message)} elements, payload "
                                          f"{'an object' if has_object else 'missing or not an object'})"))
            elif surrogates and _has_lone_surrogate(message[2]):
                self._settle(pending, error=CallError("TypeConstraintViolation",
                                                      "response holds a lone UTF-16 surrogate (not a Unicode string)"))
            else:
                self._settle(pending, result=message[2])
        else:
            code = message[2] if len(message) > 2 else None
            if not isinstance(code, str):
                self._settle(pending, error=CallError("FormationViolation",
                                                      "response malformed CALLERROR (no errorCode string)"))
                return
            description = message[3] if len(message) > 3 and isinstance(message[3], str) else ""
            details = message[4] if len(message) > 4 and isinstance(message[4], dict) else {}
            self._log.info("<- CALLERROR %s %s %s %r", pending.action, uid, code[:40], description[:120])
            self._settle(pending, error=CallError(code, description, details))

    def _settle(self, pending: _Pending, *, result: dict | None = None, error: Exception | None = None) -> None:
        if pending.future.done():
            return
        if error is not None:
            self.stats.errors_received += 1
            pending.future.set_exception(error)
        else:
            self.stats.results_received += 1
            pending.future.set_result(result)

    # --- answering ------------------------------------------------------------------------

    async def _serve(self, uid: str, action: str, payload: Any, surrogates: bool = False) -> None:
        if action not in KNOWN_ACTIONS:
            if action in STATION_ACTIONS:
                await self._send_error(uid, action, "NotSupported",
                                       f"{action} is sent by a charge point, not to it"[:_MAX_DESCRIPTION])
            else:
                await self._send_error(uid, action, "NotImplemented",
                                       f"unknown action {action[:100]!r}")
            return
        violation = schemas.validate(schemas.REQUEST, action, payload)
        if violation is not None:
            self._log.warning("<- %s %s refused: %s %s", action, uid, violation.code, violation.description)
            await self._send_error(uid, action, violation.code, violation.description, violation.details)
            return
        if surrogates and _has_lone_surrogate(payload):
            self._log.warning("<- %s %s refused: a string holds a lone surrogate", action, uid)
            await self._send_error(uid, action, "TypeConstraintViolation",
                                   f"{action}: a string holds a lone UTF-16 surrogate (not a Unicode string)")
            return
        schemas.round_incoming(schemas.REQUEST, action, payload)
        outcome = await self._run_handler(uid, action, payload)
        if isinstance(outcome, CallError):
            await self._send_error(uid, action, outcome.code, outcome.description, outcome.details)
            return
        response, after = outcome
        if await self._send(CALLRESULT, uid, action, [CALLRESULT, uid, response], response):
            self.stats.results_sent += 1
            if after is not None:
                try:
                    pending_after = after() if callable(after) else after
                    if inspect.isawaitable(pending_after):
                        await pending_after
                except asyncio.CancelledError:
                    raise
                except Exception:  # noqa: BLE001 - the hook's failure is logged, the CALL was answered
                    self._log.exception("after-hook of %s %s failed", action, uid)

    async def _run_handler(self, uid: str, action: str, payload: dict) -> CallError | tuple[dict, Any]:
        """The handler's answer as (wire-ready response, after) or the CallError to send."""
        try:
            result = self._handler(action, payload)
            if inspect.isawaitable(result):
                task = asyncio.ensure_future(result)
                try:
                    done, _ = await asyncio.wait({task}, timeout=self.handler_timeout)
                except asyncio.CancelledError:
                    task.cancel()  # shutdown(): cancel the handler with its answer task
                    raise
                if not done:
                    self.stats.handler_failures += 1
                    self._log.error("handler for %s %s did not answer within %s s", action, uid, self.handler_timeout)
                    self._tasks.add(task)
                    task.add_done_callback(self._late_handler_done(action, uid))
                    return CallError("InternalError", f"{action} not handled within {self.handler_timeout} s")
                result = task.result()
        except asyncio.CancelledError:
            raise
        except CallError as error:
            if error.code in ERROR_CODES:
                return CallError(error.code, error.description[:_MAX_DESCRIPTION], error.details)
            self._log.warning("handler for %s answered with unknown error code %r, sent as GenericError",
                              action, error.code)
            return CallError("GenericError", error.description[:_MAX_DESCRIPTION], {"code": str(error.code)[:40]})
        except NotImplementedError:
            return CallError("NotSupported", f"{action} is not supported by this station")
        except Exception as error:  # noqa: BLE001 - any other handler fault is an InternalError
            self.stats.handler_failures += 1
            self._log.exception("handler for %s %s failed", action, uid)
            return CallError("InternalError", f"station failed to handle {action} ({type(error).__name__})")
        after = None
        if isinstance(result, HandlerResult):
            result, after = result.response, result.after
        if result is None:
            result = {}
        try:
            response = schemas.to_wire(schemas.RESPONSE, action, result)
            violation = schemas.validate(schemas.RESPONSE, action, response)
        except (TypeError, ValueError) as error:
            violation = schemas.SchemaViolation("FormationViolation", f"{action}.conf is not JSON: {error}"[:200])
        if violation is not None:
            self.stats.handler_failures += 1
            self._log.error("handler for %s %s returned an invalid response: %s %s", action, uid,
                            violation.code, violation.description)
            return CallError("InternalError", f"station produced an invalid response: {violation.description}"[
                :_MAX_DESCRIPTION])
        return response, after

    def _late_handler_done(self, action: str, uid: str) -> Callable[[asyncio.Task], None]:
        def done(task: asyncio.Task) -> None:
            self._tasks.discard(task)
            if task.cancelled():
                return
            if task.exception() is not None:
                self._log.error("late handler for %s %s failed: %r", action, uid, task.exception())
            else:
                self._log.warning("late handler for %s %s finished; its result is dropped", action, uid)
        return done

    async def _send_error(self, uid: str, action: str, code: str, description: str,
                          details: dict | None = None) -> None:
        try:
            details = schemas.to_wire("", "", details or {})  # a handler's details may hold Decimal
        except (TypeError, ValueError):
            details = {}
        if not isinstance(details, dict):
            details = {}
        message = [CALLERROR, uid, code, str(description)[:_MAX_DESCRIPTION], details]
        if await self._send(CALLERROR, uid, action, message, message[2:]):
            self.stats.errors_sent += 1

    async def _send(self, type_id: int, uid: str, action: str, message: list, payload: Any) -> bool:
        """Serialise and send one frame; False when the connection is gone."""
        text = _dumps(message)
        if self._log.isEnabledFor(logging.DEBUG):
            self._log.debug("-> %s %s %s %s", _TYPE_NAMES[type_id], action, uid[:40], _preview(payload))
        try:
            await self._ws.send(text)
        except ConnectionClosed:
            self._log.info("-> %s %s %s not sent: connection closed", _TYPE_NAMES[type_id], action, uid[:40])
            return False
        self.stats.frames_sent += 1
        self._journal_frame("out", text)
        return True

    def _journal_frame(self, direction: str, frame: str | bytes) -> None:
        if self._journal is None:
            return
        try:
            self._journal.record(direction, frame)
        except Exception:  # noqa: BLE001 - the journal must never break the connection
            self._log.exception("OCPP journal failed to record a frame")

    def _spawn(self, coroutine: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._log.error("OCPP answer task failed", exc_info=task.exception())
