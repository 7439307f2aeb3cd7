"""Security whitepaper GetLog (DiagnosticsLog, SecurityLog) with LogStatusNotification, and
ExtendedTriggerMessage, end to end: a real station, central system and HTTP upload server on
127.0.0.1."""

from __future__ import annotations

import io
import tarfile

import pytest

from file_servers import HttpFiles
from firmware_sim.central_system import CentralSystem
from test_ocpp_client import BOX, Station, payloads, until


async def test_get_log_uploads_both_logs_with_their_status_sequence(station: Station, cs: CentralSystem,
                                                                    http_files: HttpFiles):
    location = f"{http_files.base}/upload/"
    answer = await cs.call(BOX, "GetLog", {"logType": "DiagnosticsLog", "requestId": 7,
                                           "log": {"remoteLocation": location}})
    assert answer["status"] == "Accepted" and answer["filename"].endswith("-diagnostics.tar.gz")
    await until(lambda: {"status": "Uploaded", "requestId": 7} in payloads(cs, "LogStatusNotification"))
    assert payloads(cs, "LogStatusNotification") == [{"status": "Uploading", "requestId": 7},
                                                  {"status": "Uploaded", "requestId": 7}]
    with tarfile.open(fileobj=io.BytesIO(http_files.uploads[answer["filename"]]), mode="r:gz") as tar:
        assert tar.getmembers()

    # SecurityLog: the events the station recorded (StartupOfTheDevice at least), in the window.
    station.station.ocpp.security_event("ReconfigurationOfSecurityParameters", "test event")
    answer = await cs.call(BOX, "GetLog", {"logType": "SecurityLog", "requestId": 8,
                                           "log": {"remoteLocation": location,
                                                   "oldestTimestamp": "2020-01-01T00:00:00Z"}})
    assert answer["status"] == "Accepted" and answer["filename"].endswith("-security.log")
    await until(lambda: {"status": "Uploaded", "requestId": 8} in payloads(cs, "LogStatusNotification"))
    text = http_files.uploads[answer["filename"]].decode()
    assert "StartupOfTheDevice" in text and "ReconfigurationOfSecurityParameters test event" in text
    # A window before any event: an empty log, still Uploaded.
    answer = await cs.call(BOX, "GetLog", {"logType": "SecurityLog", "requestId": 9,
                                           "log": {"remoteLocation": location,
                                                   "latestTimestamp": "2020-01-01T00:00:00Z"}})
    await until(lambda: {"status": "Uploaded", "requestId": 9} in payloads(cs, "LogStatusNotification"))
    assert http_files.uploads[answer["filename"]] == b""

    # Idle afterwards: what an ExtendedTriggerMessage reports.
    assert await cs.call(BOX, "ExtendedTriggerMessage", {"requestedMessage": "LogStatusNotification"}) == {
        "status": "Accepted"}
    await until(lambda: payloads(cs, "LogStatusNotification")[-1] == {"status": "Idle"})


async def test_get_log_refusals_and_a_failed_upload(station: Station, cs: CentralSystem):
    assert await cs.call(BOX, "GetLog", {"logType": "DiagnosticsLog", "requestId": 1,
                                         "log": {"remoteLocation": "gopher://127.0.0.1/x"}}) == {"status": "Rejected"}
    window = {"remoteLocation": "http://127.0.0.1:1/up/", "oldestTimestamp": "2026-01-02T00:00:00Z",
              "latestTimestamp": "2026-01-01T00:00:00Z"}
    assert await cs.call(BOX, "GetLog", {"logType": "SecurityLog", "requestId": 2, "log": window}) == {
        "status": "Rejected"}
    answer = await cs.call(BOX, "GetLog", {"logType": "SecurityLog", "requestId": 3, "retries": 0,
                                           "log": {"remoteLocation": "http://127.0.0.1:1/up/"}})
    assert answer["status"] == "Accepted"
    await until(lambda: {"status": "UploadFailure", "requestId": 3} in payloads(cs, "LogStatusNotification"))


@pytest.mark.parametrize("message, action, check", [
    ("BootNotification", "BootNotification", lambda p: p["chargePointSerialNumber"] == "IT0001"),
    ("Heartbeat", "Heartbeat", lambda p: p == {}),
    ("StatusNotification", "StatusNotification", lambda p: p["connectorId"] == 1),
    ("MeterValues", "MeterValues", lambda p: p["connectorId"] == 1),
    ("FirmwareStatusNotification", "SignedFirmwareStatusNotification", lambda p: p["status"] == "Idle"),
    ("LogStatusNotification", "LogStatusNotification", lambda p: p == {"status": "Idle"}),
])
async def test_extended_trigger_message(station: Station, cs: CentralSystem, message, action, check):
    before = len(payloads(cs, action))
    assert await cs.call(BOX, "ExtendedTriggerMessage", {"requestedMessage": message, "connectorId": 1}) == {
        "status": "Accepted"}
    await until(lambda: len(payloads(cs, action)) > before)
    assert check(payloads(cs, action)[-1])


async def test_extended_trigger_message_refusals(station: Station, cs: CentralSystem):
    assert await cs.call(BOX, "ExtendedTriggerMessage", {"requestedMessage": "Heartbeat", "connectorId": 9}) == {
        "status": "Rejected"}
