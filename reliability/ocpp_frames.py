"""Hostile OCPP-J 1.6 frames for the ``ocpp_fuzz`` category, each with the answer the station owes.

:class:`FrameGenerator` (seeded: the same seed gives the same frames) makes a :class:`Case` at a
time: the text (or bytes) a central system sends, the message id the station must answer with
(``None``: the frame gets no answer) and the answers that are right for it, from DESIGN.md §5.3
and the table in :mod:`stationd.ocpp_client.rpc`:

* a schema-valid CALL of one of the CS → CP actions (payload generated from the ``ocpp``
  package's 1.6 JSON schema, with every location on 127.0.0.1 and only harmless configuration
  keys) → a CALLRESULT (``NotSupported`` allowed for what the station does not do);
* the same with one mutation → the 1.6 code of that mutation: wrong type / too-long string /
  number beyond a double or int64 → TypeConstraintViolation, missing required field →
  OccurenceConstraintViolation, extra field / not an object / nested deeper than 32 levels
  (up to 10,000) / frame over the 64 kB frame limit (also over 1 MB) → FormationViolation, bad
  enum or date-time → PropertyConstraintViolation; extreme but valid numbers, unicode and
  control characters, empty and long arrays stay valid → a CALLRESULT; a lone surrogate escape
  (``"\\ud800"``) is no Unicode string → TypeConstraintViolation;
* unknown action → NotImplemented, an action the station only sends → NotSupported, a CALL
  with 2 or 3 elements → ProtocolError, action not a string or 5 elements → FormationViolation;
* no answer at all: binary frames, non-JSON text, JSON that is no array, MessageTypeIds other
  than 2/3/4, ids that are not strings, CALLRESULT/CALLERROR for ids never used.

Reset is never sent valid (it would restart the station); every mutation of it is invalid.
"""

from __future__ import annotations

import json
import random
import string
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib.resources import files
from typing import Any

from stationd.ocpp_client.actions import KNOWN_ACTIONS, STATION_ACTIONS

__all__ = ["ANSWER_NONE", "RESULT", "Case", "FrameGenerator", "SAFE_LOCATION"]

RESULT = "CALLRESULT"
ANSWER_NONE = "no answer"
#: Where every generated download/upload location points: loopback, a port nobody serves.
SAFE_LOCATION = "http://127.0.0.1:9/fuzz"
FRAME_LIMIT = 64 * 1024  # stationd.ocpp_client.rpc.DEFAULT_MAX_FRAME_BYTES

_TYPE = "TypeConstraintViolation"
_FORMATION = "FormationViolation"
_OCCURENCE = "OccurenceConstraintViolation"
_PROPERTY = "PropertyConstraintViolation"

#: ChangeConfiguration keys that neither reconnect nor restart the station (DESIGN.md §5.3).
_SAFE_KEYS = ("HeartbeatInterval", "MeterValueSampleInterval", "ClockAlignedDataInterval", "ConnectionTimeOut",
              "LocalAuthorizeOffline", "MeterValuesSampledData", "StopTransactionOnEVSideDisconnect",
              "Testing", "NoSuchKey")
#: Fields whose value is a location the station would contact.
_LOCATION_FIELDS = {"location", "remoteLocation"}
_NEVER_VALID = {"Reset"}


@dataclass
class Case:
    """One frame and what the station must do with it."""

    kind: str  # what was tried, e.g. "wrong_type SetChargingProfile"
    frame: str | bytes
    uid: str | None  # the id the station answers with; None: no answer expected
    expect: frozenset[str]  # RESULT, a CALLERROR code, or ANSWER_NONE
    action: str | None = None


def _load_schemas() -> dict[str, dict]:
    directory = files("ocpp") / "v16" / "schemas"
    return {action: json.loads((directory / f"{action}.json").read_text(encoding="utf-8-sig"))
            for action in sorted(KNOWN_ACTIONS)}


SCHEMAS = _load_schemas()


def _semantic_expect(action: str, payload: dict) -> set[str]:
    """The answers a schema-valid CALL deserves: a CALLRESULT (NotSupported for what the station
    does not do) — or PropertyConstraintViolation ("a field contains an invalid value") where the
    .conf has no status to refuse with: GetDiagnostics with startTime after stopTime,
    UpdateFirmware with negative retries or retryInterval."""
    expect = {RESULT, "NotSupported"}
    if action == "GetDiagnostics" and "startTime" in payload and "stopTime" in payload:
        start, stop = (datetime.fromisoformat(payload[k].replace("Z", "+00:00")) for k in ("startTime", "stopTime"))
        if start > stop:
            expect = {_PROPERTY}
    if action == "UpdateFirmware" and any(payload.get(k, 0) < 0 for k in ("retries", "retryInterval")):
        expect = {_PROPERTY}
    return expect


def _resolve(schema: dict, root: dict) -> dict:
    while "$ref" in schema:
        schema = root["definitions"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


class FrameGenerator:
    """Seeded hostile frames (see the module docstring); ``next()`` gives one :class:`Case`."""

    #: kind → weight; the payload mutations dominate, frame-level junk fills the rest.
    WEIGHTS = {
        "valid": 12, "wrong_type": 10, "missing_required": 7, "extra_field": 7, "bad_enum": 6,
        "bad_datetime": 5, "too_long": 6, "extreme_valid": 8, "unicode": 6, "out_of_range": 6,
        "deep_nesting": 3, "long_array": 2, "not_object": 2, "huge_string": 1.5, "over_1mb": 0.3,
        "unknown_action": 4, "station_action": 2, "too_few": 2, "bad_action": 2, "too_many": 2,
        "id_not_string": 2, "bad_type_id": 2, "stray_answer": 3, "not_json": 3, "not_array": 2,
        "binary": 2, "long_id": 1,
    }

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self._count = 0
        self._kinds = list(self.WEIGHTS)
        self._weights = [self.WEIGHTS[k] for k in self._kinds]
        self._actions = sorted(KNOWN_ACTIONS)

    def uid(self) -> str:
        self._count += 1
        return f"fz{self._count}"

    def next(self, kind: str | None = None) -> Case:
        kind = kind or self.rng.choices(self._kinds, self._weights)[0]
        return getattr(self, f"_{kind}")()

    # --- valid payloads -----------------------------------------------------------------

    def payload(self, action: str) -> dict:
        """A schema-valid payload of ``action``, made harmless (see the module docstring)."""
        root = SCHEMAS[action]
        value = self._value(root, root, 0, "")
        if action == "ChangeConfiguration":
            value["key"] = self.rng.choice(_SAFE_KEYS)
        return value

    def _value(self, schema: dict, root: dict, depth: int, name: str) -> Any:
        rng = self.rng
        schema = _resolve(schema, root)
        kind = schema.get("type")
        if "enum" in schema:
            return rng.choice(schema["enum"])
        if kind == "object":
            required = set(schema.get("required", ()))
            return {key: self._value(sub, root, depth + 1, key) for key, sub in schema.get("properties", {}).items()
                    if key in required or rng.random() < 0.5}
        if kind == "array":
            return [self._value(schema["items"], root, depth + 1, name) for _ in range(rng.randint(0, 3))]
        if kind == "string":
            if name in _LOCATION_FIELDS:
                return SAFE_LOCATION
            if schema.get("format") == "date-time":
                return self._date_time()
            top = min(schema.get("maxLength", 30), 20)
            return "".join(rng.choices(string.ascii_letters + string.digits, k=rng.randint(1, top)))
        if kind == "integer":
            return rng.choice([0, 1, 2, rng.randint(-5, 5), rng.randint(0, 10**6)])
        if kind == "number":
            return rng.choice([0.0, 6.0, 16.0, 32.5, 6.25, rng.randint(0, 800) / 10])
        if kind == "boolean":
            return rng.random() < 0.5
        return None

    def _date_time(self) -> str:
        moment = datetime.now(UTC) + timedelta(seconds=self.rng.randint(-10**7, 10**7))
        return self.rng.choice([moment.strftime("%Y-%m-%dT%H:%M:%SZ"), moment.isoformat(),
                                moment.strftime("%Y-%m-%dT%H:%M:%S.%f+02:00")])

    def _slots(self, payload: Any, schema: dict, root: dict, path: tuple = ()) -> list[tuple[tuple, dict]]:
        """Every (path, schema) of a value present in ``payload``, the root excluded."""
        found = []
        schema = _resolve(schema, root)
        if isinstance(payload, dict):
            for key, item in payload.items():
                sub = schema.get("properties", {}).get(key)
                if sub is not None:
                    found.append(((*path, key), _resolve(sub, root)))
                    found += self._slots(item, sub, root, (*path, key))
        elif isinstance(payload, list) and "items" in schema:
            for index, item in enumerate(payload):
                found.append(((*path, index), _resolve(schema["items"], root)))
                found += self._slots(item, schema["items"], root, (*path, index))
        return found

    def _objects(self, payload: Any, schema: dict, root: dict, path: tuple = ()) -> list[tuple[tuple, dict]]:
        """Every (path, schema) of an object in ``payload``, the root included."""
        return [(path, _resolve(schema, root))] + [(p, s) for p, s in self._slots(payload, schema, root, path)
                                                    if s.get("type") == "object"]

    # --- frames -------------------------------------------------------------------------

    def _call(self, kind: str, action: str, payload: Any, expect: set[str] | str, *, raw: str | None = None,
              uid: str | None = None) -> Case:
        uid = uid or self.uid()
        body = raw if raw is not None else json.dumps(payload, ensure_ascii=self.rng.random() < 0.5)
        frame = f'[2,{json.dumps(uid)},{json.dumps(action)},{body}]'
        expect = {expect} if isinstance(expect, str) else expect
        return Case(f"{kind} {action}", frame, uid, frozenset(expect), action)

    def _mutable(self, need) -> tuple[str, dict, tuple, dict] | None:
        """A (action, payload, path, slot schema) whose slot satisfies ``need``, or None."""
        for _ in range(300):
            action = self.rng.choice(self._actions)
            payload = self.payload(action)
            slots = [(p, s) for p, s in self._slots(payload, SCHEMAS[action], SCHEMAS[action]) if need(s)]
            if slots:
                path, schema = self.rng.choice(slots)
                return action, payload, path, schema
        return None

    @staticmethod
    def _set(payload: dict, path: tuple, value: Any) -> None:
        node = payload
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = value

    def _placeholder(self, action: str, payload: dict, path: tuple, raw_value: str, kind: str,
                     expect: set[str] | str) -> Case:
        """A CALL whose value at ``path`` is ``raw_value`` as JSON text (what json cannot make)."""
        marker = "\u0001FUZZ\u0001"
        self._set(payload, path, marker)
        body = json.dumps(payload).replace(json.dumps(marker), raw_value)
        return self._call(kind, action, None, expect, raw=body)

    def _valid(self) -> Case:
        action = self.rng.choice([a for a in self._actions if a not in _NEVER_VALID])
        return self._call_valid("valid", action, self.payload(action))

    def _call_valid(self, kind: str, action: str, payload: dict) -> Case:
        return self._call(kind, action, payload, _semantic_expect(action, payload))

    #: per JSON type a few values of other types (Draft 4: 1.0 and true are no integers)
    _WRONG = {"string": [1, 1.5, True, None, {}, []], "integer": [1.5, 1.0, 1e300, "1", True, None, {}, []],
              "number": ["6.0", True, None, {}, []], "boolean": ["true", 1, None, {}],
              "object": [[], "{}", 1, None, True], "array": [{}, "[]", 0, None, "a"]}

    def _wrong_type(self) -> Case:
        found = self._mutable(lambda s: s.get("type") in self._WRONG)
        if found is None:
            return self._valid()
        action, payload, path, schema = found
        self._set(payload, path, self.rng.choice(self._WRONG[schema["type"]]))
        return self._call("wrong_type", action, payload, _TYPE)

    def _missing_required(self) -> Case:
        for _ in range(20):
            action = self.rng.choice(self._actions)
            payload = self.payload(action)
            objects = [(p, s) for p, s in self._objects(payload, SCHEMAS[action], SCHEMAS[action])
                       if s.get("required")]
            if objects:
                path, schema = self.rng.choice(objects)
                node = payload
                for part in path:
                    node = node[part]
                del node[self.rng.choice(schema["required"])]
                return self._call("missing_required", action, payload, _OCCURENCE)
        return self._valid()

    def _extra_field(self) -> Case:
        action = self.rng.choice(self._actions)
        payload = self.payload(action)
        path, _ = self.rng.choice(self._objects(payload, SCHEMAS[action], SCHEMAS[action]))
        node = payload
        for part in path:
            node = node[part]
        name = self.rng.choice(["extra", "connectorID", "Type", "", "__proto__", "x" * 300, "ключ"])
        node[name] = self.rng.choice([1, "x", None, {}, [], {"a": [1, 2]}])
        return self._call("extra_field", action, payload, _FORMATION)

    def _bad_enum(self) -> Case:
        action, payload, path, schema = self._mutable(lambda s: "enum" in s)
        good = self.rng.choice(schema["enum"])
        value = self.rng.choice([good.lower(), good.upper(), good + " ", " " + good, "", "Bogus", good + "\u0000",
                                 "\u200b" + good])
        if value in schema["enum"]:
            value = "Bogus"
        self._set(payload, path, value)
        return self._call("bad_enum", action, payload, _PROPERTY)

    def _bad_datetime(self) -> Case:
        action, payload, path, _ = self._mutable(lambda s: s.get("format") == "date-time")
        value = self.rng.choice(["", "yesterday", "2024-13-01T00:00:00Z", "2024-02-30T12:00:00Z",
                                 "2024-01-01T25:00:00Z", "2024-01-01T12:00:00+25:00", "0000-00-00T00:00:00Z",
                                 "2024-01-01T12:00:00ZZ", "1e400", "2024-01-01 12:00:00 UTC", "\u0000"])
        self._set(payload, path, value)
        return self._call("bad_datetime", action, payload, _PROPERTY)

    def _too_long(self) -> Case:
        action, payload, path, schema = self._mutable(lambda s: "maxLength" in s and "enum" not in s)
        length = schema["maxLength"] + self.rng.choice([1, 2, 100, 5000])
        self._set(payload, path, "".join(self.rng.choices("aZ9é€", k=length)))
        return self._call("too_long", action, payload, _TYPE)

    def _extreme_valid(self) -> Case:
        action, payload, path, schema = self._mutable(
            lambda s: s.get("type") in ("integer", "number") and "enum" not in s)
        if schema["type"] == "integer":
            value = self.rng.choice([2**63 - 1, -2**63, 2**31, -2**31 - 1, -1, 0, 10**18, 86400 * 365 * 100])
        else:
            value = self.rng.choice([1e308, -1e308, 5e-324, -0.0, 0.05, 1e-7, 123456789.123, 9.3e18, -1.0])
        self._set(payload, path, value)
        return self._call_valid("extreme_valid", action, payload)

    def _unicode(self) -> Case:
        action, payload, path, schema = self._mutable(
            lambda s: s.get("type") == "string" and "enum" not in s and "format" not in s)
        top = min(schema.get("maxLength", 40), 40)
        pieces = ["\u0000", "\u0007", "\n", "\t", "\u202e", "€", "😀", "\ufeff", "\u0301", "ß", "\u2028", "\\", '"',
                  "'", "<", "%s", "' OR 1=1 --", "\x7f"]
        value = "".join(self.rng.choices(pieces, k=self.rng.randint(1, top)))
        while len(value) > top:
            value = value[:top]
        if path[-1] in _LOCATION_FIELDS:
            value = SAFE_LOCATION + "/" + value[: max(0, top - len(SAFE_LOCATION) - 1)]
        self._set(payload, path, value)
        expect = _semantic_expect(action, payload)
        if self.rng.random() < 0.2 and len(value) < top:  # a lone surrogate: JSON allows the escape
            return self._placeholder(action, payload, path, '"\\ud800' + json.dumps(value)[1:], "lone_surrogate",
                                     _TYPE)  # JSON allows the escape, but it is no Unicode string
        return self._call("unicode", action, payload, expect)

    def _out_of_range(self) -> Case:
        action, payload, path, _ = self._mutable(lambda s: s.get("type") in ("integer", "number", "string"))
        raw = self.rng.choice(["1e400", "-1e400", "1E999", str(2**63), str(-2**63 - 1), str(10**25), "9" * 5000,
                               "NaN", "Infinity", "-Infinity", "123456789012345678901234567890.5e400"])
        return self._placeholder(action, payload, path, raw, "out_of_range", _TYPE)

    def _deep_nesting(self) -> Case:
        action, payload, path, _ = self._mutable(lambda s: True)
        depth = self.rng.choice([33, 40, 100, 1000, 10_000])
        if self.rng.random() < 0.5:
            raw = "[" * depth + "]" * depth
        else:
            raw = '{"a":' * depth + "1" + "}" * depth
        return self._placeholder(action, payload, path, raw, f"deep_nesting {depth}", _FORMATION)

    def _long_array(self) -> Case:
        action = self.rng.choice(["GetConfiguration", "SetChargingProfile", "SendLocalList", "RemoteStartTransaction"])
        payload = self.payload(action)
        count = self.rng.choice([0, 50, 400])
        if action == "GetConfiguration":
            payload["key"] = [f"Key{i}" for i in range(count)]
        elif action == "SendLocalList":
            payload["localAuthorizationList"] = [{"idTag": f"T{i:06d}", "idTagInfo": {"status": "Accepted"}}
                                                 for i in range(count)]
        else:
            holder = payload["csChargingProfiles"] if action == "SetChargingProfile" else payload.setdefault(
                "chargingProfile", self._value(SCHEMAS[action]["properties"]["chargingProfile"], SCHEMAS[action], 1,
                                               "chargingProfile"))
            holder["chargingSchedule"]["chargingSchedulePeriod"] = [
                {"startPeriod": 60 * i, "limit": 6.0 + i % 10} for i in range(count)]
        return self._call_valid(f"long_array {count}", action, payload)

    def _not_object(self) -> Case:
        action = self.rng.choice(self._actions)
        return self._call("not_object", action, self.rng.choice([[], [{}], "x", 1, None, True]), _FORMATION)

    def _huge_string(self) -> Case:
        action, payload, path, _ = self._mutable(lambda s: True)
        self._set(payload, path, "A" * self.rng.randint(FRAME_LIMIT, 300_000))
        return self._call("huge_string", action, payload, _FORMATION)

    def _over_1mb(self) -> Case:
        action, payload, path, _ = self._mutable(lambda s: True)
        self._set(payload, path, "B" * self.rng.randint(2**20, 2 * 2**20))
        return self._call("over_1mb", action, payload, _FORMATION)

    def _unknown_action(self) -> Case:
        action = self.rng.choice(["reset", "RESET", "Reset ", "", "FuzzAction", "GetConfiguration2", "Ünknown",
                                  "X" * 2000, "\u0000", "Boot Notification", "__init__", "GetVariables"])
        return self._call("unknown_action", action, self.rng.choice([{}, {"type": "Hard"}, []]),
                          "NotImplemented")

    def _station_action(self) -> Case:
        action = self.rng.choice(sorted(STATION_ACTIONS - KNOWN_ACTIONS))
        return self._call("station_action", action, {}, "NotSupported")

    def _too_few(self) -> Case:
        uid = self.uid()
        frame = self.rng.choice([f'[2,"{uid}"]', f'[2,"{uid}","Reset"]', f'[2,"{uid}","FuzzAction"]'])
        return Case("too_few", frame, uid, frozenset({"ProtocolError"}))

    def _bad_action(self) -> Case:
        uid = self.uid()
        action = self.rng.choice(["1", "null", "{}", '["Reset"]', "true", "2.5"])
        return Case("bad_action", f'[2,"{uid}",{action},{{}}]', uid, frozenset({_FORMATION}))

    def _too_many(self) -> Case:
        uid = self.uid()
        extra = self.rng.choice(['{}', '"x"', 'null', '{},{}'])
        return Case("too_many", f'[2,"{uid}","GetLocalListVersion",{{}},{extra}]', uid, frozenset({_FORMATION}))

    def _none(self, kind: str, frame: str | bytes) -> Case:
        return Case(kind, frame, None, frozenset({ANSWER_NONE}))

    def _id_not_string(self) -> Case:
        uid = self.rng.choice(["1", "null", "{}", '["a"]', "true", "1.5", "1e400", str(2**64)])
        return self._none("id_not_string", f'[2,{uid},"GetLocalListVersion",{{}}]')

    def _bad_type_id(self) -> Case:
        type_id = self.rng.choice(["0", "1", "5", "7", "-2", "2.0", '"2"', "null", "true", str(2**70), "[2]", "1e400"])
        return self._none("bad_type_id", f'[{type_id},"{self.uid()}","GetLocalListVersion",{{}}]')

    def _stray_answer(self) -> Case:
        uid = json.dumps(self.rng.choice([self.uid(), "-1", "", "never-used-" + "x" * 40]))
        frame = self.rng.choice([f"[3,{uid},{{}}]", f'[3,{uid},{{"status":"Accepted"}}]', f"[3,{uid}]",
                                 f'[4,{uid},"GenericError","",{{}}]', f'[4,{uid},"NotAnErrorCode"]', "[4]", "[3]",
                                 f"[3,{uid},[],[]]", f'[4,{uid},"InternalError","' + "d" * 5000 + '",{}]'])
        return self._none("stray_answer", frame)

    def _not_json(self) -> Case:
        uid = self.uid()
        frame = self.rng.choice(["", " ", "not json", "[", "]", "{", f'[2,"{uid}","Reset",{{', f'[2,"{uid}",',
                                 "[2,'x','Reset',{}]", "\u0000", "[2,\"a\",\"b\",{}]]", "[1,2,3,]", "[2,\"z\" \"Reset\"]",
                                 "".join(self.rng.choices(string.printable, k=self.rng.randint(1, 500)))])
        return self._none("not_json", frame)

    def _not_array(self) -> Case:
        return self._none("not_array", self.rng.choice(["{}", "null", "2", '"[2]"', "[]", "true",
                                                        '{"2":"Reset"}', "1e400"]))

    def _binary(self) -> Case:
        uid = self.uid()
        data = self.rng.choice([f'[2,"{uid}","GetLocalListVersion",{{}}]'.encode(), bytes(self.rng.randbytes(64)),
                                b"", b"\xff\xfe\x00"])
        return self._none("binary", data)

    def _long_id(self) -> Case:
        uid = self.uid() + "-" + "".join(self.rng.choices("abc€😀\"\\ ", k=self.rng.choice([30, 100, 1000])))
        return self._call("long_id", "GetLocalListVersion", {}, RESULT, uid=uid)
