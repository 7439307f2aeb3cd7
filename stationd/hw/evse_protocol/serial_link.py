"""The EVSE controller protocol over a serial line (RS-485 / TTL UART, 115200 8N1).

On the wire each frame is ``0x00 COBS(pdu | CRC-32 LE of pdu) 0x00``: the leading 0x00
ends any line noise before the frame, so a frame right after garbage still arrives.
Empty frames (two 0x00 in a row) are ignored. A frame longer than MAX_ENCODED_FRAME
bytes between delimiters is discarded up to the next 0x00.

open_serial() needs no extra package: pyserial (already a dependency) opens the device and
sets baud rate, 8N1, raw mode and an exclusive lock; asyncio's own pipe transports, which
accept character devices, then carry the bytes. That gives the plain StreamReader /
StreamWriter pair SerialLink takes everywhere (tests use in-memory streams or a pty).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import tty
from collections.abc import Callable

from ..serial_port import open_serial_streams, streams_over_fds
from . import cobs
from .errors import LinkClosed
from .link import BaseLink
from .messages import MAX_MESSAGE_SIZE
from .pdu import HEADER_SIZE, crc32_le
from .timing import ACK_TIMEOUT_S, RETRIES

log = logging.getLogger(__name__)

DELIMITER = b"\x00"
CRC_SIZE = 4
#: Largest encoded frame between two delimiters: header + largest message + CRC-32 + COBS
#: overhead fits with room to spare; anything longer is line noise or a broken sender.
MAX_ENCODED_FRAME = 256
assert HEADER_SIZE + MAX_MESSAGE_SIZE + CRC_SIZE + 2 <= MAX_ENCODED_FRAME
_READ_SIZE = 4096


def encode_frame(pdu: bytes) -> bytes:
    """The bytes put on the line for one PDU, delimiters included."""
    return DELIMITER + cobs.encode(pdu + crc32_le(pdu)) + DELIMITER


class SerialLink(BaseLink):
    """One end of a serial link (the same class on the station and on the controller side).

    Must be created inside a running event loop: it starts a task reading ``reader``.
    ``writer`` needs only ``write``, ``drain``, ``close`` and ``wait_closed``; each frame is
    written with exactly one ``write`` call.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *,
                 ack_timeout: float = ACK_TIMEOUT_S, retries: int = RETRIES,
                 rng: random.Random | None = None) -> None:
        super().__init__(ack_timeout=ack_timeout, retries=retries, rng=rng)
        self._reader = reader
        self._writer = writer
        self._close_callbacks: list[Callable[[], None]] = []
        self._rx_task = asyncio.get_running_loop().create_task(self._read_loop(), name="evse-serial-rx")

    async def close(self) -> None:
        """Stop reading, close the device / stream; pending and later calls raise LinkClosed."""
        if self._closed:
            return
        self._closed = True
        self._end(LinkClosed("link closed"))
        self._rx_task.cancel()
        await asyncio.gather(self._rx_task, return_exceptions=True)
        try:
            self._writer.close()
            await self._writer.wait_closed()
        except (OSError, ConnectionError, RuntimeError):
            pass
        for callback in self._close_callbacks:
            callback()

    async def _transmit_pdu(self, pdu: bytes) -> None:
        try:
            self._writer.write(encode_frame(pdu))
            if len(pdu) > HEADER_SIZE:  # acknowledgements (sent from the read loop) never wait
                await self._writer.drain()
        except (OSError, ConnectionError, RuntimeError) as exc:
            raise LinkClosed(f"serial write failed: {exc}") from exc
        self.stats.frames_sent += 1

    async def _read_loop(self) -> None:
        pending = bytearray()
        discarding = False  # inside an over-long frame: skip to the next delimiter
        try:
            while chunk := await self._reader.read(_READ_SIZE):
                start = 0
                while (end := chunk.find(DELIMITER, start)) != -1:
                    if not discarding:
                        pending += chunk[start:end]
                        if pending:
                            await self._frame_received(bytes(pending))
                    pending.clear()
                    discarding = False
                    start = end + 1
                if not discarding:
                    pending += chunk[start:]
                    if len(pending) > MAX_ENCODED_FRAME:
                        self.stats.too_long += 1
                        pending.clear()
                        discarding = True
        except (OSError, ConnectionError, asyncio.IncompleteReadError) as exc:
            log.info("evse serial link: read ended: %s", exc)
        self._end(LinkClosed("end of file on the serial line"))

    async def _frame_received(self, encoded: bytes) -> None:
        try:
            await self._check_frame(encoded)
        except Exception:  # a frame must never end the read loop
            log.exception("evse serial link: frame dropped")

    async def _check_frame(self, encoded: bytes) -> None:
        if len(encoded) > MAX_ENCODED_FRAME:
            self.stats.too_long += 1
            return
        try:
            raw = cobs.decode(encoded)
        except cobs.CobsError:
            self.stats.bad_cobs += 1
            return
        if len(raw) < HEADER_SIZE + CRC_SIZE:
            self.stats.too_short += 1
            return
        pdu = raw[:-CRC_SIZE]
        if crc32_le(pdu) != raw[-CRC_SIZE:]:
            self.stats.bad_crc += 1
            return
        await self._pdu_received(pdu)


async def open_serial(port: str, baudrate: int = 115200, **link_options) -> SerialLink:
    """Open a serial device (or a pty slave) by path: 8N1, raw, exclusive; returns a SerialLink."""
    reader, writer, close = await open_serial_streams(port, baudrate)
    return _link(reader, writer, close, **link_options)


async def open_pty_pair(**link_options) -> tuple[SerialLink, str]:
    """A pseudo-terminal pair in raw mode: a SerialLink on the master side and the slave's
    path, which the other side opens like a real device (``open_serial(path)``).

    The slave stays open (so the master never sees end of file) until the link is closed.
    """
    master_fd, slave_fd = os.openpty()
    tty.setraw(slave_fd)
    path = os.ttyname(slave_fd)
    link = _link(*await streams_over_fds(master_fd, os.dup(master_fd)), **link_options)
    link._close_callbacks.append(lambda: os.close(slave_fd))
    return link, path


def _link(reader, writer, close, **link_options) -> SerialLink:
    link = SerialLink(reader, writer, **link_options)
    link._close_callbacks.append(close)
    return link
