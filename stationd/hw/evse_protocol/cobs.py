"""Consistent Overhead Byte Stuffing (Cheshire & Baker): removes every 0x00 from a frame.

The encoded form is a sequence of groups ``code, data[code - 1]``: each group stands for its
data followed by an implied 0x00, except a group of code 0xFF (254 data bytes, no zero) and
the final group. Encoding never emits a trailing empty group after a full 0xFF group.
"""

from __future__ import annotations


class CobsError(ValueError):
    """The bytes are not a valid COBS encoding."""


def encode(data: bytes) -> bytes:
    """COBS-encode ``data``; the result contains no 0x00 and is at most len/254 + 1 longer."""
    out = bytearray()
    group = bytearray()
    after_full_group = False
    for byte in data:
        after_full_group = False
        if byte == 0:
            out.append(len(group) + 1)
            out += group
            group.clear()
            continue
        group.append(byte)
        if len(group) == 254:
            out.append(0xFF)
            out += group
            group.clear()
            after_full_group = True
    if not after_full_group:
        out.append(len(group) + 1)
        out += group
    return bytes(out)


def decode(data: bytes) -> bytes:
    """Decode one COBS frame (without its 0x00 delimiter); raises CobsError if malformed."""
    out = bytearray()
    pos = 0
    while pos < len(data):
        code = data[pos]
        end = pos + code
        if code == 0:
            raise CobsError(f"0x00 inside a frame at {pos}")
        if end > len(data):
            raise CobsError(f"group at {pos} runs past the end of the frame")
        group = data[pos + 1 : end]
        if 0 in group:
            raise CobsError("0x00 inside a frame")
        out += group
        pos = end
        if code != 0xFF and pos < len(data):
            out.append(0)
    return bytes(out)
