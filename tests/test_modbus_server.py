"""The station's Modbus TCP server (Heidelberg Energy Control map) against a real StationCore.

A real pymodbus AsyncModbusTcpClient talks to the server on 127.0.0.1 (a free port); the core
has a real ConfigStore and Database in tmp_path and fake clocks (the core's datetime clock, the
server's monotonic watchdog clock).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pymodbus.client import AsyncModbusTcpClient

from stationd.config.store import ConfigStore
from stationd.config.value_types import Source
from stationd.core.connector import ControllerState
from stationd.core.iec61851 import CpState
from stationd.core.sessions import SessionStore
from stationd.core.station import ConnectorSpec, StationCore
from stationd.hw import modbus_map
from stationd.hw.modbus_server import LIMIT_SOURCE, ModbusServer
from stationd.storage import Database

ROOT = Path(__file__).parent.parent
A, B, C, D, E = CpState.A, CpState.B, CpState.C, CpState.D, CpState.E
ILLEGAL_ADDRESS, ILLEGAL_VALUE, GATEWAY_NO_RESPONSE = 2, 3, 0x0B


class FakeClock:
    """Monotonic seconds for the watchdog; moves only when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Sample:
    energy_import_wh: float
    power_w: float = 0.0
    current_a: tuple = (0.0, 0.0, 0.0)
    voltage_v: tuple = (230.0, 230.0, 230.0)


class Rig:
    def __init__(self, data_dir: Path, unit_id: int = 1):
        self.store = ConfigStore.open(data_dir, installation={"NumberOfConnectors": "2"})
        assert self.store.set("/power/station/mainsMaxCurrent", "64000", Source.LOCAL).ok
        assert self.store.set("GridMaxPower", "0", Source.LOCAL).ok  # only the currents under test limit
        self.core = StationCore(self.store, SessionStore(Database.open(data_dir)),
                                [ConnectorSpec(1, 32, 3), ConnectorSpec(2, 16, 3)],
                                clock=lambda: datetime(2026, 11, 22, 12, 0, tzinfo=UTC))
        self.core.start()
        for i in (1, 2):
            self.core.controller_link(i, True)
            self.core.meter_sample(i, Sample(1000.0 * i))
        self.clock = FakeClock()
        self.enabled = True
        self.server = ModbusServer(self.core, self.store, "127.0.0.1", 0, unit_id, self.clock,
                                   enabled=lambda: self.enabled, tick=0.01)
        self.task: asyncio.Task | None = None
        self.client: AsyncModbusTcpClient | None = None

    async def start(self) -> None:
        self.task = asyncio.create_task(self.server.run())
        await asyncio.wait_for(self.server.listening.wait(), 5)
        self.client = AsyncModbusTcpClient("127.0.0.1", port=self.server.port, timeout=2, retries=0)
        assert await self.client.connect()

    async def stop(self) -> None:
        if self.client:
            self.client.close()
        if self.task:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    def state(self, connector: int, cp: CpState, **fields) -> None:
        self.core.controller_state(connector, ControllerState(cp_state=cp, **fields))

    def connector(self, connector: int):
        return self.core.connectors[connector]

    async def ir(self, address: int, count: int = 1, device: int = 1) -> list[int]:
        reply = await self.client.read_input_registers(address, count=count, device_id=device)
        assert not reply.isError(), reply
        return reply.registers

    async def hr(self, address: int, count: int = 1, device: int = 1) -> list[int]:
        reply = await self.client.read_holding_registers(address, count=count, device_id=device)
        assert not reply.isError(), reply
        return reply.registers

    async def write(self, address: int, value: int, device: int = 1):
        return await self.client.write_register(address, value, device_id=device)


@pytest.fixture
async def rig(tmp_path: Path):
    rig = Rig(tmp_path)
    await rig.start()
    yield rig
    await rig.stop()


async def until(condition, timeout: float = 2.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


# ---- reads ------------------------------------------------------------------------------

async def test_input_registers_reflect_the_core_and_the_last_meter_sample(rig: Rig):
    rig.state(1, C, temperature_c=35.5)
    rig.core.meter_sample(1, Sample(12345.0, power_w=11040.0, current_a=(16.0, 15.96, 16.04),
                                    voltage_v=(230.0, 231.2, 228.9)))
    words = await rig.ir(4, 17)  # 4..20 in one request, as energy managers do
    assert words[0] == 0x0108  # layout version 1.0.8
    assert words[1] == 7  # C2: vehicle asks for energy, the station allows charging
    assert words[2:5] == [160, 160, 160]  # 0.1 A
    assert words[5] == 355  # 35.5 °C
    assert words[6:9] == [230, 231, 229]  # V
    assert words[9] == 1  # external lock: unlocked
    assert words[10] == 11040  # W
    assert words[11:13] == [0, 11345]  # since power-on: 12345 - 1000 seen at start
    assert words[13:15] == [0, 12345]  # the meter's import register
    assert words[15:17] == words[11:13]
    assert await rig.ir(100, 2) == [32, 6]
    assert await rig.ir(100, 2, device=2) == [16, 6]
    logistic = b"".join(w.to_bytes(2, "big") for w in await rig.ir(102, 32)).rstrip(b"\0").decode()
    assert logistic.startswith("stationd ") and logistic.endswith(" connector 1")


async def test_energy_and_temperature_use_the_full_register_range(rig: Rig):
    rig.state(1, B, temperature_c=-14.5)
    rig.core.meter_sample(1, Sample(70000.0 + 1000.0))
    assert (await rig.ir(9))[0] == 0x10000 - 145  # int16 two's complement
    high, low = await rig.ir(17, 2)
    assert high * 65536 + low == 71000


async def test_charging_state_codes(rig: Rig):
    assert await rig.ir(5) == [3]  # A2: nobody plugged in, a vehicle would get current
    rig.state(1, B)  # free charging: a session starts, current is offered
    assert await rig.ir(5) == [5]  # B2
    rig.state(1, C)
    assert await rig.ir(5) == [7]  # C2
    rig.state(1, D)
    assert await rig.ir(5) == [8]  # ventilation request served
    rig.state(1, C)
    assert not (await rig.write(261, 0)).isError()
    assert await rig.ir(5) == [6]  # C1: asks, the station does not allow
    rig.state(1, B)
    assert await rig.ir(5) == [4]  # B1
    rig.state(1, A)
    assert await rig.ir(5) == [2]  # A1: paused by the energy manager
    assert not (await rig.write(261, 160)).isError()
    assert not (await rig.write(259, 0)).isError()  # remote lock
    assert await rig.ir(5) == [10]  # F: locked
    assert not (await rig.write(259, 1)).isError()
    rig.state(1, E)
    assert await rig.ir(5) == [9]
    rig.state(1, A)
    assert rig.core.set_availability(1, False) == "Accepted"
    assert await rig.ir(5) == [10] and await rig.ir(13) == [0]  # Unavailable: not ready, locked


# ---- writes -----------------------------------------------------------------------------

async def test_max_current_write_becomes_the_connectors_limit_at_once(rig: Rig):
    rig.state(1, C)
    assert rig.connector(1).outputs.offer_a == 32.0
    assert not (await rig.write(261, 100)).isError()  # FC 6, 10.0 A
    assert rig.connector(1).outputs.offer_a == 10.0
    assert rig.connector(1).limits[LIMIT_SOURCE] == 10.0
    assert await rig.hr(261) == [100]
    assert not (await rig.client.write_registers(261, [125], device_id=1)).isError()  # FC 16, as evcc
    assert rig.connector(1).outputs.offer_a == 12.5
    assert rig.core.status(1).status == "Charging"


async def test_zero_pauses_the_session(rig: Rig):
    rig.state(1, C)
    assert not (await rig.write(261, 0)).isError()
    assert rig.connector(1).outputs.offer_a == 0 and not rig.connector(1).outputs.contactor
    assert rig.core.status(1).status == "SuspendedEVSE"
    assert rig.connector(1).session is not None  # paused, not ended
    assert not (await rig.write(261, 60)).isError()
    assert rig.connector(1).outputs.offer_a == 6.0


async def test_out_of_range_writes_are_refused_and_change_nothing(rig: Rig):
    rig.state(1, C)
    assert not (await rig.write(261, 100)).isError()
    for address, value in [(261, 50), (261, 2000), (261, 321), (262, 59), (258, 3), (259, 2)]:
        reply = await rig.write(address, value)
        assert reply.isError() and reply.exception_code == ILLEGAL_VALUE, (address, value)
    reply = await rig.write(261, 170, device=2)  # connector 2 is a 16 A connector
    assert reply.isError() and reply.exception_code == ILLEGAL_VALUE
    reply = await rig.client.write_registers(261, [120, 5], device_id=1)  # 262 = 5 is wrong: all refused
    assert reply.isError() and reply.exception_code == ILLEGAL_VALUE
    assert await rig.hr(257, 6) == [15000, 4, 1, 0, 100, 0]  # defaults, and 261 as written before
    assert rig.connector(1).limits == {LIMIT_SOURCE: 10.0} and rig.connector(1).outputs.offer_a == 10.0
    assert LIMIT_SOURCE not in rig.connector(2).limits
    assert not (await rig.write(261, 320)).isError()  # the connector's own maximum is allowed


async def test_unmapped_registers_and_functions_answer_illegal_address(rig: Rig):
    for reply in [
        await rig.client.read_input_registers(0, device_id=1),
        await rig.client.read_input_registers(50, device_id=1),
        await rig.client.read_input_registers(18, count=4, device_id=1),  # 21 is not mapped
        await rig.client.read_holding_registers(0, device_id=1),
        await rig.client.read_holding_registers(263, device_id=1),
        await rig.client.read_holding_registers(5, device_id=1),  # an input register via FC 3
        await rig.write(260, 0),  # reserved, read-only
        await rig.write(5, 1),  # input registers cannot be written: FC 6 reaches the holding table
        await rig.client.read_coils(0, device_id=1),
    ]:
        assert reply.isError() and reply.exception_code == ILLEGAL_ADDRESS, reply
    assert await rig.hr(257, 5) == [15000, 4, 1, 0, 320]  # the block wbec reads


async def test_unknown_device_id_answers_gateway_no_response(rig: Rig):
    reply = await rig.client.read_input_registers(5, device_id=9)
    assert reply.isError() and reply.exception_code == GATEWAY_NO_RESPONSE


async def test_the_second_connector_is_device_2_and_independent(rig: Rig):
    rig.state(1, C)
    rig.state(2, B)
    assert await rig.ir(5, device=2) == [5] and await rig.ir(5, device=1) == [7]
    assert not (await rig.write(261, 80, device=2)).isError()
    assert rig.connector(2).outputs.offer_a == 8.0 and rig.connector(1).outputs.offer_a == 32.0
    assert await rig.hr(261, device=1) == [320] and await rig.hr(261, device=2) == [80]
    assert LIMIT_SOURCE not in rig.connector(1).limits


async def test_unit_id_offsets_the_device_ids(tmp_path: Path):
    rig = Rig(tmp_path, unit_id=5)
    await rig.start()
    try:
        rig.state(2, B)
        assert await rig.ir(5, device=6) == [5]
        assert not (await rig.write(261, 60, device=6)).isError()
        assert rig.connector(2).limits[LIMIT_SOURCE] == 6.0
        reply = await rig.client.read_input_registers(5, device_id=1)
        assert reply.isError() and reply.exception_code == GATEWAY_NO_RESPONSE
    finally:
        await rig.stop()


# ---- watchdog ---------------------------------------------------------------------------

async def test_watchdog_falls_back_to_the_failsafe_current(rig: Rig):
    rig.state(1, C)
    assert not (await rig.client.write_registers(257, [2000], device_id=1)).isError()  # 2 s
    assert not (await rig.write(262, 60)).isError()  # failsafe 6 A
    assert not (await rig.write(261, 100)).isError()
    rig.clock.now += 1.5
    await rig.ir(5)  # a read is communication too (evcc's heartbeat reads register 5)
    rig.clock.now += 1.5
    rig.server.check_watchdogs()
    assert rig.connector(1).limits[LIMIT_SOURCE] == 10.0
    rig.clock.now += 0.6  # 2.1 s since the last request
    await until(lambda: rig.connector(1).limits[LIMIT_SOURCE] == 6.0)  # run() ticks the watchdog
    assert rig.connector(1).outputs.offer_a == 6.0
    await rig.ir(5)
    rig.server.check_watchdogs()
    assert rig.connector(1).limits[LIMIT_SOURCE] == 6.0  # talking again is not enough
    assert await rig.hr(261) == [100]  # the command register keeps what was written
    assert not (await rig.write(261, 120)).isError()  # the next write of 261 applies
    assert rig.connector(1).outputs.offer_a == 12.0


async def test_watchdog_with_failsafe_zero_pauses_and_0_disables_it(rig: Rig):
    rig.state(1, C)
    assert not (await rig.write(261, 100)).isError()  # default timeout 15 s, failsafe 0
    rig.clock.now += 16
    rig.server.check_watchdogs()
    assert rig.connector(1).outputs.offer_a == 0 and rig.core.status(1).status == "SuspendedEVSE"
    assert not (await rig.write(257, 0)).isError()
    assert not (await rig.write(261, 100)).isError()
    rig.clock.now += 3600
    rig.server.check_watchdogs()
    assert rig.connector(1).outputs.offer_a == 10.0


async def test_watchdog_waits_for_an_energy_manager_to_take_control(rig: Rig):
    rig.state(1, C)
    rig.clock.now += 3600  # nobody ever wrote 261: there is no Modbus limit to fall back from
    rig.server.check_watchdogs()
    assert LIMIT_SOURCE not in rig.connector(1).limits and rig.connector(1).outputs.offer_a == 32.0


# ---- lifecycle --------------------------------------------------------------------------

async def test_stopping_the_server_removes_the_modbus_limit_and_closes_the_socket(rig: Rig):
    rig.state(1, C)
    port = rig.server.port
    assert not (await rig.write(261, 100)).isError()
    assert not (await rig.write(261, 0, device=2)).isError()
    await rig.stop()
    assert LIMIT_SOURCE not in rig.connector(1).limits and LIMIT_SOURCE not in rig.connector(2).limits
    assert rig.connector(1).outputs.offer_a == 32.0
    with pytest.raises(OSError):
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.close()


async def test_switching_off_and_on(rig: Rig):
    rig.state(1, C)
    port = rig.server.port
    assert not (await rig.write(261, 100)).isError()
    rig.enabled = False
    await until(lambda: not rig.server.listening.is_set())
    assert LIMIT_SOURCE not in rig.connector(1).limits and rig.connector(1).outputs.offer_a == 32.0
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)
    rig.enabled = True
    await asyncio.wait_for(rig.server.listening.wait(), 2)
    client = AsyncModbusTcpClient("127.0.0.1", port=rig.server.port, timeout=2, retries=0)
    assert await client.connect()
    try:
        reply = await client.read_holding_registers(261, device_id=1)
        assert reply.registers == [320]  # registers start from their defaults again
    finally:
        client.close()


def test_too_many_device_ids_are_refused(tmp_path: Path):
    store = ConfigStore.open(tmp_path, installation={"NumberOfConnectors": "2"})
    core = StationCore(store, SessionStore(Database.open(tmp_path)), [ConnectorSpec(1, 32, 3), ConnectorSpec(2, 32, 3)])
    with pytest.raises(ValueError):
        ModbusServer(core, store, "127.0.0.1", 0, 255)


def test_the_documented_register_table_is_current():
    assert modbus_map.render_markdown() in (ROOT / "docs" / "modbus-server.md").read_text()
