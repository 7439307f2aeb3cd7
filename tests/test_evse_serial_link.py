"""EVSE controller protocol over a serial line: framing, ARQ, counters, a real pty pair."""

from __future__ import annotations

import asyncio
import os
import random

import pytest
from test_evse_protocol import EXAMPLES, STATUS

from stationd.hw.evse_protocol import (
    BootChunk,
    CpState,
    Heartbeat,
    LinkClosed,
    LinkTimeout,
    SerialLink,
    SetContactor,
    SetCurrent,
    Status,
    cobs,
    crc32,
    encode,
    open_pty_pair,
    open_serial,
)
from stationd.hw.evse_protocol.pdu import FLAG_SYN, Pdu
from stationd.hw.evse_protocol.serial_link import MAX_ENCODED_FRAME, encode_frame

FAST = {"ack_timeout": 0.05, "retries": 3}  # losses are injected, so timing only sets the pace


class Wire:
    """One direction of an in-memory serial line; ``drop(frame)`` decides which frames get lost."""

    def __init__(self, peer: asyncio.StreamReader, drop=None):
        self.peer = peer
        self.drop = drop or (lambda frame: False)
        self.frames: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.frames.append(data)
        if not self.closed and not self.drop(data):
            self.peer.feed_data(data)

    async def drain(self) -> None:
        pass

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.peer.feed_eof()

    async def wait_closed(self) -> None:
        pass


def _pdu_of(frame: bytes) -> Pdu:
    raw = cobs.decode(frame.strip(b"\x00"))
    return Pdu.unpack(raw[:-4])


def drop_first(count: int, *, data: bool = True):
    """Lose the first ``count`` data frames (or, with data=False, pure acknowledgements)."""
    state = {"left": count}

    def drop(frame: bytes) -> bool:
        if bool(_pdu_of(frame).body) == data and state["left"] > 0:
            state["left"] -= 1
            return True
        return False

    return drop


@pytest.fixture
async def pair():
    """(station, controller, station→controller wire, controller→station wire), both links closed after."""
    to_controller, to_station = asyncio.StreamReader(), asyncio.StreamReader()
    wire_sc, wire_cs = Wire(to_controller), Wire(to_station)
    station = SerialLink(to_station, wire_sc, **FAST, rng=random.Random(1))
    controller = SerialLink(to_controller, wire_cs, **FAST, rng=random.Random(2))
    yield station, controller, wire_sc, wire_cs
    await station.close()
    await controller.close()


async def receive(link, timeout=1.0):
    return await asyncio.wait_for(link.receive(), timeout)


async def test_every_message_both_directions(pair):
    station, controller, *_ = pair
    for msg in EXAMPLES:
        await station.send(msg)
        assert await receive(controller) == msg
        await controller.send(msg)
        assert await receive(station) == msg
    assert station.stats.retransmissions == controller.stats.retransmissions == 0


async def test_reliable_send_returns_after_the_acknowledgement(pair):
    station, _, wire_sc, wire_cs = pair
    await station.send(SetCurrent(amps=16.0))
    data, ack = _pdu_of(wire_sc.frames[0]), _pdu_of(wire_cs.frames[0])
    assert data.seq != 0 and data.flags & FLAG_SYN and ack.ack == data.seq and ack.body == b""
    await station.send(SetCurrent(amps=10.0))
    assert _pdu_of(wire_sc.frames[1]).flags & FLAG_SYN == 0  # SYN only until the first ack
    assert _pdu_of(wire_sc.frames[1]).seq == data.seq % 255 + 1


async def test_periodic_messages_go_unreliable_and_are_not_repeated(pair):
    station, controller, wire_sc, _ = pair
    wire_sc.drop = lambda frame: True
    await station.send(Heartbeat(counter=1))
    await controller.send(STATUS)
    assert await receive(station) == STATUS
    await asyncio.sleep(0.1)
    assert len(wire_sc.frames) == 1 and _pdu_of(wire_sc.frames[0]).seq == 0
    assert station.stats.retransmissions == 0


async def test_lost_frame_is_retransmitted(pair):
    station, controller, wire_sc, _ = pair
    wire_sc.drop = drop_first(2)
    await station.send(SetContactor(closed=True))
    assert await receive(controller) == SetContactor(closed=True)
    assert station.stats.retransmissions == 2
    assert len([f for f in wire_sc.frames if _pdu_of(f).body]) == 3


async def test_lost_acknowledgement_gives_a_duplicate_that_is_acknowledged_and_dropped(pair):
    station, controller, _, wire_cs = pair
    wire_cs.drop = drop_first(1, data=False)
    await station.send(SetContactor(closed=True))
    await station.send(SetContactor(closed=False))
    assert await receive(controller) == SetContactor(closed=True)
    assert await receive(controller) == SetContactor(closed=False)
    assert controller.stats.duplicates == 1 and station.stats.retransmissions == 1


async def test_link_timeout_when_the_peer_never_answers_then_resynchronises(pair):
    station, controller, wire_sc, _ = pair
    wire_sc.drop = lambda frame: True
    with pytest.raises(LinkTimeout):
        await station.send(SetCurrent(amps=16.0))
    assert len(wire_sc.frames) == 1 + FAST["retries"]
    assert station.stats.retransmissions == FAST["retries"]
    # the line comes back: the next reliable frame carries SYN and is accepted
    wire_sc.drop = lambda frame: False
    await station.send(SetCurrent(amps=8.0))
    assert _pdu_of(wire_sc.frames[-1]).flags & FLAG_SYN
    assert await receive(controller) == SetCurrent(amps=8.0)


async def test_duplicate_replayed_on_the_line_is_dropped(pair):
    station, controller, wire_sc, _ = pair
    await station.send(SetCurrent(amps=16.0))
    assert await receive(controller) == SetCurrent(amps=16.0)
    wire_sc.peer.feed_data(wire_sc.frames[0])  # the very same frame again
    await station.send(SetCurrent(amps=20.0))
    assert await receive(controller) == SetCurrent(amps=20.0)
    assert controller.stats.duplicates == 1


async def test_out_of_order_frame_is_dropped_and_the_link_carries_on(pair):
    station, controller, wire_sc, _ = pair
    await station.send(SetCurrent(amps=16.0))
    await receive(controller)
    seq = _pdu_of(wire_sc.frames[0]).seq
    skipped = Pdu((seq + 5) % 255 + 1, 0, 0, encode(SetCurrent(amps=32.0))).pack()
    wire_sc.peer.feed_data(encode_frame(skipped))
    await station.send(SetCurrent(amps=20.0))
    assert await receive(controller) == SetCurrent(amps=20.0)
    assert controller.stats.out_of_order == 1


def _good_unreliable(counter: int) -> bytes:
    return encode_frame(Pdu(0, 0, 0, encode(Heartbeat(counter=counter))).pack())


@pytest.mark.parametrize("bad, counter", [
    (b"\x00" + cobs.encode(b"\x00\x00\x00\x02\x01\x00" + b"\x00\x00\x00\x00") + b"\x00", "bad_crc"),
    (b"\x00\x02\x01\x01\x00", "too_short"),
    (b"\x00\x05\x11\x22\x00", "bad_cobs"),
    (b"\x00" + b"\x55" * (MAX_ENCODED_FRAME + 1) + b"\x00", "too_long"),
    (encode_frame(Pdu(0, 0, 0, b"\x7f\x01").pack()), "decode_errors"),
])
async def test_bad_frames_are_counted_and_the_next_good_frame_arrives(pair, bad, counter):
    _, controller, wire_sc, _ = pair
    wire_sc.peer.feed_data(bad + _good_unreliable(7))
    assert await receive(controller) == Heartbeat(counter=7)
    assert getattr(controller.stats, counter) == 1
    assert controller.stats.frames_received == 1 + (counter == "decode_errors")


async def test_truncated_frame_and_garbage_between_frames(pair):
    _, controller, wire_sc, _ = pair
    good = _good_unreliable(1)
    stream = good[:8] + b"\x00" + b"garbage\xff\x13" + _good_unreliable(2) + b"\x01\x02" + _good_unreliable(3)
    for i in range(0, len(stream), 5):  # arrives in small pieces, as on a UART
        wire_sc.peer.feed_data(stream[i : i + 5])
    assert await receive(controller) == Heartbeat(counter=2)
    assert await receive(controller) == Heartbeat(counter=3)
    stats = controller.stats
    assert stats.bad_cobs + stats.bad_crc + stats.too_short == 3 and stats.frames_received == 2


async def test_over_long_garbage_without_delimiter_is_skipped_to_the_next_delimiter(pair):
    _, controller, wire_sc, _ = pair
    for _ in range(5):
        wire_sc.peer.feed_data(b"\x42" * 200)
    wire_sc.peer.feed_data(_good_unreliable(9))
    assert await receive(controller) == Heartbeat(counter=9)
    assert controller.stats.too_long == 1


async def test_end_of_file_closes_the_link(pair):
    station, controller, wire_sc, _ = pair
    await station.send(Heartbeat(counter=1))
    wire_sc.close()
    assert await receive(controller) == Heartbeat(counter=1)
    with pytest.raises(LinkClosed):
        await receive(controller)
    with pytest.raises(LinkClosed):
        await controller.send(STATUS)


async def test_close_wakes_a_pending_reliable_send_and_receive(pair):
    station, _, wire_sc, _ = pair
    wire_sc.drop = lambda frame: True
    sending = asyncio.create_task(station.send(SetCurrent(amps=16.0)))
    receiving = asyncio.create_task(station.receive())
    await asyncio.sleep(0.01)
    await station.close()
    with pytest.raises(LinkClosed):
        await sending
    with pytest.raises(LinkClosed):
        await receiving


async def test_both_directions_over_a_real_pty_opened_by_path():
    master, path = await open_pty_pair(ack_timeout=0.1, retries=5)
    assert os.path.exists(path)
    device = await open_serial(path, 115200, ack_timeout=0.1, retries=5)
    try:
        chunk = BootChunk(offset=0, crc32=crc32(b"\x00\xff" * 64), data=b"\x00\xff" * 64)
        await master.send(chunk)
        assert await receive(device) == chunk
        status = Status(**{**STATUS.__dict__, "cp_state": CpState.B})
        await device.send(status)
        await device.send(SetCurrent(amps=6.0), reliable=True)  # any message works in either direction
        assert await receive(master) == status
        assert await receive(master) == SetCurrent(amps=6.0)
        for msg in EXAMPLES:
            await device.send(msg)
            assert await receive(master) == msg
        assert master.stats.bad_crc == device.stats.bad_crc == 0
    finally:
        await device.close()
        await master.close()
