"""The station core with fake hardware inputs and a fake clock (real settings and database)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from stationd.config.store import ConfigStore
from stationd.config.value_types import Source
from stationd.core.connector import ControllerState
from stationd.core.events import FaultChanged, OutputsChanged, SessionEnded, SessionStarted, StatusChanged
from stationd.core.iec61851 import CpState
from stationd.core.sessions import SessionStore
from stationd.core.station import ConnectorSpec, StationCore
from stationd.storage import Database

A, B, C, E = CpState.A, CpState.B, CpState.C, CpState.E


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class Sample:
    energy_import_wh: float
    current_a: tuple = (None, None, None)  # the meter tells no phase currents


class Rig:
    """A core plus what it published, and shorthands for hardware inputs."""

    def __init__(self, data_dir: Path, connectors: int = 2, **settings: str):
        self.data_dir = data_dir
        self.clock = Clock()
        self.store = ConfigStore.open(data_dir, installation={"NumberOfConnectors": str(connectors)})
        settings.setdefault("GridMaxPower", "0")  # these tests share the mains current (test_current_limits: power)
        for name, value in settings.items():
            assert self.store.set(name.replace("__", "/"), value, Source.LOCAL).ok
        self.db = Database.open(data_dir)
        self.core = StationCore(self.store, SessionStore(self.db),
                                [ConnectorSpec(i, 32, 3) for i in range(1, connectors + 1)], clock=self.clock)
        self.events: list[object] = []
        self.core.bus.subscribe(self.events.append)
        self.core.start()
        for i in range(1, connectors + 1):
            self.core.controller_link(i, True)
            self.core.meter_sample(i, Sample(1000.0 * i))

    def state(self, connector: int, cp: CpState, faults: set[str] = frozenset(), **fields) -> None:
        self.core.controller_state(connector, ControllerState(cp_state=cp, **fields), faults)

    def status(self, connector: int) -> str:
        return self.core.status(connector).status.value

    def outputs(self, connector: int):
        return self.core.connectors[connector].outputs

    def of(self, kind: type) -> list:
        return [e for e in self.events if isinstance(e, kind)]


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    return Rig(tmp_path)  # CsMode 1 (free charging) is the default


def test_free_charging_session_from_plug_to_unplug(rig: Rig):
    assert rig.status(1) == "Available" and rig.outputs(1).offer_a == 0
    rig.state(1, B)
    session = rig.core.connectors[1].session
    assert session is not None and session.id_tag == "FREECHARGING" and session.meter_start_wh == 1000
    assert rig.outputs(1).offer_a == 16.0  # mains limit 16 A (default) < connector 32 A
    assert rig.outputs(1).locked and not rig.outputs(1).contactor
    assert rig.status(1) == "SuspendedEV"  # offered, vehicle not asking yet
    rig.state(1, C, offered_a=16.0)
    assert rig.outputs(1).contactor and rig.status(1) == "Charging"
    rig.clock.advance(3600)
    rig.core.meter_sample(1, Sample(12000.0))
    rig.state(1, A)
    ended = rig.of(SessionEnded)[-1].session
    assert (ended.stop_reason, ended.meter_stop_wh, ended.energy_wh) == ("EVDisconnected", 12000.0, 11000.0)
    assert rig.status(1) == "Available"
    assert rig.outputs(1) == type(rig.outputs(1))()  # no PWM, contactor open, unlocked


def test_status_events_come_only_on_change_and_in_order(rig: Rig):
    rig.events.clear()
    rig.state(1, B)
    rig.state(1, B)
    rig.state(1, C)
    statuses = [(e.connector_id, e.status) for e in rig.of(StatusChanged)]
    assert statuses == [(1, "SuspendedEV"), (1, "Charging")]
    kinds = [type(e).__name__ for e in rig.events if not isinstance(e, FaultChanged)]
    assert kinds.index("SessionStarted") < kinds.index("StatusChanged")


def test_a_second_session_halves_the_mains_limit(tmp_path: Path):
    rig = Rig(tmp_path, **{"__power__station__mainsMaxCurrent": "32000"})
    rig.state(1, C)
    assert rig.outputs(1).offer_a == 32.0
    rig.state(2, C)
    assert rig.outputs(1).offer_a == rig.outputs(2).offer_a == 16.0
    rig.state(2, A)
    assert rig.outputs(1).offer_a == 32.0


def test_an_offer_below_6_a_suspends_instead_of_an_illegal_pwm(rig: Rig):
    rig.state(1, C)
    rig.core.set_limit(1, "test", 5.5)
    assert rig.outputs(1).offer_a == 0 and not rig.outputs(1).contactor
    assert rig.status(1) == "SuspendedEVSE"
    rig.core.set_limit(1, "test", 10.27)
    assert rig.outputs(1).offer_a == 10.2  # rounded down to 0.1 A
    rig.core.set_limit(1, "test", None)
    assert rig.outputs(1).offer_a == 16.0


def test_the_cable_rating_limits_the_offer(rig: Rig):
    rig.state(1, C, cable_max_a=13)
    assert rig.outputs(1).offer_a == 13.0


def test_authenticated_mode_waits_for_authorization(tmp_path: Path):
    rig = Rig(tmp_path, CsMode="0")
    rig.state(1, B)
    assert rig.core.connectors[1].session is None and rig.status(1) == "Preparing"
    result = rig.core.authorize(1, "aec78085")
    assert result.accepted and result.started
    assert rig.core.connectors[1].session.id_tag == "aec78085"


def test_authorization_before_the_cable_and_its_timeout(tmp_path: Path):
    rig = Rig(tmp_path, CsMode="0", ConnectionTimeOut="60")
    result = rig.core.authorize(None, "4b13b318")
    assert result.accepted and not result.started and result.connector_id == 1
    assert rig.status(1) == "Preparing"
    rig.clock.advance(30)
    rig.core.tick()
    rig.state(1, B)
    assert rig.core.connectors[1].session.id_tag == "4b13b318"
    # a second authorization, nobody plugs in: it expires
    assert rig.core.authorize(2, "aec78085").accepted
    rig.clock.advance(61)
    rig.core.tick()
    assert rig.status(2) == "Available" and rig.core.connectors[2].pending is None


def test_authorize_refuses_a_busy_or_faulted_connector(rig: Rig):
    rig.state(1, B)
    assert not rig.core.authorize(1, "x").accepted
    rig.state(2, A, faults={"GroundFailure"})
    refused = rig.core.authorize(2, "x")
    assert not refused.accepted and "Faulted" in refused.reason


def test_controller_faults_make_the_connector_faulted_and_stop_energy(rig: Rig):
    rig.state(1, C)
    assert rig.outputs(1).contactor
    rig.state(1, C, faults={"GroundFailure"})
    report = rig.core.status(1)
    assert (report.status.value, report.error_code, report.vendor_error_code) == ("Faulted", "GroundFailure", None)
    assert rig.outputs(1).offer_a == 0 and not rig.outputs(1).contactor
    assert rig.core.connectors[1].session is not None  # the session stays until the vehicle leaves
    rig.state(1, C)
    assert rig.status(1) == "Charging"
    changes = [(e.code, e.active) for e in rig.of(FaultChanged) if e.connector_id == 1]
    assert changes == [("GroundFailure", True), ("GroundFailure", False)]


def test_vendor_faults_are_other_error_with_the_vendor_code(rig: Rig):
    rig.core.controller_link(2, False)
    report = rig.core.status(2)
    assert (report.status.value, report.error_code, report.vendor_error_code) == (
        "Faulted", "OtherError", "ControllerLinkLost")
    rig.core.controller_link(2, True)
    assert rig.status(2) == "Available"


def test_a_meter_that_stops_answering_is_a_power_meter_failure(rig: Rig):
    rig.core.meter_online(1, False, "timeout")
    assert rig.core.status(1).error_code == "PowerMeterFailure" and rig.status(1) == "Faulted"
    rig.core.meter_online(1, True)
    assert rig.status(1) == "Available"


def test_pilot_state_e_is_an_ev_communication_error(rig: Rig):
    rig.state(1, E)
    assert rig.core.status(1).error_code == "EVCommunicationError"


def test_station_faults_show_on_connector_zero(rig: Rig):
    rig.core.station_fault("WeakSignal", True, source="modem")
    report = rig.core.status(0)
    assert (report.status.value, report.error_code) == ("Available", "WeakSignal")
    assert rig.status(1) == "Available"
    rig.state(1, A, faults={"UnderVoltage"})  # a phase is missing: nothing can charge
    assert rig.status(0) == "Faulted" and rig.status(1) == "Faulted" and rig.status(2) == "Faulted"
    assert rig.core.status(2).error_code == "UnderVoltage"


def test_tamper_detection_stops_and_prevents_charging_only_when_enabled(tmp_path: Path):
    rig = Rig(tmp_path)
    rig.state(1, C, door_open=True)
    assert rig.status(1) == "Charging"  # TamperDetectionEnabled is false by default
    assert rig.store.set("TamperDetectionEnabled", "true").ok
    assert rig.core.connectors[1].session is None
    assert rig.of(SessionEnded)[-1].session.stop_reason == "Other"
    report = rig.core.status(0)
    assert (report.status.value, report.vendor_error_code) == ("Faulted", "TamperDetected")
    assert rig.outputs(1).offer_a == 0
    rig.state(1, C, door_open=False)
    assert rig.status(0) == "Available"


def test_ev_side_disconnect_keeps_the_session_when_configured(tmp_path: Path):
    rig = Rig(tmp_path, StopTransactionOnEVSideDisconnect="false")
    rig.state(1, C)
    rig.state(1, A)
    assert rig.core.connectors[1].session is not None and rig.status(1) == "SuspendedEV"
    assert rig.core.stop_session(1, "Remote")
    assert rig.status(1) == "Available"


def test_a_stopped_session_leaves_the_connector_finishing_until_unplugged(rig: Rig):
    rig.state(1, C)
    assert rig.core.stop_session(1, "Remote")
    assert rig.status(1) == "Finishing" and rig.outputs(1).offer_a == 0
    rig.state(1, C)  # still plugged: no new free session by itself
    assert rig.core.connectors[1].session is None
    rig.state(1, A)
    assert rig.status(1) == "Available"
    rig.state(1, B)
    assert rig.core.connectors[1].session is not None


def test_availability_is_scheduled_while_charging(rig: Rig):
    rig.state(1, C)
    assert rig.core.set_availability(1, False) == "Scheduled"
    assert rig.status(1) == "Charging"
    rig.state(1, A)
    assert rig.status(1) == "Unavailable"
    rig.state(1, B)
    assert rig.core.connectors[1].session is None  # an inoperative connector starts nothing
    assert rig.core.set_availability(0, False) == "Accepted"
    assert rig.status(0) == "Unavailable" and rig.status(2) == "Unavailable"
    rig.core.set_availability(0, True)
    rig.core.set_availability(1, True)
    assert rig.status(2) == "Available"


def test_sessions_open_at_a_power_cut_are_closed_at_the_next_start(tmp_path: Path):
    rig = Rig(tmp_path)
    rig.state(1, C)
    rig.clock.advance(120)
    rig.core.meter_sample(1, Sample(5000.0))  # recorded: 60 s have passed since the start
    rig.db.close()  # the process dies here; nobody ends the session
    again = Rig(tmp_path)
    ended = again.of(SessionEnded)
    assert len(ended) == 1
    assert (ended[0].session.stop_reason, ended[0].session.meter_stop_wh) == ("PowerLoss", 5000.0)
    assert SessionStore(again.db).open_sessions() == []


def test_a_graceful_shutdown_ends_sessions_with_reboot(rig: Rig):
    rig.state(1, C)
    rig.core.shutdown()
    assert rig.of(SessionEnded)[-1].session.stop_reason == "Reboot"
    assert rig.outputs(1).offer_a == 0


def test_outputs_are_published_for_the_controller_driver(rig: Rig):
    rig.events.clear()
    rig.state(2, C)
    published = rig.of(OutputsChanged)
    assert published[-1] == OutputsChanged(2, 16.0, True, True)
    assert rig.of(SessionStarted)[0].session.connector_id == 2


def test_settings_changes_apply_at_once(rig: Rig):
    rig.state(1, C)
    assert rig.store.set("GridMaxCurrentPerPhase", "10").ok
    assert rig.outputs(1).offer_a == 10.0
    assert rig.store.set("MaxCurrentLimit", "8").ok
    assert rig.outputs(1).offer_a == 8.0


# ---- reservations, unlock, de-authorization, availability across restarts ---------------

def test_a_reservation_keeps_the_connector_for_its_idtag(tmp_path: Path):
    rig = Rig(tmp_path, CsMode="0")
    expiry = rig.clock.now + timedelta(minutes=10)
    assert rig.core.reserve(7, 1, "aec78085", expiry, parent_id_tag="fleet-1") == "Accepted"
    assert rig.status(1) == "Reserved"
    assert not rig.core.authorize(1, "4b13b318").accepted  # someone else
    assert rig.core.authorize(None, "4b13b318").connector_id == 2  # is sent to the free connector
    rig.core.connectors[2].pending = None
    result = rig.core.authorize(None, "other-card", parent_id_tag="FLEET-1")  # same parent
    assert result.accepted and result.connector_id == 1
    rig.state(1, B)
    started = rig.of(SessionStarted)[-1]
    assert started.session.id_tag == "other-card" and started.reservation_id == 7
    assert rig.core.connectors[1].reservation is None


def test_reservation_outcomes_and_expiry(tmp_path: Path):
    rig = Rig(tmp_path)
    later = rig.clock.now + timedelta(seconds=30)
    assert rig.core.reserve(1, 0, "x", later) == "Rejected"  # ReserveConnectorZeroSupported is false
    assert rig.core.reserve(1, 9, "x", later) == "Rejected"
    rig.state(2, B)
    assert rig.core.reserve(1, 2, "x", later) == "Occupied"
    rig.core.set_availability(1, False)
    assert rig.core.reserve(1, 1, "x", later) == "Unavailable"
    rig.core.set_availability(1, True)
    assert rig.core.reserve(1, 1, "x", later) == "Accepted"
    rig.state(1, B)  # free mode: a vehicle of someone else does not start on a reserved connector
    assert rig.core.connectors[1].session is None
    rig.state(1, A)
    assert rig.core.reserve(1, 1, "y", later) == "Accepted"  # the same id replaces
    assert rig.core.connectors[1].reservation.id_tag == "y"
    rig.clock.advance(31)
    rig.core.tick()
    assert rig.status(1) == "Available"
    assert rig.core.reserve(2, 1, "z", rig.clock.now + timedelta(seconds=30)) == "Accepted"
    assert rig.core.cancel_reservation(2) and not rig.core.cancel_reservation(2)
    assert rig.core.reserve(3, 1, "z", rig.clock.now + timedelta(seconds=30)) == "Accepted"
    rig.state(1, A, faults={"GroundFailure"})
    assert rig.core.connectors[1].reservation is None  # a fault ends the reservation


def test_unlock_stops_the_session_and_releases_the_cable(rig: Rig):
    rig.state(1, C, locked=True)
    assert rig.outputs(1).locked
    assert rig.core.unlock(1) == "Unlocked"
    assert rig.of(SessionEnded)[-1].session.stop_reason == "UnlockCommand"
    assert not rig.outputs(1).locked
    assert rig.core.unlock(2) == "Unlocked"  # no cable: nothing to do, but unlocked
    assert rig.core.unlock(9) == "NotSupported"


def test_unlock_of_a_fixed_cable_is_not_supported(tmp_path: Path):
    rig = Rig(tmp_path)
    rig.core.connectors[1].connector_type = "Type2Cable"
    assert rig.core.unlock(1) == "NotSupported"


def test_a_refused_idtag_stops_with_deauthorized_and_holds_the_cable(tmp_path: Path):
    rig = Rig(tmp_path, CsMode="0")
    rig.state(1, C)
    rig.core.authorize(1, "aec78085")
    rig.core.deauthorize(1)
    ended = rig.of(SessionEnded)[-1].session
    assert ended.stop_reason == "DeAuthorized"
    assert rig.outputs(1).locked and rig.outputs(1).offer_a == 0  # the cable stays locked
    rig.core.card_presented("AEC78085")  # its owner comes back
    assert not rig.outputs(1).locked


def test_max_energy_on_invalid_id_lets_some_energy_through_first(tmp_path: Path):
    rig = Rig(tmp_path, CsMode="0", MaxEnergyOnInvalidId="500")
    rig.state(1, C)
    rig.core.authorize(1, "aec78085")
    rig.core.deauthorize(1)
    assert rig.core.connectors[1].session is not None and rig.outputs(1).offer_a > 0
    rig.core.meter_sample(1, Sample(1400.0))
    assert rig.core.connectors[1].session is not None
    rig.core.meter_sample(1, Sample(1500.0))  # 500 Wh after the refusal
    assert rig.of(SessionEnded)[-1].session.stop_reason == "DeAuthorized"


def test_without_stop_on_invalid_id_only_the_energy_stops(tmp_path: Path):
    rig = Rig(tmp_path, CsMode="0", StopTransactionOnInvalidId="false")
    rig.state(1, C)
    rig.core.authorize(1, "aec78085")
    rig.core.deauthorize(1)
    assert rig.core.connectors[1].session is not None
    assert rig.outputs(1).offer_a == 0 and rig.status(1) == "SuspendedEVSE"


def test_availability_survives_a_restart(tmp_path: Path):
    rig = Rig(tmp_path)
    rig.core.set_availability(2, False)
    rig.state(1, C)
    assert rig.core.set_availability(1, False) == "Scheduled"
    rig.db.close()
    again = Rig(tmp_path)  # the scheduled change is applied by the reboot
    assert again.status(1) == "Unavailable" and again.status(2) == "Unavailable"


def test_the_latest_meter_reading_is_kept_at_every_sample(tmp_path: Path):
    rig = Rig(tmp_path)
    rig.state(1, C)
    rig.core.meter_sample(1, Sample(1234.5))  # 1 s later, no periodic save needed
    rig.db.close()  # a power cut
    again = Rig(tmp_path)
    assert again.of(SessionEnded)[0].session.meter_stop_wh == 1234.5
