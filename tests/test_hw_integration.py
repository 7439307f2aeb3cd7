"""The daemon against firmware_sim over real transports: virtual CAN and a pty, Modbus TCP."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from firmware_sim.world import SimConnectorSpec, SimWorld
from stationd.config.station_file import parse_station_config
from stationd.core.events import SessionEnded, SessionStarted, StatusChanged
from stationd.daemon import Daemon
from stationd.sdnotify import SystemdNotifier


def station_yaml(data_dir: Path, controller: str, connectors: int = 2) -> str:
    rows = "\n".join(
        f"    - id: {i}\n      controller: {controller.format(node=i)}\n      meter: {{model: sim}}"
        for i in range(1, connectors + 1))
    return (f"identity: {{serial_number: IT0001}}\n"
            f"hardware:\n  connectors:\n{rows}\n"
            f"modbus_server: {{enabled: false, bind: '127.0.0.1:0'}}\n"
            f"data_dir: {data_dir}\n")


class Station:
    """A running daemon with its core's events recorded."""

    def __init__(self, config, world):
        self.daemon = Daemon(config, world=world, notifier=SystemdNotifier.from_env({}), handle_signals=False,
                             component_factories=[self._capture])
        self.events: list[object] = []
        self.core = None
        self.task: asyncio.Task | None = None

    def _capture(self, station):
        self.core = station.core
        station.core.bus.subscribe(self.events.append)
        return []

    async def __aenter__(self):
        self.task = asyncio.create_task(self.daemon.run())
        await until(lambda: self.core is not None and all(
            self.core.connectors[i].link_up for i in self.core.connectors))
        return self

    async def __aexit__(self, *exc):
        self.daemon.request_stop("test over")
        assert await asyncio.wait_for(self.task, 15) == 0

    def status(self, connector: int) -> str:
        return self.core.status(connector).status.value


async def until(condition, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


@pytest.fixture
async def can_world(tmp_path: Path):
    channel = f"it-{uuid.uuid4().hex[:8]}"
    specs = [SimConnectorSpec(i, transport="can", can_channel=channel) for i in (1, 2)]
    world = SimWorld(specs, tmp_path / "sim", vehicle_reaction_s=0)
    await world.start()
    yield world, channel
    await world.stop()


async def test_a_session_over_virtual_can(tmp_path: Path, can_world):
    world, channel = can_world
    config = parse_station_config(station_yaml(
        tmp_path / "data", "{{transport: can, can_interface: virtual, can_channel: %s, node_id: {node}}}" % channel))
    async with Station(config, world) as station:
        world.plug(2, cable_max_a=20)
        world.charge(2, max_current_a=32, phases=3)
        await until(lambda: station.status(2) == "Charging")
        await until(lambda: world.state()["connectors"][1]["power_w"] > 0)
        assert world.state()["connectors"][1]["pwm_current_a"] == 15.9  # 11 kW at 3 × 230 V < mains 16 A < cable 20 A
        started = [e.session for e in station.events if isinstance(e, SessionStarted)]
        assert [s.connector_id for s in started] == [2]
        await until(lambda: (station.core.connectors[2].last_energy_wh or 0) > 0)
        world.unplug(2)
        await until(lambda: station.status(2) == "Available")
        ended = [e.session for e in station.events if isinstance(e, SessionEnded)]
        assert ended[0].stop_reason == "EVDisconnected" and ended[0].energy_wh > 0
        assert world.state()["connectors"][1]["contactor"] is False


async def test_a_lower_limit_reaches_the_controllers_pwm(tmp_path: Path, can_world):
    world, channel = can_world
    config = parse_station_config(station_yaml(
        tmp_path / "data", "{{transport: can, can_interface: virtual, can_channel: %s, node_id: {node}}}" % channel))
    async with Station(config, world) as station:
        world.plug(1)
        world.charge(1, 16, 3)
        await until(lambda: world.state()["connectors"][0]["contactor"])
        station.core.set_limit(1, "test", 10)
        await until(lambda: world.state()["connectors"][0]["pwm_current_a"] == 10.0)
        station.core.set_limit(1, "test", 4)  # below 6 A: the station pauses, no illegal PWM
        await until(lambda: world.state()["connectors"][0]["pwm_current_a"] == 0)
        assert station.status(1) == "SuspendedEVSE"
        await until(lambda: not world.state()["connectors"][0]["contactor"])


async def test_hardware_faults_and_meter_loss_reach_the_core_and_recover(tmp_path: Path):
    world = SimWorld([SimConnectorSpec(1)], tmp_path / "sim", vehicle_reaction_s=0)
    await world.start()
    try:
        config = parse_station_config(station_yaml(tmp_path / "data", "{{transport: sim}}", connectors=1))
        async with Station(config, world) as station:
            world.plug(1)
            world.charge(1, 16, 3)
            await until(lambda: station.status(1) == "Charging")
            world.set_fault(1, "GroundFailure", True)  # RCD trips
            await until(lambda: station.status(1) == "Faulted")
            assert station.core.status(1).error_code == "GroundFailure"
            await until(lambda: not world.state()["connectors"][0]["contactor"])
            world.set_meter_online(1, False)
            await until(lambda: "PowerMeterFailure" in station.core.connectors[1].faults, timeout=15)
            world.set_meter_online(1, True)
            await until(lambda: "PowerMeterFailure" not in station.core.connectors[1].faults, timeout=15)
            reports = [(e.connector_id, e.status, e.error_code) for e in station.events if isinstance(e, StatusChanged)]
            assert (1, "Faulted", "GroundFailure") in reports
    finally:
        await world.stop()


async def test_the_controller_goes_safe_when_the_station_stops_talking(tmp_path: Path):
    world = SimWorld([SimConnectorSpec(1)], tmp_path / "sim", vehicle_reaction_s=0)
    await world.start()
    try:
        config = parse_station_config(station_yaml(tmp_path / "data", "{{transport: sim}}", connectors=1))
        async with Station(config, world):
            world.plug(1)
            world.charge(1, 16, 3)
            await until(lambda: world.state()["connectors"][0]["contactor"])
            # The station stops talking to this controller (its driver dies, nothing is sent).
            driver = next(t for t in asyncio.all_tasks() if t.get_name() == "controller-1")
            driver.cancel()
            await asyncio.sleep(1.5)
            assert world.state()["connectors"][0]["contactor"], "the controller must wait 2 s, not open at once"
            # Within the 2 s heartbeat timeout (plus a tick) the controller drops PWM and opens.
            await until(lambda: "HeartbeatTimeout" in world.state()["connectors"][0]["faults"], timeout=2)
            state = world.state()["connectors"][0]
            assert state["pwm_current_a"] == 0 and state["contactor"] is False
    finally:
        await world.stop()
