"""Simulated meters: energy integration, persistence across restarts, serving the maps."""

from __future__ import annotations

import asyncio
import json
import math
import os

import pytest

from firmware_sim.meters import SimMeter, serve_tcp
from firmware_sim.pty_bridge import PtyBridge
from stationd.hw.meters import (
    METER_MAPS,
    MeterReader,
    connect_client,
    get_map,
    plan_reads,
)
from stationd.hw.meters.codec import decode_fields, decode_identity
from stationd.hw.meters.maps import DataType


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def test_energy_integrates_power_over_time() -> None:
    clock = FakeClock()
    meter = SimMeter("SDM630", clock=clock, initial_energy_wh=500.0)
    meter.set_load((16, 16, 16))  # 3 × 230 V × 16 A = 11040 W
    assert meter.power_w == pytest.approx(11040.0)
    clock.advance(1800)
    assert meter.energy_import_wh == pytest.approx(500.0 + 5520.0)
    meter.set_load((10, 0, 0))  # the vehicle drops to one phase: 2300 W
    clock.advance(3600)
    assert meter.energy_import_wh == pytest.approx(500.0 + 5520.0 + 2300.0)
    meter.set_load(0)
    clock.advance(3600)
    assert meter.energy_import_wh == pytest.approx(8320.0)
    assert meter.energy_export_wh == 0.0


def test_load_with_voltages_and_power_factor() -> None:
    meter = SimMeter("EM24", clock=FakeClock(), voltage_v=(230.0, 231.0, 229.0))
    meter.set_load(10, power_factor=0.5)
    assert meter.current_a == (10.0, 10.0, 10.0)
    assert meter.power_w_phases == pytest.approx((1150.0, 1155.0, 1145.0))
    meter.set_load([16], voltage_v=240)
    assert meter.current_a == (16.0, 0.0, 0.0)
    assert meter.power_w == pytest.approx(240 * 16)
    with pytest.raises(ValueError):
        meter.set_load((1, 2, 3, 4))
    with pytest.raises(ValueError):
        meter.set_load((float("nan"), 0, 0))
    with pytest.raises(ValueError):
        meter.set_load(6, power_factor=1.5)
    with pytest.raises(ValueError):
        meter.set_load((-16, 0, 0))


def test_energy_persists_across_a_restart(tmp_path: os.PathLike[str]) -> None:
    clock = FakeClock()
    first = SimMeter("ABB_B23", state_dir=tmp_path, name="connector-1", clock=clock,
                     initial_energy_wh=1000.0)
    first.set_load((16, 16, 16))
    clock.advance(3600)
    first.stop()
    saved = json.loads((tmp_path / "meter-connector-1.json").read_text())
    assert saved["energy_import_wh"] == pytest.approx(1000.0 + 11040.0)
    assert saved["model"] == "ABB_B23"

    # A restarted demo on the same data directory continues from the saved register;
    # initial_energy_wh only applies to a meter that has never run.
    second = SimMeter("ABB_B23", state_dir=tmp_path, name="connector-1", clock=clock,
                      initial_energy_wh=0.0)
    assert second.energy_import_wh == pytest.approx(12040.0)
    second.set_load((10, 0, 0))
    clock.advance(3600)
    assert second.energy_import_wh == pytest.approx(12040.0 + 2300.0)


def test_saved_on_every_change_of_at_least_one_wh(tmp_path: os.PathLike[str]) -> None:
    clock = FakeClock()
    meter = SimMeter("SDM630", state_dir=tmp_path, name="m", clock=clock)
    state = tmp_path / "meter-m.json"
    meter.set_load((1, 0, 0))  # 230 W → 1 Wh every 3600/230 s
    clock.advance(0.5 * 3600 / 230)
    meter.update()
    assert not state.exists()  # 0.5 Wh: not yet
    clock.advance(0.7 * 3600 / 230)
    meter.update()
    assert json.loads(state.read_text())["energy_import_wh"] == pytest.approx(1.2)
    clock.advance(0.9 * 3600 / 230)
    meter.update()
    assert json.loads(state.read_text())["energy_import_wh"] == pytest.approx(1.2)
    clock.advance(0.2 * 3600 / 230)
    meter.update()
    assert json.loads(state.read_text())["energy_import_wh"] == pytest.approx(2.3)
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_unreadable_state_is_set_aside_not_trusted(tmp_path: os.PathLike[str]) -> None:
    (tmp_path / "meter-m.json").write_text('{"energy_import_wh": -5}')
    meter = SimMeter("SDM630", state_dir=tmp_path, name="m", clock=FakeClock(),
                     initial_energy_wh=42.0)
    assert meter.energy_import_wh == 42.0
    assert (tmp_path / "meter-m.json.corrupt").exists()


def test_a_state_file_that_cannot_be_written_is_logged_and_the_registers_count_on(tmp_path, caplog) -> None:
    """A full or read-only disk under the simulator is no meter fault: its registers go on."""
    (tmp_path / "sim").write_text("a file where the state directory belongs")
    clock = FakeClock()
    meter = SimMeter("SDM630", state_dir=tmp_path / "sim", name="m", clock=clock)
    meter.set_load((10, 10, 10))
    clock.advance(3600)
    assert meter.values()["energy_import_wh"] == pytest.approx(3 * 230 * 10)
    assert "cannot save its state" in caplog.text
    clock.advance(3600)
    assert meter.values()["energy_import_wh"] == pytest.approx(2 * 3 * 230 * 10)


@pytest.mark.parametrize("model", sorted(METER_MAPS))
def test_served_registers_decode_to_the_meter_state(model: str) -> None:
    meter = SimMeter(model, clock=FakeClock(), initial_energy_wh=98_765.4, serial="31415926",
                     voltage_v=(230.4, 229.6, 231.2))
    meter.set_load((16, 12.5, 6))
    meter_map = get_map(model)
    registers = meter.registers(meter_map.function_code)
    planned = {a for block in plan_reads(meter_map) for a in range(block.address, block.end)}
    decoded = decode_fields(meter_map, {a: registers.get(a, 0) for a in planned})
    for name, value in meter.values().items():
        field = meter_map.field(name)
        resolution = field.scale if field.dtype not in (DataType.FLOAT32, DataType.ISKRA_T5,
                                                        DataType.ISKRA_T6) else 0.0
        assert math.isclose(decoded[name], value, rel_tol=1e-6, abs_tol=resolution / 2 + 1e-6), name
    serial = meter_map.serial
    words = meter.registers(serial.function_code)
    assert decode_identity(serial, [words[serial.address + i] for i in range(serial.count)]) \
        == "31415926"


def test_raw_override_for_garbage_tests() -> None:
    meter = SimMeter("SDM630", clock=FakeClock())
    meter.set_raw_override("voltage_l1_v", [0x7FC0, 0x0000])
    assert meter.registers(4)[0] == 0x7FC0
    meter.set_raw_override("voltage_l1_v", None)
    assert meter.registers(4)[0] == 0x4366  # 230.0 V again
    with pytest.raises(ValueError):
        meter.set_raw_override("voltage_l1_v", [1])
    with pytest.raises(KeyError):
        meter.set_raw_override("no_such_field", [1, 2])


async def test_counts_over_modbus_like_a_real_meter(tmp_path: os.PathLike[str]) -> None:
    clock = FakeClock()
    meter = SimMeter("SDM630", state_dir=tmp_path, name="c1", clock=clock,
                     initial_energy_wh=250_000.0)
    server = await serve_tcp({1: meter}, "127.0.0.1", 0)
    client = await connect_client({"tcp": {"host": "127.0.0.1", "port": server.port}},
                                  timeout=0.2)
    try:
        reader = MeterReader(client, "SDM630", 1, timeout=0.2)
        before = await reader.read()
        meter.set_load((16, 16, 16))
        clock.advance(3600)
        after = await reader.read()
        assert after.energy_import_wh - before.energy_import_wh == pytest.approx(11040.0, abs=0.1)
        assert after.power_w == pytest.approx(11040.0)
        meter.set_load(0)  # unplugged: the register stands still
        clock.advance(3600)
        assert (await reader.read()).energy_import_wh == after.energy_import_wh
    finally:
        client.close()
        await server.stop()
    # stopping the server saved the register
    saved = json.loads((tmp_path / "meter-c1.json").read_text())
    assert saved["energy_import_wh"] == pytest.approx(261_040.0)


async def test_meter_registers_are_read_only() -> None:
    meter = SimMeter("ABB_B23", clock=FakeClock())
    server = await serve_tcp({5: meter})
    client = await connect_client({"tcp": {"host": "127.0.0.1", "port": server.port}},
                                  timeout=0.2)
    try:
        reply = await client.write_register(0x5000, 1, device_id=5)
        assert reply.isError()
        assert reply.exception_code == 2  # illegal data address: nothing here is writable
        reply = await client.read_holding_registers(0x8900, count=2, device_id=5)
        assert not reply.isError()
    finally:
        client.close()
        await server.stop()


async def test_background_tick_keeps_the_state_file_current(tmp_path: os.PathLike[str]) -> None:
    clock = FakeClock()
    meter = SimMeter("EM340", state_dir=tmp_path, name="t", clock=clock)
    server = await serve_tcp({1: meter}, tick_interval=0.01)
    try:
        meter.set_load((16, 16, 16))
        clock.advance(3600)  # nobody reads the meter; the server's tick still integrates
        for _ in range(100):
            await asyncio.sleep(0.01)
            if (tmp_path / "meter-t.json").exists():
                break
        saved = json.loads((tmp_path / "meter-t.json").read_text())
        assert saved["energy_import_wh"] == pytest.approx(11040.0)
    finally:
        await server.stop()


async def test_pty_bridge_passes_bytes_both_ways() -> None:
    async with PtyBridge() as bridge:
        assert bridge.path_a != bridge.path_b
        a = os.open(bridge.path_a, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        b = os.open(bridge.path_b, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        try:
            for source, target, payload in ((a, b, bytes(range(256))), (b, a, b"\x01\x04\x00")):
                os.write(source, payload)
                received = b""
                for _ in range(200):
                    await asyncio.sleep(0.005)
                    try:
                        received += os.read(target, 4096)
                    except BlockingIOError:
                        pass
                    if len(received) >= len(payload):
                        break
                assert received == payload  # raw: no echo, no newline translation
        finally:
            os.close(a)
            os.close(b)
