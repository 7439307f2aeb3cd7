"""The station's OCPP-J 1.6 RPC layer (stationd.ocpp_client.rpc) over a real WebSocket pair.

The "central system" is a bare ``websockets`` server on 127.0.0.1 that sends frames verbatim
and records what the station sends; the station side is an :class:`RpcEndpoint` over
``websockets.connect(..., subprotocols=["ocpp1.6"])``. Many tests would fail with the ``ocpp``
package's default behaviour (OCPP-NOTES §1): swapped NotImplemented/NotSupported, 2.0.1 error
names, Decimal crash, deadlock of ``await call()`` in a handler, malformed CALLERROR hang.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve

from stationd.ocpp_client import schemas
from stationd.ocpp_client.actions import ALL_ACTIONS
from stationd.ocpp_client.errors import CallError, CallTimeout, ConnectionLost
from stationd.ocpp_client.rpc import (
    KNOWN_ACTIONS,
    STATION_ACTIONS,
    WEBSOCKET_MAX_SIZE,
    HandlerResult,
    RpcEndpoint,
)

SECRET = "0123456789abcdef0123456789abcdef"


class Csms:
    """Raw central-system side of the pair."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[str | bytes] = asyncio.Queue()
        self.conn: ServerConnection | None = None
        self.connected = asyncio.Event()

    async def handler(self, ws: ServerConnection) -> None:
        self.conn = ws
        self.connected.set()
        async for message in ws:
            self.inbox.put_nowait(message)

    async def send(self, frame: Any) -> None:
        assert self.conn is not None
        await self.conn.send(frame if isinstance(frame, (str, bytes)) else json.dumps(frame))

    async def recv_raw(self, timeout: float = 3.0) -> str:
        frame = await asyncio.wait_for(self.inbox.get(), timeout)
        assert isinstance(frame, str), "the station sends text frames"
        return frame

    async def recv(self, timeout: float = 3.0) -> list:
        return json.loads(await self.recv_raw(timeout))

    async def request(self, uid: str, action: str, payload: Any) -> list:
        await self.send([2, uid, action, payload])
        answer = await self.recv()
        assert answer[1] == uid, answer
        return answer

    async def assert_silent(self, duration: float = 0.15) -> None:
        await asyncio.sleep(duration)
        assert self.inbox.empty(), f"unexpected frame: {self.inbox.get_nowait()!r:.200}"


def _composite(limit: Any, start: Any = 0) -> dict:
    return {"status": "Accepted", "connectorId": 1, "scheduleStart": "2024-05-01T12:00:00Z",
            "chargingSchedule": {"chargingRateUnit": "A", "minChargingRate": 6.0,
                                 "chargingSchedulePeriod": [{"startPeriod": start, "limit": limit}]}}


class Dispatcher:
    """A stand-in for the station's dispatcher: ``routes[action](payload)`` (may be async)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict]] = []
        self.routes: dict[str, Any] = {
            "Reset": lambda p: {"status": "Accepted"},
            "ClearCache": lambda p: {"status": "Accepted"},
            "ChangeConfiguration": lambda p: {"status": "Accepted"},
            "UnlockConnector": lambda p: {"status": "Unlocked"},
            "DataTransfer": lambda p: {"status": "Accepted"},
            "SetChargingProfile": lambda p: {"status": "Accepted"},
            "RemoteStartTransaction": lambda p: {"status": "Accepted"},
            "GetCompositeSchedule": lambda p: _composite(16.0),
            "SignedUpdateFirmware": lambda p: {"status": "Accepted"},
        }

    async def __call__(self, action: str, payload: dict) -> Any:
        self.seen.append((action, payload))
        route = self.routes.get(action)
        if route is None:
            raise NotImplementedError(action)
        result = route(payload)
        if asyncio.iscoroutine(result):
            result = await result
        return result


@dataclass
class Pair:
    csms: Csms
    endpoint: RpcEndpoint
    dispatcher: Dispatcher
    run_task: asyncio.Task

    async def assert_alive(self, tag: str = "probe") -> None:
        """A normal CALL is still answered, and it is the next frame the station sends."""
        answer = await self.csms.request(tag, "ClearCache", {})
        assert answer == [3, tag, {"status": "Accepted"}]
        assert not self.run_task.done()


async def _open_pair(max_frame_bytes: int = 64 * 1024):
    csms = Csms()
    server = await serve(csms.handler, "127.0.0.1", 0, subprotocols=["ocpp1.6"], max_size=WEBSOCKET_MAX_SIZE)
    port = server.sockets[0].getsockname()[1]
    ws = await connect(f"ws://127.0.0.1:{port}/ocpp/TE-1", subprotocols=["ocpp1.6"], max_size=WEBSOCKET_MAX_SIZE)
    assert ws.subprotocol == "ocpp1.6"
    dispatcher = Dispatcher()
    endpoint = RpcEndpoint(ws, dispatcher, call_timeout=2.0, handler_timeout=2.0, max_frame_bytes=max_frame_bytes)
    run_task = asyncio.create_task(endpoint.run())
    await asyncio.wait_for(csms.connected.wait(), 3)
    return server, ws, Pair(csms, endpoint, dispatcher, run_task)


async def _close_pair(server, ws, pair: Pair) -> None:
    await ws.close()
    await asyncio.wait_for(pair.run_task, 3)  # run() returns, never raises
    await pair.endpoint.shutdown(0.5)
    server.close()
    await server.wait_closed()


@pytest.fixture
async def pair():
    server, ws, p = await _open_pair()
    try:
        yield p
    finally:
        await _close_pair(server, ws, p)


# ---------------------------------------------------------------------------------------------
# Happy paths
# ---------------------------------------------------------------------------------------------


async def test_station_call_returns_the_callresult_payload(pair: Pair) -> None:
    call = asyncio.create_task(pair.endpoint.call(
        "BootNotification", {"chargePointVendor": "Eaton", "chargePointModel": "xChargeIn"}))
    frame = await pair.csms.recv()
    assert frame[0] == 2 and frame[2] == "BootNotification"
    assert isinstance(frame[1], str) and len(frame[1]) == 36  # uuid4
    assert frame[3] == {"chargePointVendor": "Eaton", "chargePointModel": "xChargeIn"}
    conf = {"status": "Accepted", "currentTime": "2024-05-01T12:00:00.000Z", "interval": 300}
    await pair.csms.send([3, frame[1], conf])
    assert await call == conf
    assert pair.endpoint.stats.calls_sent == 1 and pair.endpoint.stats.results_received == 1


async def test_central_system_call_is_dispatched_and_answered(pair: Pair) -> None:
    answer = await pair.csms.request("c-1", "Reset", {"type": "Soft"})
    assert answer == [3, "c-1", {"status": "Accepted"}]
    assert pair.dispatcher.seen == [("Reset", {"type": "Soft"})]
    assert pair.endpoint.stats.calls_received == 1 and pair.endpoint.stats.results_sent == 1


async def test_whitepaper_actions_are_known_and_validated(pair: Pair) -> None:
    firmware = {"location": "https://fw.example/x.bin", "retrieveDateTime": "2024-05-01T12:00:00Z",
                "signingCertificate": "-----BEGIN CERTIFICATE-----", "signature": "c2ln"}
    ok = await pair.csms.request("w1", "SignedUpdateFirmware", {"requestId": 1, "firmware": firmware})
    assert ok == [3, "w1", {"status": "Accepted"}]
    bad = dict(firmware)
    del bad["signature"]
    error = await pair.csms.request("w2", "SignedUpdateFirmware", {"requestId": 1, "firmware": bad})
    assert error[2] == "OccurenceConstraintViolation" and "signature" in error[3]
    # known (whitepaper) but the dispatcher has no route → NotSupported
    error = await pair.csms.request("w3", "GetInstalledCertificateIds",
                                    {"certificateType": "CentralSystemRootCertificate"})
    assert error[2] == "NotSupported"


def test_action_sets_cover_all_profiles_and_have_schemas() -> None:
    assert {"CertificateSigned", "DeleteCertificate", "ExtendedTriggerMessage", "GetInstalledCertificateIds",
            "GetLog", "InstallCertificate", "SignedUpdateFirmware", "Reset", "ReserveNow", "SendLocalList",
            "SetChargingProfile", "TriggerMessage", "UpdateFirmware"} <= KNOWN_ACTIONS
    assert {"SecurityEventNotification", "SignCertificate", "LogStatusNotification",
            "SignedFirmwareStatusNotification", "BootNotification", "StopTransaction"} <= STATION_ACTIONS
    assert len(KNOWN_ACTIONS) == 26 and len(STATION_ACTIONS) == 14
    assert KNOWN_ACTIONS & STATION_ACTIONS == {"DataTransfer"}
    for action in ALL_ACTIONS:
        assert schemas.has_schema(schemas.REQUEST, action) and schemas.has_schema(schemas.RESPONSE, action)


# ---------------------------------------------------------------------------------------------
# The ocpp package's traps (OCPP-NOTES §1)
# ---------------------------------------------------------------------------------------------


async def test_unknown_action_is_not_implemented(pair: Pair) -> None:
    for uid, action in (("u1", "FooBar"), ("u2", "reset"), ("u3", "")):
        answer = await pair.csms.request(uid, action, {})
        assert answer[0] == 4 and answer[2] == "NotImplemented", answer  # package: NotSupported
    assert pair.dispatcher.seen == []


async def test_known_unsupported_action_is_not_supported(pair: Pair) -> None:
    answer = await pair.csms.request("n1", "ReserveNow", {"connectorId": 1, "expiryDate": "2024-05-01T12:00:00Z",
                                                          "idTag": "AEC78085", "reservationId": 7})
    assert answer[2] == "NotSupported"  # dispatcher raised NotImplementedError; package: NotImplemented
    # a 1.6 action only a charge point sends is recognised but not supported by the receiver
    answer = await pair.csms.request("n2", "BootNotification", {"chargePointVendor": "x", "chargePointModel": "y"})
    assert answer[2] == "NotSupported"


@pytest.mark.parametrize(("action", "payload", "code"), [
    ("Reset", {"type": "Soft", "extra": 1}, "FormationViolation"),  # package: FormatViolation
    ("Reset", {}, "OccurenceConstraintViolation"),  # package: ProtocolError
    ("Reset", {"type": 1}, "TypeConstraintViolation"),
    ("UnlockConnector", {"connectorId": "1"}, "TypeConstraintViolation"),
    ("UnlockConnector", {"connectorId": 1.0}, "TypeConstraintViolation"),
    ("Reset", {"type": "Warm"}, "PropertyConstraintViolation"),
    ("ChangeConfiguration", {"key": "K" * 51, "value": "1"}, "TypeConstraintViolation"),
    ("ReserveNow", {"connectorId": 1, "expiryDate": "tomorrow", "idTag": "A", "reservationId": 1},
     "PropertyConstraintViolation"),
    ("Reset", "Soft", "FormationViolation"),
    ("Reset", [], "FormationViolation"),
    ("Reset", None, "FormationViolation"),
])
async def test_schema_violations_get_the_16_codes(pair: Pair, action: str, payload: Any, code: str) -> None:
    answer = await pair.csms.request("v1", action, payload)
    assert answer[0] == 4 and answer[2] == code, answer
    assert answer[2] != "FormatViolation" and isinstance(answer[3], str) and isinstance(answer[4], dict)
    assert pair.dispatcher.seen == []


async def test_limit_not_multiple_of_a_tenth_is_accepted_and_rounded_down(pair: Pair) -> None:
    profile = {"chargingProfileId": 1, "stackLevel": 0, "chargingProfilePurpose": "TxDefaultProfile",
               "chargingProfileKind": "Absolute",
               "chargingSchedule": {"chargingRateUnit": "A", "minChargingRate": 6.25,
                                    "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 6.25},
                                                               {"startPeriod": 60, "limit": 21.4},
                                                               {"startPeriod": 120, "limit": 16}]}}
    answer = await pair.csms.request("l1", "SetChargingProfile", {"connectorId": 1, "csChargingProfiles": profile})
    assert answer == [3, "l1", {"status": "Accepted"}]
    seen = pair.dispatcher.seen[0][1]["csChargingProfiles"]["chargingSchedule"]
    assert [p["limit"] for p in seen["chargingSchedulePeriod"]] == [6.2, 21.4, 16]
    assert seen["minChargingRate"] == 6.2
    start = {"idTag": "AEC78085", "connectorId": 1,
             "chargingProfile": {**profile, "chargingProfilePurpose": "TxProfile"}}
    assert (await pair.csms.request("l2", "RemoteStartTransaction", start))[0] == 3


@pytest.mark.parametrize(("limit", "wire"), [
    (Decimal("6.25"), "6.2"), (Decimal(16), "16"), (6.0, "6.0"), (21.400000000000002, "21.4"),
])
async def test_decimal_or_float_from_a_handler_is_a_json_number(pair: Pair, limit: Any, wire: str) -> None:
    pair.dispatcher.routes["GetCompositeSchedule"] = lambda p: _composite(limit, start=Decimal(0))
    await pair.csms.send([2, "d1", "GetCompositeSchedule", {"connectorId": 1, "duration": 86400 * 365}])
    raw = await pair.csms.recv_raw()
    assert f'"limit":{wire}}}' in raw and '"startPeriod":0,' in raw  # a number, not a string
    period = json.loads(raw)[2]["chargingSchedule"]["chargingSchedulePeriod"][0]
    assert isinstance(period["limit"], (int, float)) and not isinstance(period["limit"], bool)
    await pair.assert_alive()


async def test_handler_may_await_endpoint_call(pair: Pair) -> None:
    async def trigger(payload: dict) -> dict:
        conf = await pair.endpoint.call("Heartbeat", {})  # package: always times out here
        assert "currentTime" in conf
        return {"status": "Accepted"}

    pair.dispatcher.routes["TriggerMessage"] = trigger
    await pair.csms.send([2, "t1", "TriggerMessage", {"requestedMessage": "Heartbeat"}])
    heartbeat = await pair.csms.recv()
    assert heartbeat[0] == 2 and heartbeat[2] == "Heartbeat"
    await pair.csms.send([3, heartbeat[1], {"currentTime": "2024-05-01T12:00:00Z"}])
    assert await pair.csms.recv() == [3, "t1", {"status": "Accepted"}]


async def test_after_hook_sends_the_triggered_message_after_the_conf(pair: Pair) -> None:
    results: list[Any] = []

    async def send_status() -> None:
        results.append(await pair.endpoint.call(
            "StatusNotification", {"connectorId": 0, "errorCode": "NoError", "status": "Available"}))

    pair.dispatcher.routes["TriggerMessage"] = lambda p: HandlerResult({"status": "Accepted"}, after=send_status)
    await pair.csms.send([2, "t2", "TriggerMessage", {"requestedMessage": "StatusNotification"}])
    assert await pair.csms.recv() == [3, "t2", {"status": "Accepted"}]  # .conf first
    status = await pair.csms.recv()
    assert status[2] == "StatusNotification"
    await pair.csms.send([3, status[1], {}])
    await asyncio.sleep(0.05)
    assert results == [{}]


async def test_callerror_from_the_peer_raises_callerror(pair: Pair) -> None:
    call = asyncio.create_task(pair.endpoint.call("Authorize", {"idTag": "AEC78085"}))
    frame = await pair.csms.recv()
    await pair.csms.send([4, frame[1], "SecurityError", "not allowed", {"hint": 1}])
    with pytest.raises(CallError) as caught:
        await call
    assert (caught.value.code, caught.value.description, caught.value.details) == ("SecurityError", "not allowed",
                                                                                   {"hint": 1})
    # a code outside 1.6 (the package raises UnknownCallErrorCodeError) is passed through
    call = asyncio.create_task(pair.endpoint.call("Heartbeat", {}))
    frame = await pair.csms.recv()
    await pair.csms.send([4, frame[1], "FormatViolation", "2.0.1 name", {}])
    with pytest.raises(CallError, match="FormatViolation"):
        await call


@pytest.mark.parametrize("tail", [[], ["GenericError"], [5, None, None], [None, "x", {}]])
async def test_malformed_callerror_reply_fails_the_call_at_once(pair: Pair, tail: list) -> None:
    started = time.monotonic()
    call = asyncio.create_task(pair.endpoint.call("Heartbeat", {}, timeout=5))
    frame = await pair.csms.recv()
    await pair.csms.send([4, frame[1], *tail])
    with pytest.raises(CallError) as caught:
        await call
    assert time.monotonic() - started < 2
    assert caught.value.code in ("FormationViolation", "GenericError")
    await pair.assert_alive()


async def test_no_usable_answer_times_out(pair: Pair) -> None:
    call = asyncio.create_task(pair.endpoint.call("Heartbeat", {}, timeout=0.3))
    frame = await pair.csms.recv()
    await pair.csms.send(f'[4, "{frame[1]}", "GenericError", ')  # not JSON: ignored
    with pytest.raises(CallTimeout):
        await call
    assert pair.endpoint.stats.call_timeouts == 1
    await pair.csms.send([3, frame[1], {"currentTime": "2024-05-01T12:00:00Z"}])  # late: ignored
    call = asyncio.create_task(pair.endpoint.call("Heartbeat", {}))
    frame2 = await pair.csms.recv()
    await pair.csms.send([3, frame2[1], {"currentTime": "2024-05-01T12:00:01Z"}])
    assert await call == {"currentTime": "2024-05-01T12:00:01Z"}


@pytest.mark.parametrize(("conf", "code"), [
    ({"status": "Accepted", "currentTime": "2024-05-01T12:00:00Z"}, "OccurenceConstraintViolation"),
    ({"status": "Accepted", "currentTime": "2024-05-01T12:00:00Z", "interval": 1, "x": 1}, "FormationViolation"),
    ({"status": "Accepted", "currentTime": "2024-05-01T12:00:00Z", "interval": "60"}, "TypeConstraintViolation"),
    ({"status": "Maybe", "currentTime": "2024-05-01T12:00:00Z", "interval": 60}, "PropertyConstraintViolation"),
])
async def test_invalid_callresult_raises_callerror(pair: Pair, conf: dict, code: str) -> None:
    boot = {"chargePointVendor": "v", "chargePointModel": "m"}
    call = asyncio.create_task(pair.endpoint.call("BootNotification", boot))
    frame = await pair.csms.recv()
    await pair.csms.send([3, frame[1], conf])
    with pytest.raises(CallError) as caught:
        await call
    assert caught.value.code == code and caught.value.description.startswith("response")


async def test_invalid_own_request_is_a_valueerror_and_nothing_is_sent(pair: Pair) -> None:
    with pytest.raises(ValueError, match="OccurenceConstraintViolation"):
        await pair.endpoint.call("BootNotification", {"chargePointVendor": "v"})
    with pytest.raises(ValueError):
        await pair.endpoint.call("Reset", {"type": "Soft"})  # not a charge point → CS action
    with pytest.raises(ValueError):
        await pair.endpoint.call("Heartbeat", {"x": float("nan")})
    with pytest.raises(ValueError):
        await pair.endpoint.call("DataTransfer", {"vendorId": object()})
    await pair.csms.assert_silent()
    # Decimal in our own request goes out as a JSON number
    call = asyncio.create_task(pair.endpoint.call(
        "StartTransaction", {"connectorId": 1, "idTag": "AEC78085", "meterStart": Decimal(1234),
                             "timestamp": "2024-05-01T12:00:00Z"}))
    raw = await pair.csms.recv_raw()
    assert '"meterStart":1234' in raw
    await pair.csms.send([3, json.loads(raw)[1], {"transactionId": 5, "idTagInfo": {"status": "Accepted"}}])
    assert (await call)["transactionId"] == 5


# ---------------------------------------------------------------------------------------------
# Hostile frames: after each, the loop is alive and answers a normal CALL
# ---------------------------------------------------------------------------------------------

_DEEP = "[" * 10_000 + "]" * 10_000
HOSTILE: list[tuple[str, Any, tuple | None]] = [
    ("not json", "this is not json", None),
    ("truncated call", '[2, "t1", "Reset", {"type": ', None),
    ("empty text", "", None),
    ("null id", [2, None, "Reset", {"type": "Soft"}], None),
    ("number id", [2, 5, "Reset", {"type": "Soft"}], None),
    ("object id", [2, {"id": 1}, "Reset", {"type": "Soft"}], None),
    ("no id", [2], None),
    ("stray result", [3, "x", {}], None),
    ("stray error", [4, "x", "GenericError", "", {}], None),
    ("unknown type", [7, "x", "Reset", {"type": "Soft"}], None),
    ("type as string", ["2", "x", "Reset", {"type": "Soft"}], None),
    ("type as float", [2.0, "x", "Reset", {"type": "Soft"}], None),
    ("type as bool", [True, "x", "Reset", {"type": "Soft"}], None),
    ("empty array", [], None),
    ("object", {"2": "x"}, None),
    ("scalar", 42, None),
    ("deep nesting, no id", _DEEP, None),
    ("binary frame", b'[2,"bin","Reset",{"type":"Soft"}]', None),
    ("2 MB not a call", "[3," + " " * (2 * 2**20) + '"x", {}]', None),
    ("3 elements", [2, "h3", "Reset"], ("error", "h3", "ProtocolError")),
    ("2 elements", [2, "h2"], ("error", "h2", "ProtocolError")),
    ("action not a string", [2, "h4", 5, {}], ("error", "h4", "FormationViolation")),
    ("5 elements", [2, "h5", "Reset", {"type": "Soft"}, {}], ("error", "h5", "FormationViolation")),
    ("deep nesting in a call", '[2, "deep", "DataTransfer", ' + _DEEP + "]", ("error", "deep", "FormationViolation")),
    ("100 levels in a call", [2, "d100", "DataTransfer", {"vendorId": "x", "data": json.loads("[" * 100 + "]" * 100)}],
     ("error", "d100", "FormationViolation")),
    ("1e400", '[2, "f400", "SetChargingProfile", {"connectorId": 1e400}]',
     ("error", "f400", "TypeConstraintViolation")),
    ("-1e400", '[2, "m400", "DataTransfer", {"vendorId": "x", "data": -1e400}]',
     ("error", "m400", "TypeConstraintViolation")),
    ("2**63", f'[2, "i63", "UnlockConnector", {{"connectorId": {2**63}}}]',
     ("error", "i63", "TypeConstraintViolation")),
    ("10**10000", '[2, "i10k", "UnlockConnector", {"connectorId": 1' + "0" * 10_000 + "}]",
     ("error", "i10k", "TypeConstraintViolation")),
    ("NaN", '[2, "nan", "UnlockConnector", {"connectorId": NaN}]', ("error", "nan", "TypeConstraintViolation")),
    ("100 kB string", [2, "s100", "DataTransfer", {"vendorId": "x", "data": "A" * 100_000}],
     ("error", "s100", "FormationViolation")),
    ("2 MB frame", '  [ 2 , "huge", "DataTransfer", {"vendorId": "x", "data": "' + "A" * (2 * 2**20) + '"}]',
     ("error", "huge", "FormationViolation")),
    ("id with a lone surrogate", '[2, "\\ud800", "Reset", {"type": "Soft"}]', ("result", "\ud800", None)),
    ("empty id", [2, "", "Reset", {"type": "Soft"}], ("result", "", None)),
    ("id over 36 characters", [2, "L" * 60, "Reset", {"type": "Soft"}], ("result", "L" * 60, None)),
    ("whitespace", '\n [ 2 ,\t"ws" , "Reset" , {"type": "Hard"} ] ', ("result", "ws", None)),
]


@pytest.mark.parametrize(("frame", "expected"), [pytest.param(f, e, id=n) for n, f, e in HOSTILE])
async def test_hostile_frame_then_the_loop_still_answers(pair: Pair, frame: Any, expected: tuple | None) -> None:
    started = time.monotonic()
    await pair.csms.send(frame)
    if expected is not None:
        kind, uid, code = expected
        answer = await pair.csms.recv()
        assert answer[1] == uid
        if kind == "result":
            assert answer == [3, uid, {"status": "Accepted"}]
        else:
            assert answer[0] == 4 and answer[2] == code, answer
            assert len(answer[3]) <= 255 and isinstance(answer[4], dict)
    await pair.assert_alive()  # also proves a no-answer frame got no answer: the probe is next
    await pair.assert_alive("probe-2")
    assert time.monotonic() - started < 3
    assert pair.endpoint.stats.errors_sent == (1 if expected and expected[0] == "error" else 0)


async def test_oversized_frame_description_names_the_limit(pair: Pair) -> None:
    answer = await pair.csms.request("big", "DataTransfer", {"vendorId": "x", "data": "B" * 70_000})
    assert answer[2] == "FormationViolation" and "65536" in answer[3] and "too large" in answer[3]


async def test_long_string_under_the_frame_limit_gets_a_short_description() -> None:
    server, ws, pair = await _open_pair(max_frame_bytes=1 << 20)
    try:
        long_value = {"key": "HeartbeatInterval", "value": "9" * 100_000}
        answer = await pair.csms.request("s", "ChangeConfiguration", long_value)
        assert answer[2] == "TypeConstraintViolation" and "maxLength 500" in answer[3] and len(answer[3]) < 255
        answer = await pair.csms.request("d", "DataTransfer", {"vendorId": "x", "data": "A" * 100_000})
        assert answer == [3, "d", {"status": "Accepted"}]
        await pair.assert_alive()
    finally:
        await _close_pair(server, ws, pair)


async def test_answers_to_unknown_ids_are_ignored(pair: Pair) -> None:
    call = asyncio.create_task(pair.endpoint.call("Heartbeat", {}))
    frame = await pair.csms.recv()
    await pair.csms.send([3, "someone-else", {"currentTime": "2020-01-01T00:00:00Z"}])
    await pair.csms.send([4, "someone-else-2", "GenericError", "", {}])
    await asyncio.sleep(0.05)
    assert not call.done()
    await pair.csms.send([3, frame[1], {"currentTime": "2024-05-01T12:00:00Z"}])
    assert await call == {"currentTime": "2024-05-01T12:00:00Z"}
    assert pair.endpoint.stats.frames_ignored == 2
    await pair.csms.assert_silent(0.05)


async def test_one_call_in_flight_at_a_time(pair: Pair) -> None:
    first = asyncio.create_task(pair.endpoint.call("Heartbeat", {}))
    second = asyncio.create_task(pair.endpoint.call(
        "StatusNotification", {"connectorId": 1, "errorCode": "NoError", "status": "Available"}))
    frame1 = await pair.csms.recv()
    assert frame1[2] == "Heartbeat"
    await pair.csms.assert_silent(0.2)  # the second CALL waits for the first answer
    assert not second.done()
    await pair.csms.send([3, frame1[1], {"currentTime": "2024-05-01T12:00:00Z"}])
    frame2 = await pair.csms.recv()
    assert frame2[2] == "StatusNotification" and frame2[1] != frame1[1]
    await pair.csms.send([3, frame2[1], {}])
    assert await first == {"currentTime": "2024-05-01T12:00:00Z"}
    assert await second == {}


async def test_slow_handler_does_not_block_receiving(pair: Pair) -> None:
    async def slow_reset(payload: dict) -> dict:
        await asyncio.sleep(0.4)
        return {"status": "Accepted"}

    pair.dispatcher.routes["Reset"] = slow_reset
    await pair.csms.send([2, "slow", "Reset", {"type": "Hard"}])
    await pair.csms.send([2, "fast", "ClearCache", {}])
    assert (await pair.csms.recv())[1] == "fast"  # answers may come in another order
    assert await pair.csms.recv() == [3, "slow", {"status": "Accepted"}]


async def test_connection_lost_during_a_call(pair: Pair) -> None:
    call = asyncio.create_task(pair.endpoint.call("Heartbeat", {}, timeout=10))
    await pair.csms.recv()
    assert pair.csms.conn is not None
    pair.csms.conn.transport.abort()  # network failure, no close handshake
    with pytest.raises(ConnectionLost):
        await asyncio.wait_for(call, 5)
    await asyncio.wait_for(pair.run_task, 5)  # run() returned normally
    assert pair.run_task.exception() is None and pair.endpoint.closed
    with pytest.raises(ConnectionLost):
        await pair.endpoint.call("Heartbeat", {})


# ---------------------------------------------------------------------------------------------
# Handler outcomes
# ---------------------------------------------------------------------------------------------


async def test_handler_errors_map_to_codes(pair: Pair, caplog: pytest.LogCaptureFixture) -> None:
    def boom(payload: dict) -> dict:
        raise RuntimeError("bug in the station")

    def refuse(payload: dict) -> dict:
        raise CallError("PropertyConstraintViolation", "connector 9 does not exist", {"connectorId": 9})

    def odd_code(payload: dict) -> dict:
        raise CallError("MyOwnCode", "?")

    routes = pair.dispatcher.routes
    routes["Reset"], routes["UnlockConnector"], routes["ClearCache"] = boom, refuse, odd_code
    routes["ChangeAvailability"] = lambda p: {"status": "Maybe"}
    routes["GetLocalListVersion"] = lambda p: {"listVersion": object()}
    with caplog.at_level(logging.ERROR, logger="stationd.ocpp"):
        answer = await pair.csms.request("e1", "Reset", {"type": "Soft"})
    assert answer[2] == "InternalError" and "RuntimeError" in answer[3]
    assert any(r.exc_info and "bug in the station" in str(r.exc_info[1]) for r in caplog.records)
    answer = await pair.csms.request("e2", "UnlockConnector", {"connectorId": 9})
    assert answer == [4, "e2", "PropertyConstraintViolation", "connector 9 does not exist", {"connectorId": 9}]
    assert (await pair.csms.request("e3", "ClearCache", {}))[2] == "GenericError"
    answer = await pair.csms.request("e4", "ChangeAvailability", {"connectorId": 0, "type": "Operative"})
    assert answer[2] == "InternalError"
    assert (await pair.csms.request("e5", "GetLocalListVersion", {}))[2] == "InternalError"
    assert pair.endpoint.stats.handler_failures == 3


async def test_handler_that_hangs_is_answered_with_internal_error(pair: Pair) -> None:
    pair.endpoint.handler_timeout = 0.2
    release = asyncio.Event()

    async def hang(payload: dict) -> dict:
        await release.wait()
        return {"status": "Accepted"}

    pair.dispatcher.routes["Reset"] = hang
    started = time.monotonic()
    answer = await pair.csms.request("h", "Reset", {"type": "Soft"})
    assert answer[2] == "InternalError" and time.monotonic() - started < 1.5
    release.set()
    await pair.csms.assert_silent(0.1)  # the late result is dropped
    await pair.assert_alive()


async def test_secrets_are_never_logged(pair: Pair, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="stationd.ocpp"):
        answer = await pair.csms.request("k1", "ChangeConfiguration", {"key": "AuthorizationKey", "value": SECRET})
        assert answer == [3, "k1", {"status": "Accepted"}]
        answer = await pair.csms.request("k2", "ChangeConfiguration",
                                         {"key": "AuthorizationKey", "value": SECRET, "extra": 1})
        assert answer[2] == "FormationViolation" and SECRET not in json.dumps(answer)
        await pair.csms.send(f'[2, "k3", "ChangeConfiguration", {{"key": "AuthorizationKey", "value": "{SECRET}"')
        await pair.assert_alive()
    assert "ChangeConfiguration" in caplog.text and "k1" in caplog.text  # one DEBUG line per frame
    assert SECRET not in caplog.text
    assert not any(SECRET in str(r.args) for r in caplog.records)


# ---------------------------------------------------------------------------------------------
# Random frames
# ---------------------------------------------------------------------------------------------


def _random_value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(8 if depth < 3 else 5)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False])
    if kind == 2:
        return rng.choice([0, -1, 7, 2**31, rng.randint(-10**9, 10**9)])
    if kind == 3:
        return rng.choice([0.5, 6.25, -1e10, 1e-300, rng.random()])
    if kind == 4:
        return "".join(rng.choice("abcAZ09 é\"\\\n{}[]") for _ in range(rng.randrange(12)))
    if kind == 5:
        return [_random_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {rng.choice(["type", "connectorId", "key", "value", "idTag", "x", "vendorId"]): _random_value(rng, depth + 1)
            for _ in range(rng.randrange(4))}


def _random_frame(rng: random.Random, index: int) -> tuple[str | bytes, str | None]:
    """(frame, id the station must answer or None)."""
    uid = f"r{index}"
    choice = rng.randrange(12)
    if choice == 0:  # a valid CALL
        action, payload = rng.choice([("Reset", {"type": "Soft"}), ("ClearCache", {}),
                                      ("UnlockConnector", {"connectorId": 1})])
        return json.dumps([2, uid, action, payload]), uid
    if choice == 1:  # a known action with a random payload
        return json.dumps([2, uid, rng.choice(sorted(KNOWN_ACTIONS)), _random_value(rng)]), uid
    if choice == 2:  # any action name, random element count
        elements = [2, uid, rng.choice(["Reset", "Foo", "BootNotification", 3, None])]
        elements += [_random_value(rng) for _ in range(rng.randrange(3))]
        return json.dumps(elements), uid
    if choice == 3:  # id that is not a string
        return json.dumps([2, rng.choice([None, 1, 1.5, [], {}, True]), "Reset", {"type": "Soft"}]), None
    if choice == 4:  # stray answers
        return json.dumps(rng.choice([[3, uid, _random_value(rng)], [4, uid, "GenericError", "x", {}], [3], [4]])), None
    if choice == 5:  # unknown message type ids
        return json.dumps([rng.choice([0, 1, 5, 6, 7, -2, 22, "2", 2.5, None]), uid, "Reset", {}]), None
    if choice == 6:  # not JSON
        return rng.choice(["", "[", "]", "nul", "[2,", '[2, "x", "Reset", {', "{'a': 1}", "\x00\x01"]), None
    if choice == 7:  # binary
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40))), None
    if choice == 8:  # random JSON that is not an array starting with 2
        return json.dumps(_random_value(rng)), None
    if choice == 9:  # valid call, odd whitespace
        return f' [2 ,"{uid}",\n"ClearCache" , {{}} ]\t', uid
    if choice == 10:  # a truncated CALL (not JSON → ignored)
        text = json.dumps([2, uid, "Reset", {"type": "Soft"}])
        return text[: rng.randrange(1, len(text) - 1)], None
    return json.dumps([2, uid, "DataTransfer", {"vendorId": "v", "data": _random_value(rng)}]), uid


async def test_random_frames_every_string_id_call_answered_once(pair: Pair) -> None:
    rng = random.Random(20240501)
    expected: Counter[str] = Counter()
    for index in range(250):
        frame, uid = _random_frame(rng, index)
        await pair.csms.send(frame)
        if uid is not None:
            expected[uid] += 1
    await pair.csms.send([2, "final", "ClearCache", {}])
    expected["final"] += 1
    answered: Counter[str] = Counter()
    while sum(answered.values()) < sum(expected.values()):
        answer = await pair.csms.recv()
        assert answer[0] in (3, 4) and isinstance(answer[1], str)
        if answer[0] == 4:
            assert answer[2] in {"NotImplemented", "NotSupported", "ProtocolError", "FormationViolation",
                                 "TypeConstraintViolation", "PropertyConstraintViolation",
                                 "OccurenceConstraintViolation"}, answer  # never InternalError
        answered[answer[1]] += 1
    assert answered == expected
    await pair.csms.assert_silent(0.2)
    await pair.assert_alive()
    stats = pair.endpoint.stats
    assert stats.calls_received == sum(expected.values()) + 1
    assert stats.results_sent + stats.errors_sent == stats.calls_received
    assert stats.frames_received == 252
