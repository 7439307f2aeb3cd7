"""The central system's fast schema check agrees with its reference (the package's validator).

``firmware_sim.central_system`` accepts a payload at once when the schema compiled by
fastjsonschema accepts it; only what that rejects goes to the jsonschema Draft4Validator of the
``ocpp`` package (``get_validator``), which names the error. So the fast path must never accept
what the reference rejects, and the answer must be the same either way. Payloads are generated
from the 1.6 schemas and mutated (the generators of test_ocpp_schemas_fast_path: wrong types,
missing and extra fields, bad enums, long strings, 1e400 / huge ints, booleans and 1.0 where an
integer is expected, tuples for arrays, Decimal).
"""

from __future__ import annotations

import json
from typing import Any
from unittest import mock

from hypothesis import given
from hypothesis import strategies as st
from ocpp.messages import get_validator
from test_ocpp_schemas_fast_path import SETTINGS, _mutated, _valid

from firmware_sim import central_system
from firmware_sim.central_system import CALL, CALLRESULT

CASES = [
    # what a station sends (validated when it arrives) ...
    (CALL, "BootNotification"), (CALL, "Authorize"), (CALL, "StartTransaction"), (CALL, "StopTransaction"),
    (CALL, "MeterValues"), (CALL, "StatusNotification"), (CALL, "DataTransfer"), (CALL, "SignCertificate"),
    (CALL, "SecurityEventNotification"), (CALL, "LogStatusNotification"),
    # ... what the central system sends (checked before it goes out) and the station's answers
    (CALL, "SendLocalList"), (CALL, "ChangeConfiguration"), (CALL, "GetLog"), (CALL, "SignedUpdateFirmware"),
    (CALL, "ExtendedTriggerMessage"), (CALL, "CertificateSigned"),
    (CALLRESULT, "GetConfiguration"), (CALLRESULT, "GetLocalListVersion"),
    (CALLRESULT, "GetInstalledCertificateIds"), (CALLRESULT, "TriggerMessage"),
]  # the three schemas checked with Decimal have no fast path (the first test)


def _reference(message_type_id: int, action: str, payload: Any) -> tuple[str, str] | None:
    with mock.patch.dict(central_system._fast_validators, {(message_type_id, action): None}):
        return central_system.validate_ocpp16(message_type_id, action, payload)


@st.composite
def _cases(draw: st.DrawFn) -> tuple[int, str, Any]:
    message_type_id, action = draw(st.sampled_from(CASES))
    root = get_validator(message_type_id, action, "1.6").schema
    payload = draw(_valid(root, root))
    if draw(st.integers(0, 4)):  # mostly mutated
        payload = draw(_mutated(payload))
    return message_type_id, action, payload


def test_every_schema_but_the_decimal_ones_has_a_fast_path() -> None:
    without = {(t, a) for t in (CALL, CALLRESULT) for a in sorted(central_system._V16_ACTIONS)
               if central_system._fast_validator(t, a) is None}
    assert without == set(central_system._DECIMAL_SCHEMAS)


@SETTINGS
@given(_cases())
def test_fast_path_agrees_with_the_reference(case: tuple[int, str, Any]) -> None:
    message_type_id, action, payload = case
    expected = _reference(message_type_id, action, payload)
    assert central_system.validate_ocpp16(message_type_id, action, payload) == expected
    if not central_system._has_tuple(payload):  # as parsed from JSON: the tuple check is skipped
        assert central_system._validate(message_type_id, action, payload, from_json=True) == expected


def test_a_tuple_for_an_array_is_refused_as_by_the_reference() -> None:
    payload = {"connectorId": 1, "meterValue": ({"timestamp": "2024-05-01T12:00:00Z",
                                                 "sampledValue": [{"value": "1"}]},)}
    assert central_system.validate_ocpp16(CALL, "MeterValues", payload) == _reference(CALL, "MeterValues", payload)
    assert central_system.validate_ocpp16(CALL, "MeterValues", payload) is not None
    assert central_system.validate_ocpp16(CALL, "MeterValues", json.loads(json.dumps(payload))) is None
