"""Serial ports as asyncio streams: a device (or pty slave) opened by path, 8N1, raw, exclusive.

pyserial opens and configures the device; asyncio's pipe transports carry the bytes, so no
extra serial-asyncio package is needed.
"""

from __future__ import annotations

import asyncio
import os
import termios
from collections.abc import Callable


async def open_serial_streams(port: str, baudrate: int = 115200) -> tuple[asyncio.StreamReader, PipeWriter, Callable[[], None]]:
    """(reader, writer, close) for the serial device at ``port``."""
    import serial  # pyserial

    device = serial.Serial(port, baudrate=baudrate, bytesize=8, parity="N", stopbits=1, exclusive=True)
    try:
        fd = device.fileno()
        attrs = termios.tcgetattr(fd)
        attrs[6][termios.VMIN], attrs[6][termios.VTIME] = 1, 0  # a read never returns 0 bytes
        termios.tcsetattr(fd, termios.TCSANOW, attrs)
        read_fd, write_fd = os.dup(fd), os.dup(fd)
    finally:
        device.close()  # the duplicated descriptors keep the device (and its lock) open
    return await streams_over_fds(read_fd, write_fd)


async def streams_over_fds(read_fd: int, write_fd: int) -> tuple[asyncio.StreamReader, PipeWriter, Callable[[], None]]:
    """(reader, writer, close) over two file descriptors (both owned by the streams)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    read_transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(read_fd, "rb", buffering=0))
    _, writer = await loop.connect_write_pipe(PipeWriter, os.fdopen(write_fd, "wb", buffering=0))
    return reader, writer, read_transport.close


class PipeWriter(asyncio.Protocol):
    """The writer half for a write-pipe transport: write / drain / close / wait_closed."""

    def __init__(self) -> None:
        self._transport: asyncio.WriteTransport | None = None
        self._lost = asyncio.get_running_loop().create_future()
        self._resumed = asyncio.Event()
        self._resumed.set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._lost.done():
            self._lost.set_result(exc)
        self._resumed.set()

    def pause_writing(self) -> None:
        self._resumed.clear()

    def resume_writing(self) -> None:
        self._resumed.set()

    def write(self, data: bytes) -> None:
        if self._transport is None or self._transport.is_closing():
            raise ConnectionResetError("serial device closed")
        self._transport.write(data)

    async def drain(self) -> None:
        await self._resumed.wait()
        if self._lost.done():
            raise ConnectionResetError("serial device closed")

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    async def wait_closed(self) -> None:
        await asyncio.shield(self._lost)
