"""The RFID reader: card UIDs from a serial reader, one line each, to the core.

Wire format (the one most serial/USB-CDC 13.56 MHz readers use in "UID output" mode): the UID
as hexadecimal ASCII, 4, 7 or 10 bytes (8, 14 or 20 hex digits), ended by CR and/or LF, e.g.
``AEC78085\\r\\n``. The UID is passed on in lower case (``aec78085``), the form whitelists use.
A card held on the reader is reported once, not once per read (``repeat_s``). A reader that
cannot be opened, or goes away, is reported unhealthy (ReaderFailure on connector 0) and
retried with growing pauses.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable

log = logging.getLogger("stationd.hw.rfid")

UID_RE = re.compile(rb"(?:[0-9A-Fa-f]{2}){4}|(?:[0-9A-Fa-f]{2}){7}|(?:[0-9A-Fa-f]{2}){10}")
MAX_LINE = 64

OpenStream = Callable[[], Awaitable[tuple[asyncio.StreamReader, Callable[[], None]]]]  # (reader, close)


def parse_uid(line: bytes) -> str | None:
    """The UID on one line from the reader, or None when the line is not a UID."""
    text = line.strip()
    return text.decode("ascii").lower() if UID_RE.fullmatch(text) else None


class RfidReader:
    def __init__(
        self,
        open_stream: OpenStream,
        on_card: Callable[[str], None],
        on_health: Callable[[bool, str], None],
        *,
        repeat_s: float = 2.0,
        max_backoff: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ):
        self._open, self._on_card, self._on_health = open_stream, on_card, on_health
        self._repeat_s, self._max_backoff = repeat_s, max_backoff
        self._clock, self._sleep = clock, sleep
        self._last: tuple[str, float] | None = None
        self.rejected_lines = 0

    async def run(self) -> None:
        backoff = 1.0
        healthy: bool | None = None
        while True:
            try:
                reader, close = await self._open()
            except (OSError, ValueError) as exc:
                if healthy is not False:
                    self._on_health(False, f"cannot open the reader: {exc}")
                    healthy = False
                await self._sleep(backoff)
                backoff = min(backoff * 2, self._max_backoff)
                continue
            if healthy is not True:
                self._on_health(True, "")
                healthy = True
            backoff = 1.0
            try:
                await self._read_lines(reader)
                reason = "the reader closed the connection"
            except (OSError, asyncio.IncompleteReadError) as exc:
                reason = f"reading failed: {exc}"
            finally:
                close()
            self._on_health(False, reason)
            healthy = False
            await self._sleep(backoff)

    async def _read_lines(self, reader: asyncio.StreamReader) -> None:
        buffer = b""
        while True:
            chunk = await reader.read(256)
            if not chunk:
                return
            buffer += chunk
            *lines, buffer = re.split(rb"[\r\n]", buffer)
            if len(buffer) > MAX_LINE:  # garbage without line ends: drop it
                self.rejected_lines += 1
                buffer = b""
            for line in lines:
                if line.strip():
                    self._line(line)

    def _line(self, line: bytes) -> None:
        uid = parse_uid(line)
        if uid is None:
            self.rejected_lines += 1
            log.warning("RFID reader sent a line that is not a card UID (%d bytes); ignored", len(line))
            return
        now = self._clock()
        if self._last is not None and self._last[0] == uid and now - self._last[1] < self._repeat_s:
            self._last = (uid, now)
            return
        self._last = (uid, now)
        self._on_card(uid)
