"""Segmentation of link PDUs into classic CAN frames (8 data bytes) and reassembly.

Byte 0 of every CAN frame is the frame control byte (high nibble = kind):

    single frame       0x0L          L = PDU length 1–7, then the PDU
    first frame        0x1H LL       12-bit PDU length (H = high nibble, LL = low byte), then 6 bytes
    consecutive frame  0x2S          S = sequence 1, 2 … 15, 0, 1 …, then up to 7 bytes

A segmented PDU is followed by its CRC-32 (4 bytes LE) inside the segmented stream, so the
receiver checks the reassembled whole (the CAN frame CRC only covers single frames).
Every frame but the last consecutive one carries 8 bytes. Frames of one PDU go back to
back on one identifier; a new first or single frame abandons an unfinished PDU.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from .pdu import crc32_le

if TYPE_CHECKING:
    from .link import LinkStats

SINGLE, FIRST, CONSECUTIVE = 0x0, 0x1, 0x2
SINGLE_MAX = 7
FIRST_DATA = 6
CONSECUTIVE_DATA = 7
MAX_SEGMENTED_PDU = 0xFFF


def segment(pdu: bytes) -> list[bytes]:
    """The CAN data fields carrying ``pdu`` (1 to MAX_SEGMENTED_PDU bytes)."""
    if not 1 <= len(pdu) <= MAX_SEGMENTED_PDU:
        raise ValueError(f"PDU of {len(pdu)} bytes cannot be segmented")
    if len(pdu) <= SINGLE_MAX:
        return [bytes([SINGLE << 4 | len(pdu)]) + pdu]
    stream = pdu + crc32_le(pdu)
    frames = [bytes([FIRST << 4 | len(pdu) >> 8, len(pdu) & 0xFF]) + stream[:FIRST_DATA]]
    sequence = 1
    for start in range(FIRST_DATA, len(stream), CONSECUTIVE_DATA):
        frames.append(bytes([CONSECUTIVE << 4 | sequence]) + stream[start : start + CONSECUTIVE_DATA])
        sequence = (sequence + 1) & 0xF
    return frames


class Reassembler:
    """Rebuilds PDUs from the frames of one CAN identifier, counting what it rejects."""

    def __init__(self, stats: LinkStats, *, max_pdu: int, timeout: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._stats = stats
        self._max_pdu = max_pdu
        self._timeout = timeout
        self._clock = clock
        self._buffer: bytearray | None = None
        self._needed = 0
        self._sequence = 0
        self._last = 0.0

    def feed(self, data: bytes) -> bytes | None:
        """Process one CAN data field; returns a complete, CRC-checked PDU or None."""
        now = self._clock()
        if self._buffer is not None and now - self._last > self._timeout:
            self._buffer = None
            self._stats.reassembly_timeouts += 1
        if not data:
            self._stats.too_short += 1
            return None
        kind, low = data[0] >> 4, data[0] & 0xF
        if kind == SINGLE:
            return self._single(data, low)
        if kind == FIRST:
            return self._first(data, low, now)
        if kind == CONSECUTIVE:
            return self._consecutive(data, low, now)
        self._stats.unknown_frames += 1
        return None

    def _abandon(self) -> None:
        if self._buffer is not None:
            self._buffer = None
            self._stats.out_of_order += 1

    def _single(self, data: bytes, length: int) -> bytes | None:
        self._abandon()
        if length == 0 or len(data) < 1 + length:
            self._stats.too_short += 1
            return None
        if length > SINGLE_MAX:
            self._stats.too_long += 1
            return None
        return bytes(data[1 : 1 + length])

    def _first(self, data: bytes, high: int, now: float) -> bytes | None:
        self._abandon()
        if len(data) < 2 + FIRST_DATA:
            self._stats.too_short += 1
            return None
        length = high << 8 | data[1]
        if length > self._max_pdu:
            self._stats.too_long += 1
            return None
        if length == 0:
            self._stats.too_short += 1
            return None
        self._buffer = bytearray(data[2 : 2 + FIRST_DATA])
        self._needed = length + 4
        self._sequence = 1
        self._last = now
        return self._complete()

    def _consecutive(self, data: bytes, sequence: int, now: float) -> bytes | None:
        if self._buffer is None or sequence != self._sequence:
            self._buffer = None  # stray frame, or a gap in the sequence: the PDU is lost
            self._stats.out_of_order += 1
            return None
        take = min(CONSECUTIVE_DATA, self._needed - len(self._buffer))
        if len(data) < 1 + take:
            self._buffer = None
            self._stats.too_short += 1
            return None
        self._buffer += data[1 : 1 + take]
        self._sequence = (sequence + 1) & 0xF
        self._last = now
        return self._complete()

    def _complete(self) -> bytes | None:
        assert self._buffer is not None
        if len(self._buffer) < self._needed:
            return None
        stream = bytes(self._buffer[: self._needed])
        self._buffer = None
        pdu, crc = stream[:-4], stream[-4:]
        if crc32_le(pdu) != crc:
            self._stats.bad_crc += 1
            return None
        return pdu
