"""The simulated OCPP 1.6J central system, driven by a minimal station-side client.

The client is the `ocpp` package's ChargePoint over `websockets.connect` with subprotocol
ocpp1.6 — a second, independent implementation — and everything runs on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import decimal
import itertools
import json
import logging
import os
import signal
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from ocpp.exceptions import SecurityError
from ocpp.routing import on
from ocpp.v16 import ChargePoint, call, call_result
from ocpp.v16.enums import Action, RemoteStartStopStatus
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from firmware_sim.central_system import (
    CALL,
    CALLERROR,
    CALLRESULT,
    NO_REPLY,
    CallError,
    CallErrorReceived,
    CentralSystem,
    NotConnected,
    ProtocolViolation,
)
from firmware_sim.test_pki import create_test_pki

CBID = "TE-1"
NOW = "2024-05-01T12:00:00Z"


class Tap:
    """The client's socket, keeping every frame it received."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.received: list[str | bytes] = []
        self.arrived = asyncio.Event()

    async def recv(self) -> str | bytes:
        frame = await self.ws.recv()
        self.received.append(frame)
        self.arrived.set()
        return frame

    async def send(self, frame: str | bytes) -> None:
        await self.ws.send(frame)


class Station(ChargePoint):
    """Station side: answers RemoteStartTransaction and GetConfiguration."""

    def __init__(self, cbid: str, tap: Tap) -> None:
        super().__init__(cbid, tap, response_timeout=3)
        self.tap = tap
        self.remote_starts: list[dict[str, Any]] = []
        self.profiles: list[Any] = []

    @on(Action.remote_start_transaction)
    def on_remote_start(self, id_tag: str, connector_id: int | None = None, **_: Any):
        self.remote_starts.append({"id_tag": id_tag, "connector_id": connector_id})
        return call_result.RemoteStartTransaction(status=RemoteStartStopStatus.accepted)

    @on(Action.set_charging_profile)
    def on_set_charging_profile(self, connector_id: int, cs_charging_profiles: dict, **_: Any):
        self.profiles.append(cs_charging_profiles)
        return call_result.SetChargingProfile(status="Accepted")

    async def boot(self) -> call_result.BootNotification:
        return await self.call(call.BootNotification(charge_point_model="M1", charge_point_vendor="Vendor"))


@contextlib.asynccontextmanager
async def station(url: str, cbid: str = CBID, **connect_kwargs: Any) -> AsyncIterator[Station]:
    connect_kwargs.setdefault("subprotocols", ["ocpp1.6"])
    ws = await connect(f"{url}/{cbid}", open_timeout=3, **connect_kwargs)
    cp = Station(cbid, Tap(ws))
    task = asyncio.create_task(cp.start())
    try:
        yield cp
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
            await task
        await ws.close()


def basic(user: bytes, password: bytes) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(user + b":" + password).decode()}


@pytest.fixture
async def cs() -> AsyncIterator[CentralSystem]:
    central = CentralSystem(heartbeat_interval=120)
    await central.start()
    try:
        yield central
    finally:
        await central.stop()


# --- default answers --------------------------------------------------------------------------


async def test_boot_is_accepted_with_the_configured_interval(cs: CentralSystem) -> None:
    assert cs.url == f"ws://127.0.0.1:{cs.port}/ocpp" and cs.port > 0
    async with station(cs.url) as cp:
        assert cp.tap.ws.subprotocol == "ocpp1.6"
        reply = await cp.boot()
        assert reply.status == "Accepted" and reply.interval == 120
        assert datetime.fromisoformat(reply.current_time).tzinfo is not None
        heartbeat = await cp.call(call.Heartbeat())
        assert heartbeat.current_time.endswith("Z")
        assert cs.connected(CBID)
        assert cs.violations() == []


async def test_start_transaction_ids_increase_and_other_defaults(cs: CentralSystem) -> None:
    async with station(cs.url) as cp:
        ids = []
        for connector in (1, 2, 1):
            reply = await cp.call(call.StartTransaction(connector_id=connector, id_tag="aec78085",
                                                        meter_start=0, timestamp=NOW))
            assert reply.id_tag_info == {"status": "Accepted"}
            ids.append(reply.transaction_id)
        assert ids == [1, 2, 3]
        stop = await cp.call(call.StopTransaction(meter_stop=10, timestamp=NOW, transaction_id=1, id_tag="aec78085"))
        assert stop.id_tag_info == {"status": "Accepted"}
        assert (await cp.call(call.Authorize(id_tag="aec78085"))).id_tag_info == {"status": "Accepted"}
        assert (await cp.call(call.DataTransfer(vendor_id="generalConfiguration"))).status == "Accepted"
        await cp.call(call.StatusNotification(connector_id=1, error_code="NoError", status="Available"))
        await cp.call(call.MeterValues(connector_id=1, meter_value=[
            {"timestamp": NOW, "sampledValue": [{"value": "12.5", "measurand": "Energy.Active.Import.Register"}]}]))
        await cp.call(call.FirmwareStatusNotification(status="Idle"))
        await cp.call(call.DiagnosticsStatusNotification(status="Idle"))
        await cp.call(call.SecurityEventNotification(type="StartupOfTheDevice", timestamp=NOW, tech_info=None))
    answers = {r.action: r.payload for r in cs.messages(CBID) if r.direction == "out"}
    assert answers["SecurityEventNotification"] == {} and answers["MeterValues"] == {}
    assert cs.violations() == []


async def test_first_transaction_id_is_configurable() -> None:
    async with CentralSystem(first_transaction_id=1000) as central, station(central.url) as cp:
        reply = await cp.call(call.StartTransaction(connector_id=1, id_tag="x", meter_start=0, timestamp=NOW))
        assert reply.transaction_id == 1000


# --- recording ----------------------------------------------------------------------------------


async def test_frames_are_recorded_in_order_exactly(cs: CentralSystem, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="firmware_sim.central_system")
    async with station(cs.url) as cp:
        await cp.boot()
        await cp.call(call.Authorize(id_tag="aec78085"))
    records = cs.messages(CBID)
    assert [(r.direction, r.message_type_id, r.action) for r in records] == [
        ("in", CALL, "BootNotification"),
        ("out", CALLRESULT, "BootNotification"),
        ("in", CALL, "Authorize"),
        ("out", CALLRESULT, "Authorize"),
    ]
    assert records[0].payload == {"chargePointModel": "M1", "chargePointVendor": "Vendor"}
    assert records[1].payload["status"] == "Accepted" and records[1].payload["interval"] == 120
    assert records[3].payload == {"idTagInfo": {"status": "Accepted"}}
    assert records[0].unique_id == records[1].unique_id != records[2].unique_id == records[3].unique_id
    # the raw text is exactly what the client received
    assert [r.raw for r in records if r.direction == "out"] == cp.tap.received
    assert json.loads(records[2].raw) == [2, records[2].unique_id, "Authorize", {"idTag": "aec78085"}]
    assert [r.seq for r in records] == sorted(r.seq for r in records)
    assert all(a.monotonic <= b.monotonic for a, b in itertools.pairwise(records))
    assert f'<- {CBID} Authorize {{"idTag":"aec78085"}}' in caplog.messages
    assert any(m.startswith(f"-> {CBID} Authorize.conf ") for m in caplog.messages)


async def test_wait_for_hands_out_each_record_once_and_sees_the_past(cs: CentralSystem) -> None:
    async with station(cs.url) as cp:
        for connector in (1, 2):
            await cp.call(call.StatusNotification(connector_id=connector, error_code="NoError", status="Available"))
        first = await cs.wait_for("StatusNotification", chargebox_id=CBID)
        second = await cs.wait_for("StatusNotification")
        assert (first.payload["connectorId"], second.payload["connectorId"]) == (1, 2)
        answer = await cs.wait_for("StatusNotification", direction="out")
        assert answer.unique_id == first.unique_id and answer.message_type_id == CALLRESULT

        charging = asyncio.create_task(
            cs.wait_for("StatusNotification", predicate=lambda r: r.payload["status"] == "Charging"))
        await cp.call(call.StatusNotification(connector_id=1, error_code="NoError", status="Preparing"))
        await cp.call(call.StatusNotification(connector_id=1, error_code="NoError", status="Charging"))
        assert (await charging).payload["status"] == "Charging"
        statuses = [p["status"] for p in cs.payloads("StatusNotification")]
        assert statuses == ["Available", "Available", "Preparing", "Charging"]
        with pytest.raises(TimeoutError, match="StopTransaction"):
            await cs.wait_for("StopTransaction", timeout=0.05)


# --- overriding answers ---------------------------------------------------------------------


async def test_authorize_can_be_answered_blocked(cs: CentralSystem) -> None:
    cs.respond("Authorize", {"idTagInfo": {"status": "Blocked"}})
    seen: list[dict[str, Any]] = []

    def start(payload: dict[str, Any]) -> dict[str, Any]:
        seen.append(payload)
        return {"transactionId": 77, "idTagInfo": {"status": "Invalid"}}

    cs.respond("StartTransaction", start, times=1)
    async with station(cs.url) as cp:
        assert (await cp.call(call.Authorize(id_tag="aec78085"))).id_tag_info == {"status": "Blocked"}
        first = await cp.call(call.StartTransaction(connector_id=1, id_tag="bad", meter_start=5, timestamp=NOW))
        assert (first.transaction_id, first.id_tag_info) == (77, {"status": "Invalid"})
        assert seen == [{"connectorId": 1, "idTag": "bad", "meterStart": 5, "timestamp": NOW}]
        second = await cp.call(call.StartTransaction(connector_id=1, id_tag="ok", meter_start=5, timestamp=NOW))
        assert (second.transaction_id, second.id_tag_info) == (1, {"status": "Accepted"})  # times=1 used up
        cs.respond("Authorize")  # DEFAULT without delay: back to the built-in answer
        assert (await cp.call(call.Authorize(id_tag="aec78085"))).id_tag_info == {"status": "Accepted"}


async def test_override_for_one_station_only(cs: CentralSystem) -> None:
    cs.respond("Authorize", {"idTagInfo": {"status": "Expired"}}, chargebox_id="TE-2")
    async with station(cs.url, "TE-1") as one, station(cs.url, "TE-2") as two:
        assert (await one.call(call.Authorize(id_tag="a"))).id_tag_info == {"status": "Accepted"}
        assert (await two.call(call.Authorize(id_tag="a"))).id_tag_info == {"status": "Expired"}


async def test_delayed_answer_does_not_stall_other_traffic(cs: CentralSystem) -> None:
    cs.respond("Heartbeat", delay=0.4)  # the default answer, late
    async with station(cs.url) as cp:
        late = asyncio.create_task(cp.call(call.Heartbeat()))
        request = await cs.wait_for("Heartbeat")
        # while the answer is held back, our CALL to the station still gets through and back
        reply = await cs.call(CBID, "RemoteStartTransaction", {"idTag": "aec78085"}, timeout=2)
        assert reply == {"status": "Accepted"}
        assert not late.done()
        assert not [r for r in cs.messages() if r.direction == "out" and r.action == "Heartbeat"]
        assert (await late).current_time.endswith("Z")
        answer = await cs.wait_for("Heartbeat", direction="out")
        assert answer.unique_id == request.unique_id
        assert answer.monotonic - request.monotonic >= 0.4


async def test_no_reply_makes_the_station_time_out(cs: CentralSystem) -> None:
    cs.respond("BootNotification", NO_REPLY)
    async with station(cs.url) as cp:
        cp._response_timeout = 0.3
        with pytest.raises(asyncio.TimeoutError):
            await cp.boot()
        assert len(cs.payloads("BootNotification")) == 1
        assert [r.direction for r in cs.messages()] == ["in"]


async def test_callerror_answers(cs: CentralSystem) -> None:
    cs.respond("Authorize", CallError("SecurityError", "go away", {"why": "test"}))

    def refuse(payload: dict[str, Any]) -> dict[str, Any]:
        raise SecurityError(description="not you")

    cs.respond("DataTransfer", refuse)
    async with station(cs.url) as cp:
        with pytest.raises(SecurityError) as raised:
            await cp.call(call.Authorize(id_tag="aec78085"), suppress=False)
        assert raised.value.description == "go away" and raised.value.details == {"why": "test"}
        with pytest.raises(SecurityError):
            await cp.call(call.DataTransfer(vendor_id="x"), suppress=False)
    error = next(r for r in cs.messages() if r.direction == "out" and r.action == "Authorize")
    assert error.message_type_id == CALLERROR
    assert json.loads(error.raw) == [4, error.unique_id, "SecurityError", "go away", {"why": "test"}]
    assert (error.error_code, error.error_description, error.payload) == ("SecurityError", "go away", {"why": "test"})


# --- CALLs to the station ---------------------------------------------------------------------


async def test_call_remote_start_reaches_the_station_and_returns_its_answer(cs: CentralSystem) -> None:
    async with station(cs.url) as cp:
        await cs.wait_connected(CBID)
        reply = await cs.call(CBID, "RemoteStartTransaction", {"connectorId": 1, "idTag": "aec78085"})
        assert reply == {"status": "Accepted"}
        assert cp.remote_starts == [{"id_tag": "aec78085", "connector_id": 1}]
        sent, answer = cs.messages(CBID)[-2:]
        assert (sent.direction, sent.message_type_id, sent.action) == ("out", CALL, "RemoteStartTransaction")
        assert (answer.direction, answer.message_type_id, answer.action) == ("in", CALLRESULT, "RemoteStartTransaction")
        assert answer.unique_id == sent.unique_id and len(sent.unique_id) <= 36

        # the client has no handler for GetConfiguration: its CALLERROR comes back as an exception
        with pytest.raises(CallErrorReceived) as raised:
            await cs.call(CBID, "GetConfiguration", {"key": ["HeartbeatInterval"]})
        assert raised.value.code in ("NotImplemented", "NotSupported")

        # an invalid request is refused before anything is sent
        count = len(cs.messages())
        with pytest.raises(ProtocolViolation, match="idTag"):
            await cs.call(CBID, "RemoteStartTransaction", {"connectorId": 1})
        assert len(cs.messages()) == count

        with pytest.raises(NotConnected):
            await cs.call("TE-9", "Reset", {"type": "Soft"})


async def test_call_sends_decimal_limits_as_plain_numbers(cs: CentralSystem) -> None:
    profile = {
        "chargingProfileId": 1, "stackLevel": 0, "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Absolute",
        "chargingSchedule": {"chargingRateUnit": "A", "startSchedule": NOW,
                             "chargingSchedulePeriod": [{"startPeriod": 0, "limit": decimal.Decimal("16.0")}]},
    }
    async with station(cs.url) as cp:
        reply = await cs.call(CBID, "SetChargingProfile", {"connectorId": 1, "csChargingProfiles": profile})
        assert reply == {"status": "Accepted"}
    sent = next(r for r in cs.messages() if r.action == "SetChargingProfile" and r.direction == "out")
    assert '"limit":16.0' in sent.raw
    period = sent.payload["csChargingProfiles"]["chargingSchedule"]["chargingSchedulePeriod"][0]
    assert isinstance(period["limit"], float)
    assert cp.profiles and cp.profiles[0]["charging_schedule"]["charging_schedule_period"][0]["limit"] == 16


async def test_call_times_out_without_an_answer(cs: CentralSystem) -> None:
    async with connect(f"{cs.url}/{CBID}", subprotocols=["ocpp1.6"]) as ws:  # a station that never answers
        await cs.wait_connected(CBID)
        with pytest.raises(TimeoutError, match="Reset"):
            await cs.call(CBID, "Reset", {"type": "Soft"}, timeout=0.2)
        frame = json.loads(await ws.recv())
        assert frame[0] == 2 and frame[2:] == ["Reset", {"type": "Soft"}]
        # a malformed answer (to a later call) ends the wait with an error instead of a timeout
        caller = asyncio.create_task(cs.call(CBID, "ClearCache", {}, timeout=3))
        uid = json.loads(await ws.recv())[1]
        await ws.send(json.dumps([3, uid]))
        with pytest.raises(ProtocolViolation, match="malformed"):
            await caller


# --- robustness -------------------------------------------------------------------------------


async def test_send_raw_garbage_does_not_break_the_server(cs: CentralSystem) -> None:
    async with station(cs.url) as cp:
        await cs.wait_connected(CBID)
        await cs.send_raw(CBID, "this is not json")
        await cs.send_raw(CBID, b"\x00\x01binary")
        while len(cp.tap.received) < 2:
            cp.tap.arrived.clear()
            await asyncio.wait_for(cp.tap.arrived.wait(), 2)
        assert cp.tap.received == ["this is not json", b"\x00\x01binary"]
        # a raw CALL: the station's answer is recorded with its action
        await cs.send_raw(CBID, json.dumps([2, "raw-1", "RemoteStartTransaction", {"idTag": "x"}]))
        answer = await cs.wait_for("RemoteStartTransaction", message_type_id=CALLRESULT)
        assert (answer.unique_id, answer.payload) == ("raw-1", {"status": "Accepted"})
        assert (await cp.boot()).status == "Accepted"


async def test_malformed_frames_from_the_station_are_recorded_and_survived(cs: CentralSystem) -> None:
    async with connect(f"{cs.url}/{CBID}", subprotocols=["ocpp1.6"]) as ws:
        for frame in ["garbage{", "[]", '{"a": 1}', "[9, \"x\"]", b"\x01\x02", "[3, \"nobody\", {}]"]:
            await ws.send(frame)
        await ws.send('[2, "m1", "Heartbeat"]')  # CALL without payload
        assert json.loads(await ws.recv()) == [4, "m1", "FormationViolation", "CALL has 3 elements, not 4", {}]
        await ws.send('[2, "m2", "Heartbeat", {"extra": true}]')  # schema violation
        error = json.loads(await ws.recv())
        assert error[:3] == [4, "m2", "FormationViolation"]
        await ws.send('[2, "m3", "StatusNotification", {"connectorId": 1, "status": "Available"}]')
        assert json.loads(await ws.recv())[:3] == [4, "m3", "OccurenceConstraintViolation"]
        await ws.send('[2, "m4", "FooBar", {}]')  # unknown action
        assert json.loads(await ws.recv())[:3] == [4, "m4", "NotImplemented"]
        await ws.send('[2, "m5", "Reset", {"type": "Hard"}]')  # known, but not for a central system
        assert json.loads(await ws.recv())[:3] == [4, "m5", "NotSupported"]
        await ws.send('[2, "m6", "Heartbeat", {}]')
        reply = json.loads(await ws.recv())
        assert reply[:2] == [3, "m6"] and reply[2]["currentTime"].endswith("Z")
    malformed = [r.malformed for r in cs.messages() if r.malformed]
    assert malformed[:5] == ["not JSON", "not a non-empty JSON array", "not a non-empty JSON array",
                             "unknown MessageTypeId 9", "binary frame (OCPP-J uses text frames)"]
    assert {v.code for v in cs.violations(CBID)} >= {"FormationViolation", "OccurenceConstraintViolation"}


async def test_lenient_mode_answers_invalid_calls_normally() -> None:
    async with CentralSystem(validate=False) as central:
        async with connect(f"{central.url}/{CBID}", subprotocols=["ocpp1.6"]) as ws:
            await ws.send('[2, "v1", "Heartbeat", {"extra": true}]')
            assert json.loads(await ws.recv())[:2] == [3, "v1"]
        assert [v.code for v in central.violations()] == ["FormationViolation"]


# --- handshake: subprotocol, Basic auth, TLS ---------------------------------------------------


async def test_handshake_without_subprotocol_is_refused(cs: CentralSystem) -> None:
    with pytest.raises(InvalidStatus) as raised:
        await connect(f"{cs.url}/{CBID}", open_timeout=3)
    assert raised.value.response.status_code == 400
    with pytest.raises(InvalidStatus):
        await connect(f"{cs.url}/{CBID}", subprotocols=["ocpp2.0.1"], open_timeout=3)
    with pytest.raises(InvalidStatus) as raised:
        await connect(f"{cs.url}/", subprotocols=["ocpp1.6"], open_timeout=3)
    assert raised.value.response.status_code == 404
    assert [h.status for h in cs.handshakes()] == [400, 400, 404]
    assert not cs.connected(CBID)


async def test_missing_subprotocol_can_be_allowed() -> None:
    async with CentralSystem(require_subprotocol=False) as central:
        async with connect(f"{central.url}/{CBID}") as ws:
            assert ws.subprotocol is None
            await central.wait_connected(CBID)
        async with connect(f"{central.url}/{CBID}", subprotocols=["ocpp1.6"]) as ws:
            assert ws.subprotocol == "ocpp1.6"


async def test_basic_auth_profile_1() -> None:
    password = bytes.fromhex("00ff31323334353637383930aabbccddeeff0011")  # whitepaper key: raw bytes
    async with CentralSystem(security_profile=1, passwords={CBID: password}) as central:
        url = f"{central.url}/{CBID}"
        async with connect(url, subprotocols=["ocpp1.6"], additional_headers=basic(CBID.encode(), password)):
            await central.wait_connected(CBID)
        refused = [
            basic(CBID.encode(), password[:-1] + b"\x12"),  # wrong password
            {},  # no credentials
            basic(b"TE-2", password),  # user is not the chargebox id
            {"Authorization": "Bearer abc"},
        ]
        for headers in refused:
            with pytest.raises(InvalidStatus) as raised:
                await connect(url, subprotocols=["ocpp1.6"], additional_headers=headers, open_timeout=3)
            assert raised.value.response.status_code == 401
            assert raised.value.response.headers["WWW-Authenticate"].startswith("Basic")
        assert [h.status for h in central.handshakes(CBID)] == [101, 401, 401, 401, 401]
        assert [h.reason for h in central.handshakes(CBID)][1:] == [
            "wrong password", "no credentials", "user is not the chargebox id", "auth scheme 'Bearer' is not Basic"]
        assert len(central.connection_attempts[CBID]) == 5


async def test_wss_with_throwaway_pki(tmp_path: Path) -> None:
    pki = create_test_pki(tmp_path)
    assert {p.name for p in tmp_path.iterdir()} == {"ca.pem", "server.pem", "server.key"}
    assert os.stat(pki.key_path).st_mode & 0o077 == 0
    async with CentralSystem(security_profile=2, ssl_context=pki.server_context, passwords={CBID: "secret"}) as central:
        assert central.url.startswith("wss://127.0.0.1:")
        auth = basic(CBID.encode(), b"secret")
        async with station(central.url, ssl=pki.client_context(), additional_headers=auth) as cp:
            assert (await cp.boot()).status == "Accepted"
        localhost_url = central.url.replace("127.0.0.1", "localhost")
        async with connect(f"{localhost_url}/{CBID}", subprotocols=["ocpp1.6"], ssl=pki.client_context(),
                           additional_headers=auth):
            pass
        with pytest.raises(ssl.SSLCertVerificationError):  # the system store does not know our CA
            await connect(f"{central.url}/{CBID}", subprotocols=["ocpp1.6"], ssl=ssl.create_default_context(),
                          additional_headers=auth, open_timeout=3)
        with pytest.raises(InvalidStatus) as raised:  # TLS is fine, Basic still required
            await connect(f"{central.url}/{CBID}", subprotocols=["ocpp1.6"], ssl=pki.client_context(), open_timeout=3)
        assert raised.value.response.status_code == 401


async def test_expired_server_certificate_is_refused_by_a_verifying_client(tmp_path: Path) -> None:
    pki = create_test_pki(tmp_path, expired=True)
    async with CentralSystem(security_profile=2, ssl_context=pki.server_context, passwords={CBID: "x"}) as central:
        with pytest.raises(ssl.SSLCertVerificationError, match="expired"):
            await connect(f"{central.url}/{CBID}", subprotocols=["ocpp1.6"], ssl=pki.client_context(), open_timeout=3)


# --- connection control -----------------------------------------------------------------------


async def test_disconnect_closes_the_station_socket(cs: CentralSystem) -> None:
    async with station(cs.url) as cp:
        await cs.wait_connected(CBID)
        await cs.disconnect(CBID, code=1001, reason="maintenance")
        assert not cs.connected(CBID)
        await asyncio.wait_for(cp.tap.ws.wait_closed(), 2)
        assert cp.tap.ws.close_code == 1001
    async with station(cs.url) as cp:
        await cs.wait_connected(CBID)
        await cs.disconnect(CBID, abort=True)  # no close handshake, like a lost network
        await asyncio.wait_for(cp.tap.ws.wait_closed(), 2)
        assert cp.tap.ws.close_code != 1000
    await cs.disconnect(CBID)  # not connected: no-op


async def test_connection_attempts_are_counted(cs: CentralSystem) -> None:
    for _ in range(3):
        async with station(cs.url):
            await cs.wait_connected(CBID)
        await cs.wait_disconnected(CBID)
    cs.refuse_status = 503
    with pytest.raises(InvalidStatus) as raised:
        await connect(f"{cs.url}/{CBID}", subprotocols=["ocpp1.6"], open_timeout=3)
    assert raised.value.response.status_code == 503
    attempts = cs.connection_attempts[CBID]
    assert len(attempts) == 4 and attempts == sorted(attempts)
    assert [h.status for h in cs.handshakes(CBID)] == [101, 101, 101, 503]
    assert cs.connection_attempts["nobody"] == []


async def test_a_new_connection_replaces_the_old_one(cs: CentralSystem) -> None:
    async with station(cs.url) as old, station(cs.url) as new:
        await asyncio.wait_for(old.tap.ws.wait_closed(), 2)
        assert cs.connected(CBID)
        assert (await new.boot()).status == "Accepted"


async def test_stop_closes_connections_and_can_start_again(cs: CentralSystem) -> None:
    async with station(cs.url) as cp:
        await cs.wait_connected(CBID)
        port = cs.port
        await cs.stop()
        await asyncio.wait_for(cp.tap.ws.wait_closed(), 2)
        assert cp.tap.ws.close_code == 1001 and not cs.connected(CBID)
    await cs.start()
    assert cs.port == port
    async with station(cs.url) as cp:
        assert (await cp.boot()).status == "Accepted"


# --- as a person runs it ----------------------------------------------------------------------


async def test_cli_runs_logs_and_stops_on_sigterm() -> None:
    root = Path(__file__).resolve().parents[1]
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "firmware_sim.central_system", "--port", "0", "--security-profile", "1",
        "--password", "TE-1=secret", cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        assert process.stdout is not None and process.stderr is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 10)).decode()
        assert line.startswith("central system: ws://127.0.0.1:") and line.rstrip().endswith("/ocpp/<chargebox id>")
        url = line.split(": ", 1)[1].split("/<chargebox id>")[0]
        async with station(url, additional_headers=basic(b"TE-1", b"secret")) as cp:
            assert (await cp.boot()).status == "Accepted"
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 10) == 0
        log = (await process.stderr.read()).decode()
        assert "<- TE-1 BootNotification {" in log and "-> TE-1 BootNotification.conf {" in log
        assert "secret" not in log
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_authorization_key_is_masked_in_log_lines(cs: CentralSystem, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="firmware_sim.central_system")
    async with connect(f"{cs.url}/{CBID}", subprotocols=["ocpp1.6"]) as ws:
        await cs.wait_connected(CBID)
        change = {"key": "AuthorizationKey", "value": "0011223344556677889900aabbccddeeff"}
        caller = asyncio.create_task(cs.call(CBID, "ChangeConfiguration", change))
        uid = json.loads(await ws.recv())[1]
        await ws.send(json.dumps([3, uid, {"status": "Accepted"}]))
        assert await caller == {"status": "Accepted"}
    assert "0011223344556677889900aabbccddeeff" not in caplog.text
    assert '"value":"***"' in caplog.text
    assert "0011223344556677889900aabbccddeeff" in cs.messages()[0].raw  # the record keeps the truth


async def test_an_async_answer_may_itself_call_the_station(cs: CentralSystem) -> None:
    """The package trap (await call() inside an @on handler deadlocks) does not apply here."""

    async def heartbeat(payload: dict[str, Any]) -> dict[str, Any]:
        reply = await cs.call(CBID, "RemoteStartTransaction", {"idTag": "from-handler"}, timeout=2)
        assert reply == {"status": "Accepted"}
        return {"currentTime": cs.now_iso()}

    cs.respond("Heartbeat", heartbeat)
    async with station(cs.url) as cp:
        assert (await cp.call(call.Heartbeat())).current_time.endswith("Z")
        assert cp.remote_starts == [{"id_tag": "from-handler", "connector_id": None}]


async def test_ipv6_loopback_and_record_trimming() -> None:
    clock = lambda: datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    async with CentralSystem(host="::1", max_records=10, now=clock) as central:
        assert central.url == f"ws://[::1]:{central.port}/ocpp"
        async with station(central.url) as cp:
            for _ in range(10):
                reply = await cp.call(call.Heartbeat())
            assert reply.current_time.startswith("2030-01-02T")
        records = central.messages()
        assert 10 <= len(records) <= 11 and records[-1].seq == 19
