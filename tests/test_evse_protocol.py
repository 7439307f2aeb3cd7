"""EVSE controller protocol: message codec, COBS, CRC, CAN segmentation, pilot maths, the document."""

from __future__ import annotations

import math
import string
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stationd.hw.evse_protocol import (
    FAULT_BITS,
    MAX_CHUNK_SIZE,
    PROTOCOL_VERSION,
    SPECS,
    BootAbort,
    BootBegin,
    BootChunk,
    BootCommit,
    BootError,
    BootState,
    BootStatus,
    CommandResult,
    ConnectorType,
    CpState,
    Event,
    EventCode,
    Heartbeat,
    Hello,
    LinkStats,
    LockState,
    MessageType,
    ProtocolError,
    RcdState,
    RequestHello,
    Reset,
    ResetKind,
    ResultReason,
    SetContactor,
    SetCurrent,
    SetLock,
    Status,
    check_offer,
    cobs,
    crc32,
    current_for_duty,
    decode,
    duty_permille,
    encode,
    pp_rating,
    reference,
)
from stationd.hw.evse_protocol.can_tp import Reassembler, segment
from stationd.hw.evse_protocol.wire import (
    Ascii,
    Bool,
    Choice,
    Enum,
    FaultSet,
    Fixed,
    Int,
    IntTuple,
    Tail,
)

ROOT = Path(__file__).parent.parent

STATUS = Status(
    cp_state=CpState.C, pp_current_a=32, pwm_duty_permille=266, offered_current_a=16.0,
    contactor_commanded=True, contactor_closed=True, lock_state=LockState.LOCKED, rcd_state=RcdState.OK,
    temperature_c=-12.5, door_open=False, faults=frozenset({"GroundFailure", "HeartbeatTimeout"}), uptime_s=1234,
)
HELLO = Hello(protocol_version=PROTOCOL_VERSION, hardware_id="EVSE-0001-ABCDEF", firmware_version=(1, 2, 3),
              connector_type=ConnectorType.TYPE2_SOCKET, max_current_a=32.0, phases=3, bootloader_version=(0, 9, 1))

#: One example of every message (tests elsewhere import this list).
EXAMPLES = [
    RequestHello(), Heartbeat(counter=65535), SetCurrent(amps=16.0), SetCurrent(amps=0), SetContactor(closed=True),
    SetLock(locked=False), Reset(kind=ResetKind.CLEAR_FAULTS),
    BootBegin(size=200_000, crc32=0xDEADBEEF, version=(2, 0, 11), forced=False),
    BootChunk(offset=128, crc32=crc32(bytes(range(128))), data=bytes(range(128))), BootCommit(), BootAbort(),
    HELLO, STATUS, Event(code=EventCode.FAULT_RAISED, value=-7),
    CommandResult(command_type=MessageType.SET_CURRENT, reason=ResultReason.OUT_OF_RANGE),
    BootStatus(state=BootState.RECEIVING, offset=4096, error=BootError.CHUNK_CRC),
]


# ------------------------------------------------------------------ codec


def test_examples_cover_every_message_type():
    assert {type(m) for m in EXAMPLES} == {s.cls for s in SPECS.values()}


@pytest.mark.parametrize("msg", EXAMPLES, ids=lambda m: type(m).__name__)
def test_round_trip_and_first_byte_is_the_type(msg):
    data = encode(msg)
    assert data[0] == type(msg).TYPE
    assert decode(data) == msg


def test_byte_layout_is_little_endian_and_as_documented():
    assert encode(SetCurrent(amps=16.0)) == bytes.fromhex("10a000")
    assert encode(Heartbeat(counter=0x1234)) == bytes.fromhex("023412")
    assert encode(STATUS) == bytes.fromhex(
        "82" "03" "20" "0a01" "a000" "01" "01" "01" "00" "83ff" "00" "0108" "d2040000")
    assert encode(HELLO)[3:19] == b"EVSE-0001-ABCDEF"
    assert encode(Hello(**{**HELLO.__dict__, "hardware_id": "X1"}))[3:19] == b"X1" + bytes(14)


def test_command_result_ok_is_derived_from_the_reason():
    assert CommandResult(MessageType.SET_LOCK, ResultReason.OK).ok
    assert not CommandResult(MessageType.SET_LOCK, ResultReason.NOT_ALLOWED).ok


def _strategy(wire):
    if isinstance(wire, Fixed):
        return st.integers(wire.lo, wire.hi).map(lambda n: n / wire.scale)
    if isinstance(wire, Bool):
        return st.booleans()
    if isinstance(wire, Enum):
        return st.sampled_from(list(wire.enum))
    if isinstance(wire, Choice):
        return st.sampled_from(wire.values)
    if isinstance(wire, IntTuple):
        return st.tuples(*[st.integers(wire._item.lo, wire._item.hi)] * wire.count)
    if isinstance(wire, Ascii):
        return st.text(alphabet=string.printable[:95], max_size=wire.size).map(lambda s: s.rstrip("\x00"))
    if isinstance(wire, FaultSet):
        return st.frozensets(st.sampled_from([f.name for f in FAULT_BITS]))
    if isinstance(wire, Tail):
        return st.binary(min_size=wire.min_size, max_size=wire.max_size)
    if isinstance(wire, Int):
        return st.integers(wire.lo, wire.hi)
    raise AssertionError(wire)


MESSAGES = st.one_of([
    st.builds(s.cls, **{f.name: _strategy(f.wire) for f in s.fields}) for s in SPECS.values()
])


@settings(deadline=None)
@given(MESSAGES)
def test_property_every_message_round_trips(msg):
    assert decode(encode(msg)) == msg


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_property_decode_raises_only_protocol_error_on_random_bytes(data):
    try:
        decode(data)
    except ProtocolError:
        pass


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(list(MessageType)), st.binary(max_size=160))
def test_property_decode_of_known_types_with_random_bodies(type_, body):
    try:
        msg = decode(bytes([type_]) + body)
    except ProtocolError:
        return
    assert encode(msg) == (bytes([type_]) + body)[: len(encode(msg))]


@pytest.mark.parametrize("msg", EXAMPLES, ids=lambda m: type(m).__name__)
def test_a_truncated_message_is_refused(msg):
    data = encode(msg)
    if len(data) > 1:
        with pytest.raises(ProtocolError, match="bytes"):
            decode(data[:-1] if not isinstance(msg, BootChunk) else data[:9])


@pytest.mark.parametrize("msg", [m for m in EXAMPLES if not isinstance(m, BootChunk)], ids=lambda m: type(m).__name__)
def test_appended_bytes_of_a_newer_minor_version_are_ignored(msg):
    assert decode(encode(msg) + b"\x07\x00\xff") == msg


@pytest.mark.parametrize("data, reason", [
    (b"", "empty"),
    (b"\x7f", "unknown message type 0x7f"),
    (b"\xff\x00\x00", "unknown message type"),
    (bytes([0x82, 0]) + encode(STATUS)[2:], "cp_state"),
    (bytes([0x82, 7]) + encode(STATUS)[2:], "cp_state"),
    (encode(STATUS)[:2] + bytes([14]) + encode(STATUS)[3:], "pp_current_a"),
    (encode(STATUS)[:3] + (1001).to_bytes(2, "little") + encode(STATUS)[5:], "pwm_duty_permille"),
    (encode(STATUS)[:7] + b"\x02" + encode(STATUS)[8:], "contactor_commanded"),
    (encode(STATUS)[:14] + (1 << 12).to_bytes(2, "little") + encode(STATUS)[16:], "fault bit 12"),
    (b"\x13\x00", "kind"),
    (b"\x13\x04", "kind"),
    (b"\x84\x7f\x00", "command_type"),
    (b"\x83\x63" + bytes(4), "code"),
    (encode(HELLO)[:28] + b"\x04" + encode(HELLO)[29:], "phases"),
    (encode(HELLO)[:3] + b"\xc3\xa4" + encode(HELLO)[5:], "hardware_id"),
    (encode(HELLO)[:3] + b"\x07" + encode(HELLO)[4:], "hardware_id"),
    (encode(EXAMPLES[8]) + b"\x00", "at most"),
])
def test_bad_messages_are_refused_with_a_reason(data, reason):
    with pytest.raises(ProtocolError, match=reason):
        decode(data)


@pytest.mark.parametrize("msg", [
    SetCurrent(amps=-1), SetCurrent(amps=math.nan), SetCurrent(amps=7000), SetCurrent(amps="16"),
    Heartbeat(counter=70000), Reset(kind=9), SetContactor(closed=None), SetLock(locked="yes"),
    Hello(**{**HELLO.__dict__, "hardware_id": "x" * 17}), Hello(**{**HELLO.__dict__, "hardware_id": "äö"}),
    Hello(**{**HELLO.__dict__, "phases": 0}), Hello(**{**HELLO.__dict__, "firmware_version": (1, 2)}),
    BootChunk(offset=0, crc32=0, data=b""), BootChunk(offset=0, crc32=0, data=bytes(MAX_CHUNK_SIZE + 1)),
    Status(**{**STATUS.__dict__, "faults": frozenset({"Nonsense"})}),
    Status(**{**STATUS.__dict__, "pp_current_a": 16}),
])
def test_unencodable_values_raise_protocol_error(msg):
    with pytest.raises(ProtocolError):
        encode(msg)


def test_encoding_something_that_is_not_a_message_is_refused():
    with pytest.raises(ProtocolError):
        encode(object())


def test_fault_table_has_the_spec_names_and_unique_bits():
    names = [f.name for f in FAULT_BITS]
    assert names == ["GroundFailure", "OverCurrentFailure", "PowerSwitchFailure", "ConnectorLockFailure",
                     "EVCommunicationError", "HighTemperature", "OverVoltage", "UnderVoltage", "InternalError",
                     "TamperDetected", "PpInvalid", "HeartbeatTimeout"]
    assert len({f.bit for f in FAULT_BITS}) == len(FAULT_BITS) and all(0 <= f.bit < 16 for f in FAULT_BITS)


def test_message_type_bit7_says_who_sends_it():
    for spec in SPECS.values():
        assert bool(spec.type & 0x80) == (spec.sender.name == "CONTROLLER")


# ------------------------------------------------------------------ COBS and CRC


@pytest.mark.parametrize("raw, encoded", [
    (b"", b"\x01"),
    (b"\x00", b"\x01\x01"),
    (b"\x00\x00", b"\x01\x01\x01"),
    (b"\x00\x11\x00", b"\x01\x02\x11\x01"),
    (b"\x11\x22\x00\x33", b"\x03\x11\x22\x02\x33"),
    (b"\x11\x22\x33\x44", b"\x05\x11\x22\x33\x44"),
    (b"\x11\x00\x00\x00", b"\x02\x11\x01\x01\x01"),
    (bytes(range(1, 255)), b"\xff" + bytes(range(1, 255))),  # 254-byte run: no trailing group
    (bytes(range(255)), b"\x01\xff" + bytes(range(1, 255))),
    (bytes(range(1, 256)), b"\xff" + bytes(range(1, 255)) + b"\x02\xff"),  # 255-byte run
    (bytes(range(2, 256)) + b"\x00", b"\xff" + bytes(range(2, 256)) + b"\x01\x01"),
    (bytes(range(3, 256)) + b"\x00\x01", b"\xfe" + bytes(range(3, 256)) + b"\x02\x01"),
])
def test_cobs_reference_vectors(raw, encoded):
    assert cobs.encode(raw) == encoded
    assert cobs.decode(encoded) == raw


@settings(deadline=None)
@given(st.binary(max_size=1200))
def test_property_cobs_round_trip_without_zeros(data):
    encoded = cobs.encode(data)
    assert 0 not in encoded
    assert len(encoded) <= len(data) + len(data) // 254 + 1
    assert cobs.decode(encoded) == data


def test_cobs_runs_of_254_and_255_nonzero_bytes_in_the_middle():
    for run in (253, 254, 255, 508, 509):
        data = b"\x00" + b"\x55" * run + b"\x00\x66"
        assert cobs.decode(cobs.encode(data)) == data


@pytest.mark.parametrize("bad", [b"\x00", b"\x03\x11", b"\x02\x00", b"\x05\x11\x22"])
def test_cobs_rejects_malformed_frames(bad):
    with pytest.raises(cobs.CobsError):
        cobs.decode(bad)


@settings(deadline=None)
@given(st.binary(max_size=300))
def test_property_cobs_decode_raises_only_cobs_error(data):
    try:
        cobs.decode(data)
    except cobs.CobsError:
        pass


def test_crc32_is_the_iso_hdlc_variant():
    assert crc32(b"123456789") == 0xCBF43926


# ------------------------------------------------------------------ CAN segmentation


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def _reassembler(clock=None, timeout=0.2):
    stats = LinkStats()
    return stats, Reassembler(stats, max_pdu=243, timeout=timeout, clock=clock or FakeClock())


def _feed_all(reassembler, frames):
    results = [reassembler.feed(f) for f in frames]
    assert all(r is None for r in results[:-1])
    return results[-1]


@settings(deadline=None)
@given(st.binary(min_size=1, max_size=243))
def test_property_segmentation_round_trip(pdu):
    frames = segment(pdu)
    assert all(len(f) <= 8 for f in frames) and all(len(f) == 8 for f in frames[:-1])
    assert _feed_all(_reassembler()[1], frames) == pdu


def test_segmentation_layout():
    assert segment(b"\x01\x02\x03") == [b"\x03\x01\x02\x03"]
    frames = segment(bytes(range(20)))
    assert frames[0][:2] == b"\x10\x14" and [f[0] for f in frames[1:]] == [0x21, 0x22, 0x23]
    long = segment(bytes(243))
    assert [f[0] & 0xF for f in long[1:]][14:18] == [15, 0, 1, 2]  # the sequence nibble wraps


def test_reassembly_rejects_corruption_gaps_and_strays():
    stats, r = _reassembler()
    frames = segment(bytes(range(40)))
    corrupt = frames[:2] + [frames[2][:3] + b"\xee" + frames[2][4:]] + frames[3:]
    assert _feed_all(r, corrupt) is None and stats.bad_crc == 1
    assert r.feed(frames[0]) is None and r.feed(frames[2]) is None and stats.out_of_order == 1  # gap
    assert r.feed(frames[3]) is None and stats.out_of_order == 2  # stray consecutive frame
    assert r.feed(b"\x50\x01") is None and stats.unknown_frames == 1
    assert r.feed(b"\x05\x01") is None and stats.too_short == 1
    assert r.feed(b"\x1f\xff" + bytes(6)) is None and stats.too_long == 1
    assert _feed_all(r, frames) == bytes(range(40))


def test_reassembly_timeout_discards_a_half_message():
    clock = FakeClock()
    stats, r = _reassembler(clock, timeout=0.2)
    frames = segment(bytes(range(40)))
    r.feed(frames[0])
    r.feed(frames[1])
    clock.now = 0.5
    assert [r.feed(f) for f in frames[2:]] == [None] * (len(frames) - 2)
    assert stats.reassembly_timeouts == 1
    assert _feed_all(r, frames) == bytes(range(40))


# ------------------------------------------------------------------ IEC 61851 pilot


@pytest.mark.parametrize("amps, permille", [
    (0, 1000), (6, 100), (10, 166), (16, 266), (32, 533), (51, 850), (63, 892), (80, 960),
])
def test_duty_cycle_for_current(amps, permille):
    assert duty_permille(amps) == permille
    if amps:
        assert current_for_duty(permille) <= amps  # never more than offered
        assert current_for_duty(permille) >= amps - 0.6


@pytest.mark.parametrize("amps", [0.1, 5.9, 80.1, -1])
def test_offers_the_pilot_cannot_signal_are_refused(amps):
    assert check_offer(amps) is ResultReason.OUT_OF_RANGE
    with pytest.raises(ValueError):
        duty_permille(amps)


def test_vehicle_side_reading_of_the_duty_cycle():
    assert current_for_duty(50) is None  # 5 %: digital communication only
    assert current_for_duty(90) == 6.0
    assert current_for_duty(965) == 80.0
    assert current_for_duty(1000) is None


@pytest.mark.parametrize("ohms, rating", [
    (None, 0), (10_000, 0), (4500, 13), (1500, 13), (936.5, 13), (680, 20), (220, 32), (150, 32),
    (100, 63), (65, 63), (59, None), (0, None),
])
def test_proximity_pilot_rating(ohms, rating):
    assert pp_rating(ohms) == rating


# ------------------------------------------------------------------ the document


def test_protocol_document_tables_are_generated_from_the_code():
    text = (ROOT / "docs" / "evse-protocol.md").read_text()
    assert reference.stale_sections(text) == [], (
        "docs/evse-protocol.md is stale: run "
        "`python -m stationd.hw.evse_protocol.reference --update docs/evse-protocol.md`"
    )
