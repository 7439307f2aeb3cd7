"""The link PDU shared by the serial and the CAN transport, and the CRC-32 helper.

    seq u8 | ack u8 | flags u8 | message (0 or more bytes)

seq 0 = unreliable (never acknowledged); 1–255 = reliable, acknowledged by a frame whose
``ack`` carries that seq. ack 0 = acknowledges nothing. A PDU with an empty message is a
pure acknowledgement.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

HEADER_SIZE = 3
#: flags bit 0: the sender's sequence numbers restart here (first reliable frame after start-up
#: or after a LinkTimeout); the receiver accepts this seq whatever it saw before.
FLAG_SYN = 0x01


def crc32(data: bytes) -> int:
    """CRC-32/ISO-HDLC (zlib, Ethernet): poly 0x04C11DB7 reflected, init and xorout 0xFFFFFFFF."""
    return zlib.crc32(data) & 0xFFFFFFFF


def crc32_le(data: bytes) -> bytes:
    """CRC-32 of ``data`` as 4 little-endian bytes (how it is appended on the wire)."""
    return crc32(data).to_bytes(4, "little")


@dataclass(frozen=True)
class Pdu:
    seq: int
    ack: int
    flags: int
    body: bytes

    def pack(self) -> bytes:
        return bytes((self.seq, self.ack, self.flags)) + self.body

    @classmethod
    def unpack(cls, data: bytes) -> Pdu:
        """Split a PDU of at least HEADER_SIZE bytes (the caller checks the length)."""
        return cls(data[0], data[1], data[2], bytes(data[HEADER_SIZE:]))
