"""The RFID reader driver over a real pty, and the simulated vehicle's IEC 61851 behaviour."""

from __future__ import annotations

import asyncio
import os
import tty

import pytest

from firmware_sim.vehicle import Vehicle
from stationd.core.iec61851 import CpState
from stationd.hw.rfid import RfidReader, parse_uid
from stationd.hw.serial_port import open_serial_streams


@pytest.mark.parametrize("line,uid", [
    (b"AEC78085\r\n", "aec78085"),
    (b"  4b13b318 ", "4b13b318"),
    (b"04A224B2C35E80", "04a224b2c35e80"),
    (b"0102030405060708090A", "0102030405060708090a"),
])
def test_uids_of_4_7_and_10_bytes(line: bytes, uid: str):
    assert parse_uid(line) == uid


@pytest.mark.parametrize("line", [b"AEC7808", b"AEC78085FF", b"XYZ78085", b"UID:AEC78085", b"", b"\xff\xfe\x00\x01"])
def test_anything_else_is_not_a_uid(line: bytes):
    assert parse_uid(line) is None


async def open_pty_reader(master: int, slave: int):
    """Open the slave end of a pty by path, as the station opens /dev/ttyUSBx."""
    reader, _writer, close = await open_serial_streams(os.ttyname(slave), 9600)
    return reader, close


async def test_cards_from_a_pty_reach_the_core_once_per_presentation():
    master, slave = os.openpty()
    tty.setraw(slave)
    cards: list[str] = []
    health: list[tuple[bool, str]] = []
    now = [0.0]
    reader = RfidReader(lambda: open_pty_reader(master, slave), cards.append, lambda ok, why: health.append((ok, why)),
                        repeat_s=2.0, clock=lambda: now[0])
    task = asyncio.create_task(reader.run())
    try:
        for _ in range(200):  # opening the port flushes its input: wait until the reader is up
            if health:
                break
            await asyncio.sleep(0.01)
        os.write(master, b"AEC78085\r\nAEC78085\r\n")  # held on the reader: one card
        os.write(master, b"garbage line\r\n4B13B318\n")
        for _ in range(100):
            if len(cards) >= 2:
                break
            await asyncio.sleep(0.01)
        assert cards == ["aec78085", "4b13b318"]
        assert reader.rejected_lines == 1
        now[0] = 5.0
        os.write(master, b"aec78085\r\n")  # presented again later: reported again
        for _ in range(100):
            if len(cards) >= 3:
                break
            await asyncio.sleep(0.01)
        assert cards[-1] == "aec78085"
        assert health == [(True, "")]
    finally:
        task.cancel()
        os.close(master)
        os.close(slave)


async def test_a_reader_that_cannot_be_opened_is_reported_and_retried():
    attempts = []
    health: list[bool] = []
    sleeps: list[float] = []

    async def failing_open():
        attempts.append(1)
        if len(attempts) >= 4:
            raise asyncio.CancelledError
        raise FileNotFoundError(2, "No such file or directory", "/dev/ttyUSB9")

    async def fake_sleep(seconds: float):
        sleeps.append(seconds)

    reader = RfidReader(failing_open, lambda uid: None, lambda ok, why: health.append(ok), sleep=fake_sleep)
    with pytest.raises(asyncio.CancelledError):
        await reader.run()
    assert health == [False]  # reported once, not once per attempt
    assert sleeps == [1.0, 2.0, 4.0]


# ---- the simulated vehicle -------------------------------------------------------------

def test_a_vehicle_asks_for_energy_only_while_pwm_is_offered():
    car = Vehicle(max_current_a=16, phases=3)
    assert car.cp_state(16) is CpState.B  # plugged, not asking
    car.charge(16, 3)
    assert car.cp_state(0) is CpState.B  # no PWM: no state C
    assert car.cp_state(5.9) is CpState.B
    assert car.cp_state(6) is CpState.C
    car.suspend()
    assert car.cp_state(16) is CpState.B


def test_a_vehicle_draws_the_lower_of_offer_and_its_maximum():
    car = Vehicle()
    car.charge(16, 1)
    assert car.update(32, contactor_closed=True, now=0) == 16
    assert car.update(10, contactor_closed=True, now=0.5) == 16  # still reacting
    assert car.update(10, contactor_closed=True, now=1.4) == 16
    assert car.update(10, contactor_closed=True, now=1.5) == 10  # reaction_s after the lower offer
    assert car.update(10, contactor_closed=False, now=1.6) == 0
    assert car.update(0, contactor_closed=True, now=1.7) == 0


def test_vehicle_input_is_checked():
    car = Vehicle()
    with pytest.raises(ValueError):
        car.charge(16, 2)
    with pytest.raises(ValueError):
        car.charge(0, 3)
