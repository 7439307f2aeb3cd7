"""firmware_sim: the simulated EVSE controller over real links, and the car park around it.

A small station-role script drives a SimController through a real SerialLink over a pty pair
(and once over python-can's virtual bus): it sends RequestHello, Heartbeats and commands and
checks what the firmware answers. Time is a fake clock the test advances.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
from collections.abc import Callable
from pathlib import Path

import can
import pytest

from firmware_sim.controller import SimController
from firmware_sim.meters import SimMeter
from firmware_sim.vehicle import Vehicle
from firmware_sim.world import SimConnectorSpec, SimWorld
from stationd.hw.evse_protocol import (
    BootAbort,
    BootBegin,
    BootChunk,
    BootCommit,
    BootError,
    BootState,
    BootStatus,
    CanLink,
    CommandResult,
    ConnectorType,
    CpState,
    Event,
    EventCode,
    Heartbeat,
    Hello,
    LinkClosed,
    LockState,
    RcdState,
    RequestHello,
    Reset,
    ResetKind,
    ResultReason,
    SetContactor,
    SetCurrent,
    SetLock,
    Status,
    crc32,
    open_pty_pair,
    open_serial,
)

TIMEOUT = 3.0
_channels = itertools.count()


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Station:
    """The station side, reduced to what the tests need: a message log, heartbeats, commands."""

    def __init__(self, link) -> None:
        self.link = link
        self.messages: list[object] = []
        self._arrived = asyncio.Event()
        self._rx = asyncio.create_task(self._receive())
        self._heartbeats: asyncio.Task | None = None

    async def _receive(self) -> None:
        try:
            while True:
                self.messages.append(await self.link.receive())
                self._arrived.set()
        except LinkClosed:
            pass

    def mark(self) -> int:
        return len(self.messages)

    async def wait_for(self, predicate: Callable[[object], bool], *, since: int = 0,
                       timeout: float = TIMEOUT) -> object:
        async with asyncio.timeout(timeout):
            while True:
                for msg in self.messages[since:]:
                    if predicate(msg):
                        return msg
                self._arrived.clear()
                await self._arrived.wait()

    async def status(self, predicate: Callable[[Status], bool] = lambda s: True, *, since: int = 0) -> Status:
        return await self.wait_for(lambda m: isinstance(m, Status) and predicate(m), since=since)

    async def event(self, code: EventCode, value: int | None = None, *, since: int = 0) -> Event:
        return await self.wait_for(lambda m: isinstance(m, Event) and m.code == code
                                   and (value is None or m.value == value), since=since)

    async def command(self, msg) -> ResultReason:
        since = self.mark()
        await self.link.send(msg)
        result = await self.wait_for(lambda m: isinstance(m, CommandResult) and m.command_type == msg.TYPE,
                                     since=since)
        return result.reason

    async def boot(self, msg) -> BootStatus:
        since = self.mark()
        await self.link.send(msg)
        return await self.wait_for(lambda m: isinstance(m, BootStatus), since=since)

    def start_heartbeats(self, period: float = 0.1) -> None:
        async def beat() -> None:
            for counter in itertools.count():
                await self.link.send(Heartbeat(counter & 0xFFFF), reliable=False)
                await asyncio.sleep(period)

        self._heartbeats = asyncio.create_task(beat())

    async def stop_heartbeats(self) -> None:
        if self._heartbeats is not None:
            self._heartbeats.cancel()
            await asyncio.gather(self._heartbeats, return_exceptions=True)
            self._heartbeats = None
        await asyncio.sleep(0.05)  # a heartbeat still on the line arrives before the clock moves

    async def close(self) -> None:
        await self.stop_heartbeats()
        await self.link.close()
        self._rx.cancel()
        await asyncio.gather(self._rx, return_exceptions=True)


class Rig:
    def __init__(self, controller: SimController, meter: SimMeter, clock: FakeClock, station: Station) -> None:
        self.controller, self.meter, self.clock, self.station = controller, meter, clock, station

    async def charging(self, cable_max_a: int | None = 32, amps: float = 16) -> None:
        """Vehicle plugged and charging at ``amps`` with the contactor closed."""
        station, controller = self.station, self.controller
        controller.plug(Vehicle(cable_max_a=cable_max_a))
        controller.vehicle.charge(16, 3)
        controller.refresh()
        assert await station.command(SetCurrent(amps)) is ResultReason.OK
        if not controller.tethered:
            assert await station.command(SetLock(True)) is ResultReason.OK
        assert await station.command(SetContactor(True)) is ResultReason.OK
        await station.status(lambda s: s.contactor_closed and s.cp_state is CpState.C)


@pytest.fixture
async def make_rig(tmp_path: Path):
    """make_rig(**controller options): a SimController on a pty pair, a Station on the slave end."""
    created: list[tuple[Station, object, asyncio.Task]] = []

    async def make(**options) -> Rig:
        clock = FakeClock()
        meter = SimMeter("SDM630", state_dir=tmp_path, name="c1", clock=clock)
        controller = SimController(meter=meter, clock=clock, tick_s=0.02,
                                   state_path=tmp_path / "controller-1.json", **options)
        controller_link, path = await open_pty_pair()
        task = asyncio.create_task(controller.run(controller_link))
        station = Station(await open_serial(path))
        created.append((station, controller_link, task))
        await station.wait_for(lambda m: isinstance(m, Hello))  # sent at power-on
        station.start_heartbeats()
        return Rig(controller, meter, clock, station)

    yield make
    for station, controller_link, task in created:
        await station.close()
        await controller_link.close()
        await asyncio.wait_for(task, 2.0)


# ---------------------------------------------------------------------------- the controller


async def test_hello_at_start_and_on_request(make_rig) -> None:
    rig = await make_rig()
    station = rig.station
    await station.event(EventCode.BOOTED, 0)  # power-on
    since = station.mark()
    await station.link.send(RequestHello())
    hello = await station.wait_for(lambda m: isinstance(m, Hello), since=since)
    assert hello.protocol_version == (1, 0)
    assert hello.hardware_id == "SIM-EVSE-1"
    assert hello.connector_type is ConnectorType.TYPE2_SOCKET
    assert (hello.max_current_a, hello.phases) == (32.0, 3)
    status = await station.status(since=since)  # a Status follows every Hello
    assert status.cp_state is CpState.A and status.pwm_duty_permille == 1000


async def test_a_charging_session_closes_the_contactor_and_the_meter_counts(make_rig) -> None:
    rig = await make_rig()
    station, controller, meter, clock = rig.station, rig.controller, rig.meter, rig.clock
    controller.plug(Vehicle(cable_max_a=32))
    status = await station.status(lambda s: s.cp_state is CpState.B)
    assert status.pp_current_a == 32 and status.offered_current_a == 0
    controller.vehicle.charge(16, 3)
    controller.refresh()
    assert controller.cp_state is CpState.B  # no PWM offered yet: the vehicle waits in B
    assert await station.command(SetContactor(True)) is ResultReason.NOT_ALLOWED
    since = station.mark()
    assert await station.command(SetCurrent(16)) is ResultReason.OK
    status = await station.status(lambda s: s.cp_state is CpState.C, since=since)
    assert (status.offered_current_a, status.pwm_duty_permille) == (16.0, 266)
    assert await station.command(SetContactor(True)) is ResultReason.NOT_ALLOWED  # socket not locked yet
    assert await station.command(SetLock(True)) is ResultReason.OK
    assert await station.command(SetLock(False)) is ResultReason.OK
    assert await station.command(SetLock(True)) is ResultReason.OK
    assert await station.command(SetContactor(True)) is ResultReason.OK
    status = await station.status(lambda s: s.contactor_closed)
    assert status.contactor_commanded and status.lock_state is LockState.LOCKED
    assert await station.command(SetLock(False)) is ResultReason.NOT_ALLOWED  # never unlock under load
    assert meter.current_a == (16.0, 16.0, 16.0)
    before = meter.energy_import_wh
    clock.advance(1.5)
    assert meter.energy_import_wh - before == pytest.approx(16 * 230 * 3 * 1.5 / 3600)
    # the vehicle leaves: the contactor opens at once, by the controller itself
    since = station.mark()
    controller.unplug()
    assert controller.contactor_closed is False
    await station.event(EventCode.SAFETY_OPEN, 1, since=since)
    status = await station.status(lambda s: s.cp_state is CpState.A, since=since)
    assert not status.contactor_closed and not status.contactor_commanded
    assert meter.current_a == (0.0, 0.0, 0.0)


async def test_offer_limits_out_of_range_and_cable_rating(make_rig) -> None:
    rig = await make_rig()
    station, controller = rig.station, rig.controller
    assert await station.command(SetCurrent(5)) is ResultReason.OUT_OF_RANGE
    assert await station.command(SetCurrent(80.5)) is ResultReason.OUT_OF_RANGE
    assert controller.offered_current_a == 0
    controller.plug(Vehicle(cable_max_a=13))
    since = station.mark()
    assert await station.command(SetCurrent(32)) is ResultReason.OK
    status = await station.status(lambda s: s.offered_current_a > 0, since=since)
    assert (status.pp_current_a, status.offered_current_a, status.pwm_duty_permille) == (13, 13.0, 216)
    assert await station.command(SetCurrent(0)) is ResultReason.OK
    status = await station.status(lambda s: s.offered_current_a == 0)
    assert status.pwm_duty_permille == 1000
    controller.unplug()
    controller.plug(Vehicle(cable_max_a=63))
    assert await station.command(SetCurrent(63)) is ResultReason.OK
    assert controller.offered_current_a == 32.0  # the hardware limit (Hello max_current_a)


async def test_heartbeat_timeout_goes_safe_and_clears_when_heartbeats_resume(make_rig) -> None:
    rig = await make_rig()
    station, controller, clock = rig.station, rig.controller, rig.clock
    await rig.charging()
    await station.stop_heartbeats()
    clock.advance(1.9)
    await asyncio.sleep(0.1)  # several ticks
    assert controller.contactor_closed  # not yet
    since = station.mark()
    clock.advance(0.2)
    status = await station.status(lambda s: "HeartbeatTimeout" in s.faults, since=since)
    assert status.offered_current_a == 0 and status.pwm_duty_permille == 1000
    assert not status.contactor_closed and not status.contactor_commanded
    await station.event(EventCode.SAFETY_OPEN, 3, since=since)
    await station.event(EventCode.FAULT_RAISED, 11, since=since)
    assert await station.command(SetCurrent(16)) is ResultReason.FAULT_ACTIVE
    since = station.mark()
    station.start_heartbeats()
    status = await station.status(lambda s: "HeartbeatTimeout" not in s.faults, since=since)
    assert status.offered_current_a == 0 and not status.contactor_closed  # until commanded again
    await station.event(EventCode.FAULT_CLEARED, 11, since=since)
    assert await station.command(SetCurrent(16)) is ResultReason.OK
    assert await station.command(SetContactor(True)) is ResultReason.OK


async def test_ground_failure_opens_latches_and_clears_only_with_clear_faults(make_rig) -> None:
    rig = await make_rig()
    station, controller, meter = rig.station, rig.controller, rig.meter
    await rig.charging()
    since = station.mark()
    controller.set_fault("GroundFailure", True)
    assert not controller.contactor_closed and meter.current_a == (0.0, 0.0, 0.0)
    status = await station.status(lambda s: "GroundFailure" in s.faults, since=since)
    assert status.rcd_state is RcdState.TRIPPED and not status.contactor_closed
    await station.event(EventCode.SAFETY_OPEN, 2, since=since)
    assert await station.command(SetContactor(True)) is ResultReason.FAULT_ACTIVE
    assert await station.command(SetCurrent(16)) is ResultReason.FAULT_ACTIVE
    assert await station.command(Reset(ResetKind.CLEAR_FAULTS)) is ResultReason.OK
    assert "GroundFailure" in controller.faults  # the cause is still there
    controller.set_fault("GroundFailure", False)
    assert "GroundFailure" in controller.faults  # latched
    since = station.mark()
    assert await station.command(Reset(ResetKind.CLEAR_FAULTS)) is ResultReason.OK
    status = await station.status(lambda s: not s.faults, since=since)
    assert status.rcd_state is RcdState.OK
    await station.event(EventCode.FAULT_CLEARED, 0, since=since)


async def test_injected_faults_and_their_visible_effects(make_rig) -> None:
    rig = await make_rig()
    station, controller = rig.station, rig.controller
    await rig.charging()
    controller.set_fault("PowerSwitchFailure", True)  # welded: the feedback stays closed
    assert controller.contactor_closed and not controller.contactor_commanded
    assert controller.draw_a == 0  # no PWM: the vehicle stopped drawing
    assert await station.command(SetContactor(False)) is ResultReason.HARDWARE_FAILURE
    controller.set_fault("PowerSwitchFailure", False)
    assert not controller.contactor_closed and "PowerSwitchFailure" in controller.faults
    controller.set_fault("EVCommunicationError", True)
    await station.status(lambda s: s.cp_state is CpState.E and "EVCommunicationError" in s.faults)
    controller.set_fault("EVCommunicationError", False)
    await station.status(lambda s: s.cp_state is CpState.B and "EVCommunicationError" not in s.faults)
    controller.set_fault("ConnectorLockFailure", True)
    await station.status(lambda s: s.lock_state is LockState.FAULT)
    assert await station.command(SetLock(True)) is ResultReason.HARDWARE_FAILURE
    controller.set_fault("ConnectorLockFailure", False)
    controller.set_fault("InternalError", True)
    await station.status(lambda s: s.cp_state is CpState.F and s.pwm_duty_permille == 0)
    controller.set_fault("HighTemperature", True)
    await station.status(lambda s: s.temperature_c > 80 and "HighTemperature" in s.faults)
    controller.set_fault("TamperDetected", True)
    await station.status(lambda s: s.door_open and "TamperDetected" in s.faults)
    controller.set_fault("UnderVoltage", True)
    assert rig.meter.voltage_v[2] == 0.0
    with pytest.raises(ValueError, match="GroundFailure"):
        controller.set_fault("WeakSignal", True)


async def test_reset_soft_restarts_with_booted_and_hello(make_rig) -> None:
    rig = await make_rig()
    station, controller, clock = rig.station, rig.controller, rig.clock
    await rig.charging()
    clock.advance(1.0)
    await station.status(lambda s: s.uptime_s >= 1)
    since = station.mark()
    assert await station.command(Reset(ResetKind.SOFT)) is ResultReason.OK
    await station.wait_for(lambda m: isinstance(m, Hello), since=since)
    await station.event(EventCode.BOOTED, 2, since=since)
    kinds = [type(m) for m in station.messages[since:]]
    assert kinds.index(CommandResult) < kinds.index(Hello)  # answered before restarting
    status = await station.status(lambda s: s.uptime_s == 0, since=since)
    assert status.offered_current_a == 0 and not status.contactor_closed
    assert controller.cp_state is CpState.B


async def test_firmware_update_good_image(make_rig, tmp_path: Path) -> None:
    rig = await make_rig()
    station = rig.station
    image = os.urandom(300)
    assert await station.boot(BootChunk(0, crc32(image[:128]), image[:128])) == BootStatus(
        BootState.IDLE, 0, BootError.NOT_STARTED)
    assert await station.boot(BootBegin(len(image), crc32(image), (0, 9, 0), False)) == BootStatus(
        BootState.IDLE, 0, BootError.DOWNGRADE)
    assert await station.boot(BootBegin(10**7, crc32(image), (1, 1, 0), False)) == BootStatus(
        BootState.IDLE, 0, BootError.TOO_LARGE)
    assert await station.boot(BootBegin(len(image), crc32(image), (1, 1, 0), False)) == BootStatus(
        BootState.RECEIVING, 0, BootError.NONE)
    assert await station.command(SetCurrent(16)) is ResultReason.BUSY  # no charging while updating
    for offset in range(0, len(image), 128):
        chunk = image[offset:offset + 128]
        reply = await station.boot(BootChunk(offset, crc32(chunk), chunk))
        assert reply == BootStatus(BootState.RECEIVING, offset + len(chunk), BootError.NONE)
    # the last chunk again (its answer was lost): answered again, not written twice
    assert (await station.boot(BootChunk(256, crc32(image[256:]), image[256:]))).offset == 300
    since = station.mark()
    assert await station.boot(BootCommit()) == BootStatus(BootState.COMPLETE, 300, BootError.NONE)
    hello = await station.wait_for(lambda m: isinstance(m, Hello), since=since)
    assert hello.firmware_version == (1, 1, 0)
    await station.event(EventCode.BOOTED, 4, since=since)
    saved = json.loads((tmp_path / "controller-1.json").read_text())
    assert saved["firmware_version"] == [1, 1, 0]


async def test_firmware_update_corrupted_chunk_and_image_keep_the_old_version(make_rig) -> None:
    rig = await make_rig()
    station = rig.station
    image = os.urandom(200)
    bad_crc = crc32(image) ^ 0x1
    assert (await station.boot(BootBegin(len(image), bad_crc, (2, 0, 0), False))).state is BootState.RECEIVING
    assert await station.boot(BootChunk(0, crc32(image[:128]) ^ 0xFF, image[:128])) == BootStatus(
        BootState.RECEIVING, 0, BootError.CHUNK_CRC)
    assert await station.boot(BootChunk(128, crc32(image[128:]), image[128:])) == BootStatus(
        BootState.RECEIVING, 0, BootError.OFFSET_MISMATCH)
    assert await station.boot(BootCommit()) == BootStatus(BootState.FAILED, 0, BootError.INCOMPLETE)
    assert (await station.boot(BootBegin(len(image), bad_crc, (2, 0, 0), False))).state is BootState.RECEIVING
    for offset in (0, 128):
        chunk = image[offset:offset + 128]
        assert (await station.boot(BootChunk(offset, crc32(chunk), chunk))).error is BootError.NONE
    assert await station.boot(BootCommit()) == BootStatus(BootState.FAILED, 200, BootError.IMAGE_CRC)
    since = station.mark()
    await station.link.send(RequestHello())
    hello = await station.wait_for(lambda m: isinstance(m, Hello), since=since)
    assert hello.firmware_version == (1, 0, 0)
    assert await station.boot(BootBegin(len(image), crc32(image), (2, 0, 0), False)) == BootStatus(
        BootState.RECEIVING, 0, BootError.NONE)
    assert await station.boot(BootAbort()) == BootStatus(BootState.IDLE, 0, BootError.NONE)


async def test_firmware_update_is_refused_while_charging(make_rig) -> None:
    rig = await make_rig()
    await rig.charging()
    image = b"\x01" * 64
    assert await rig.station.boot(BootBegin(len(image), crc32(image), (1, 1, 0), False)) == BootStatus(
        BootState.IDLE, 0, BootError.BUSY)


async def test_tethered_connector_has_no_lock(make_rig) -> None:
    rig = await make_rig(connector_type=ConnectorType.TYPE2_TETHERED, max_current_a=20)
    station = rig.station
    assert await station.command(SetLock(True)) is ResultReason.UNSUPPORTED
    await rig.charging(cable_max_a=None, amps=32)  # no lock needed to close
    status = await station.status(lambda s: s.contactor_closed)
    assert (status.lock_state, status.pp_current_a, status.offered_current_a) == (LockState.NOT_FITTED, 0, 20.0)
    assert rig.meter.current_a == (16.0, 16.0, 16.0)  # the vehicle's own maximum


async def test_one_phase_vehicle_loads_l1_only(make_rig) -> None:
    rig = await make_rig()
    rig.controller.plug(Vehicle(cable_max_a=32))
    rig.controller.vehicle.charge(10, 1)
    assert await rig.station.command(SetCurrent(16)) is ResultReason.OK
    assert await rig.station.command(SetLock(True)) is ResultReason.OK
    assert await rig.station.command(SetContactor(True)) is ResultReason.OK
    assert rig.meter.current_a == (10.0, 0.0, 0.0)


async def test_the_controller_state_survives_a_new_link(tmp_path: Path) -> None:
    clock = FakeClock()
    controller = SimController(clock=clock, tick_s=0.02)
    link, path = await open_pty_pair()
    task = asyncio.create_task(controller.run(link))
    station = Station(await open_serial(path))
    await station.event(EventCode.BOOTED, 0)
    controller.plug(Vehicle(cable_max_a=20))
    await station.close()
    await link.close()
    await asyncio.wait_for(task, 2.0)  # run() ends with its link
    link, path = await open_pty_pair()
    task = asyncio.create_task(controller.run(link))
    station = Station(await open_serial(path))
    try:
        await station.link.send(RequestHello())
        await station.wait_for(lambda m: isinstance(m, Hello))
        status = await station.status()
        assert (status.cp_state, status.pp_current_a) == (CpState.B, 20)
        await asyncio.sleep(0.05)
        assert not any(isinstance(m, Event) and m.code is EventCode.BOOTED for m in station.messages)
    finally:
        await station.close()
        await link.close()
        await asyncio.wait_for(task, 2.0)


async def test_the_same_exchange_over_can() -> None:
    channel = f"sim-test-{os.getpid()}-{next(_channels)}"
    controller_bus = can.Bus(interface="virtual", channel=channel)
    station_bus = can.Bus(interface="virtual", channel=channel)
    clock = FakeClock()
    controller = SimController(hardware_id="CAN-EVSE-7", clock=clock, tick_s=0.02)
    controller_link = CanLink(controller_bus, 7, role="controller")
    task = asyncio.create_task(controller.run(controller_link))
    station = Station(CanLink(station_bus, 7, role="station"))
    try:
        station.start_heartbeats()
        await station.link.send(RequestHello())
        hello = await station.wait_for(lambda m: isinstance(m, Hello))
        assert hello.hardware_id == "CAN-EVSE-7"
        controller.plug(Vehicle(cable_max_a=20))
        controller.vehicle.charge(32, 3)
        assert await station.command(SetCurrent(32)) is ResultReason.OK
        assert await station.command(SetLock(True)) is ResultReason.OK
        assert await station.command(SetContactor(True)) is ResultReason.OK
        status = await station.status(lambda s: s.contactor_closed)
        assert (status.cp_state, status.offered_current_a, status.pp_current_a) == (CpState.C, 20.0, 20)
        assert await station.command(SetCurrent(3)) is ResultReason.OUT_OF_RANGE
    finally:
        await station.close()
        await controller_link.close()
        await asyncio.wait_for(task, 2.0)
        controller_bus.shutdown()
        station_bus.shutdown()


# ---------------------------------------------------------------------------- the car park


async def test_world_runs_controllers_on_serial_and_can_and_keeps_meter_energy(tmp_path: Path) -> None:
    clock = FakeClock()
    channel = f"sim-world-{os.getpid()}-{next(_channels)}"
    specs = [SimConnectorSpec(1), SimConnectorSpec(2, phases=1, connector_type="Type2Cable", transport="can",
                                                   can_channel=channel, node_id=5, meter_device_id=12)]
    world = SimWorld(specs, tmp_path, clock=clock)
    assert world.meter_device_id(1) == 1 and world.meter_device_id(2) == 12
    await world.start()
    station_bus = can.Bus(interface="virtual", channel=channel)
    serial_station = Station(await open_serial(world.controller_port(1)))
    can_station = Station(CanLink(station_bus, 5, role="station"))
    try:
        assert world.meter_endpoint[0] == "127.0.0.1" and world.meter_endpoint[1] > 0
        assert world.rfid_port.startswith("/dev/")
        with pytest.raises(ValueError, match="CAN"):
            world.controller_port(2)
        for station in (serial_station, can_station):
            station.start_heartbeats()
            await station.link.send(RequestHello())
        hello = await can_station.wait_for(lambda m: isinstance(m, Hello))
        assert (hello.connector_type, hello.phases, hello.hardware_id) == (ConnectorType.TYPE2_TETHERED, 1,
                                                                           "SIM-EVSE-2")
        world.plug(1, 32)
        world.charge(1, 16, 3)
        world.plug(2, None)
        world.charge(2, 10, 1)
        for station in (serial_station, can_station):
            assert await station.command(SetCurrent(16)) is ResultReason.OK
        assert await serial_station.command(SetLock(True)) is ResultReason.OK
        for station in (serial_station, can_station):
            assert await station.command(SetContactor(True)) is ResultReason.OK
        state = world.state()
        assert [sorted(c) for c in state["connectors"]] == [
            sorted(["id", "cp_state", "pwm_current_a", "contactor", "locked", "energy_wh", "power_w", "faults"])] * 2
        one, two = state["connectors"]
        assert one == {"id": 1, "cp_state": "C", "pwm_current_a": 16.0, "contactor": True, "locked": True,
                       "energy_wh": 0.0, "power_w": 11040.0, "faults": []}
        assert (two["cp_state"], two["power_w"], two["locked"]) == ("C", 2300.0, False)
        clock.advance(3600)
        assert world.state()["connectors"][0]["energy_wh"] == pytest.approx(11040.0)
        world.suspend(1)
        assert world.state()["connectors"][0]["cp_state"] == "B"
        assert world.state()["connectors"][0]["contactor"] is False
        world.set_fault(2, "GroundFailure", True)
        world.set_meter_online(2, False)
        assert world.state()["connectors"][1]["faults"] == ["GroundFailure", "PowerMeterFailure"]
        world.unplug(2)
        world.unplug(2)  # nothing left to unplug: no error
        # the station's driver reconnects: it reopens the same pty path
        await serial_station.close()
        serial_station = Station(await open_serial(world.controller_port(1)))
        await serial_station.link.send(RequestHello())
        assert (await serial_station.wait_for(lambda m: isinstance(m, Hello))).hardware_id == "SIM-EVSE-1"
        assert (await serial_station.status()).cp_state is CpState.B
        # a person's mistakes
        with pytest.raises(KeyError):
            world.plug(9)
        with pytest.raises(ValueError, match="cable_max_a"):
            world.plug(1, 17)
        with pytest.raises(ValueError, match="already"):
            world.plug(1)
        with pytest.raises(ValueError, match="no vehicle"):
            world.charge(2)
        with pytest.raises(ValueError, match="phases"):
            world.charge(1, 16, 2)
        with pytest.raises(ValueError, match="max_current_a"):
            world.charge(1, 0)
        with pytest.raises(ValueError, match="PowerMeterFailure"):
            world.set_fault(1, "WeakSignal", True)
        with pytest.raises(ValueError, match="uid"):
            world.present_card("xyz")
    finally:
        await serial_station.close()
        await can_station.close()
        await world.stop()
        station_bus.shutdown()
    saved = json.loads((tmp_path / "meter-connector-1.json").read_text())
    assert saved["energy_import_wh"] == pytest.approx(11040.0)
    again = SimWorld(specs, tmp_path, clock=clock)  # a restarted demo continues counting
    assert again.state()["connectors"][0]["energy_wh"] == pytest.approx(11040.0)


def test_world_refuses_bad_specs(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="twice"):
        SimWorld([SimConnectorSpec(1), SimConnectorSpec(1)], tmp_path)
    with pytest.raises(ValueError, match="meter_device_id"):
        SimWorld([SimConnectorSpec(1), SimConnectorSpec(2, meter_device_id=1)], tmp_path)
    with pytest.raises(ValueError, match="connector_type"):
        SimConnectorSpec(1, connector_type="CCS")
    with pytest.raises(ValueError, match="transport"):
        SimConnectorSpec(1, transport="usb")
    with pytest.raises(RuntimeError, match="not started"):
        _ = SimWorld([SimConnectorSpec(1)], tmp_path).rfid_port
