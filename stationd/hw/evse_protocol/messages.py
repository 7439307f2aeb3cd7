"""The messages of the EVSE controller protocol and their codec.

One frozen dataclass per message. The first byte of every encoded message is its
MessageType; the fields follow in declaration order, little-endian, as described by the
``spec(...)`` metadata of each field. ``encode``/``decode`` walk those declarations, so the
byte tables in docs/evse-protocol.md are rendered from the same data.

Compatibility rule (see the document, "Versioning"): a fixed-size message may grow by
appending fields; a receiver ignores bytes after the fields it knows. A message with a
variable-length tail (BootChunk) never grows.
"""

# ruff: noqa: RUF009 - spec() is dataclasses.field() with the wire description as metadata

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

from .enums import (
    PP_RATINGS_A,
    BootError,
    BootState,
    ConnectorType,
    CpState,
    EventCode,
    LockState,
    MessageType,
    RcdState,
    ResetKind,
    ResultReason,
    Sender,
)
from .errors import ProtocolError
from .wire import (
    BOOL,
    I32,
    U16,
    U32,
    VERSION,
    Ascii,
    Choice,
    Enum,
    FaultSet,
    Fixed,
    Int,
    IntTuple,
    Tail,
    Wire,
    spec,
)

#: Current protocol version (major, minor), sent in Hello.
PROTOCOL_VERSION: tuple[int, int] = (1, 0)
#: Largest encoded message, type byte included (serial and CAN limits derive from it).
MAX_MESSAGE_SIZE = 240
#: Largest BootChunk payload.
MAX_CHUNK_SIZE = 128


@dataclass(frozen=True)
class FieldSpec:
    name: str
    wire: Wire
    doc: str
    unit: str
    range: str


@dataclass(frozen=True)
class MessageSpec:
    """Everything the codec, the links and the document need to know about one message."""

    type: MessageType
    cls: type
    sender: Sender
    reliable: bool
    answer: str
    fields: tuple[FieldSpec, ...]

    @property
    def fixed_size(self) -> int:
        """Size of the type byte plus every fixed-size field."""
        return 1 + sum(f.wire.size or 0 for f in self.fields)

    @property
    def tail(self) -> Tail | None:
        last = self.fields[-1].wire if self.fields else None
        return last if isinstance(last, Tail) else None

    @property
    def max_size(self) -> int:
        tail = self.tail
        return self.fixed_size + (tail.max_size if tail else 0)


SPECS: dict[MessageType, MessageSpec] = {}
_SPEC_BY_CLASS: dict[type, MessageSpec] = {}


def message(type_: MessageType, sender: Sender, *, reliable: bool, answer: str = "—"):
    """Class decorator registering a message dataclass under its type byte."""

    def register(cls: type) -> type:
        fields = tuple(
            FieldSpec(f.name, f.metadata["wire"], f.metadata["doc"], f.metadata["unit"], f.metadata["range"])
            for f in dataclasses.fields(cls)
        )
        entry = MessageSpec(type_, cls, sender, reliable, answer, fields)
        assert entry.max_size <= MAX_MESSAGE_SIZE, cls
        assert all(f.wire.size is not None for f in fields[:-1]), cls
        assert bool(type_ & 0x80) == (sender is Sender.CONTROLLER), cls
        cls.TYPE = type_
        cls.SENDER = sender
        SPECS[type_] = _SPEC_BY_CLASS[cls] = entry
        return cls

    return register


# ---------------------------------------------------------------- station → controller


@message(MessageType.REQUEST_HELLO, Sender.STATION, reliable=True, answer="Hello")
@dataclass(frozen=True)
class RequestHello:
    """Ask the controller to send its Hello again."""

    TYPE: ClassVar[MessageType]


@message(MessageType.HEARTBEAT, Sender.STATION, reliable=False)
@dataclass(frozen=True)
class Heartbeat:
    """Station keep-alive, every 500 ms. Without one for 2 s the controller goes safe."""

    counter: int = spec(U16, doc="increments by one per heartbeat, wraps at 65535")
    TYPE: ClassVar[MessageType]


@message(MessageType.SET_CURRENT, Sender.STATION, reliable=True, answer="CommandResult")
@dataclass(frozen=True)
class SetCurrent:
    """Set the current offered on the control pilot (PWM). 0 = no PWM (steady +12 V)."""

    amps: float = spec(Fixed("H", 10), unit="A", doc="offered current per phase; 0 = no PWM",
                       range_doc="0 or 6.0–80.0 (other values: NAK OUT_OF_RANGE)")
    TYPE: ClassVar[MessageType]


@message(MessageType.SET_CONTACTOR, Sender.STATION, reliable=True, answer="CommandResult")
@dataclass(frozen=True)
class SetContactor:
    """Close or open the power contactor. Closing is allowed only in CP state C or D."""

    closed: bool = spec(BOOL, doc="true = close, false = open")
    TYPE: ClassVar[MessageType]


@message(MessageType.SET_LOCK, Sender.STATION, reliable=True, answer="CommandResult")
@dataclass(frozen=True)
class SetLock:
    """Lock or unlock the cable in the socket outlet."""

    locked: bool = spec(BOOL, doc="true = lock, false = unlock")
    TYPE: ClassVar[MessageType]


@message(MessageType.RESET, Sender.STATION, reliable=True, answer="CommandResult")
@dataclass(frozen=True)
class Reset:
    """Restart the controller or clear its latched faults."""

    kind: ResetKind = spec(Enum(ResetKind), doc="what to reset")
    TYPE: ClassVar[MessageType]


@message(MessageType.BOOT_BEGIN, Sender.STATION, reliable=True, answer="BootStatus")
@dataclass(frozen=True)
class BootBegin:
    """Start a firmware update; any update in progress is discarded."""

    size: int = spec(U32, unit="byte", doc="size of the whole image")
    crc32: int = spec(U32, doc="CRC-32 of the whole image")
    version: tuple[int, int, int] = spec(VERSION, doc="firmware version of the image")
    forced: bool = spec(BOOL, doc="allow a downgrade (version lower than the running one)")
    TYPE: ClassVar[MessageType]


@message(MessageType.BOOT_CHUNK, Sender.STATION, reliable=True, answer="BootStatus")
@dataclass(frozen=True)
class BootChunk:
    """One piece of the image, sent in order; the next one only after the BootStatus reply."""

    offset: int = spec(U32, unit="byte", doc="position of `data` in the image")
    crc32: int = spec(U32, doc="CRC-32 of `data`")
    data: bytes = spec(Tail(1, MAX_CHUNK_SIZE), doc="image bytes")
    TYPE: ClassVar[MessageType]


@message(MessageType.BOOT_COMMIT, Sender.STATION, reliable=True, answer="BootStatus")
@dataclass(frozen=True)
class BootCommit:
    """Verify the received image (size, CRC-32, version rule) and switch to it."""

    TYPE: ClassVar[MessageType]


@message(MessageType.BOOT_ABORT, Sender.STATION, reliable=True, answer="BootStatus")
@dataclass(frozen=True)
class BootAbort:
    """Discard a partly received image; the running firmware stays."""

    TYPE: ClassVar[MessageType]


# ---------------------------------------------------------------- controller → station


@message(MessageType.HELLO, Sender.CONTROLLER, reliable=True)
@dataclass(frozen=True)
class Hello:
    """Identity and capabilities; sent after start-up and in answer to RequestHello."""

    protocol_version: tuple[int, int] = spec(IntTuple("B", 2, "(major, minor)"), doc="protocol version spoken")
    hardware_id: str = spec(Ascii(16), doc="board serial / hardware id")
    firmware_version: tuple[int, int, int] = spec(VERSION, doc="running application version")
    connector_type: ConnectorType = spec(Enum(ConnectorType), doc="what is fitted")
    max_current_a: float = spec(Fixed("H", 10), unit="A", doc="hardware limit (contactor, wiring, tethered cable)")
    phases: int = spec(Int("B", 1, 3), doc="phases switched by the contactor")
    bootloader_version: tuple[int, int, int] = spec(VERSION, doc="bootloader version")
    TYPE: ClassVar[MessageType]


@message(MessageType.STATUS, Sender.CONTROLLER, reliable=False)
@dataclass(frozen=True)
class Status:
    """Complete controller state; every 1 s and at once on every change."""

    cp_state: CpState = spec(Enum(CpState), doc="control pilot state")
    pp_current_a: int = spec(Choice(PP_RATINGS_A), unit="A", doc="cable rating from PP; 0 = no cable / tethered")
    pwm_duty_permille: int = spec(Int("H", 0, 1000), unit="‰",
                                  doc="PWM duty cycle; 1000 = steady +12 V (no PWM), 0 = steady −12 V (state F)")
    offered_current_a: float = spec(Fixed("H", 10), unit="A", doc="current signalled by the PWM; 0 = none")
    contactor_commanded: bool = spec(BOOL, doc="contactor command in force (false after a safety opening)")
    contactor_closed: bool = spec(BOOL, doc="contactor feedback (auxiliary contact)")
    lock_state: LockState = spec(Enum(LockState), doc="cable lock")
    rcd_state: RcdState = spec(Enum(RcdState), doc="residual current device")
    temperature_c: float = spec(Fixed("h", 10), unit="°C", doc="hottest temperature sensor")
    door_open: bool = spec(BOOL, doc="housing door / tamper contact open")
    faults: frozenset[str] = spec(FaultSet(), doc="active fault bits")
    uptime_s: int = spec(U32, unit="s", doc="seconds since the controller started")
    TYPE: ClassVar[MessageType]


@message(MessageType.EVENT, Sender.CONTROLLER, reliable=True)
@dataclass(frozen=True)
class Event:
    """Something happened that the station must not miss (see Event codes)."""

    code: EventCode = spec(Enum(EventCode), doc="what happened")
    value: int = spec(I32, doc="meaning depends on `code`")
    TYPE: ClassVar[MessageType]


@message(MessageType.COMMAND_RESULT, Sender.CONTROLLER, reliable=True)
@dataclass(frozen=True)
class CommandResult:
    """Answer to SetCurrent / SetContactor / SetLock / Reset: done (OK) or refused (reason)."""

    command_type: MessageType = spec(Enum(MessageType), doc="type byte of the command answered")
    reason: ResultReason = spec(Enum(ResultReason), doc="OK, or why the command was refused")
    TYPE: ClassVar[MessageType]

    @property
    def ok(self) -> bool:
        return self.reason == ResultReason.OK


@message(MessageType.BOOT_STATUS, Sender.CONTROLLER, reliable=True)
@dataclass(frozen=True)
class BootStatus:
    """Answer to every Boot* message: state, progress and error."""

    state: BootState = spec(Enum(BootState), doc="update state")
    offset: int = spec(U32, unit="byte", doc="bytes received and written so far = next expected offset")
    error: BootError = spec(Enum(BootError), doc="why the last Boot* message was refused")
    TYPE: ClassVar[MessageType]


Message = (
    RequestHello | Heartbeat | SetCurrent | SetContactor | SetLock | Reset | BootBegin | BootChunk | BootCommit
    | BootAbort | Hello | Status | Event | CommandResult | BootStatus
)


def spec_of(msg_or_cls: Any) -> MessageSpec:
    """The MessageSpec of a message instance or class."""
    cls = msg_or_cls if isinstance(msg_or_cls, type) else type(msg_or_cls)
    try:
        return _SPEC_BY_CLASS[cls]
    except KeyError:
        raise ProtocolError(f"{cls.__name__} is not an EVSE protocol message") from None


def default_reliable(msg: Any) -> bool:
    """Whether a message is sent reliably (acknowledged, retransmitted) unless told otherwise."""
    return spec_of(msg).reliable


def encode(msg: Any) -> bytes:
    """Encode a message; raises ProtocolError if a field does not fit its wire type."""
    entry = spec_of(msg)
    out = bytearray([entry.type])
    for f in entry.fields:
        try:
            out += f.wire.pack(getattr(msg, f.name))
        except ProtocolError as exc:
            raise ProtocolError(f"{entry.cls.__name__}.{f.name}: {exc.reason}") from None
    return bytes(out)


def decode(data: bytes) -> Message:
    """Decode one message; raises ProtocolError (and nothing else) for any bad input."""
    try:
        return _decode(bytes(data))
    except ProtocolError:
        raise
    except Exception as exc:  # noqa: BLE001 - the promise is "only ProtocolError"
        raise ProtocolError(f"undecodable message: {exc}") from None


def _decode(data: bytes) -> Message:
    if not data:
        raise ProtocolError("empty message")
    try:
        entry = SPECS[MessageType(data[0])]
    except ValueError:
        raise ProtocolError(f"unknown message type 0x{data[0]:02x}") from None
    name = entry.cls.__name__
    if len(data) < entry.fixed_size + (entry.tail.min_size if entry.tail else 0):
        raise ProtocolError(f"{name}: {len(data)} bytes, at least {entry.fixed_size} expected")
    if entry.tail and len(data) > entry.max_size:
        raise ProtocolError(f"{name}: {len(data)} bytes, at most {entry.max_size} allowed")
    values = {}
    offset = 1
    for f in entry.fields:
        end = len(data) if f.wire.size is None else offset + f.wire.size
        try:
            values[f.name] = f.wire.unpack(data[offset:end])
        except ProtocolError as exc:
            raise ProtocolError(f"{name}.{f.name}: {exc.reason}") from None
        offset = end
    # bytes after the known fields belong to a newer minor version and are ignored
    return entry.cls(**values)
