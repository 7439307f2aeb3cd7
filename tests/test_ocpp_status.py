"""StatusNotification reporting: what changed, after MinimumStatusDuration, never the history."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

from stationd.config.store import ConfigStore
from stationd.config.value_types import Source
from stationd.core.events import EventBus, StatusChanged
from stationd.ocpp_client.status import StatusReporter, status_payload

T0 = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)


class FakeCore:
    def __init__(self) -> None:
        self.bus = EventBus()


def event(connector: int, status: str, at: datetime, error: str = "NoError", vendor: str | None = None):
    return StatusChanged(connector, status, error, vendor, None, at)


async def test_only_the_current_status_after_an_outage_and_only_if_changed(tmp_path: Path):
    store = ConfigStore.open(tmp_path)
    core, now = FakeCore(), [T0]
    reporter = StatusReporter(core, store, lambda: now[0])
    sent: list[dict] = []

    async def call(action, payload):
        sent.append(payload)
        return {}

    for status in ("Preparing", "Charging", "SuspendedEV"):  # while offline
        core.bus.publish(event(1, status, T0))
    core.bus.publish(event(2, "Available", T0))
    await reporter._send_due(call)
    assert [(p["connectorId"], p["status"]) for p in sent] == [(1, "SuspendedEV"), (2, "Available")]
    sent.clear()
    core.bus.publish(event(1, "SuspendedEV", T0 + timedelta(seconds=5)))  # no change
    await reporter._send_due(call)
    assert sent == []


async def test_minimum_status_duration_holds_a_status_back(tmp_path: Path):
    store = ConfigStore.open(tmp_path)
    assert store.set("MinimumStatusDuration", "10", Source.OCPP).ok
    core, now = FakeCore(), [T0]
    reporter = StatusReporter(core, store, lambda: now[0])
    sent: list[dict] = []

    async def call(action, payload):
        sent.append(payload)
        return {}

    core.bus.publish(event(1, "Preparing", T0))
    assert await reporter._send_due(call) == 10  # due in 10 s
    assert sent == []
    now[0] = T0 + timedelta(seconds=4)
    core.bus.publish(event(1, "Charging", now[0]))  # Preparing lasted 4 s: never reported
    assert await reporter._send_due(call) == 10
    now[0] = T0 + timedelta(seconds=14)
    assert await reporter._send_due(call) is None
    assert [p["status"] for p in sent] == ["Charging"]


def test_vendor_faults_carry_the_vendor_id():
    payload = status_payload(event(0, "Faulted", T0, "OtherError", "TamperDetected"), "stationd")
    assert payload == {"connectorId": 0, "errorCode": "OtherError", "status": "Faulted",
                       "timestamp": "2026-11-22T12:00:00Z", "vendorId": "stationd",
                       "vendorErrorCode": "TamperDetected"}
