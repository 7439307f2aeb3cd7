"""The EVSE controller protocol over classic CAN (11-bit identifiers, 8 data bytes).

Identifier = function << 6 | node_id (node 1–63, one per controller). The function says
the direction and the priority class (lower identifier = wins arbitration); the table is
CAN_FUNCTIONS. Link PDUs (the same seq|ack|flags|message as on the serial line) are split
into CAN frames by can_tp; acknowledgements travel on the urgent function of their sender.

Several links may share one bus object (a station with several controllers on one CAN
interface): they share one can.Notifier + AsyncBufferedReader that routes frames by node
id and direction. The caller owns the bus and shuts it down after closing the links.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, Literal

import can

from .can_tp import Reassembler, segment
from .enums import MessageType, Sender
from .errors import LinkClosed, LinkDown
from .link import BaseLink
from .messages import MAX_MESSAGE_SIZE, Message, spec_of
from .pdu import HEADER_SIZE
from .timing import ACK_TIMEOUT_S, REASSEMBLY_TIMEOUT_S, RETRIES

log = logging.getLogger(__name__)

Role = Literal["station", "controller"]
NODE_MIN, NODE_MAX = 1, 63
MAX_PDU = HEADER_SIZE + MAX_MESSAGE_SIZE


@dataclass(frozen=True)
class CanFunction:
    code: int
    sender: Sender
    name: str
    types: tuple[MessageType, ...]
    carries_acks: bool = False


#: Function codes (bits 10–6 of the identifier). 0 and unlisted codes are reserved.
CAN_FUNCTIONS: tuple[CanFunction, ...] = (
    CanFunction(1, Sender.STATION, "safety commands",
                (MessageType.HEARTBEAT, MessageType.SET_CONTACTOR, MessageType.SET_CURRENT), carries_acks=True),
    CanFunction(2, Sender.CONTROLLER, "events and results",
                (MessageType.EVENT, MessageType.COMMAND_RESULT), carries_acks=True),
    CanFunction(3, Sender.STATION, "other commands",
                (MessageType.SET_LOCK, MessageType.RESET, MessageType.REQUEST_HELLO)),
    CanFunction(4, Sender.CONTROLLER, "status", (MessageType.STATUS, MessageType.HELLO)),
    CanFunction(6, Sender.STATION, "firmware update",
                (MessageType.BOOT_BEGIN, MessageType.BOOT_CHUNK, MessageType.BOOT_COMMIT, MessageType.BOOT_ABORT)),
    CanFunction(7, Sender.CONTROLLER, "firmware update status", (MessageType.BOOT_STATUS,)),
)
_FUNCTION_BY_TYPE = {t: f.code for f in CAN_FUNCTIONS for t in f.types}
_ACK_FUNCTION = {f.sender: f.code for f in CAN_FUNCTIONS if f.carries_acks}
_SENDER_BY_FUNCTION = {f.code: f.sender for f in CAN_FUNCTIONS}
assert set(_FUNCTION_BY_TYPE) == set(MessageType)


def can_id(function: int, node_id: int) -> int:
    return function << 6 | node_id


def split_id(arbitration_id: int) -> tuple[int, int]:
    """(function, node_id) of an 11-bit identifier."""
    return arbitration_id >> 6, arbitration_id & 0x3F


class CanLink(BaseLink):
    """One end of the link to the controller ``node_id``: role "station" or "controller".

    Must be created inside a running event loop.
    """

    def __init__(self, bus: can.BusABC, node_id: int, *, role: Role,
                 ack_timeout: float = ACK_TIMEOUT_S, retries: int = RETRIES,
                 reassembly_timeout: float = REASSEMBLY_TIMEOUT_S,
                 clock: Callable[[], float] = time.monotonic, rng: random.Random | None = None) -> None:
        if not NODE_MIN <= node_id <= NODE_MAX:
            raise ValueError(f"node_id must be {NODE_MIN}–{NODE_MAX}, got {node_id}")
        if role not in ("station", "controller"):
            raise ValueError(f"role must be 'station' or 'controller', got {role!r}")
        super().__init__(ack_timeout=ack_timeout, retries=retries, rng=rng)
        self.bus = bus
        self.node_id = node_id
        self.role: Role = role
        self._sender = Sender.STATION if role == "station" else Sender.CONTROLLER
        self._reassembly_timeout = reassembly_timeout
        self._clock = clock
        self._reassemblers: dict[int, Reassembler] = {}
        self._hub = _BusHub.attach(bus, self)

    async def send(self, msg: Message, *, reliable: bool | None = None) -> None:
        if spec_of(msg).sender is not self._sender:
            raise ValueError(f"a {self.role} does not send {type(msg).__name__}")
        await super().send(msg, reliable=reliable)

    async def close(self) -> None:
        """Detach from the bus (the bus itself stays open); later calls raise LinkClosed."""
        if self._closed:
            return
        self._closed = True
        self._end(LinkClosed("link closed"))
        self._hub.detach(self)

    async def _transmit_pdu(self, pdu: bytes) -> None:
        body = pdu[HEADER_SIZE:]
        function = _FUNCTION_BY_TYPE.get(body[0]) if body else None
        arbitration_id = can_id(function or _ACK_FUNCTION[self._sender], self.node_id)
        try:
            for data in segment(pdu):  # no await in here: frames of one PDU stay together
                self.bus.send(can.Message(arbitration_id=arbitration_id, data=data, is_extended_id=False))
        except can.CanError as exc:
            raise LinkDown(f"CAN send failed: {exc}") from exc
        self.stats.frames_sent += 1

    async def _frame_received(self, frame: can.Message) -> None:
        reassembler = self._reassemblers.get(frame.arbitration_id)
        if reassembler is None:
            reassembler = self._reassemblers[frame.arbitration_id] = Reassembler(
                self.stats, max_pdu=MAX_PDU, timeout=self._reassembly_timeout, clock=self._clock)
        pdu = reassembler.feed(bytes(frame.data))
        if pdu is not None:
            await self._pdu_received(pdu)


class _BusHub:
    """One Notifier + AsyncBufferedReader per bus object, routing frames to the links on it."""

    _hubs: ClassVar[dict[int, _BusHub]] = {}

    @classmethod
    def attach(cls, bus: can.BusABC, link: CanLink) -> _BusHub:
        hub = cls._hubs.get(id(bus))
        if hub is not None and not hub._serves(bus):
            hub._stop()
            hub = None
        if hub is None:
            hub = cls._hubs[id(bus)] = cls(bus)
        key = (link.node_id, link.role)
        if key in hub._links:
            raise ValueError(f"a {link.role} link for node {link.node_id} is already open on this bus")
        hub._links[key] = link
        return hub

    def __init__(self, bus: can.BusABC) -> None:
        loop = asyncio.get_running_loop()
        self._bus = bus
        self._links: dict[tuple[int, Role], CanLink] = {}
        self._reader = can.AsyncBufferedReader()
        existing = can.Notifier.find_instances(bus)
        if existing:  # somebody else's notifier: it must have been created with this loop
            self._notifier, self._owns_notifier = existing[0], False
            self._notifier.add_listener(self._reader)
        else:
            self._notifier, self._owns_notifier = can.Notifier(bus, [self._reader], timeout=0.05, loop=loop), True
        self._loop = loop
        self._task = loop.create_task(self._route(), name="evse-can-rx")

    def _serves(self, bus: can.BusABC) -> bool:
        """False for a leftover hub (links never closed, another event loop, a recycled id)."""
        return self._bus is bus and self._loop is asyncio.get_running_loop() and not self._task.done()

    def detach(self, link: CanLink) -> None:
        self._links.pop((link.node_id, link.role), None)
        if self._links:
            return
        self._hubs.pop(id(self._bus), None)
        self._stop()

    def _stop(self) -> None:
        try:
            self._task.cancel()
            if self._owns_notifier:
                self._notifier.stop()
            else:
                self._notifier.remove_listener(self._reader)
        except (RuntimeError, ValueError) as exc:  # a leftover hub of a closed event loop
            log.debug("evse can link: notifier already gone: %s", exc)

    async def _route(self) -> None:
        async for frame in self._reader:
            if frame.is_error_frame or frame.is_remote_frame or frame.is_extended_id or len(frame.data) > 8:
                continue
            function, node_id = split_id(frame.arbitration_id)
            sender = _SENDER_BY_FUNCTION.get(function)
            if sender is None:
                continue
            link = self._links.get((node_id, "controller" if sender is Sender.STATION else "station"))
            if link is None:
                continue
            try:
                await link._frame_received(frame)
            except Exception:  # a bad frame must never stop the bus
                log.exception("evse can link: frame 0x%03x dropped", frame.arbitration_id)
