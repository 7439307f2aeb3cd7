"""OCPP 1.6 JSON-schema validation for the station's RPC layer.

The schemas are the ones the ``ocpp`` package ships (``ocpp/v16/schemas/<Action>.json`` for a
request, ``<Action>Response.json`` for its confirmation; the Security Whitepaper ones are
there too). They are read once, at import, with :mod:`importlib.resources` and compiled with
``jsonschema.Draft4Validator``, the source of truth: every error and its 1.6 code come from it.

Fast path: the same (stripped) schema is also compiled with ``fastjsonschema`` (Draft 4 rules
for every schema, the same date-time check, ``uri`` unchecked). A payload it accepts is valid
at once; one it rejects goes to the Draft4Validator, which finds and names the error as before.
It may only accept what jsonschema accepts: it is used for schemas made of the keywords it is
known to treat alike (all 1.6 and whitepaper schemas are), and since it takes a tuple for an
array (jsonschema does not), an accepted payload must have lists where the schema has arrays.
tests/test_ocpp_schemas_fast_path.py checks the two agree on generated and mutated payloads.
The station's 2,500-period GetCompositeSchedule.conf takes about 3 ms instead of 68.

Why our own validators and not ``ocpp.messages.validate_payload``
----------------------------------------------------------------
* ``validate_payload`` runs in a thread pool when ``ocpp.messages.ASYNC_VALIDATION`` is true
  (the default, process-wide switch) and has a reported race there; ours runs synchronously in
  the event loop. A 20-period SetChargingProfile takes about 0.5 ms.
* It raises the package's exceptions, whose codes are the 2.0.1 names (``FormatViolation``,
  ``OccurrenceConstraintViolation``) and a missing field becomes ``ProtocolError``; it does not
  say *which* keyword failed, so the 1.6 code cannot be derived from it.
* It validates the three schemas with ``multipleOf`` by re-parsing payload *and* schema with
  ``Decimal`` and caches validators without keying on the float parser; we need neither (below).
* Its messages embed the offending value (a 100 kB string, an AuthorizationKey); ours name the
  path and the rule only.

multipleOf 0.1 (charging limits)
--------------------------------
SetChargingProfile, RemoteStartTransaction (``chargingSchedulePeriod[].limit``,
``minChargingRate``) and GetCompositeSchedule.conf declare ``multipleOf: 0.1``. Real central
systems send ``6.25``. We **drop ``multipleOf`` when compiling** and instead **round** the
fields that had it (their paths are collected from the schema):

* incoming payloads (:func:`round_incoming`): rounded *down* to a multiple of 0.1 (6.25 A →
  6.2 A), so a limit never grows beyond what the central system allowed; the value is exact,
  as it comes from JSON text (``Decimal(repr(float))``).
* outgoing payloads (:func:`to_wire`): rounded to the *nearest* multiple of 0.1 (half even),
  because they come from float arithmetic (21.400000000000002 → 21.4).

A float already on the step (``16.0``, ``6.2``: it equals ``q / 10`` for an integer ``q``)
is kept as it is without ``Decimal``; that is bit for bit what the ``Decimal`` rounding gives.

``Decimal`` never leaves the station: :func:`to_wire` turns a ``Decimal`` into an ``int`` when
it is integral with a non-negative exponent (``Decimal("3")``) and into a float otherwise.

Error-code mapping (OCPP-J 1.6 §4.2.3, table 7)
-----------------------------------------------
=========================================  ===============================  =====================================
schema keyword / situation                 1.6 code                         why
=========================================  ===============================  =====================================
payload not a JSON object                  FormationViolation               not the PDU structure at all
``additionalProperties`` (extra field),    FormationViolation               "not conform the PDU structure"
``additionalItems``
``required`` (missing field)               OccurenceConstraintViolation     a field occurs 0 times, needs 1
``minItems`` / ``maxItems``                OccurenceConstraintViolation     wrong number of occurrences
``type`` (``"connectorId": "1"``)          TypeConstraintViolation          table 7's own example
``maxLength`` / ``minLength``              TypeConstraintViolation          the 1.6 field *type* is CiStringNType
                                                                            (length is part of the data type); same
                                                                            as the ``ocpp`` package and
                                                                            ``firmware_sim.central_system``
``enum``, ``pattern``, ``minimum``,        PropertyConstraintViolation      syntactically right, invalid value
``maximum``, ``format`` (date-time),
``multipleOf``, ``uniqueItems``, other
=========================================  ===============================  =====================================

When several rules fail, the error nearest to the payload root wins; at the same depth
``type`` > ``additionalProperties`` > ``required`` > the others (a node of the wrong type makes
its other errors meaningless).

``format: date-time`` is checked (lenient: anything :meth:`datetime.fromisoformat` of Python
3.11 reads — RFC 3339 with ``Z`` or an offset, fractions of any length, no zone) so a handler
never gets a date it cannot parse (that would become an InternalError, which is reserved for the
station's own faults). ``format: uri`` is not checked (real locations contain odd characters).
The whitepaper schemas declare draft-06; they use no draft-06-only keyword except ``$id``, and
validating them with Draft 4 keeps integers strict (``1.0`` is not an integer) for all actions.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_FLOOR, ROUND_HALF_EVEN, Decimal, InvalidOperation
from importlib.resources import files
from typing import Any

import fastjsonschema
from jsonschema import Draft4Validator, FormatChecker
from jsonschema.exceptions import ValidationError

from stationd.ocpp_client.actions import ALL_ACTIONS

__all__ = [
    "REQUEST",
    "RESPONSE",
    "SchemaViolation",
    "has_schema",
    "nesting_depth",
    "round_incoming",
    "to_wire",
    "validate",
]

REQUEST, RESPONSE = "req", "conf"

_FORMATION = "FormationViolation"
_OCCURENCE = "OccurenceConstraintViolation"
_TYPE = "TypeConstraintViolation"
_PROPERTY = "PropertyConstraintViolation"

_CODE_BY_KEYWORD = {
    "additionalProperties": _FORMATION,
    "additionalItems": _FORMATION,
    "required": _OCCURENCE,
    "minItems": _OCCURENCE,
    "maxItems": _OCCURENCE,
    "type": _TYPE,
    "maxLength": _TYPE,
    "minLength": _TYPE,
    "enum": _PROPERTY,
    "pattern": _PROPERTY,
    "minimum": _PROPERTY,
    "maximum": _PROPERTY,
    "format": _PROPERTY,
    "multipleOf": _PROPERTY,
    "uniqueItems": _PROPERTY,
}
_KEYWORD_PRIORITY = {"type": 0, "additionalProperties": 1, "required": 2}
_MAX_DESCRIPTION = 200


@dataclass(frozen=True)
class SchemaViolation:
    """A payload that breaks its 1.6 schema: the 1.6 ``code``, a short ``description`` that
    never contains the offending value, and ``details`` for the CALLERROR's errorDetails."""

    code: str
    description: str
    details: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------

_DATE_TIME_CHECKER = FormatChecker(formats=())


@_DATE_TIME_CHECKER.checks("date-time", raises=ValueError)
def _is_date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True  # "type" reports it
    datetime.fromisoformat(value)
    return True


def _date_time_ok(value: str) -> bool:
    """The date-time check of :data:`_DATE_TIME_CHECKER` for the fast path: True or False."""
    try:
        return _is_date_time(value)
    except Exception:  # noqa: BLE001 - ValueError is "invalid"; anything else: jsonschema decides
        return False


def _any_value(_value: str) -> bool:
    return True  # format: uri is not checked (see above)


@dataclass(frozen=True)
class _Schema:
    validator: Draft4Validator
    rounding: tuple[tuple[tuple[str, ...], Decimal, int | None], ...]  # (path, step, 1/step for the fast path)
    fast: Callable[[Any], Any] | None = None  # compiled by fastjsonschema; None: jsonschema only
    arrays: tuple[tuple[str, ...], ...] = ()  # where the schema has arrays (path with "*" for items)


def _strip_multiple_of(node: Any, root: dict, path: tuple[str, ...], found: list, depth: int = 0) -> Any:
    """A copy of ``node`` without ``multipleOf``; the paths that had it go into ``found``."""
    if depth > 32 or not isinstance(node, dict):
        return copy.deepcopy(node)
    if "$ref" in node and isinstance(node["$ref"], str) and node["$ref"].startswith("#/"):
        target: Any = root
        for part in node["$ref"][2:].split("/"):
            target = target.get(part, {}) if isinstance(target, dict) else {}
        _strip_multiple_of(target, root, path, found, depth + 1)  # only to collect paths
    out = {}
    for key, value in node.items():
        if key == "multipleOf":
            found.append((path, Decimal(str(value))))
        elif key == "properties" and isinstance(value, dict):
            out[key] = {name: _strip_multiple_of(sub, root, (*path, name), found, depth + 1)
                        for name, sub in value.items()}
        elif key == "items" and isinstance(value, dict):
            out[key] = _strip_multiple_of(value, root, (*path, "*"), found, depth + 1)
        elif key == "definitions" and isinstance(value, dict):
            # definitions are reached through $ref (paths collected there); strip them too
            out[key] = {name: _strip_multiple_of(sub, root, ("<definition>",), [], depth + 1)
                        for name, sub in value.items()}
        else:
            out[key] = copy.deepcopy(value)
    return out


def _load() -> dict[tuple[str, str], _Schema]:
    directory = files("ocpp") / "v16" / "schemas"
    loaded: dict[tuple[str, str], _Schema] = {}
    for action in sorted(ALL_ACTIONS):
        for kind, suffix in ((REQUEST, ""), (RESPONSE, "Response")):
            raw = json.loads((directory / f"{action}{suffix}.json").read_text(encoding="utf-8-sig"))
            found: list[tuple[tuple[str, ...], Decimal]] = []
            stripped = _strip_multiple_of(raw, raw, (), found)
            Draft4Validator.check_schema(stripped)
            arrays: list[tuple[str, ...]] = []
            fast = _compile_fast(stripped) if _fast_compatible(stripped, stripped, (), arrays) else None
            rounding = tuple((path, step, _scale(step)) for path, step in dict.fromkeys(found))
            loaded[(kind, action)] = _Schema(Draft4Validator(stripped, format_checker=_DATE_TIME_CHECKER),
                                             rounding, fast, tuple(dict.fromkeys(arrays)))
    return loaded


# The fast path: the same stripped schema compiled by fastjsonschema (Draft 4 rules, the same
# date-time check, ``uri`` unchecked). What it accepts is valid; what it rejects goes to the
# Draft4Validator, which names the error. It is used only for schemas made of the keywords
# below, where the two agree on every payload except one: fastjsonschema takes a tuple for an
# "array" (jsonschema does not), so an accepted payload must also have lists, not tuples, where
# the schema has arrays (tests/test_ocpp_schemas_fast_path.py checks the agreement).
_FAST_KEYWORDS = frozenset({
    "$schema", "$id", "title", "description", "javaType", "definitions", "$ref",  # no effect here
    "type", "properties", "additionalProperties", "required", "items", "additionalItems",
    "minItems", "maxLength", "enum", "format",
})
_FAST_TYPES = frozenset({"object", "array", "string", "integer", "number", "boolean"})
_FAST_FORMATS = {"date-time": _date_time_ok, "uri": _any_value}
_DRAFT4 = "http://json-schema.org/draft-04/schema#"


def _fast_compatible(node: Any, root: dict, path: tuple[str, ...], arrays: list, depth: int = 0) -> bool:
    """Whether the fast path handles ``node`` like the Draft4Validator; collects the array paths."""
    if depth > 32 or not isinstance(node, dict):
        return False
    for key, value in node.items():
        if key not in _FAST_KEYWORDS:
            return False
        if key == "format" and not (isinstance(value, str) and value in _FAST_FORMATS):
            return False
        if key == "type" and not (isinstance(value, str) and value in _FAST_TYPES):
            return False  # one type, not a list of them
        if key == "enum" and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            return False
        if key in ("additionalProperties", "additionalItems") and not isinstance(value, bool):
            return False
    if "$ref" in node:
        ref = node["$ref"]
        if not isinstance(ref, str) or not ref.startswith("#/definitions/") or "/" in ref[len("#/definitions/"):]:
            return False
        target = root.get("definitions", {}).get(ref[len("#/definitions/"):])
        # Draft 4: the siblings of a $ref are ignored (by both validators)
        return target is not None and _fast_compatible(target, root, path, arrays, depth + 1)
    if node.get("type") == "array":
        arrays.append(path)
    for name, sub in node.get("properties", {}).items():
        if not _fast_compatible(sub, root, (*path, name), arrays, depth + 1):
            return False
    if "items" in node and not _fast_compatible(node["items"], root, (*path, "*"), arrays, depth + 1):
        return False  # a list of item schemas is not handled either
    return all(_fast_compatible(sub, root, ("<definition>",), [], depth + 1)
               for sub in node.get("definitions", {}).values())


def _refuse_remote(uri: str) -> Any:
    raise ValueError(f"no remote $ref: {uri}")


def _compile_fast(stripped: dict) -> Callable[[Any], Any] | None:
    fast_schema = {**stripped, "$schema": _DRAFT4}  # Draft 4 rules for the draft-06 schemas too
    try:
        return fastjsonschema.compile(
            fast_schema, handlers={scheme: _refuse_remote for scheme in ("http", "https", "file", "ftp", "urn")},
            formats=_FAST_FORMATS, use_default=False, detailed_exceptions=False)
    except Exception:  # noqa: BLE001 - a schema it cannot compile: jsonschema alone
        return None


def _lists_only(value: Any, path: tuple[str, ...]) -> bool:
    """False when a tuple stands where ``path`` leads (fastjsonschema took it for an array)."""
    if not path:
        return not isinstance(value, tuple)
    head, rest = path[0], path[1:]
    if head == "*":
        if isinstance(value, (list, tuple)):
            return all(_lists_only(item, rest) for item in value)
        return True
    if isinstance(value, dict) and head in value:
        return _lists_only(value[head], rest)
    return True


def _scale(step: Decimal) -> int | None:
    """``1/step`` when ``step`` is 1, 0.1, …, 1e-6 (the fast path of the rounding), else None."""
    for digits in range(7):
        if step == Decimal(1).scaleb(-digits):
            return 10**digits
    return None


_SCHEMAS = _load()


def has_schema(kind: str, action: str) -> bool:
    return (kind, action) in _SCHEMAS


# ---------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------


def _where(action: str, kind: str, error: ValidationError) -> str:
    text = action + (".conf" if kind == RESPONSE else "")
    for part in error.absolute_path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text


def _rule(error: ValidationError) -> str:
    keyword, value = str(error.validator), error.validator_value
    if keyword == "required":
        missing = [name for name in value if isinstance(error.instance, dict) and name not in error.instance]
        return f"missing required field {', '.join(missing) or '?'}"
    if keyword == "additionalProperties":
        allowed = set((error.schema or {}).get("properties", {}))
        instance = error.instance if isinstance(error.instance, dict) else {}
        extra = [str(name) for name in instance if name not in allowed]
        return f"unexpected field {', '.join(extra)[:80] or '?'}"
    if keyword == "type":
        return f"must be of type {value}, not {_json_type(error.instance)}"
    if keyword == "enum":
        return f"not one of {', '.join(map(str, value))}"
    if keyword in ("maxLength", "minLength", "maxItems", "minItems", "minimum", "maximum", "pattern"):
        return f"violates {keyword} {value}"
    if keyword == "format":
        return f"is not a valid {value}"
    return f"violates {keyword}"


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _choose(errors: Iterable[ValidationError]) -> ValidationError | None:
    best, best_key = None, None
    for error in errors:
        key = (len(error.absolute_path), _KEYWORD_PRIORITY.get(str(error.validator), 9))
        if best_key is None or key < best_key:
            best, best_key = error, key
    return best


def _fast_accepts(schema: _Schema, payload: dict) -> bool:
    """True: ``payload`` is valid (the fast path). False: the Draft4Validator decides."""
    if schema.fast is None:
        return False
    try:
        schema.fast(payload)
    except Exception:  # noqa: BLE001 - rejected, or it could not tell
        return False
    return all(_lists_only(payload, path) for path in schema.arrays)


def validate(kind: str, action: str, payload: Any) -> SchemaViolation | None:
    """Check ``payload`` of ``action`` (``kind`` :data:`REQUEST` or :data:`RESPONSE`).

    ``None`` when valid. Raises ``KeyError`` for an action without a 1.6 schema (the caller
    decides NotImplemented/NotSupported first). ``multipleOf`` is not checked (see above)."""
    schema = _SCHEMAS[(kind, action)]
    if not isinstance(payload, dict):
        name = action + (".conf" if kind == RESPONSE else "")
        return SchemaViolation(_FORMATION, f"{name}: payload must be a JSON object, not {_json_type(payload)}")
    if _fast_accepts(schema, payload):
        return None
    error = _choose(schema.validator.iter_errors(payload))
    if error is None:
        return None
    keyword = str(error.validator)
    code = _CODE_BY_KEYWORD.get(keyword, _PROPERTY)
    where = _where(action, kind, error)
    description = f"{where}: {_rule(error)}"[:_MAX_DESCRIPTION]
    return SchemaViolation(code, description, {"path": where[:_MAX_DESCRIPTION], "rule": keyword})


# ---------------------------------------------------------------------------------------------
# Numbers: rounding where the schema says multipleOf, Decimal → float
# ---------------------------------------------------------------------------------------------


# Below this magnitude a float x that equals q / scale (q an integer) is already on the step:
# repr(x) is then exactly q / scale in decimal (float spacing is far below 1 / scale, so no
# other decimal with as few digits reads back as x), so the Decimal rounding gives back q
# and float(q × step) == x, whatever the rounding mode. Such a value is returned as it is.
_ON_STEP_BOUND = 1e9


def _round_number(value: Any, step: Decimal, scale: int | None, rounding: str) -> Any:
    if (type(value) is float and scale is not None and -_ON_STEP_BOUND < value < _ON_STEP_BOUND
            and round(value * scale) / scale == value):
        return value
    return _round_at(value, (), step, rounding)


def _round_path(value: Any, path: tuple[str, ...], step: Decimal, scale: int | None, rounding: str) -> Any:
    """:func:`_round_at` with the fast path for values already on the step."""
    if not path:
        return _round_number(value, step, scale, rounding)
    head, rest = path[0], path[1:]
    if head == "*":
        if isinstance(value, list):
            if len(rest) == 1 and rest[0] != "*":  # a list of objects: the field of each
                key = rest[0]
                for item in value:
                    if isinstance(item, dict) and key in item:
                        item[key] = _round_number(item[key], step, scale, rounding)
            else:
                for index, item in enumerate(value):
                    value[index] = _round_path(item, rest, step, scale, rounding)
    elif isinstance(value, dict) and head in value:
        value[head] = _round_path(value[head], rest, step, scale, rounding)
    return value


def _round_at(value: Any, path: tuple[str, ...], step: Decimal, rounding: str) -> Any:
    if not path:
        if isinstance(value, float) and math.isfinite(value):
            try:
                exact = Decimal(repr(value))
                return float((exact / step).to_integral_value(rounding=rounding) * step)
            except InvalidOperation:
                return value
        if isinstance(value, Decimal) and value.is_finite():
            return float((value / step).to_integral_value(rounding=rounding) * step)
        return value
    head, rest = path[0], path[1:]
    if head == "*":
        if isinstance(value, list):
            for index, item in enumerate(value):
                value[index] = _round_at(item, rest, step, rounding)
    elif isinstance(value, dict) and head in value:
        value[head] = _round_at(value[head], rest, step, rounding)
    return value


def round_incoming(kind: str, action: str, payload: Any) -> Any:
    """Round the ``multipleOf`` fields of a received payload *down* to their step (in place;
    returns the payload). 6.25 → 6.2."""
    schema = _SCHEMAS.get((kind, action))
    if schema is not None:
        for path, step, scale in schema.rounding:
            _round_path(payload, path, step, scale, ROUND_FLOOR)
    return payload


_PLAIN_SCALARS = (str, int, bool, type(None))  # exact types that _plain returns as they are


def _plain(value: Any, depth: int = 0) -> Any:
    if depth > 64:
        raise ValueError("payload nested too deeply")
    if depth < 64:  # the common shapes first; a child's scalar is taken without a call
        cls = type(value)
        if cls is dict:
            out = {}
            for key, item in value.items():
                item_cls = type(item)
                if type(key) is str and (item_cls in _PLAIN_SCALARS or (item_cls is float and math.isfinite(item))):
                    out[key] = item
                else:
                    if not isinstance(key, str):
                        raise TypeError(f"JSON object keys must be strings, not {type(key).__name__}")
                    out[str(key)] = _plain(item, depth + 1)
            return out
        if cls is list:
            return [item if type(item) in _PLAIN_SCALARS else _plain(item, depth + 1) for item in value]
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return str.__str__(value)  # a str enum → its plain value
    if isinstance(value, int):
        return int(value)  # IntEnum → int
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value!r} cannot be sent as a JSON number")
        return value
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{value!r} cannot be sent as a JSON number")
        if value == value.to_integral_value() and value.as_tuple().exponent >= 0:  # type: ignore[operator]
            return int(value)
        return float(value)
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"JSON object keys must be strings, not {type(key).__name__}")
            out[str(key)] = _plain(item, depth + 1)
        return out
    if isinstance(value, (list, tuple)):
        return [_plain(item, depth + 1) for item in value]
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def to_wire(kind: str, action: str, payload: Any) -> Any:
    """A plain-JSON copy of a payload we send: ``Decimal`` → int/float, tuples → lists, str/int
    enums → their values, ``multipleOf`` fields rounded to the nearest step. Raises
    ``TypeError``/``ValueError`` for what JSON cannot carry (objects, NaN, infinity)."""
    plain = _plain(payload)
    schema = _SCHEMAS.get((kind, action))
    if schema is not None:
        for path, step, scale in schema.rounding:
            _round_path(plain, path, step, scale, ROUND_HALF_EVEN)
    return plain


def nesting_depth(value: Any, limit: int) -> int:
    """Nesting depth of a parsed JSON value (a scalar is 0, ``[]`` is 1), iteratively, stopping
    early once ``limit`` is exceeded (then returns ``limit + 1``)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (list, dict)):
            depth += 1
            if depth > limit:
                return limit + 1
            deepest = max(deepest, depth)
            stack.extend((child, depth) for child in (node.values() if isinstance(node, dict) else node))
    return deepest
