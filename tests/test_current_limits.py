"""The core's one resolver: every limit on a connector's current, the lowest wins, and why."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from stationd.core.events import OutputsChanged
from stationd.core.iec61851 import CpState

from test_core_station import Rig

A, B, C = CpState.A, CpState.B, CpState.C


@dataclass
class Sample:
    energy_import_wh: float
    current_a: tuple[float, float, float]


def charging(rig: Rig, *connectors: int, cable: int | None = None) -> None:
    for connector in connectors:
        rig.state(connector, C, cable_max_a=cable)


def draw(rig: Rig, connector: int, *amps: float, seconds: int = 61) -> None:
    """The vehicle draws ``amps`` on L1.. for ``seconds`` (one meter sample a second)."""
    currents = tuple(list(amps) + [0.0] * (3 - len(amps)))
    for _ in range(seconds):
        rig.clock.advance(1)
        rig.core.meter_sample(connector, Sample(1000.0, currents))


def offers(rig: Rig, *connectors: int) -> list[float]:
    return [rig.outputs(c).offer_a for c in connectors]


def reason(rig: Rig, connector: int) -> str:
    return rig.core.connectors[connector].limit_reason


def test_default_grid_power_binds_before_the_mains_current(tmp_path: Path):
    rig = Rig(tmp_path, GridMaxPower="11")  # the defaults: 16 A per phase, 11 kW, 230 V
    charging(rig, 1)
    assert offers(rig, 1) == [15.9]  # 11000 W / (3 × 230 V) = 15.94 A
    assert reason(rig, 1) == "power limit"


def test_the_first_session_gets_all_a_second_one_halves_it(tmp_path: Path):
    rig = Rig(tmp_path, GridMaxPower="0", GridMaxCurrentPerPhase="20")
    charging(rig, 1)
    assert offers(rig, 1, 2) == [20.0, 0.0] and reason(rig, 1) == "station limit L1"
    charging(rig, 2)
    assert offers(rig, 1, 2) == [10.0, 10.0]
    rig.state(2, A)
    assert offers(rig, 1) == [20.0]


def test_cable_rating_and_the_rest_to_the_other(tmp_path: Path):
    rig = Rig(tmp_path, GridMaxPower="0", GridMaxCurrentPerPhase="32")
    rig.state(1, C, cable_max_a=13)
    charging(rig, 2)
    assert offers(rig, 1, 2) == [13.0, 19.0]
    assert reason(rig, 1) == "cable 13 A" and reason(rig, 2) == "station limit L1"


def test_current_a_vehicle_does_not_draw_goes_to_the_other(tmp_path: Path):
    rig = Rig(tmp_path, GridMaxPower="0", GridMaxCurrentPerPhase="32")
    charging(rig, 1, 2)
    assert offers(rig, 1, 2) == [16.0, 16.0]
    draw(rig, 1, 7.0, 7.0, 7.0)  # vehicle 1 takes only 7 A of its 16 A for a minute
    assert offers(rig, 1, 2) == [9.0, 23.0]
    assert reason(rig, 1) == "vehicle draws 7.0 A"
    draw(rig, 1, 8.5, 8.5, 8.5, seconds=1)  # it uses its offer again: its share comes back at once
    assert offers(rig, 1, 2) == [16.0, 16.0]
    draw(rig, 1, 8.5, 8.5, 8.5)  # but it keeps to 8.5 A under 16 A: 2 A headroom stay with it
    assert offers(rig, 1, 2) == [10.5, 21.5]


def test_single_phase_vehicles_on_different_grid_phases(tmp_path: Path):
    rig = Rig(tmp_path, GridMaxPower="0", ConnectorPhaseRotation="0.RST,1.RST,2.STR")
    charging(rig, 1, 2)
    assert offers(rig, 1, 2) == [8.0, 8.0]  # phases not known yet: both count on every phase
    draw(rig, 1, 8.0, seconds=2)  # a single-phase vehicle on connector 1's L1 = grid L1
    draw(rig, 2, 8.0, seconds=2)  # connector 2's L1 is the station's L2
    assert offers(rig, 1, 2) == [16.0, 16.0]
    demands = {d.connector_id: d for d in rig.core.connector_demands()}
    assert demands[1].grid == {1} and demands[2].grid == {2}


def test_unknown_wiring_counts_a_single_phase_vehicle_on_every_phase(tmp_path: Path):
    rig = Rig(tmp_path, GridMaxPower="0")  # ConnectorPhaseRotation lists only connector 0
    charging(rig, 1, 2)
    draw(rig, 1, 8.0, seconds=2)
    draw(rig, 2, 8.0, seconds=2)
    assert offers(rig, 1, 2) == [8.0, 8.0]


def test_never_between_0_and_6_a_the_latest_session_waits(tmp_path: Path):
    rig = Rig(tmp_path, connectors=3, GridMaxPower="0")
    charging(rig, 1, 2)
    rig.clock.advance(1)
    charging(rig, 3)
    assert offers(rig, 1, 2, 3) == [8.0, 8.0, 0.0]  # 16 A / 3 = 5.3 A would be illegal PWM
    assert rig.status(3) == "SuspendedEVSE" and reason(rig, 3) == "paused: not enough current"
    assert not rig.outputs(3).contactor
    rig.state(1, A)  # session 1 ends: the waiting one charges
    assert offers(rig, 2, 3) == [8.0, 8.0] and rig.status(3) == "Charging"


def test_a_waiting_session_gets_its_turn(tmp_path: Path):
    rig = Rig(tmp_path, connectors=3, GridMaxPower="0")
    charging(rig, 1, 2)
    rig.clock.advance(1)
    charging(rig, 3)
    assert offers(rig, 1, 2, 3) == [8.0, 8.0, 0.0]
    rig.clock.advance(15 * 60)
    rig.core.set_limit(0, "test", None)  # any input re-evaluates
    assert offers(rig, 3) == [8.0] and sorted(offers(rig, 1, 2)) == [0.0, 8.0]


def test_limit_sources_and_their_reasons(tmp_path: Path):
    rig = Rig(tmp_path, GridMaxPower="0")
    charging(rig, 1)
    rig.core.set_limit(1, "smart charging", 10.26)
    assert offers(rig, 1) == [10.2] and reason(rig, 1) == "smart charging 10.26 A"
    rig.core.set_limit(1, "load balancing", 8, reason="cluster limit L2")
    assert offers(rig, 1) == [8.0] and reason(rig, 1) == "load balancing (cluster limit L2) 8 A"
    rig.core.set_limit(1, "energy manager", 5)
    assert offers(rig, 1) == [0.0] and rig.status(1) == "SuspendedEVSE"
    assert reason(rig, 1) == "paused: energy manager 5 A below 6 A"
    rig.core.set_limit(1, "energy manager", None)
    rig.core.set_limit(1, "load balancing", None)
    assert offers(rig, 1) == [10.2]


def test_connector_demands_leave_out_the_asked_sources(tmp_path: Path):
    rig = Rig(tmp_path, GridMaxPower="0")
    charging(rig, 1)
    rig.core.set_limit(1, "load balancing", 8, reason="cluster limit L1")
    rig.core.set_limit(1, "smart charging", 12)
    demand = {d.connector_id: d for d in rig.core.connector_demands(exclude=("load balancing",))}
    assert demand[1].charging and not demand[2].charging
    assert demand[1].caps == {"connector": 32.0, "MaxCurrentLimit": 32.0, "smart charging": 12.0}
    assert demand[1].offered_a == 8.0


def test_offer_limit_of_an_idle_connector_is_what_it_would_get(tmp_path: Path):
    rig = Rig(tmp_path, GridMaxPower="0", GridMaxCurrentPerPhase="10")
    assert rig.core.offer_limit(rig.core.connectors[2]) == 10.0
    charging(rig, 1)
    assert rig.core.offer_limit(rig.core.connectors[2]) == 0.0  # 10 A for two would be 5 A each: it waits
    assert rig.core.offer_limit(rig.core.connectors[1]) == 10.0


@pytest.mark.parametrize("setting, value, expected", [
    ("GridVoltage", "240", 15.2),  # 11000 / (3 × 240)
    ("GridMaxPower", "22", 16.0),
    ("GridMaxCurrentPerPhase", "12", 12.0),
])
def test_grid_settings_apply_at_once(tmp_path: Path, setting, value, expected):
    rig = Rig(tmp_path, GridMaxPower="11")
    charging(rig, 1)
    published = len(rig.of(OutputsChanged))
    rig.store.set(setting, value)
    assert offers(rig, 1) == [expected] and len(rig.of(OutputsChanged)) > published


def test_measured_current_by_grid_phase_follows_the_wiring():
    from stationd.core.demand import DrawWindow

    window = DrawWindow()
    assert window.grid_current("RST", (1, 2, 3)) == {}  # nothing measured yet
    window.sample((10.0, 9.0, 11.0), now=0.0)
    assert window.grid_current("STR", (1, 2, 3)) == {2: 10.0, 3: 9.0, 1: 11.0}
    assert window.grid_current("RST", (3, 1, 2)) == {3: 10.0, 1: 9.0, 2: 11.0}
    # wiring unknown: each phase is credited only with what the vehicle surely draws on it
    assert window.grid_current("Unknown", (1, 2, 3)) == {1: 9.0, 2: 9.0, 3: 9.0}
    window.sample((16.0, None, None), now=1.0)  # a single-phase vehicle
    assert window.grid_current("Unknown", (1, 2, 3)) == {1: 0.0, 2: 0.0, 3: 0.0}
    assert window.phases == 1
