"""MeterReader and MeterPoller against simulated meters over Modbus TCP (127.0.0.1) and RTU (pty).

Timeouts are 0.2 s so the failure cases stay fast.
"""

from __future__ import annotations

import asyncio
import math
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from firmware_sim.meters import SimMeter, SimMeterServer, serve_rtu, serve_tcp
from firmware_sim.pty_bridge import PtyBridge
from stationd.hw.meters import (
    METER_MAPS,
    MeterError,
    MeterPoller,
    MeterReader,
    MeterSample,
    RtuLink,
    TcpLink,
    connect_client,
    get_map,
    plan_reads,
)
from stationd.hw.meters.maps import DataType, Field
from stationd.hw.meters.reader import parse_link

TIMEOUT = 0.2
MODELS = sorted(METER_MAPS)
DEVICE_IDS = {model: number for number, model in enumerate(MODELS, start=1)}


class FakeClock:
    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


def resolution(field: Field, value: float) -> float:
    """How far a value may move by being stored in the field's registers."""
    if field.dtype is DataType.FLOAT32:
        return abs(value) * 2 ** -23 + 1e-9
    if field.dtype in (DataType.ISKRA_T5, DataType.ISKRA_T6):
        return abs(value) * 1e-6 + 1e-6
    return field.scale / 2 + 1e-9


def assert_sample_matches(sample: MeterSample, meter: SimMeter) -> None:
    meter_map = meter.map
    expected = meter.values()
    got = {
        "energy_import_wh": sample.energy_import_wh, "energy_export_wh": sample.energy_export_wh,
        "power_w": sample.power_w, "frequency_hz": sample.frequency_hz,
        **dict(zip(("power_l1_w", "power_l2_w", "power_l3_w"), sample.power_w_phases)),
        **dict(zip(("current_l1_a", "current_l2_a", "current_l3_a"), sample.current_a)),
        **dict(zip(("voltage_l1_v", "voltage_l2_v", "voltage_l3_v"), sample.voltage_v)),
    }
    for name, value in expected.items():
        tolerance = resolution(meter_map.field(name), value)
        assert got[name] is not None and math.isclose(got[name], value, abs_tol=tolerance), \
            (meter_map.model, name, got[name], value)


@dataclass
class Station:
    server: SimMeterServer
    client: Any
    meters: dict[int, SimMeter]
    clock: FakeClock

    def reader(self, model: str, device_id: int | None = None, **kwargs: Any) -> MeterReader:
        kwargs.setdefault("timeout", TIMEOUT)
        return MeterReader(self.client, model, DEVICE_IDS[model] if device_id is None else device_id,
                           **kwargs)

    def meter(self, model: str) -> SimMeter:
        return self.meters[DEVICE_IDS[model]]


def make_meters(clock: FakeClock) -> dict[int, SimMeter]:
    meters = {}
    for model, device_id in DEVICE_IDS.items():
        meter = SimMeter(model, clock=clock, serial=f"{20240000 + device_id}",
                         initial_energy_wh=123_456.7, voltage_v=(230.1, 229.5, 231.0))
        meter.set_load((16.0, 10.0, 0.0))
        meters[device_id] = meter
    return meters


@pytest.fixture
async def tcp() -> AsyncIterator[Station]:
    clock = FakeClock()
    meters = make_meters(clock)
    server = await serve_tcp(meters, "127.0.0.1", 0)
    client = await connect_client({"tcp": {"host": "127.0.0.1", "port": server.port}},
                                  timeout=TIMEOUT)
    yield Station(server, client, meters, clock)
    client.close()
    await server.stop()


# --- values over Modbus TCP and RTU --------------------------------------------------------

@pytest.mark.parametrize("model", MODELS)
async def test_sample_matches_the_simulated_meter_over_tcp(tcp: Station, model: str) -> None:
    reader = tcp.reader(model)
    planned = len(plan_reads(get_map(model)))
    sample = await reader.read()
    assert_sample_matches(sample, tcp.meter(model))
    assert sample.timestamp.tzinfo is not None
    assert reader.requests_made == planned
    tcp.meter(model).set_load((32.0, 32.0, 32.0))
    tcp.clock.now += 600
    second = await reader.read()
    assert_sample_matches(second, tcp.meter(model))
    assert second.energy_import_wh >= sample.energy_import_wh
    assert reader.requests_made == 2 * planned


@pytest.mark.parametrize("model", MODELS)
async def test_identity(tcp: Station, model: str) -> None:
    identity = await tcp.reader(model).read_identity()
    assert identity.serial == f"{20240000 + DEVICE_IDS[model]}"
    assert identity.model == ("WM3M4C" if model == "ISKRA_WM3M4" else get_map(model).product)


async def test_two_meters_on_one_rtu_bus_over_a_pty_pair() -> None:
    clock = FakeClock()
    meters = {1: SimMeter("SDM630", clock=clock, serial="11111111", initial_energy_wh=5000.0),
              2: SimMeter("EM24", clock=clock, serial="EM24SER01", initial_energy_wh=7000.0)}
    meters[1].set_load((16, 16, 16))
    meters[2].set_load((6, 0, 0))
    async with PtyBridge() as bridge:
        server = await serve_rtu(meters, bridge.path_a, baudrate=19200)
        client = await connect_client(
            {"rtu": {"port": bridge.path_b, "baudrate": 19200, "parity": "N", "stopbits": 1}},
            timeout=TIMEOUT)
        try:
            sdm = MeterReader(client, "SDM630", 1, timeout=TIMEOUT)
            em24 = MeterReader(client, "EM24", 2, timeout=TIMEOUT)
            for _ in range(2):
                assert_sample_matches(await sdm.read(), meters[1])
                assert_sample_matches(await em24.read(), meters[2])
                clock.now += 60
            assert sdm.requests_made == 2 and em24.requests_made == 2  # one request per sample
            assert (await em24.read_identity()).serial == "EM24SER01"
            # nobody on an RTU bus answers an address that is not there
            with pytest.raises(MeterError) as caught:
                await MeterReader(client, "SDM630", 9, timeout=TIMEOUT, retries=0).read()
            assert caught.value.reason == "timeout"
            meters[1].online = False
            with pytest.raises(MeterError) as caught:
                await sdm.read()
            assert caught.value.reason == "timeout"
            meters[1].online = True
            assert_sample_matches(await sdm.read(), meters[1])
        finally:
            client.close()
            await server.stop()


# --- bad replies ---------------------------------------------------------------------------

async def test_unknown_device_on_tcp_is_exception_4(tcp: Station) -> None:
    with pytest.raises(MeterError) as caught:
        await tcp.reader("SDM630", device_id=99).read()
    assert caught.value.reason == "exception 4"
    assert caught.value.exception_code == 4


async def test_offline_meter_times_out_after_retries(tcp: Station) -> None:
    tcp.meter("EM24").online = False
    reader = tcp.reader("EM24", retries=1)
    with pytest.raises(MeterError) as caught:
        await reader.read()
    assert caught.value.reason == "timeout"
    assert reader.requests_made == 2  # the request and one retry
    tcp.meter("EM24").online = True
    assert_sample_matches(await reader.read(), tcp.meter("EM24"))


async def test_nan_is_rejected(tcp: Station) -> None:
    tcp.meter("SDM630").set_raw_override("current_l2_a", [0x7FC0, 0x0000])
    with pytest.raises(MeterError) as caught:
        await tcp.reader("SDM630").read()
    assert caught.value.reason == "not a number"
    assert caught.value.field == "current_l2_a"


async def test_abb_not_available(tcp: Station) -> None:
    meter = tcp.meter("ABB_B23")
    meter.set_raw_override("voltage_l3_v", [0xFFFF, 0xFFFF])
    sample = await tcp.reader("ABB_B23").read()
    assert sample.voltage_v[2] is None and sample.voltage_v[0] is not None
    meter.set_raw_override("energy_import_wh", [0xFFFF] * 4)
    with pytest.raises(MeterError) as caught:
        await tcp.reader("ABB_B23").read()
    assert caught.value.reason == "not available"


async def test_negative_energy_is_rejected(tcp: Station) -> None:
    tcp.meter("EM340").set_raw_override("energy_import_wh", [0xFFF6, 0xFFFF])  # -10 (LSW first)
    with pytest.raises(MeterError) as caught:
        await tcp.reader("EM340").read()
    assert caught.value.reason == "negative energy"


async def test_energy_running_backwards_is_rejected(tcp: Station) -> None:
    meter = tcp.meter("JANITZA_UMG96RM")
    reader = tcp.reader("JANITZA_UMG96RM")
    first = await reader.read()
    meter.set_raw_override("energy_import_wh", [0x447A, 0x0000])  # 1000 Wh, far below
    with pytest.raises(MeterError) as caught:
        await reader.read()
    assert caught.value.reason == "energy backwards"
    meter.set_raw_override("energy_import_wh", None)
    assert (await reader.read()).energy_import_wh >= first.energy_import_wh
    reader.reset_energy_reference()  # e.g. after the meter was replaced on purpose
    meter.set_raw_override("energy_import_wh", [0x447A, 0x0000])
    assert (await reader.read()).energy_import_wh == 1000.0


class ScriptedClient:
    """A pymodbus-like client whose replies a test writes."""

    def __init__(self, reply: Any) -> None:
        self.reply = reply
        self.calls: list[tuple[int, int, int]] = []

    async def read_input_registers(self, address: int, *, count: int, device_id: int) -> Any:
        self.calls.append((address, count, device_id))
        if isinstance(self.reply, BaseException):
            raise self.reply
        return self.reply(address, count) if callable(self.reply) else self.reply

    read_holding_registers = read_input_registers


@dataclass
class Reply:
    registers: list[int]
    exception_code: int | None = None

    def isError(self) -> bool:
        return self.exception_code is not None


async def test_wrong_register_count_is_rejected() -> None:
    client = ScriptedClient(lambda address, count: Reply([0] * (count - 1)))
    with pytest.raises(MeterError) as caught:
        await MeterReader(client, "SDM630", 1, timeout=TIMEOUT).read()
    assert caught.value.reason == "wrong register count"


async def test_modbus_exception_and_connection_errors() -> None:
    client = ScriptedClient(Reply([], exception_code=2))
    with pytest.raises(MeterError) as caught:
        await MeterReader(client, "EM24", 7, timeout=TIMEOUT).read()
    assert caught.value.reason == "exception 2"
    assert client.calls == [(0, 94, 7)]

    from pymodbus.exceptions import ConnectionException, ModbusIOException

    with pytest.raises(MeterError) as caught:
        await MeterReader(ScriptedClient(ConnectionException("gone")), "EM24", 7).read()
    assert caught.value.reason == "connection"
    scripted = ScriptedClient(ModbusIOException("No response received"))
    reader = MeterReader(scripted, "EM24", 7, retries=2)
    with pytest.raises(MeterError) as caught:
        await reader.read()
    assert caught.value.reason == "timeout"
    assert reader.requests_made == 3


async def test_timestamp_comes_from_the_injected_clock() -> None:
    stamp = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    meter = SimMeter("SDM630", clock=FakeClock())

    def reply(address: int, count: int) -> Reply:
        registers = meter.registers(4)
        return Reply([registers.get(a, 0) for a in range(address, address + count)])

    sample = await MeterReader(ScriptedClient(reply), "SDM630", 1, now=lambda: stamp).read()
    assert sample.timestamp == stamp


async def test_unreachable_tcp_meter_is_a_connection_error() -> None:
    with socket.socket() as probe:  # a port on 127.0.0.1 that nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = await connect_client(TcpLink("127.0.0.1", port), timeout=TIMEOUT)
    try:
        with pytest.raises(MeterError) as caught:
            await MeterReader(client, "SDM630", 1, timeout=TIMEOUT, retries=0).read()
        assert caught.value.reason in ("connection", "timeout")
    finally:
        client.close()


def test_link_parameters() -> None:
    assert parse_link({"tcp": {"host": "127.0.0.1"}}) == TcpLink("127.0.0.1", 502)
    assert parse_link({"rtu": {"port": "/dev/ttyUSB0", "baudrate": 115200, "parity": "E"}}) == \
        RtuLink("/dev/ttyUSB0", 115200, "E", 1)

    class Section:  # shaped like the station file's meter section
        tcp = None
        rtu = type("Rtu", (), {"port": "/dev/ttyS1", "baudrate": 9600, "parity": "N",
                               "stopbits": 2})()

    assert parse_link(Section()) == RtuLink("/dev/ttyS1", 9600, "N", 2)
    for bad in ({}, {"tcp": {"host": "a"}, "rtu": {"port": "b"}}, {"tcp": {}}, {"rtu": {}}):
        with pytest.raises(ValueError):
            parse_link(bad)


def test_reader_arguments() -> None:
    with pytest.raises(ValueError, match="unknown meter model"):
        MeterReader(None, "NOPE", 1)
    with pytest.raises(ValueError):
        MeterReader(None, "SDM630", 300)


# --- the poller ----------------------------------------------------------------------------

class ScriptedReader:
    def __init__(self, outcomes: list[Any]) -> None:
        self.outcomes = outcomes

    async def read(self) -> MeterSample:
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


def a_sample(energy: float = 1.0) -> MeterSample:
    return MeterSample(energy, None, 0.0, (None,) * 3, (None,) * 3, (None,) * 3, None,
                       datetime(2025, 1, 1, tzinfo=UTC))


async def test_poller_transitions_with_a_scripted_meter() -> None:
    timeout = MeterError("timeout", "no reply")
    outcomes = [a_sample(1), timeout, a_sample(2), timeout, timeout, timeout,
                RuntimeError("driver bug"), a_sample(3), asyncio.CancelledError()]
    events: list[tuple[bool, str]] = []
    samples: list[float] = []
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    poller = MeterPoller(ScriptedReader(outcomes), 10.0, lambda s: samples.append(s.energy_import_wh),
                         lambda online, reason: events.append((online, reason)),
                         failures_before_offline=2, sleep=sleep, clock=lambda: 0.0)
    with pytest.raises(asyncio.CancelledError):
        await poller.run()
    # one failure between good samples is not an outage; two in a row are; back with the next
    assert events == [(True, "ok"), (False, "timeout: no reply"), (True, "ok")]
    assert samples == [1, 2, 3]
    assert sleeps == [10.0] * 8
    assert poller.online is True


async def test_poller_survives_its_own_callbacks_failing() -> None:
    def broken(*_args: Any) -> None:
        raise ValueError("listener bug")

    poller = MeterPoller(ScriptedReader([a_sample()]), 1.0, broken, broken)
    assert await poller.poll_once() is not None
    assert poller.online is True


async def wait_for_event(queue: asyncio.Queue[tuple[bool, str]]) -> tuple[bool, str]:
    return await asyncio.wait_for(queue.get(), timeout=5)


async def test_poller_reports_offline_on_timeout_and_online_after_recovery(tcp: Station) -> None:
    events: asyncio.Queue[tuple[bool, str]] = asyncio.Queue()
    samples: list[MeterSample] = []
    poller = MeterPoller(tcp.reader("EM340", retries=0), 0.02, samples.append,
                         lambda online, reason: events.put_nowait((online, reason)),
                         failures_before_offline=2)
    task = asyncio.create_task(poller.run())
    try:
        assert await wait_for_event(events) == (True, "ok")
        tcp.meter("EM340").online = False
        online, reason = await wait_for_event(events)
        assert not online and reason.startswith("timeout")
        assert poller.consecutive_failures >= 2
        tcp.meter("EM340").online = True
        assert await wait_for_event(events) == (True, "ok")
        assert samples
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


@pytest.mark.parametrize("case, expected", [
    ("unknown device", "exception 4"),
    ("nan", "not a number"),
])
async def test_poller_reports_the_reason(tcp: Station, case: str, expected: str) -> None:
    if case == "unknown device":
        reader = tcp.reader("SDM630", device_id=42)
    else:
        tcp.meter("JANITZA_UMG604").set_raw_override("frequency_hz", [0xFFC0, 0x0000])
        reader = tcp.reader("JANITZA_UMG604")
    events: asyncio.Queue[tuple[bool, str]] = asyncio.Queue()
    poller = MeterPoller(reader, 0.01, lambda _s: None,
                         lambda online, reason: events.put_nowait((online, reason)),
                         failures_before_offline=3)
    task = asyncio.create_task(poller.run())
    try:
        online, reason = await wait_for_event(events)
        assert not online and reason.startswith(expected)
        assert poller.consecutive_failures == 3
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
