"""The fast paths of stationd.ocpp_client.schemas agree with the reference paths.

* Validation: a payload the compiled fastjsonschema validator accepts is returned as valid
  without the Draft4Validator; so the fast path must never accept what the Draft4Validator
  rejects. Payloads are generated from the 1.6 schemas themselves (valid ones, then mutated:
  wrong types, missing and extra fields, bad enums, long strings, bad date-times, 1e400 /
  huge ints, booleans and 1.0 where an integer is expected, tuples for arrays, Decimal).
* Rounding: ``to_wire`` / ``round_incoming`` skip ``Decimal`` for a float already on its step;
  the result must be bit-identical to the ``Decimal`` rounding (``_round_at``, unchanged).
"""

from __future__ import annotations

import copy
import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from decimal import ROUND_FLOOR, ROUND_HALF_EVEN, Decimal
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stationd.ocpp_client import schemas

# Several actions: plain 1.6 ones, the big smart-charging ones with arrays and multipleOf, and
# Security Whitepaper ones (draft-06, $ref into definitions, arrays of referenced objects).
ACTIONS = [
    (schemas.RESPONSE, "GetCompositeSchedule"),
    (schemas.REQUEST, "SetChargingProfile"),
    (schemas.REQUEST, "RemoteStartTransaction"),
    (schemas.REQUEST, "BootNotification"),
    (schemas.REQUEST, "StartTransaction"),
    (schemas.REQUEST, "StopTransaction"),
    (schemas.REQUEST, "MeterValues"),
    (schemas.REQUEST, "SendLocalList"),
    (schemas.RESPONSE, "GetConfiguration"),
    (schemas.REQUEST, "UpdateFirmware"),
    (schemas.REQUEST, "GetLog"),
    (schemas.REQUEST, "SignedUpdateFirmware"),
    (schemas.RESPONSE, "GetInstalledCertificateIds"),
    (schemas.REQUEST, "DeleteCertificate"),
    (schemas.REQUEST, "ExtendedTriggerMessage"),
]

SETTINGS = settings(max_examples=600, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# ---------------------------------------------------------------------------------- payloads


def _resolve(node: dict, root: dict) -> dict:
    while "$ref" in node:
        node = root["definitions"][node["$ref"].rsplit("/", 1)[1]]
    return node


_ZONES = st.sampled_from([UTC, timezone(timedelta(hours=2)), timezone(-timedelta(hours=5))])
_DATE_TIMES = st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2100, 1, 1), timezones=_ZONES)


def _date_time_text(moment: datetime, style: int) -> str:
    if style == 0:
        return moment.isoformat()
    if style == 1:
        return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if style == 2:
        return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return moment.replace(tzinfo=None).isoformat()  # no zone: lenient, accepted


def _valid(node: dict, root: dict, depth: int = 0) -> st.SearchStrategy[Any]:
    node = _resolve(node, root)
    if "enum" in node:
        return st.sampled_from(node["enum"])
    kind = node.get("type")
    if kind == "string":
        if node.get("format") == "date-time":
            return st.builds(_date_time_text, _DATE_TIMES, st.integers(0, 3))
        return st.text(max_size=min(node.get("maxLength", 60), 60))
    if kind == "integer":
        return st.integers(-(2**31), 2**31)
    if kind == "number":
        return st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers(-(10**6), 10**6))
    if kind == "boolean":
        return st.booleans()
    if kind == "array":
        low = node.get("minItems", 0)
        return st.lists(_valid(node["items"], root, depth + 1), min_size=low, max_size=low + (3 if depth < 3 else 0))
    if kind == "object":
        properties = node.get("properties", {})
        required = set(node.get("required", ()))
        return st.fixed_dictionaries(
            {name: _valid(sub, root, depth + 1) for name, sub in properties.items() if name in required},
            optional={name: _valid(sub, root, depth + 1) for name, sub in properties.items() if name not in required},
        )
    return st.none()


_BAD_DATE_TIMES = [
    "", "now", "2024-13-01T00:00:00Z", "2024-02-30T00:00:00Z", "2024-05-01T25:00:00Z", "2024-05-01T10:00:00+25:00",
    "2024-05-01 10:00:00", "2024-05-01", "20240501T100000Z", "2024-05-01T10:00:00ZZ", "２０２４-05-01T10:00:00Z",
    "2024-05-01T10:00:00.1234567890Z", "2024-05-01T10:00:00z", "2024-05-01t10:00:00Z", "2024-05-01T10:00:00\n",
    " 2024-05-01T10:00:00Z", "2024-05-01T10:00Z", "2024-05-01T10Z", "2024-05-01T10:00:60Z",
]

_ODD_VALUES = st.one_of(
    st.none(), st.booleans(), st.just(1.0), st.just(0.0), st.just(-0.0), st.just(2.5),
    st.integers(), st.just(2**70), st.just(10**400), st.just(-(10**30)),
    st.just(math.inf), st.just(-math.inf), st.just(math.nan),  # what json.loads makes of 1e400, -1e400, NaN
    st.floats(), st.text(max_size=8), st.sampled_from(_BAD_DATE_TIMES), st.sampled_from(["Accepted", "A", "W", "x"]),
    st.just(Decimal("1.5")), st.just(Decimal(3)), st.just(()), st.just(("x",)),
    # containers built anew each time: a later mutation may change them
    st.builds(list), st.builds(dict), st.builds(lambda: [1, "a"]), st.builds(lambda: {"startPeriod": 0, "limit": 1.0}),
)


def _nodes(value: Any, path: tuple = ()) -> list[tuple]:
    out = [path]
    if isinstance(value, dict):
        for key, item in value.items():
            out.extend(_nodes(item, (*path, key)))
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            out.extend(_nodes(item, (*path, index)))
    return out


def _get(value: Any, path: tuple) -> Any:
    for part in path:
        value = value[part]
    return value


def _set(value: Any, path: tuple, new: Any) -> Any:
    if not path:
        return new
    parent = _get(value, path[:-1])
    if isinstance(parent, tuple):
        items = list(parent)
        items[path[-1]] = new
        return _set(value, path[:-1], tuple(items))
    parent[path[-1]] = new
    return value


@st.composite
def _mutated(draw: st.DrawFn, payload: Any) -> Any:
    payload = copy.deepcopy(payload)
    for _ in range(draw(st.integers(1, 3))):
        paths = _nodes(payload)
        path = draw(st.sampled_from(paths))
        node = _get(payload, path)
        mutation = draw(st.sampled_from(["replace", "delete", "extra", "tuple", "long", "date", "bool", "float"]))
        if mutation == "delete" and path:
            parent = _get(payload, path[:-1])
            if isinstance(parent, dict):
                del parent[path[-1]]
                continue
        if mutation == "extra" and isinstance(node, dict):
            node[draw(st.sampled_from(["extra", "limit", "status", "idTag", "x" * 30]))] = draw(_ODD_VALUES)
            continue
        if mutation == "tuple" and isinstance(node, list):
            payload = _set(payload, path, tuple(node))
            continue
        if mutation == "long" and isinstance(node, str):
            payload = _set(payload, path, node + "x" * draw(st.sampled_from([1, 20, 500, 100_000])))
            continue
        if mutation == "date" and isinstance(node, str):
            payload = _set(payload, path, draw(st.sampled_from(_BAD_DATE_TIMES)))
            continue
        if mutation == "bool" and type(node) is int:
            payload = _set(payload, path, bool(node % 2))
            continue
        if mutation == "float" and type(node) is int and abs(node) < 2**53:
            payload = _set(payload, path, float(node))
            continue
        payload = _set(payload, path, draw(_ODD_VALUES))
    return payload


@st.composite
def _cases(draw: st.DrawFn) -> tuple[str, str, Any]:
    kind, action = draw(st.sampled_from(ACTIONS))
    root = schemas._SCHEMAS[(kind, action)].validator.schema
    payload = draw(_valid(root, root))
    if draw(st.integers(0, 4)):  # mostly mutated
        payload = draw(_mutated(payload))
    return kind, action, payload


def _reference(kind: str, action: str, payload: Any) -> schemas.SchemaViolation | None:
    """``schemas.validate`` with the Draft4Validator alone (the fast path switched off)."""
    schema = schemas._SCHEMAS[(kind, action)]
    with mock.patch.dict(schemas._SCHEMAS, {(kind, action): replace(schema, fast=None)}):
        return schemas.validate(kind, action, payload)


def _fast_accepts(kind: str, action: str, payload: Any) -> bool:
    return schemas._fast_accepts(schemas._SCHEMAS[(kind, action)], payload)


def _has_tuple(value: Any) -> bool:
    if isinstance(value, tuple):
        return True
    if isinstance(value, dict):
        return any(_has_tuple(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_tuple(v) for v in value)
    return False


# ---------------------------------------------------------------------------------- validation


def test_every_schema_has_a_fast_path() -> None:
    assert all(schema.fast is not None for schema in schemas._SCHEMAS.values())


@pytest.mark.parametrize("schema", [
    {"type": "string", "pattern": "^a$"},  # a keyword the fast path is not trusted with
    {"type": ["string", "null"]},
    {"type": "object", "properties": {"a": {"type": "integer", "minimum": 0}}},
    {"type": "array", "items": [{"type": "string"}], "additionalItems": False},  # items as a list
    {"type": "object", "properties": {"a": {"$ref": "http://example.com/schema.json"}}},  # not a local $ref
    {"type": "string", "format": "email"},
    {"type": "string", "enum": ["a", 1]},
    {"type": "object", "additionalProperties": {"type": "string"}},
])
def test_schemas_with_other_keywords_keep_jsonschema_alone(schema: dict) -> None:
    assert not schemas._fast_compatible(schema, schema, (), [])


def test_array_paths_are_collected_through_refs() -> None:
    schema = {"type": "object", "definitions": {"L": {"type": "array", "items": {"type": "string"}}},
              "properties": {"a": {"$ref": "#/definitions/L"},
                             "b": {"type": "array", "items": {"type": "object", "properties": {
                                 "c": {"type": "array", "items": {"type": "integer"}}}}}}}
    arrays: list = []
    assert schemas._fast_compatible(schema, schema, (), arrays)
    assert arrays == [("a",), ("b",), ("b", "*", "c")]


@SETTINGS
@given(case=_cases())
def test_fast_path_agrees_with_draft4_validator(case: tuple[str, str, Any]) -> None:
    kind, action, payload = case
    before = copy.deepcopy(payload)
    jsonschema_valid = schemas._SCHEMAS[(kind, action)].validator.is_valid(payload)
    fast = _fast_accepts(kind, action, payload)
    if fast:  # the fast path only accepts what jsonschema accepts …
        assert jsonschema_valid
    if jsonschema_valid and not _has_tuple(payload):  # … and for JSON values it accepts all of it
        assert fast
    # the answer of validate (code, description, details) is the Draft4Validator's, either way
    assert schemas.validate(kind, action, payload) == _reference(kind, action, payload)
    assert repr(payload) == repr(before)  # neither validator changes the payload (no defaults)


@pytest.mark.parametrize("payload, valid", [
    ({"connectorId": 1, "duration": 60}, True),
    ({"connectorId": 1.0, "duration": 60}, False),  # Draft 4: 1.0 is not an integer
    ({"connectorId": True, "duration": 60}, False),  # nor is a boolean
    ({"connectorId": 2**70, "duration": 60}, True),
    ({"connectorId": 1, "duration": math.inf}, False),
    ({"connectorId": 1, "duration": 60, "chargingRateUnit": "kW"}, False),
])
def test_integer_subtleties(payload: dict, valid: bool) -> None:
    assert _fast_accepts(schemas.REQUEST, "GetCompositeSchedule", payload) is valid
    assert (schemas.validate(schemas.REQUEST, "GetCompositeSchedule", payload) is None) is valid


def test_tuple_for_an_array_goes_to_jsonschema() -> None:
    periods = ({"startPeriod": 0, "limit": 6.0},)
    payload = {"status": "Accepted", "chargingSchedule": {"chargingRateUnit": "A", "chargingSchedulePeriod": periods}}
    violation = schemas.validate(schemas.RESPONSE, "GetCompositeSchedule", payload)
    assert violation is not None and violation.code == "TypeConstraintViolation"
    payload["chargingSchedule"]["chargingSchedulePeriod"] = list(periods)
    assert schemas.validate(schemas.RESPONSE, "GetCompositeSchedule", payload) is None


def test_uri_is_not_checked_and_date_time_is() -> None:
    request = {"location": "ftp ://odd location/fw.bin", "retrieveDate": "2024-05-01T10:00:00Z"}
    assert schemas.validate(schemas.REQUEST, "UpdateFirmware", request) is None
    request["retrieveDate"] = "2024-05-01T25:00:00Z"
    violation = schemas.validate(schemas.REQUEST, "UpdateFirmware", request)
    assert violation is not None and violation.code == "PropertyConstraintViolation"
    assert violation.details == {"path": "UpdateFirmware.retrieveDate", "rule": "format"}


# ---------------------------------------------------------------------------------- rounding


def _same(a: Any, b: Any) -> bool:
    """Equal, of the same types, floats bit for bit (-0.0 is not 0.0)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return a.hex() == b.hex() or (math.isnan(a) and math.isnan(b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def _near_step(k: int, scale: int, nudge: int) -> float:
    """k / scale, the float next to it on either side, or k × (1 / scale) (often not on the step)."""
    if nudge == 0:
        return k / scale
    if nudge == 2:
        return k * (1 / scale)
    return math.nextafter(k / scale, nudge * math.inf)


_NEAR_STEPS = st.builds(_near_step, st.integers(-(10**12), 10**12), st.sampled_from([1, 10]), st.integers(-1, 2))
_FLOATS = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.floats(min_value=-1e10, max_value=1e10, allow_nan=False),
    _NEAR_STEPS,
    st.sampled_from([0.0, -0.0, 21.400000000000002, 0.30000000000000004, 6.25, 6.35, 0.05, 0.15, 15.9 * 690,
                     999_999_999.9, 1e9, -1e9, 1e9 - 0.1, 2.0**53, 5e-324, math.inf, -math.inf, math.nan]),
)
_STEPS = st.sampled_from([(Decimal("0.1"), 10), (Decimal(1), 1)])


@settings(max_examples=3000, deadline=None)
@given(value=_FLOATS, step=_STEPS, rounding=st.sampled_from([ROUND_HALF_EVEN, ROUND_FLOOR]))
def test_rounding_fast_path_is_bit_identical(value: float, step: tuple[Decimal, int], rounding: str) -> None:
    decimal_step, scale = step
    assert schemas._scale(decimal_step) == scale
    expected = schemas._round_at(value, (), decimal_step, rounding)  # the Decimal rounding
    assert _same(schemas._round_number(value, decimal_step, scale, rounding), expected)


@pytest.mark.parametrize("value", [7, True, Decimal("6.25"), Decimal(3), "6.25", None])
def test_rounding_of_other_values_is_unchanged(value: Any) -> None:
    expected = schemas._round_at(value, (), Decimal("0.1"), ROUND_HALF_EVEN)
    assert _same(schemas._round_number(value, Decimal("0.1"), 10, ROUND_HALF_EVEN), expected)


def _old_plain(value: Any, depth: int = 0) -> Any:
    """``schemas._plain`` as it was before its fast path: the reference."""
    if depth > 64:
        raise ValueError("payload nested too deeply")
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int):
        return int(value)
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
            out[str(key)] = _old_plain(item, depth + 1)
        return out
    if isinstance(value, (list, tuple)):
        return [_old_plain(item, depth + 1) for item in value]
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _old_to_wire(kind: str, action: str, payload: Any) -> Any:
    plain = _old_plain(payload)
    schema = schemas._SCHEMAS.get((kind, action))
    if schema is not None:
        for path, step, _scale in schema.rounding:
            schemas._round_at(plain, path, step, ROUND_HALF_EVEN)
    return plain


def _outcome(function: Any, *args: Any) -> Any:
    try:
        return ("ok", function(*args))
    except (TypeError, ValueError) as error:
        return ("error", type(error), str(error))


_LIMITS = st.one_of(_FLOATS, st.integers(-(10**6), 10**6), st.decimals(allow_nan=False, allow_infinity=False, places=3))


@settings(max_examples=500, deadline=None)
@given(limits=st.lists(_LIMITS, max_size=20), min_rate=st.one_of(st.none(), _LIMITS),
       extra=st.one_of(st.none(), _ODD_VALUES, st.recursive(st.integers(), lambda inner: st.lists(inner, max_size=2),
                                                            max_leaves=70)),
       as_tuple=st.booleans())
def test_to_wire_is_unchanged(limits: list, min_rate: Any, extra: Any, as_tuple: bool) -> None:
    periods = [{"startPeriod": 60 * i, "limit": limit, "numberPhases": 3} for i, limit in enumerate(limits)]
    schedule: dict[str, Any] = {"chargingRateUnit": "A",
                                "chargingSchedulePeriod": tuple(periods) if as_tuple else periods}
    if min_rate is not None:
        schedule["minChargingRate"] = min_rate
    payload = {"status": "Accepted", "connectorId": 1, "chargingSchedule": schedule, "extra": extra}
    for kind, action in [(schemas.RESPONSE, "GetCompositeSchedule"), (schemas.REQUEST, "Heartbeat"), ("", "")]:
        new, old = _outcome(schemas.to_wire, kind, action, payload), _outcome(_old_to_wire, kind, action, payload)
        assert new[0] == old[0] and (_same(new[1], old[1]) if new[0] == "ok" else new == old)


def test_to_wire_nesting_limit_is_unchanged() -> None:
    for depth in (62, 63, 64, 65, 66):
        payload: Any = 1.5
        for _ in range(depth):
            payload = [payload]
        for wrapped in (payload, {"a": payload}, [{"a": payload}]):
            assert _outcome(schemas.to_wire, "", "", wrapped) == _outcome(_old_to_wire, "", "", wrapped)
