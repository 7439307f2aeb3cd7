"""Two pseudo-terminals joined back to back, for serial protocols without hardware.

``os.openpty()`` twice, both slave ends in raw mode, the master ends bridged in the event loop
with ``loop.add_reader``: bytes written to ``path_a`` come out of ``path_b`` and the other way
round — a null-modem cable between two tty paths. A server opens one path, a client the other.
Pure Python, no socat needed.

    async with PtyBridge() as bridge:
        server = await serve_rtu(meters, bridge.path_a)
        client = AsyncModbusSerialClient(bridge.path_b, ...)
"""

from __future__ import annotations

import asyncio
import errno
import os
import tty
from typing import Self

__all__ = ["PtyBridge"]


class PtyBridge:
    def __init__(self) -> None:
        self._fds: list[int] = []
        self._masters: tuple[int, int] | None = None
        self._pending: dict[int, bytearray] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self.path_a = ""
        self.path_b = ""

    async def start(self) -> Self:
        """Open both pseudo-terminals and start copying; call inside the running loop."""
        if self._masters is not None:
            raise RuntimeError("bridge already started")
        self._loop = asyncio.get_running_loop()
        master_a, slave_a = os.openpty()
        master_b, slave_b = os.openpty()
        self._fds = [master_a, slave_a, master_b, slave_b]
        for slave in (slave_a, slave_b):
            tty.setraw(slave)  # no echo, no line discipline: bytes pass unchanged
        for master in (master_a, master_b):
            os.set_blocking(master, False)
        # The slave ends stay open here as well, so a peer closing and reopening its path
        # never leaves the master without a slave (which would make reads fail with EIO).
        self.path_a, self.path_b = os.ttyname(slave_a), os.ttyname(slave_b)
        self._masters = (master_a, master_b)
        self._pending = {master_a: bytearray(), master_b: bytearray()}
        self._loop.add_reader(master_a, self._forward, master_a, master_b)
        self._loop.add_reader(master_b, self._forward, master_b, master_a)
        return self

    def _forward(self, source: int, target: int) -> None:
        try:
            data = os.read(source, 4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as error:
            if error.errno == errno.EIO:  # no process has the slave open right now
                return
            raise
        if data:
            self._pending[target] += data
            self._flush(target)

    def _flush(self, target: int) -> None:
        assert self._loop is not None
        buffer = self._pending[target]
        while buffer:
            try:
                written = os.write(target, buffer)
            except (BlockingIOError, InterruptedError):
                self._loop.add_writer(target, self._flush, target)
                return
            del buffer[:written]
        self._loop.remove_writer(target)

    def close(self) -> None:
        if self._masters is not None and self._loop is not None:
            for master in self._masters:
                self._loop.remove_reader(master)
                self._loop.remove_writer(master)
        self._masters = None
        for fd in self._fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self._fds = []

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()
