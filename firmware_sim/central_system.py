"""A small, real OCPP 1.6J central system (CSMS) on loopback, for the demo and for tests.

``stationd demo`` runs it when no ``--backend`` is given: it accepts everything and logs every
frame as one line on ``firmware_sim.central_system`` (``<- TE-1 StartTransaction {...}``). The
station's integration tests drive it as a real backend::

    async with CentralSystem(heartbeat_interval=60) as cs:          # ws://127.0.0.1:<port>/ocpp
        ... start the station with backend cs.url ...
        await cs.wait_connected("TE-1")
        boot = await cs.wait_for("BootNotification")
        cs.respond("Authorize", {"idTagInfo": {"status": "Blocked"}})
        cs.respond("StartTransaction", delay=2.0)                    # default answer, late
        cs.respond("StopTransaction", CallError("InternalError"), times=1)
        reply = await cs.call("TE-1", "RemoteStartTransaction", {"connectorId": 1, "idTag": "aec78085"})
        await cs.send_raw("TE-1", "not json")
        await cs.disconnect("TE-1")

How it is built
---------------
* Transport: ``websockets.asyncio.server.serve``. The chargebox id is the last path segment
  (percent-decoded) of ``/<anything>/<chargebox id>``. The subprotocol ``ocpp1.6`` is offered and,
  with ``require_subprotocol=True`` (default), required: a handshake without it gets HTTP 400.
  Security profile 1 and 2 check HTTP Basic on every handshake (user = chargebox id, password
  compared as *bytes* against ``passwords[chargebox_id]``); wrong or missing → HTTP 401.
  Profile 2 needs ``ssl_context`` (see :mod:`firmware_sim.test_pki`). Profile 3 is TLS with client
  certificates and no Basic check: its ``ssl_context`` requires them
  (``ThrowawayPKI.client_auth_context()``); the subject of the certificate a station presented is
  in :attr:`Handshake.client_certificate` (any profile). A second connection for an
  id that is already connected replaces the first one (the old socket is closed), as real
  backends do. ``refuse_status`` (e.g. 503) makes every handshake fail, for backoff tests.
* Default answers: :data:`DEFAULT_ANSWERS`, one plain function per action a central system
  handles (accept everything), returning the wire payload; an action without one gets
  ``NotSupported`` (a 1.6 action) or ``NotImplemented`` (unknown). They used to be ``@on``
  handlers of an ``ocpp.v16.ChargePoint`` used server-side, but the package's routing
  (camelCase → snake_case of the whole payload, ``inspect.signature``, dataclass serialisation,
  a deep copy) cost ~100 us per MeterValues and nothing else of it was used; the answers are
  the same payloads. ``respond()`` overrides them.
* Own receive loop instead of the package's ``start()``: every frame is recorded raw first, then
  parsed with ``json.loads`` (floats, never ``Decimal``). CALLRESULT/CALLERROR frames resolve
  our pending :meth:`CentralSystem.call` at once; incoming CALLs go to a per-connection worker
  that answers them one by one, so a slow or delayed answer never stalls the receive loop and a
  test callable may even ``await cs.call()`` without deadlock (package trap: ``await call()``
  inside an ``@on`` handler). Any exception while handling one frame is logged and the loop
  keeps serving (package trap: a malformed frame or a bad response must not kill the loop).
* CALLs to the station are sent as raw frames (``[2, uid, action, payload]``), not through the
  package's ``call()``: the tests see and get exactly what was on the wire (no camel/snake round
  trip, no ``Decimal`` rounding, unknown actions and schema-invalid payloads possible with
  ``validate=False``). One CALL per station at a time (OCPP-J RPC rule).
* Schema validation uses the package's 1.6 JSON schemas (``ocpp.messages.get_validator``) —
  synchronously, so the process-wide ``ASYNC_VALIDATION`` switch and its thread pool are never
  touched, with ``Decimal`` parsing for exactly the three schemas the package parses that way
  (its validator cache does not key on the float parser, so we must agree with it). A fast
  path (the same schemas compiled by ``fastjsonschema``) accepts valid payloads first; what it
  rejects goes to that validator, which names the error (see ``_fast_validator``). Error codes
  are the OCPP 1.6 wire names (``FormationViolation``, ``OccurenceConstraintViolation``), not the
  package's 2.0.1 names, and the package's swapped ``NotImplemented``/``NotSupported`` for
  routing failures are swapped back: unknown action → ``NotImplemented``, known action that a
  central system does not handle → ``NotSupported``. Every violation is kept in
  :meth:`CentralSystem.violations`.
* ``Decimal`` never reaches the wire or a test: our JSON encoder turns a ``Decimal`` given by a
  test into a float with its exact value (no rounding to one decimal — a test may want to send
  ``6.25`` on purpose), and every payload handed out is parsed with plain floats.
* Secrets: passwords are never logged; the value of ``AuthorizationKey`` is masked in log lines
  (the recorded frames keep it).

CLI: ``python -m firmware_sim.central_system --host 127.0.0.1 --port 9000
[--security-profile 1 --password TE-1=secret]`` (see :func:`main`).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import copy
import dataclasses
import decimal
import hmac
import inspect
import itertools
import json
import logging
import signal
import ssl
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from typing import Any, Self
from urllib.parse import unquote, urlsplit

import fastjsonschema
from cryptography import x509
from jsonschema.exceptions import best_match
from ocpp import exceptions as ocpp_exceptions
from ocpp.messages import get_validator
from ocpp.v16.enums import (
    Action,
)
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

__all__ = [
    "CALL",
    "CALLERROR",
    "CALLRESULT",
    "DEFAULT",
    "DEFAULT_ANSWERS",
    "NO_REPLY",
    "SUBPROTOCOL",
    "CallError",
    "CallErrorReceived",
    "CentralSystem",
    "Handshake",
    "NotConnected",
    "ProtocolViolation",
    "Record",
    "Violation",
    "main",
    "ocpp_now",
    "validate_ocpp16",
]

LOG = logging.getLogger("firmware_sim.central_system")

SUBPROTOCOL = "ocpp1.6"
CALL, CALLRESULT, CALLERROR = 2, 3, 4
MAX_UNIQUE_ID_LENGTH = 36  # [J16] §4.1.4

_V16_ACTIONS = frozenset(action.value for action in Action)
# The package validates these with Decimal-parsed schema and payload (messages._validate_payload).
_DECIMAL_SCHEMAS = frozenset(
    {(CALL, "SetChargingProfile"), (CALL, "RemoteStartTransaction"), (CALLRESULT, "GetCompositeSchedule")}
)
_SECRET_KEYS = frozenset({"authorizationkey"})


def ocpp_now(now: datetime | None = None) -> str:
    """An OCPP dateTime in UTC with milliseconds and ``Z``: ``2024-05-01T12:00:00.000Z``."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --------------------------------------------------------------------------------------------
# Public value types
# --------------------------------------------------------------------------------------------


class _Sentinel:
    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name


#: ``respond(action, DEFAULT, delay=…)``: the built-in answer (optionally late).
DEFAULT: Any = _Sentinel("DEFAULT")
#: ``respond(action, NO_REPLY)``: never answer this action (the station's call times out).
NO_REPLY: Any = _Sentinel("NO_REPLY")


@dataclass(frozen=True)
class CallError:
    """A CALLERROR to answer with: ``respond("Authorize", CallError("SecurityError", "no"))``.

    The code goes on the wire verbatim, so a test can also send codes a station must tolerate
    (2.0.1 names, unknown codes)."""

    code: str
    description: str = ""
    details: dict[str, Any] = field(default_factory=dict)


class CallErrorReceived(Exception):
    """The station answered our CALL with a CALLERROR."""

    def __init__(self, action: str, unique_id: str, code: Any, description: Any, details: Any) -> None:
        super().__init__(f"{action}: CALLERROR {code} {description!r} {details!r}")
        self.action = action
        self.unique_id = unique_id
        self.code = code
        self.description = description
        self.details = details


class ProtocolViolation(Exception):
    """A payload broke the OCPP 1.6 schema or a frame broke OCPP-J framing.

    Raised by :meth:`CentralSystem.call` for an invalid request (before anything is sent, a
    mistake in the test) or an invalid/malformed answer from the station."""

    def __init__(self, message: str, *, action: str | None = None, code: str | None = None,
                 payload: Any = None, raw: str | bytes | None = None) -> None:
        super().__init__(message)
        self.action = action
        self.code = code
        self.payload = payload
        self.raw = raw


class NotConnected(ConnectionError):
    """No open connection for that chargebox id (or it closed while we waited)."""


@dataclass
class Record:
    """One WebSocket message as it was on the wire.

    ``direction`` is ``"in"`` (station → central system) or ``"out"`` (central system →
    station). ``action`` is also filled for CALLRESULT/CALLERROR frames: the action of the CALL
    they answer (if known). For a CALLERROR, ``payload`` is the errorDetails object and
    ``error_code``/``error_description`` are set. ``malformed`` says why a frame is not a valid
    OCPP-J message (then the other fields hold whatever could be read)."""

    seq: int
    chargebox_id: str
    direction: str
    raw: str | bytes
    message_type_id: int | None = None
    unique_id: str | None = None
    action: str | None = None
    payload: Any = None
    error_code: str | None = None
    error_description: str | None = None
    malformed: str | None = None
    timestamp: float = 0.0  # time.time()
    monotonic: float = 0.0  # time.monotonic()
    sent: bool = True  # False: an outgoing frame the closed socket no longer took


@dataclass(frozen=True)
class Handshake:
    """One WebSocket handshake attempt (accepted or not). ``status`` is the HTTP status sent:
    101 accepted, 400 bad subprotocol, 401 bad credentials, 404 no chargebox id, ….
    TLS failures happen before HTTP and are not seen here. ``client_certificate``: the subject
    (RFC 4514) of the TLS client certificate the station presented, None without one."""

    chargebox_id: str
    path: str
    status: int
    reason: str
    subprotocols: tuple[str, ...]
    user: str | None
    remote: str
    timestamp: float
    monotonic: float
    client_certificate: str | None = None


@dataclass(frozen=True)
class Violation:
    """A frame or payload that breaks OCPP 1.6 (schema, framing, unique id length)."""

    chargebox_id: str
    direction: str
    unique_id: str | None
    action: str | None
    code: str
    description: str
    payload: Any
    monotonic: float


Responder = dict[str, Any] | Callable[[dict[str, Any]], Any] | CallError | ocpp_exceptions.OCPPError | _Sentinel


@dataclass
class _Override:
    response: Any
    delay: float
    remaining: int | None


# --------------------------------------------------------------------------------------------
# Helpers: JSON, schema validation, frame parsing, log lines
# --------------------------------------------------------------------------------------------


def _json_default(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        return float(value)  # exact value; never let a Decimal reach json.dumps (package trap)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=_json_default)


def _normalise(payload: Any) -> Any:
    """A plain-JSON copy: Decimal → float, tuples → lists, nothing shared with the caller."""
    return json.loads(_dumps(payload))


_CODE_BY_KEYWORD = {
    "type": "TypeConstraintViolation",
    "maxLength": "TypeConstraintViolation",
    "minLength": "TypeConstraintViolation",
    "additionalProperties": "FormationViolation",
    "required": "OccurenceConstraintViolation",
    "minItems": "OccurenceConstraintViolation",
    "maxItems": "OccurenceConstraintViolation",
    "uniqueItems": "OccurenceConstraintViolation",
    "enum": "PropertyConstraintViolation",
    "minimum": "PropertyConstraintViolation",
    "maximum": "PropertyConstraintViolation",
    "multipleOf": "PropertyConstraintViolation",
    "pattern": "PropertyConstraintViolation",
    "format": "PropertyConstraintViolation",
}


def validate_ocpp16(message_type_id: int, action: str, payload: Any) -> tuple[str, str] | None:
    """Check a CALL (``message_type_id`` 2) or CALLRESULT (3) payload against the OCPP 1.6
    schema that the ``ocpp`` package ships (whitepaper messages included).

    Returns ``None`` when it is valid or when ``action`` is not an OCPP 1.6 action (no schema),
    else ``(error code, description)`` with the OCPP 1.6 wire name of the error: a missing
    required field is an ``OccurenceConstraintViolation``, an extra field a
    ``FormationViolation``, a wrong type or too long string a ``TypeConstraintViolation``, a
    value out of its enum or range a ``PropertyConstraintViolation``."""
    return _validate(message_type_id, action, payload, from_json=False)


def _validate(message_type_id: int, action: str, payload: Any, *, from_json: bool) -> tuple[str, str] | None:
    """:func:`validate_ocpp16`; ``from_json``: ``payload`` was parsed from JSON text (lists, no
    tuples), so a payload the fast path accepts needs no further look."""
    if action not in _V16_ACTIONS or message_type_id not in (CALL, CALLRESULT):
        return None  # never build a schema path from an unknown action name
    if not isinstance(payload, dict):
        return "FormationViolation", f"payload of {action} is not a JSON object"
    fast = _fast_validator(message_type_id, action)
    if fast is not None and (from_json or not _has_tuple(payload)):
        try:
            fast(payload)
        except Exception:  # noqa: BLE001 - rejected (or it could not tell): the reference decides
            pass
        else:
            return None
    as_decimal = (message_type_id, action) in _DECIMAL_SCHEMAS
    try:
        validator = get_validator(
            message_type_id, action, "1.6", parse_float=decimal.Decimal if as_decimal else float
        )
    except (OSError, ValueError):
        return None
    instance = json.loads(_dumps(payload), parse_float=decimal.Decimal) if as_decimal else payload
    error = best_match(validator.iter_errors(instance))
    if error is None:
        return None
    where = "/".join(str(part) for part in error.absolute_path) or "(payload)"
    code = _CODE_BY_KEYWORD.get(str(error.validator), "FormationViolation")
    return code, f"{action} {where}: {error.message}"


# The fast path of the schema check. The reference is the package's jsonschema Draft4Validator
# (``get_validator``: Draft 4 rules for every 1.6 schema, ``format`` not checked). The same
# schema compiled by fastjsonschema (Draft 4 rules, every ``format`` accepted) decides alike
# for the keywords below on every JSON-parsed payload, so a payload it accepts is valid at once
# (a MeterValues: ~10 us instead of ~110 us); one it rejects goes to the reference, which names
# the error. Schemas with any other keyword — ``multipleOf`` (the three schemas checked with
# ``Decimal``) above all — have no fast path. fastjsonschema takes a tuple for an array,
# jsonschema does not: a payload that did not come from JSON is checked for tuples first.
# tests/test_central_system_fast_path.py checks the agreement on generated and mutated payloads.
_FAST_KEYWORDS = frozenset({
    "$schema", "$id", "id", "title", "description", "javaType", "definitions", "$ref",  # no effect here
    "type", "properties", "additionalProperties", "required", "items", "additionalItems",
    "minItems", "maxLength", "enum", "format",
})
_FAST_TYPES = frozenset({"object", "array", "string", "integer", "number", "boolean"})
_DRAFT4 = "http://json-schema.org/draft-04/schema#"
_fast_validators: dict[tuple[int, str], Callable[[Any], Any] | None] = {}


def _fast_validator(message_type_id: int, action: str) -> Callable[[Any], Any] | None:
    key = (message_type_id, action)
    try:
        return _fast_validators[key]
    except KeyError:
        pass
    fast = None
    if key not in _DECIMAL_SCHEMAS:
        try:
            schema = get_validator(message_type_id, action, "1.6").schema
            formats: set[str] = set()
            if isinstance(schema, dict) and _fast_compatible(schema, formats):
                fast = fastjsonschema.compile(
                    {**schema, "$schema": _DRAFT4},
                    handlers={scheme: _refuse_remote for scheme in ("http", "https", "file", "ftp", "urn")},
                    formats={name: _any_value for name in formats}, use_default=False, detailed_exceptions=False)
        except Exception:  # noqa: BLE001 - no schema, or one it cannot compile: the reference alone
            fast = None
    _fast_validators[key] = fast
    return fast


def _fast_compatible(node: Any, formats: set[str], depth: int = 0) -> bool:
    """Whether fastjsonschema treats ``node`` like the reference; collects the format names."""
    if depth > 32 or not isinstance(node, dict):
        return False
    for name, value in node.items():
        if name not in _FAST_KEYWORDS:
            return False
        if name == "type" and not (isinstance(value, str) and value in _FAST_TYPES):
            return False  # one type, not a list of them
        if name == "enum" and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            return False
        if name in ("additionalProperties", "additionalItems") and not isinstance(value, bool):
            return False
        if name == "$ref" and not (isinstance(value, str) and value.startswith("#/definitions/")):
            return False
        if name == "format":
            if not isinstance(value, str):
                return False
            formats.add(value)
        if name in ("properties", "definitions") and not isinstance(value, dict):
            return False
    children = [*node.get("properties", {}).values(), *node.get("definitions", {}).values()]
    if "items" in node:
        children.append(node["items"])  # a list of item schemas is refused (not a dict)
    return all(_fast_compatible(child, formats, depth + 1) for child in children)


def _refuse_remote(uri: str) -> Any:
    raise ValueError(f"no remote $ref: {uri}")


def _any_value(_value: Any) -> bool:
    return True  # the reference checks no format


def _has_tuple(value: Any, depth: int = 0) -> bool:
    """True when a tuple is somewhere in ``value`` (or it is nested too deeply to tell)."""
    if isinstance(value, tuple) or depth > 64:
        return True
    if isinstance(value, dict):
        return any(_has_tuple(item, depth + 1) for item in value.values())
    if isinstance(value, list):
        return any(_has_tuple(item, depth + 1) for item in value)
    return False


@dataclass
class _Parsed:
    message_type_id: int | None = None
    unique_id: str | None = None
    action: str | None = None
    payload: Any = None
    error_code: str | None = None
    error_description: str | None = None
    malformed: str | None = None


def _parse(frame: str | bytes) -> _Parsed:
    if isinstance(frame, bytes):
        return _Parsed(malformed="binary frame (OCPP-J uses text frames)")
    try:
        message = json.loads(frame)
    except ValueError:
        return _Parsed(malformed="not JSON")
    except RecursionError:
        return _Parsed(malformed="JSON nested too deeply")
    if not isinstance(message, list) or not message:
        return _Parsed(malformed="not a non-empty JSON array")
    type_id = message[0]
    if type(type_id) is not int or type_id not in (CALL, CALLRESULT, CALLERROR):
        return _Parsed(malformed=f"unknown MessageTypeId {type_id!r}")
    parsed = _Parsed(message_type_id=type_id)
    if len(message) < 2 or not isinstance(message[1], str):
        parsed.malformed = "missing or non-string UniqueId"
        return parsed
    parsed.unique_id = message[1]
    if type_id == CALL:
        if len(message) > 2 and isinstance(message[2], str):
            parsed.action = message[2]
        if len(message) > 3:
            parsed.payload = message[3]
        if len(message) != 4:
            parsed.malformed = f"CALL has {len(message)} elements, not 4"
        elif parsed.action is None:
            parsed.malformed = "CALL action is not a string"
        elif not isinstance(parsed.payload, dict):
            parsed.malformed = "CALL payload is not a JSON object"
    elif type_id == CALLRESULT:
        if len(message) > 2:
            parsed.payload = message[2]
        if len(message) != 3:
            parsed.malformed = f"CALLRESULT has {len(message)} elements, not 3"
        elif not isinstance(parsed.payload, dict):
            parsed.malformed = "CALLRESULT payload is not a JSON object"
    else:
        parsed.error_code = message[2] if len(message) > 2 else None
        parsed.error_description = message[3] if len(message) > 3 else None
        parsed.payload = message[4] if len(message) > 4 else None
        if len(message) != 5:
            parsed.malformed = f"CALLERROR has {len(message)} elements, not 5"
        elif not isinstance(parsed.error_code, str) or not isinstance(parsed.error_description, str):
            parsed.malformed = "CALLERROR code or description is not a string"
        elif not isinstance(parsed.payload, dict):
            parsed.malformed = "CALLERROR details is not a JSON object"
    return parsed


def _mask_secrets(payload: Any) -> Any:
    """A copy of a payload with AuthorizationKey values replaced, for log lines only."""
    if isinstance(payload, list):
        return [_mask_secrets(item) for item in payload]
    if not isinstance(payload, dict):
        return payload
    masked = {key: _mask_secrets(value) for key, value in payload.items()}
    key_name = masked.get("key")
    if isinstance(key_name, str) and key_name.lower() in _SECRET_KEYS and "value" in masked:
        masked["value"] = "***"
    return masked


def _log_line(arrow: str, chargebox_id: str, record: Record) -> str:
    if record.malformed is not None:
        raw = record.raw if isinstance(record.raw, str) else repr(record.raw)
        return f"{arrow} {chargebox_id} malformed frame ({record.malformed}): {raw[:500]}"
    payload = _dumps(_mask_secrets(record.payload))
    action = record.action or "?"
    if record.message_type_id == CALL:
        return f"{arrow} {chargebox_id} {action} {payload}"
    if record.message_type_id == CALLRESULT:
        return f"{arrow} {chargebox_id} {action}.conf {payload}"
    return (f"{arrow} {chargebox_id} {action}.error {record.error_code} "
            f"{json.dumps(record.error_description)} {payload}")


def _chargebox_id_of(path: str) -> str:
    return unquote(urlsplit(path).path.rsplit("/", 1)[-1])


# --------------------------------------------------------------------------------------------
# Default answers
# --------------------------------------------------------------------------------------------

_ACCEPTED_ID_TAG = {"status": "Accepted"}


def _stop_transaction_answer(cs: CentralSystem, payload: dict[str, Any]) -> dict[str, Any]:
    # idTagInfo only when there is an idTag to judge ([S16] StopTransaction.conf).
    return {} if payload.get("idTag") is None else {"idTagInfo": dict(_ACCEPTED_ID_TAG)}


#: The built-in answer to each CALL a central system handles (accept everything), as the wire
#: payload; ``(central system, request payload) -> answer``. A handler must not keep or change
#: the request payload (it is the recorded one). An action not listed gets a CALLERROR: a 1.6
#: action ``NotSupported`` (a central system does not handle it), any other ``NotImplemented``.
DEFAULT_ANSWERS: dict[str, Callable[[CentralSystem, dict[str, Any]], dict[str, Any]]] = {
    "BootNotification": lambda cs, _: {"currentTime": cs.now_iso(), "interval": cs.heartbeat_interval,
                                       "status": "Accepted"},
    "Heartbeat": lambda cs, _: {"currentTime": cs.now_iso()},
    "Authorize": lambda cs, _: {"idTagInfo": dict(_ACCEPTED_ID_TAG)},
    "StartTransaction": lambda cs, _: {"transactionId": cs.next_transaction_id(),
                                       "idTagInfo": dict(_ACCEPTED_ID_TAG)},
    "StopTransaction": _stop_transaction_answer,
    "StatusNotification": lambda cs, _: {},
    "MeterValues": lambda cs, _: {},
    "DiagnosticsStatusNotification": lambda cs, _: {},
    "FirmwareStatusNotification": lambda cs, _: {},
    "DataTransfer": lambda cs, _: {"status": "Accepted"},
    # Security whitepaper messages
    "SecurityEventNotification": lambda cs, _: {},
    "SignedFirmwareStatusNotification": lambda cs, _: {},
    "LogStatusNotification": lambda cs, _: {},
    "SignCertificate": lambda cs, _: {"status": "Accepted"},
}
# The descriptions the ``ocpp`` package gives these two errors (its default answers used to
# come through its routing; the wording stays).
_NOT_SUPPORTED = "Request Action is recognized but not supported by the receiver"
_NOT_IMPLEMENTED = "Requested Action is not known by receiver"


# --------------------------------------------------------------------------------------------
# One station connection
# --------------------------------------------------------------------------------------------


class _Connection:
    def __init__(self, cs: CentralSystem, chargebox_id: str, ws: ServerConnection) -> None:
        self.cs = cs
        self.chargebox_id = chargebox_id
        self.ws = ws
        self.closed = asyncio.Event()
        self._incoming: asyncio.Queue[_Parsed] = asyncio.Queue()
        self._pending: dict[str, asyncio.Future[_Parsed]] = {}
        self._actions_sent: dict[str, str] = {}  # unique id of our CALL -> action
        self._actions_received: dict[str, str] = {}  # unique id of the station's CALL -> action
        self._call_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()

    # --- frames on the wire -----------------------------------------------------------------

    def _record(self, direction: str, frame: str | bytes) -> tuple[Record, _Parsed]:
        parsed = _parse(frame)
        action = parsed.action
        uid = parsed.unique_id
        if uid is not None and parsed.message_type_id == CALL and action is not None:
            (self._actions_received if direction == "in" else self._actions_sent)[uid] = action
        elif uid is not None and parsed.message_type_id in (CALLRESULT, CALLERROR):
            # our answers forget the station's CALL (answered once); the station's answers are
            # forgotten in _on_frame, after the pending call() has been found
            action = self._actions_sent.get(uid) if direction == "in" else self._actions_received.pop(uid, None)
        record = self.cs._append(Record(
            seq=0,
            chargebox_id=self.chargebox_id,
            direction=direction,
            raw=frame,
            message_type_id=parsed.message_type_id,
            unique_id=uid,
            action=action,
            payload=parsed.payload,
            error_code=parsed.error_code,
            error_description=parsed.error_description,
            malformed=parsed.malformed,
            timestamp=time.time(),
            monotonic=time.monotonic(),
        ))
        parsed.action = action
        if parsed.malformed is not None:
            LOG.warning(_log_line("<-" if direction == "in" else "->", self.chargebox_id, record))
        elif LOG.isEnabledFor(logging.INFO):  # the line costs as much as the payload is big
            LOG.info(_log_line("<-" if direction == "in" else "->", self.chargebox_id, record))
        return record, parsed

    async def send(self, frame: str | bytes) -> Record:
        """Record, log and send one frame; raises NotConnected when the socket is gone."""
        record, _ = self._record("out", frame)
        try:
            await self.ws.send(frame)
        except ConnectionClosed as error:
            record.sent = False
            raise NotConnected(f"{self.chargebox_id}: connection closed ({error})") from error
        return record

    async def deliver(self, frame: str, delay: float) -> None:
        """Send an answer now, or after ``delay`` seconds without holding up the worker."""
        if delay <= 0:
            try:
                await self.send(frame)
            except NotConnected:
                LOG.info("%s: connection closed before the answer could be sent", self.chargebox_id)
            return

        async def later() -> None:
            await asyncio.sleep(delay)
            await self.deliver(frame, 0)

        self._spawn(later())

    def _spawn(self, coroutine: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- receive loop -----------------------------------------------------------------------

    async def run(self) -> None:
        worker = asyncio.create_task(self._answer_calls(), name=f"csms-answer-{self.chargebox_id}")
        try:
            while True:
                try:
                    frame = await self.ws.recv()
                except ConnectionClosed:
                    break
                try:
                    self._on_frame(frame)
                except Exception:  # one bad frame must never end the loop
                    LOG.exception("%s: error while handling a frame: %r", self.chargebox_id, frame[:500])
        finally:
            worker.cancel()
            for task in list(self._tasks):
                task.cancel()
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(NotConnected(f"{self.chargebox_id}: connection closed"))
            self.closed.set()

    def _on_frame(self, frame: str | bytes) -> None:
        record, parsed = self._record("in", frame)
        uid = parsed.unique_id
        if parsed.message_type_id == CALL and uid is not None:
            if len(uid) > MAX_UNIQUE_ID_LENGTH:
                self.cs._violation(self, "in", uid, parsed.action, "PropertyConstraintViolation",
                                   f"UniqueId longer than {MAX_UNIQUE_ID_LENGTH} characters", parsed.payload)
            self._incoming.put_nowait(parsed)
            return
        if parsed.malformed is not None:
            self.cs._violation(self, "in", uid, parsed.action, "FormationViolation", parsed.malformed, record.raw)
        if parsed.message_type_id in (CALLRESULT, CALLERROR) and uid is not None:
            self._actions_sent.pop(uid, None)
            future = self._pending.pop(uid, None)
            if future is None:
                LOG.warning("%s: answer to unknown unique id %r", self.chargebox_id, uid)
            elif not future.done():
                future.set_result(parsed)

    # --- answering the station's CALLs ------------------------------------------------------

    async def _answer_calls(self) -> None:
        while True:
            parsed = await self._incoming.get()
            try:
                await self._answer(parsed)
            except Exception:  # keep answering later CALLs whatever happened
                LOG.exception("%s: failed to answer %s", self.chargebox_id, parsed.action)

    async def _answer(self, parsed: _Parsed) -> None:
        uid = parsed.unique_id
        action = parsed.action
        assert uid is not None
        if parsed.malformed is not None:
            self.cs._violation(self, "in", uid, action, "FormationViolation", parsed.malformed, parsed.payload)
            if self.cs.validate:
                await self.deliver(_dumps([CALLERROR, uid, "FormationViolation", parsed.malformed, {}]), 0)
            return
        assert action is not None
        problem = _validate(CALL, action, parsed.payload, from_json=True)
        if problem is not None:
            self.cs._violation(self, "in", uid, action, problem[0], problem[1], parsed.payload)
            if self.cs.validate:
                await self.deliver(_dumps([CALLERROR, uid, problem[0], problem[1], {}]), 0)
                return
        override = self.cs._take_override(self.chargebox_id, action)
        delay = override.delay if override is not None else 0.0
        if override is not None and override.response is not DEFAULT:
            reply = await self._overridden_reply(action, override.response, copy.deepcopy(parsed.payload))
            if reply is NO_REPLY:
                LOG.info("%s: not answering %s %s (NO_REPLY)", self.chargebox_id, action, uid)
                return
            if isinstance(reply, CallError):
                frame = _dumps([CALLERROR, uid, reply.code, reply.description, reply.details])
            else:
                frame = _dumps([CALLRESULT, uid, reply])
            await self.deliver(frame, delay)
            return
        default = DEFAULT_ANSWERS.get(action)
        if default is not None:
            frame = _dumps([CALLRESULT, uid, default(self.cs, parsed.payload)])
        elif action in _V16_ACTIONS:
            frame = _dumps([CALLERROR, uid, "NotSupported", _NOT_SUPPORTED, {}])
        else:
            frame = _dumps([CALLERROR, uid, "NotImplemented", _NOT_IMPLEMENTED, {}])
        await self.deliver(frame, delay)

    async def _overridden_reply(self, action: str, response: Any, payload: dict[str, Any]) -> Any:
        if callable(response):
            try:
                response = response(payload)
                if inspect.isawaitable(response):
                    response = await response
            except ocpp_exceptions.OCPPError as error:
                return CallError(error.code, error.description, _normalise(error.details or {}))
            except Exception as error:
                LOG.exception("%s: response callable for %s failed", self.chargebox_id, action)
                return CallError("InternalError", f"{type(error).__name__}: {error}")
        if response is NO_REPLY or isinstance(response, CallError):
            return response
        if isinstance(response, ocpp_exceptions.OCPPError):
            return CallError(response.code, response.description, _normalise(response.details or {}))
        return _normalise(response)  # verbatim: tests may answer with invalid payloads on purpose

    # --- our CALLs to the station -----------------------------------------------------------

    async def call(self, action: str, payload: dict[str, Any], *, timeout: float, validate: bool,
                   unique_id: str | None) -> dict[str, Any]:
        payload = _normalise(payload)
        if validate:
            problem = _validate(CALL, action, payload, from_json=True)  # payload: _normalise()d
            if problem is not None:
                raise ProtocolViolation(f"request not sent: {problem[0]}: {problem[1]}",
                                        action=action, code=problem[0], payload=payload)
        try:
            async with asyncio.timeout(timeout):
                async with self._call_lock:  # one outstanding CALL per station ([J16] §4.1.1)
                    uid = unique_id if unique_id is not None else str(uuid.uuid4())
                    future: asyncio.Future[_Parsed] = asyncio.get_running_loop().create_future()
                    self._pending[uid] = future
                    try:
                        await self.send(_dumps([CALL, uid, action, payload]))
                        answer = await future
                    finally:
                        self._pending.pop(uid, None)
        except TimeoutError:
            raise TimeoutError(f"{self.chargebox_id}: no answer to {action} within {timeout} s") from None
        if answer.malformed is not None:
            raise ProtocolViolation(f"malformed answer to {action}: {answer.malformed}",
                                    action=action, code="FormationViolation", payload=answer.payload)
        if answer.message_type_id == CALLERROR:
            raise CallErrorReceived(action, uid, answer.error_code, answer.error_description, answer.payload)
        if validate:
            problem = _validate(CALLRESULT, action, answer.payload, from_json=True)
            if problem is not None:
                self.cs._violation(self, "in", uid, action, problem[0], problem[1], answer.payload)
                raise ProtocolViolation(f"invalid answer to {action}: {problem[0]}: {problem[1]}",
                                        action=action, code=problem[0], payload=answer.payload)
        return copy.deepcopy(answer.payload)


# --------------------------------------------------------------------------------------------
# The central system
# --------------------------------------------------------------------------------------------


class CentralSystem:
    """An OCPP 1.6J central system on one WebSocket server (see the module docstring).

    ``passwords`` maps chargebox id → password bytes for security profiles 1 and 2 (a ``str``
    is taken as UTF-8). ``validate=True`` answers a schema-invalid CALL with a CALLERROR, as a
    strict backend does; with ``False`` it is only recorded in :meth:`violations` and answered
    normally. ``now`` returns the current time for ``currentTime`` (injectable clock).
    ``max_records``: keep only about the last N frames (for long demo runs; tests keep all)."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        path: str = "/ocpp",
        security_profile: int = 0,
        passwords: dict[str, bytes | str] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        heartbeat_interval: int = 300,
        require_subprotocol: bool = True,
        first_transaction_id: int = 1,
        validate: bool = True,
        ping_interval: float | None = 20.0,
        now: Callable[[], datetime] | None = None,
        max_records: int | None = None,
    ) -> None:
        if security_profile not in (0, 1, 2, 3):
            raise ValueError(f"security profile must be 0, 1, 2 or 3, not {security_profile!r}")
        if security_profile >= 2 and ssl_context is None:
            raise ValueError(f"security profile {security_profile} needs an ssl_context (wss)")
        self.host = host
        self.port = port
        self.path = "/" + path.strip("/") if path.strip("/") else ""
        self.security_profile = security_profile
        self.passwords: dict[str, bytes] = {
            cbid: secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
            for cbid, secret in (passwords or {}).items()
        }
        self.ssl_context = ssl_context
        self.heartbeat_interval = heartbeat_interval
        self.require_subprotocol = require_subprotocol
        self.validate = validate
        self.ping_interval = ping_interval
        self.refuse_status: int | None = None  # e.g. 503: refuse every handshake
        #: chargebox id → time.monotonic() of every handshake attempt, accepted or not.
        self.connection_attempts: defaultdict[str, list[float]] = defaultdict(list)
        self._now = now or (lambda: datetime.now(UTC))
        self._transaction_ids = itertools.count(first_transaction_id)
        self._server: Server | None = None
        self._connections: dict[str, _Connection] = {}
        self.max_records = max_records  # keep only about the last N records (long demo runs)
        self._records: list[Record] = []
        self._seq = itertools.count()
        self._claimed: set[int] = set()
        self._handshakes: list[Handshake] = []
        self._violations: list[Violation] = []
        self._overrides: dict[tuple[str | None, str], _Override] = {}
        self._changed = asyncio.Event()

    # --- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind and serve. With ``port=0`` the OS picks the port; read it from :attr:`port`."""
        if self._server is not None:
            raise RuntimeError("central system already started")
        self._server = await serve(
            self._handler,
            self.host,
            self.port,
            subprotocols=[SUBPROTOCOL],
            select_subprotocol=None if self.require_subprotocol else self._select_subprotocol_leniently,
            process_request=self._process_request,
            process_response=self._process_response,
            ping_interval=self.ping_interval,
            ssl=self.ssl_context,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        LOG.info("central system listening on %s/<chargebox id> (security profile %d)",
                 self.url, self.security_profile)

    async def stop(self) -> None:
        """Close every connection (1001 going away) and the listening socket. Idempotent; the
        central system can be started again afterwards (same port, same records)."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        try:
            async with asyncio.timeout(10):
                await server.wait_closed()
        except TimeoutError:
            LOG.warning("central system: connections did not close within 10 s")
        self._connections.clear()
        self._notify()
        LOG.info("central system on port %d stopped", self.port)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        """Base URL for the station (it appends ``/<chargebox id>``): ``ws://127.0.0.1:P/ocpp``."""
        scheme = "wss" if self.ssl_context is not None else "ws"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}{self.path}"

    def now_iso(self) -> str:
        return ocpp_now(self._now())

    def next_transaction_id(self) -> int:
        return next(self._transaction_ids)

    # --- behaviour --------------------------------------------------------------------------

    def respond(self, action: str, response: Responder = DEFAULT, *, delay: float = 0.0,
                times: int | None = None, chargebox_id: str | None = None) -> None:
        """Override the answer to ``action``.

        ``response``: a payload dict (sent verbatim, even if schema-invalid), a callable
        ``payload -> dict | CallError | NO_REPLY`` (may be async; raising an ``OCPPError``
        answers with its code), a :class:`CallError` or ``OCPPError`` instance, :data:`NO_REPLY`
        (never answer), or :data:`DEFAULT` (the built-in answer — with ``delay`` to make it
        late; also how to undo an override). ``delay`` seconds before the answer is sent (the
        other traffic keeps flowing meanwhile). ``times``: used that many times, then the
        default is back. ``chargebox_id``: only for that station (wins over an all-stations
        override)."""
        if delay < 0:
            raise ValueError("delay must be >= 0")
        key = (chargebox_id, action)
        if response is DEFAULT and delay == 0:
            self._overrides.pop(key, None)
            return
        self._overrides[key] = _Override(response, delay, times)

    def reset_responses(self) -> None:
        """Forget every override: all actions get their default answers again."""
        self._overrides.clear()

    def _take_override(self, chargebox_id: str, action: str) -> _Override | None:
        for key in ((chargebox_id, action), (None, action)):
            override = self._overrides.get(key)
            if override is None:
                continue
            if override.remaining is not None:
                override.remaining -= 1
                if override.remaining <= 0:
                    del self._overrides[key]
            return override
        return None

    # --- observing --------------------------------------------------------------------------

    def messages(self, chargebox_id: str | None = None) -> list[Record]:
        """Every frame received from and sent to ``chargebox_id`` (or all stations), in order."""
        return [r for r in self._records if chargebox_id is None or r.chargebox_id == chargebox_id]

    def payloads(self, action: str, chargebox_id: str | None = None) -> list[Any]:
        """The payloads of the CALLs ``action`` that the station(s) sent, in order."""
        return [r.payload for r in self.messages(chargebox_id)
                if r.direction == "in" and r.message_type_id == CALL and r.action == action]

    def handshakes(self, chargebox_id: str | None = None) -> list[Handshake]:
        return [h for h in self._handshakes if chargebox_id is None or h.chargebox_id == chargebox_id]

    def violations(self, chargebox_id: str | None = None) -> list[Violation]:
        """Frames or payloads that broke OCPP 1.6, sent by the station(s) (direction "in")."""
        return [v for v in self._violations if chargebox_id is None or v.chargebox_id == chargebox_id]

    async def wait_for(self, action: str | None, *, chargebox_id: str | None = None,
                       predicate: Callable[[Record], bool] | None = None, timeout: float = 5.0,
                       direction: str = "in", message_type_id: int | None = None) -> Record:
        """The earliest matching record that no earlier ``wait_for`` returned, waiting for it.

        Matches records already received as well as future ones, so there is no race with the
        station; each record is handed out once, so two calls for ``"StartTransaction"`` return
        the first and the second one. ``action=None`` matches any action (also malformed
        frames); ``direction="out"`` matches what we sent; ``message_type_id`` narrows to
        CALL/CALLRESULT/CALLERROR. ``predicate`` gets the :class:`Record`. Raises
        ``TimeoutError`` listing what did arrive."""

        def find() -> Record | None:
            for record in self._records:
                if (record.seq not in self._claimed
                        and record.direction == direction
                        and (action is None or record.action == action)
                        and (chargebox_id is None or record.chargebox_id == chargebox_id)
                        and (message_type_id is None or record.message_type_id == message_type_id)
                        and (predicate is None or predicate(record))):
                    return record
            return None

        try:
            record = await self._wait_until(find, timeout)
        except TimeoutError:
            seen = [f"{r.chargebox_id}:{r.action or r.malformed}" for r in self._records
                    if r.direction == direction][-20:]
            raise TimeoutError(f"no {direction} {action or 'frame'} for {chargebox_id or 'any station'} "
                               f"within {timeout} s; last seen: {seen}") from None
        self._claimed.add(record.seq)
        return record

    # --- connections ------------------------------------------------------------------------

    def connected(self, chargebox_id: str) -> bool:
        return chargebox_id in self._connections

    def connected_ids(self) -> list[str]:
        return list(self._connections)

    async def wait_connected(self, chargebox_id: str, timeout: float = 5.0) -> None:
        try:
            await self._wait_until(lambda: self._connections.get(chargebox_id), timeout)
        except TimeoutError:
            raise TimeoutError(f"{chargebox_id} did not connect within {timeout} s") from None

    async def wait_disconnected(self, chargebox_id: str, timeout: float = 5.0) -> None:
        try:
            await self._wait_until(lambda: chargebox_id not in self._connections or None, timeout)
        except TimeoutError:
            raise TimeoutError(f"{chargebox_id} still connected after {timeout} s") from None

    async def disconnect(self, chargebox_id: str, code: int = 1000, reason: str = "", *,
                         abort: bool = False) -> None:
        """Close the station's socket from the server side (close handshake with ``code``), or
        with ``abort=True`` drop the TCP connection without one (like a network failure).
        Returns once the connection is gone; no-op when not connected."""
        connection = self._connections.get(chargebox_id)
        if connection is None:
            return
        LOG.info("%s: disconnecting (%s)", chargebox_id, "abort" if abort else f"close {code}")
        if abort:
            connection.ws.transport.abort()
        else:
            await connection.ws.close(code, reason)
        await self._wait_until(lambda: self._connections.get(chargebox_id) is not connection or None, 10)

    async def call(self, chargebox_id: str, action: str, payload: dict[str, Any] | None = None, *,
                   timeout: float = 10.0, validate: bool = True, unique_id: str | None = None) -> dict[str, Any]:
        """Send a CALL to the station and return its CALLRESULT payload.

        Raises :class:`CallErrorReceived` (``.code``) on a CALLERROR, ``TimeoutError`` without
        an answer, :class:`NotConnected`, and :class:`ProtocolViolation` when ``validate`` and
        the request (nothing sent) or the answer breaks the 1.6 schema. Unknown actions are
        not validated. ``validate=False`` sends whatever you give (e.g. a limit of 6.25)."""
        connection = self._connections.get(chargebox_id)
        if connection is None:
            raise NotConnected(f"{chargebox_id} is not connected")
        return await connection.call(action, payload if payload is not None else {},
                                     timeout=timeout, validate=validate, unique_id=unique_id)

    async def send_raw(self, chargebox_id: str, frame: str | bytes) -> Record:
        """Send any frame as it is (``bytes`` → a binary frame). A frame that parses as a CALL
        is remembered, so the station's answer is recorded with its action (no waiting)."""
        connection = self._connections.get(chargebox_id)
        if connection is None:
            raise NotConnected(f"{chargebox_id} is not connected")
        return await connection.send(frame)

    # --- internals --------------------------------------------------------------------------

    def _append(self, record: Record) -> Record:
        record.seq = next(self._seq)
        self._records.append(record)
        if self.max_records is not None and len(self._records) > self.max_records + self.max_records // 10:
            del self._records[: len(self._records) - self.max_records]  # trim in batches
            oldest = self._records[0].seq if self._records else record.seq
            self._claimed = {seq for seq in self._claimed if seq >= oldest}
        self._notify()
        return record

    def _violation(self, connection: _Connection, direction: str, unique_id: str | None, action: str | None,
                   code: str, description: str, payload: Any) -> None:
        self._violations.append(Violation(connection.chargebox_id, direction, unique_id, action, code,
                                          description, payload, time.monotonic()))
        LOG.warning("%s: OCPP violation (%s) in %s%s: %s", connection.chargebox_id, code, action or "frame",
                    f" {unique_id}" if unique_id else "", description)

    def _notify(self) -> None:
        event, self._changed = self._changed, asyncio.Event()
        event.set()

    async def _wait_until(self, probe: Callable[[], Any], timeout: float) -> Any:
        async with asyncio.timeout(timeout):
            while True:
                event = self._changed
                result = probe()
                if result is not None:
                    return result
                await event.wait()

    @staticmethod
    def _select_subprotocol_leniently(_: ServerConnection, offered: Sequence[str]) -> str | None:
        return SUBPROTOCOL if SUBPROTOCOL in offered else None

    def _check_basic_auth(self, chargebox_id: str, headers: Headers) -> tuple[str | None, str | None]:
        """(user, None) when the credentials are right, else (user or None, reason)."""
        values = headers.get_all("Authorization")
        if not values:
            return None, "no credentials"
        if len(values) > 1:
            return None, "several Authorization headers"
        scheme, _, token = values[0].strip().partition(" ")
        if scheme.lower() != "basic":
            return None, f"auth scheme {scheme!r} is not Basic"
        try:
            decoded = base64.b64decode(token.strip(), validate=True)
        except (binascii.Error, ValueError):
            return None, "malformed Basic credentials"
        user_bytes, colon, password = decoded.partition(b":")
        user = user_bytes.decode("utf-8", "replace")
        if not colon:
            return user, "malformed Basic credentials"
        if user_bytes != chargebox_id.encode("utf-8"):
            return user, "user is not the chargebox id"
        expected = self.passwords.get(chargebox_id)
        if expected is None:
            return user, "no password configured for this chargebox id"
        if not hmac.compare_digest(password, expected):
            return user, "wrong password"
        return user, None

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        chargebox_id = _chargebox_id_of(request.path)
        reason: str | None = None
        response: Response | None = None
        user: str | None = None
        if self.refuse_status is not None:
            reason = "refusing connections"
            response = connection.respond(self.refuse_status, "Refusing connections.\n")
        elif not chargebox_id:
            reason = "no chargebox id in the URL path"
            response = connection.respond(HTTPStatus.NOT_FOUND, "No chargebox id in the URL path.\n")
        elif self.security_profile in (1, 2):
            user, reason = self._check_basic_auth(chargebox_id, request.headers)
            if reason is not None:
                response = connection.respond(HTTPStatus.UNAUTHORIZED, "Unauthorized.\n")
                response.headers["WWW-Authenticate"] = 'Basic realm="OCPP", charset="UTF-8"'
        else:
            user, _ = self._check_basic_auth(chargebox_id, request.headers)
        connection.csms_handshake = (chargebox_id, user, reason)  # type: ignore[attr-defined]
        return response

    @staticmethod
    def _client_certificate(connection: ServerConnection) -> str | None:
        tls = connection.transport.get_extra_info("ssl_object")
        der = tls.getpeercert(binary_form=True) if tls is not None else None
        return x509.load_der_x509_certificate(der).subject.rfc4514_string() if der else None

    def _process_response(self, connection: ServerConnection, request: Request, response: Response) -> None:
        chargebox_id, user, reason = getattr(connection, "csms_handshake", (_chargebox_id_of(request.path), None, None))
        status = response.status_code
        if reason is None:
            reason = "accepted" if status == 101 else response.reason_phrase
            if status == HTTPStatus.BAD_REQUEST:
                offered = request.headers.get_all("Sec-WebSocket-Protocol")
                reason = f"subprotocol {SUBPROTOCOL} not offered (offered: {offered or 'none'})"
        offered = tuple(p.strip() for value in request.headers.get_all("Sec-WebSocket-Protocol")
                        for p in value.split(","))
        remote = connection.remote_address
        handshake = Handshake(chargebox_id, request.path, status, reason, offered, user,
                              f"{remote[0]}:{remote[1]}" if remote else "?", time.time(), time.monotonic(),
                              self._client_certificate(connection))
        self._handshakes.append(handshake)
        self.connection_attempts[chargebox_id].append(handshake.monotonic)
        if status == 101:
            LOG.info("%s: handshake accepted (path %s, subprotocol %s, from %s)", chargebox_id, request.path,
                     response.headers.get("Sec-WebSocket-Protocol"), handshake.remote)
        else:
            LOG.warning("%s: handshake refused with HTTP %d: %s (path %s, from %s)", chargebox_id, status,
                        reason, request.path, handshake.remote)
        self._notify()

    async def _handler(self, ws: ServerConnection) -> None:
        chargebox_id = _chargebox_id_of(ws.request.path if ws.request else "")
        connection = _Connection(self, chargebox_id, ws)
        previous = self._connections.get(chargebox_id)
        self._connections[chargebox_id] = connection
        self._notify()
        if previous is not None:
            LOG.warning("%s: new connection replaces the open one", chargebox_id)
            self._spawn_close(previous)
        LOG.info("%s: connected", chargebox_id)
        try:
            await connection.run()
        finally:
            if self._connections.get(chargebox_id) is connection:
                del self._connections[chargebox_id]
            LOG.info("%s: disconnected (close code %s)", chargebox_id, ws.close_code)
            self._notify()

    @staticmethod
    def _spawn_close(previous: _Connection) -> None:
        task = asyncio.ensure_future(previous.ws.close(1000, "replaced by a new connection"))
        previous._tasks.add(task)
        task.add_done_callback(previous._tasks.discard)


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def _id_and_secret(text: str, *, hex_value: bool) -> tuple[str, bytes]:
    chargebox_id, sep, secret = text.partition("=")
    if not sep or not chargebox_id:
        raise argparse.ArgumentTypeError(f"expected ID=SECRET, got {text!r}")
    try:
        return chargebox_id, bytes.fromhex(secret) if hex_value else secret.encode("utf-8")
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{chargebox_id}: password is not hex: {error}") from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m firmware_sim.central_system",
        description="A small OCPP 1.6J central system that accepts everything and logs every message.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=9000, help="port (0: let the OS choose; default 9000)")
    parser.add_argument("--path", default="/ocpp", help="URL path before the chargebox id (default /ocpp)")
    parser.add_argument("--security-profile", type=int, choices=(0, 1, 2), default=0)
    parser.add_argument("--password", action="append", default=[], metavar="ID=SECRET",
                        type=lambda t: _id_and_secret(t, hex_value=False),
                        help="Basic-auth password for a chargebox id, as typed (repeatable)")
    parser.add_argument("--password-hex", action="append", default=[], metavar="ID=HEX",
                        type=lambda t: _id_and_secret(t, hex_value=True),
                        help="password given as hex, as AuthorizationKey over OCPP (repeatable)")
    parser.add_argument("--cert", type=Path, help="server certificate chain PEM (profile 2)")
    parser.add_argument("--key", type=Path, help="server private key PEM (profile 2)")
    parser.add_argument("--pki-dir", type=Path,
                        help="profile 2 without --cert/--key: make a throwaway CA + certificate here "
                             "(clients trust DIR/ca.pem)")
    parser.add_argument("--heartbeat-interval", type=int, default=300)
    parser.add_argument("--allow-missing-subprotocol", action="store_true",
                        help="accept handshakes that do not offer ocpp1.6")
    parser.add_argument("--log-level", default="INFO")
    return parser


# The CLI only logs the frames; nobody reads its records, so it keeps only the last ones (its
# memory stays flat, and the garbage collector's passes do not grow with every frame).
CLI_RECORDS = 1000


def main(argv: Sequence[str] | None = None) -> int:
    """Run the central system until Ctrl-C / SIGTERM, logging each message as one line."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    passwords = dict(args.password + args.password_hex)
    ssl_context: ssl.SSLContext | None = None
    if args.cert or args.key:
        if not (args.cert and args.key):
            _parser().error("--cert and --key go together")
        ssl_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ssl_context.minimum_version = ssl.TLSVersion.TLSv1_2
        ssl_context.load_cert_chain(args.cert, args.key)
    elif args.security_profile == 2:
        if args.pki_dir is None:
            _parser().error("security profile 2 needs --cert/--key or --pki-dir")
        from firmware_sim.test_pki import create_test_pki

        pki = create_test_pki(args.pki_dir)
        ssl_context = pki.server_context
        LOG.info("throwaway PKI in %s: clients trust %s", args.pki_dir, pki.ca_path)
    if args.security_profile >= 1 and not passwords:
        LOG.warning("security profile %d without --password: every station will get HTTP 401",
                    args.security_profile)

    async def run() -> None:
        cs = CentralSystem(host=args.host, port=args.port, path=args.path, security_profile=args.security_profile,
                           passwords=passwords, ssl_context=ssl_context, heartbeat_interval=args.heartbeat_interval,
                           require_subprotocol=not args.allow_missing_subprotocol,
                           max_records=CLI_RECORDS)
        await cs.start()
        print(f"central system: {cs.url}/<chargebox id>", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        try:
            await stop.wait()
        finally:
            await cs.stop()

    asyncio.run(run())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
