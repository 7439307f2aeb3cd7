"""What the serial and the CAN link have in common: counters, ARQ, the receive queue."""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass
from typing import Any

from .arq import StopAndWait
from .errors import LinkClosed, ProtocolError
from .messages import Message, decode, default_reliable, encode
from .pdu import HEADER_SIZE, Pdu
from .timing import ACK_TIMEOUT_S, RETRIES

log = logging.getLogger(__name__)

#: Decoded messages waiting for receive(); beyond this the oldest is dropped (queue_overflows).
RECEIVE_QUEUE_SIZE = 256


@dataclass
class LinkStats:
    """Counters of one link. A "frame" is one link PDU (on CAN: however many CAN frames)."""

    frames_sent: int = 0  # including retransmissions and acknowledgements
    frames_received: int = 0  # passed the integrity checks (CRC), including acks and duplicates
    retransmissions: int = 0
    bad_crc: int = 0
    bad_cobs: int = 0
    too_short: int = 0
    too_long: int = 0
    duplicates: int = 0
    out_of_order: int = 0
    decode_errors: int = 0  # intact frame, but the message did not decode (ProtocolError)
    reassembly_timeouts: int = 0  # CAN only
    unknown_frames: int = 0  # CAN only: reserved frame kind
    queue_overflows: int = 0


class _EndOfStream:
    pass


_EOF = _EndOfStream()


class BaseLink:
    """ARQ + message codec + receive queue; subclasses move PDUs over their medium."""

    def __init__(self, *, ack_timeout: float = ACK_TIMEOUT_S, retries: int = RETRIES,
                 rng: random.Random | None = None) -> None:
        self.stats = LinkStats()
        self._arq = StopAndWait(self._transmit_pdu, self.stats, ack_timeout=ack_timeout, retries=retries, rng=rng)
        self._queue: asyncio.Queue[Any] = asyncio.Queue(RECEIVE_QUEUE_SIZE)
        self._closed = False
        self._ended = False

    async def send(self, msg: Message, *, reliable: bool | None = None) -> None:
        """Send one message. Reliable (default per message type): returns once acknowledged,
        raises LinkTimeout after all retransmissions. Raises LinkClosed after close()/EOF."""
        if self._closed or self._ended:
            raise LinkClosed("link is closed")
        body = encode(msg)
        await self._arq.send(body, reliable=default_reliable(msg) if reliable is None else reliable)

    async def receive(self) -> Message:
        """The next message from the peer; raises LinkClosed once the link has ended."""
        item = await self._queue.get()
        if item is _EOF:
            self._queue.put_nowait(_EOF)  # wake every later receive() too
            raise LinkClosed("link closed")
        return item

    @property
    def closed(self) -> bool:
        return self._closed or self._ended

    async def _transmit_pdu(self, pdu: bytes) -> None:
        raise NotImplementedError

    async def _pdu_received(self, data: bytes) -> None:
        """Called by the subclass with a PDU that passed its integrity checks."""
        if len(data) < HEADER_SIZE:
            self.stats.too_short += 1
            return
        self.stats.frames_received += 1
        body = await self._arq.receive(Pdu.unpack(data))
        if body is None:
            return
        try:
            msg = decode(body)
        except ProtocolError as exc:
            self.stats.decode_errors += 1
            log.warning("evse link: message dropped: %s", exc.reason)
            return
        self._deliver(msg)

    def _deliver(self, item: Any) -> None:
        if self._queue.full():
            self._queue.get_nowait()
            self.stats.queue_overflows += 1
        self._queue.put_nowait(item)

    def _end(self, error: LinkClosed) -> None:
        """The link is over (closed or EOF): fail pending sends, wake receivers."""
        if not self._ended:
            self._ended = True
            self._arq.fail(error)
            self._deliver(_EOF)
