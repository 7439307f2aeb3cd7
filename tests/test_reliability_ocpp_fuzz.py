"""ocpp_fuzz (issue 10): hostile frames from a raw central system on 127.0.0.1 against a real
``stationd demo`` subprocess — every CALL answered right, the daemon alive, memory bounded."""

from __future__ import annotations

import json

import pytest

from reliability import ocpp_fuzz
from reliability.ocpp_frames import ANSWER_NONE, RESULT, FrameGenerator
from stationd.ocpp_client import rpc, schemas


def test_the_station_maps_every_payload_mutation_to_its_1_6_code():
    """The generator's expectation for each schema mutation is what the station's validator says."""
    generator = FrameGenerator(7)
    checked = 0
    for _ in range(3000):
        case = generator.next()
        if case.uid is None or not isinstance(case.frame, str) or len(case.frame.encode("utf-8")) > 64 * 1024:
            continue
        try:
            message = rpc._loads(case.frame)
        except (ValueError, RecursionError):  # refused before any schema (checked against the daemon)
            continue
        if (len(message) == 4 and isinstance(message[2], str) and message[2] in rpc.KNOWN_ACTIONS
                and schemas.nesting_depth(message, rpc.MAX_NESTING) <= rpc.MAX_NESTING):
            violation = schemas.validate(schemas.REQUEST, message[2], message[3])
            code = RESULT if violation is None else violation.code
            # schema-valid kinds may still be refused by the RPC layer or the handler (lone
            # surrogate, startTime after stopTime): that part is checked against the daemon
            semantic = case.kind.split()[0] in {"valid", "extreme_valid", "unicode", "long_array", "lone_surrogate"}
            assert code in case.expect or (code == RESULT and semantic), (case.kind, code)
            checked += 1
    assert checked > 1500


def test_judge_refuses_wrong_answers():
    case = FrameGenerator(1).next("bad_enum")
    assert ocpp_fuzz.judge(case, None) == "no answer"
    assert "expected" in ocpp_fuzz.judge(case, [3, case.uid, {}])
    assert "expected" in ocpp_fuzz.judge(case, [4, case.uid, "InternalError", "", {}])
    assert ocpp_fuzz.judge(case, [4, case.uid, "PropertyConstraintViolation", "", {}]) is None
    silent = FrameGenerator(1).next("binary")
    assert silent.expect == {ANSWER_NONE} and ocpp_fuzz.judge(silent, None) is None
    assert ocpp_fuzz.judge(silent, json.loads('[4, "-1", "GenericError", "", {}]')) is not None


@pytest.mark.slow
def test_short_fuzz_run_every_call_answered_daemon_alive_memory_bounded():
    tally = ocpp_fuzz.run(False)
    assert tally.failures == [] and tally.lost == 0, tally.failures[:10]
    assert tally.passed
    assert tally.tried >= ocpp_fuzz.SHORT_FRAMES
    outcomes = next(note for note in tally.notes if note.startswith("outcomes"))
    for kind in ("over_1mb ok", "deep_nesting ok", "binary ok", "stray_answer ok", "oversize ok", "probe ok"):
        assert kind in outcomes
