"""EVSE controller protocol over CAN, on python-can's in-process virtual bus."""

from __future__ import annotations

import asyncio
import random
import uuid

import can
import pytest
from test_evse_protocol import EXAMPLES, HELLO, STATUS

from stationd.hw.evse_protocol import (
    BootChunk,
    CanLink,
    CommandResult,
    Heartbeat,
    Hello,
    LinkClosed,
    LinkDown,
    LinkTimeout,
    MessageType,
    ResultReason,
    SetContactor,
    SetCurrent,
    SetLock,
    can_id,
    crc32,
    encode,
    split_id,
)
from stationd.hw.evse_protocol.can_tp import segment
from stationd.hw.evse_protocol.pdu import Pdu

FAST = {"ack_timeout": 0.1, "retries": 3}
STATION_MESSAGES = [m for m in EXAMPLES if not type(m).TYPE & 0x80]
CONTROLLER_MESSAGES = [m for m in EXAMPLES if type(m).TYPE & 0x80]


@pytest.fixture
def channel():
    return f"evse-{uuid.uuid4().hex}"


@pytest.fixture
def buses(channel):
    """A factory for virtual buses on this test's own channel; all shut down afterwards."""
    opened = []

    def new_bus():
        bus = can.Bus(interface="virtual", channel=channel, receive_own_messages=False)
        opened.append(bus)
        return bus

    yield new_bus
    for bus in opened:
        bus.shutdown()


@pytest.fixture
async def links(buses):
    """Open links; every one is closed at the end of the test."""
    opened = []

    def new_link(bus, node_id, role, **options):
        link = CanLink(bus, node_id, role=role, **{**FAST, **options})
        opened.append(link)
        return link

    yield new_link
    for link in opened:
        await link.close()


async def receive(link, timeout=1.0):
    return await asyncio.wait_for(link.receive(), timeout)


def _drain(bus) -> list[can.Message]:
    frames = []
    while (frame := bus.recv(0)) is not None:
        frames.append(frame)
    return frames


async def test_every_message_in_its_direction(buses, links):
    station = links(buses(), 5, "station")
    controller = links(buses(), 5, "controller")
    for msg in STATION_MESSAGES:
        await station.send(msg)
        assert await receive(controller) == msg
    for msg in CONTROLLER_MESSAGES:
        await controller.send(msg)
        assert await receive(station) == msg
    assert station.stats.retransmissions == controller.stats.retransmissions == 0
    assert station.stats.bad_crc == controller.stats.bad_crc == 0


async def test_identifiers_say_function_and_node(buses, links):
    monitor = buses()  # sees every frame on the channel
    station = links(buses(), 9, "station")
    controller = links(buses(), 9, "controller")
    await station.send(Heartbeat(counter=1))
    await station.send(SetLock(locked=True))
    await receive(controller)
    await receive(controller)
    await controller.send(STATUS)
    await receive(station)
    frames = _drain(monitor)
    ids = [f.arbitration_id for f in frames]
    assert ids[0] == can_id(1, 9) == 0x049  # heartbeat: highest priority function
    assert ids[1] == can_id(3, 9)  # SetLock
    assert ids[2] == can_id(2, 9)  # the controller's acknowledgement
    assert set(ids[3:]) == {can_id(4, 9)}  # Status, segmented
    assert split_id(ids[3]) == (4, 9)
    assert all(not f.is_extended_id and len(f.data) <= 8 for f in frames)


@pytest.mark.parametrize("msg", [
    HELLO, BootChunk(offset=1024, crc32=crc32(bytes(range(128))), data=bytes(range(128))),
], ids=["Hello", "BootChunk"])
async def test_long_messages_are_segmented_and_reassembled(buses, links, msg):
    monitor = buses()  # sees every frame on the channel
    station = links(buses(), 3, "station")
    controller = links(buses(), 3, "controller")
    sender, receiver = (controller, station) if isinstance(msg, Hello) else (station, controller)
    await sender.send(msg)
    assert await receive(receiver) == msg
    frames = [f for f in _drain(monitor) if f.data[0] >> 4 != 0]
    expected = segment(Pdu(1, 0, 0, encode(msg)).pack())
    assert len(frames) == len(expected) > 2
    assert frames[0].data[0] >> 4 == 1 and all(f.data[0] >> 4 == 2 for f in frames[1:])


async def test_two_controllers_on_one_bus_do_not_mix(buses, links):
    station_bus = buses()
    station_1 = links(station_bus, 1, "station")
    station_2 = links(station_bus, 2, "station")
    controller_1 = links(buses(), 1, "controller")
    controller_2 = links(buses(), 2, "controller")
    await station_1.send(SetCurrent(amps=16.0))
    await station_2.send(SetCurrent(amps=32.0))
    assert await receive(controller_1) == SetCurrent(amps=16.0)
    assert await receive(controller_2) == SetCurrent(amps=32.0)
    result = CommandResult(command_type=MessageType.SET_CURRENT, reason=ResultReason.OK)
    await controller_2.send(result)
    await controller_1.send(STATUS)
    assert await receive(station_1) == STATUS
    assert await receive(station_2) == result
    await asyncio.sleep(0.05)
    for link in (station_1, station_2, controller_1, controller_2):
        assert link._queue.empty(), link.node_id


async def test_a_second_link_for_the_same_node_and_role_is_refused(buses, links):
    bus = buses()
    links(bus, 4, "station")
    with pytest.raises(ValueError):
        CanLink(bus, 4, role="station")
    with pytest.raises(ValueError):
        CanLink(bus, 64, role="station")
    with pytest.raises(ValueError):
        CanLink(bus, 1, role="vehicle")


async def test_a_role_sends_only_its_own_messages(buses, links):
    station = links(buses(), 1, "station")
    with pytest.raises(ValueError):
        await station.send(STATUS)


async def test_reassembly_timeout_discards_a_half_message(buses, links):
    station = links(buses(), 7, "station", reassembly_timeout=0.1)
    raw = buses()
    status_id = can_id(4, 7)
    frames = segment(Pdu(0, 0, 0, encode(STATUS)).pack())
    for data in frames[:2]:
        raw.send(can.Message(arbitration_id=status_id, data=data, is_extended_id=False))
    await asyncio.sleep(0.3)
    for data in frames[2:] + frames:  # the late rest, then a whole message
        raw.send(can.Message(arbitration_id=status_id, data=data, is_extended_id=False))
    assert await receive(station) == STATUS
    await asyncio.sleep(0.05)
    assert station._queue.empty()
    assert station.stats.reassembly_timeouts == 1 and station.stats.frames_received == 1


async def test_corrupted_segmented_message_is_counted_and_dropped(buses, links):
    station = links(buses(), 7, "station")
    raw = buses()
    frames = segment(Pdu(0, 0, 0, encode(STATUS)).pack())
    frames[1] = frames[1][:4] + bytes([frames[1][4] ^ 0x10]) + frames[1][5:]
    for data in frames + segment(Pdu(0, 0, 0, encode(STATUS)).pack()):
        raw.send(can.Message(arbitration_id=can_id(4, 7), data=data, is_extended_id=False))
    raw.send(can.Message(arbitration_id=can_id(4, 7), data=b"\x02\x00\x00", is_extended_id=False))  # too short PDU
    raw.send(can.Message(arbitration_id=can_id(4, 7), is_extended_id=True, data=b"\x01\x00"))
    assert await receive(station) == STATUS
    await asyncio.sleep(0.05)
    assert station.stats.bad_crc == 1 and station.stats.too_short == 1 and station.stats.frames_received == 1


async def test_lost_frame_is_retransmitted(buses, links):
    station_bus = buses()
    station = links(station_bus, 2, "station")
    controller = links(buses(), 2, "controller")
    real_send, dropped = station_bus.send, []

    def lossy_send(msg, timeout=None):
        if not dropped:
            dropped.append(msg)
            return None
        return real_send(msg, timeout)

    station_bus.send = lossy_send
    await station.send(SetContactor(closed=True))
    assert await receive(controller) == SetContactor(closed=True)
    assert station.stats.retransmissions == 1 and len(dropped) == 1


async def test_link_timeout_when_no_controller_answers(buses, links):
    station = links(buses(), 12, "station")
    buses()  # somebody acknowledges at the bit level, but no controller application runs
    with pytest.raises(LinkTimeout):
        await station.send(SetCurrent(amps=16.0))
    assert station.stats.frames_sent == 1 + FAST["retries"]


async def test_bus_error_on_send_raises_link_down_and_the_link_recovers(buses, links):
    bus = buses()
    station = links(bus, 1, "station")
    controller = links(buses(), 1, "controller")
    real_send = bus.send

    def bus_off(msg, timeout=None):
        raise can.CanOperationError("bus-off")

    await station.send(SetCurrent(amps=10.0))
    bus.send = bus_off
    with pytest.raises(LinkDown):
        await station.send(Heartbeat(counter=1))
    with pytest.raises(LinkDown):
        await station.send(SetCurrent(amps=16.0))
    bus.send = real_send  # bus back on: the next reliable message resynchronises (SYN)
    await station.send(SetCurrent(amps=20.0))
    assert await receive(controller) == SetCurrent(amps=10.0)
    assert await receive(controller) == SetCurrent(amps=20.0)


async def test_close_ends_receive_and_send_but_leaves_the_bus_to_other_links(buses, links):
    bus = buses()
    station_1 = links(bus, 1, "station")
    station_2 = links(bus, 2, "station")
    controller_2 = links(buses(), 2, "controller")
    await station_1.close()
    with pytest.raises(LinkClosed):
        await station_1.receive()
    with pytest.raises(LinkClosed):
        await station_1.send(Heartbeat(counter=1))
    await controller_2.send(STATUS)
    assert await receive(station_2) == STATUS


async def test_deterministic_sequence_numbers_with_an_injected_rng(buses, links):
    monitor = buses()  # sees every frame on the channel
    station = links(buses(), 1, "station", rng=random.Random(42))
    controller = links(buses(), 1, "controller")
    await station.send(SetCurrent(amps=16.0))
    await receive(controller)
    first = _drain(monitor)[0]
    assert first.data[1] == random.Random(42).randint(1, 255)  # seq follows the frame control byte
