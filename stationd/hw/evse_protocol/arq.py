"""Stop-and-wait ARQ over link PDUs, shared by the serial and the CAN link.

Sender: one reliable PDU in flight per direction. It carries the next sequence number
(1–255, wrapping, starting at a random value) and is retransmitted every ``ack_timeout``
until a PDU with ``ack == seq`` arrives, at most ``retries`` times; then LinkTimeout.
FLAG_SYN is set until the first acknowledgement, and again after a LinkTimeout, because
the sender then no longer knows what the receiver has seen.

Receiver: a reliable PDU is acknowledged at once with a pure-ack PDU (seq 0, empty body).
seq equal to the last accepted one → duplicate: acknowledged again, dropped. Accepted when
SYN is set, when nothing was accepted yet, or when seq is the successor of the last one;
anything else is out of order: dropped, not acknowledged.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from .errors import LinkError, LinkTimeout
from .pdu import FLAG_SYN, Pdu

if TYPE_CHECKING:
    from .link import LinkStats

log = logging.getLogger(__name__)


def next_seq(seq: int) -> int:
    return seq % 255 + 1


class StopAndWait:
    def __init__(
        self,
        transmit: Callable[[bytes], Awaitable[None]],
        stats: LinkStats,
        *,
        ack_timeout: float,
        retries: int,
        rng: random.Random | None = None,
    ) -> None:
        if ack_timeout <= 0 or retries < 0:
            raise ValueError("ack_timeout must be > 0 and retries >= 0")
        self._transmit = transmit
        self._stats = stats
        self._ack_timeout = ack_timeout
        self._retries = retries
        self._lock = asyncio.Lock()
        self._tx_seq = (rng or random.Random()).randint(1, 255)
        self._syn = True
        self._awaiting: int | None = None
        self._acked = asyncio.Event()
        self._failure: LinkError | None = None
        self._rx_last = 0
        self._rx_last_syn = False

    async def send(self, body: bytes, *, reliable: bool) -> None:
        """Transmit one message; for a reliable one, return once it is acknowledged."""
        if self._failure:
            raise self._failure
        if not reliable:
            await self._transmit(Pdu(0, 0, 0, body).pack())
            return
        async with self._lock:
            if self._failure:  # closed while waiting for the previous reliable send
                raise self._failure
            seq, self._tx_seq = self._tx_seq, next_seq(self._tx_seq)
            frame = Pdu(seq, 0, FLAG_SYN if self._syn else 0, body).pack()
            self._awaiting, self._acked = seq, asyncio.Event()
            try:
                for attempt in range(self._retries + 1):
                    if attempt:
                        self._stats.retransmissions += 1
                    await self._transmit(frame)
                    try:
                        async with asyncio.timeout(self._ack_timeout):
                            await self._acked.wait()
                    except TimeoutError:
                        continue
                    if self._failure:
                        raise self._failure
                    self._syn = False
                    return
                raise LinkTimeout(f"seq {seq} not acknowledged after {self._retries + 1} transmissions")
            except BaseException:  # timeout, send error, cancellation: resynchronise next time
                self._syn = True
                raise
            finally:
                self._awaiting = None

    async def receive(self, pdu: Pdu) -> bytes | None:
        """Process a received PDU; returns the message bytes to deliver, or None."""
        if pdu.ack and pdu.ack == self._awaiting:
            self._acked.set()
        if pdu.seq == 0:
            return pdu.body or None
        syn = bool(pdu.flags & FLAG_SYN)
        if self._rx_last and pdu.seq == self._rx_last and (not syn or self._rx_last_syn):
            self._stats.duplicates += 1
            await self._send_ack(pdu.seq)
            return None
        if not (syn or self._rx_last == 0 or pdu.seq == next_seq(self._rx_last)):
            self._stats.out_of_order += 1
            return None
        self._rx_last, self._rx_last_syn = pdu.seq, syn
        await self._send_ack(pdu.seq)
        return pdu.body

    def fail(self, error: LinkError) -> None:
        """Make the pending and all later sends raise ``error`` (link closed)."""
        self._failure = error
        self._acked.set()

    async def _send_ack(self, seq: int) -> None:
        try:
            await self._transmit(Pdu(0, seq, 0, b"").pack())
        except LinkError as exc:  # the peer retransmits; nothing else to do here
            log.warning("evse link: acknowledgement of seq %d not sent: %s", seq, exc)

