"""EVSE controller protocol: the station ↔ controller message set, its codec and its links.

Used by both sides: stationd's controller driver (role "station") and firmware_sim's
simulated controller (role "controller"). Specification: docs/evse-protocol.md.

    link, path = await open_pty_pair()          # or open_serial("/dev/ttyS1")
    await link.send(SetCurrent(16.0))           # reliable: returns once acknowledged
    msg = await link.receive()                  # next decoded message from the peer
"""

from .can_link import CAN_FUNCTIONS, CanLink, can_id, split_id
from .enums import (
    FAULT_BITS,
    FAULT_BY_NAME,
    PP_RATINGS_A,
    BootError,
    BootState,
    ConnectorType,
    CpState,
    EventCode,
    FaultBit,
    LockState,
    MessageType,
    RcdState,
    ResetKind,
    ResultReason,
    Sender,
)
from .errors import LinkClosed, LinkDown, LinkError, LinkTimeout, ProtocolError
from .link import LinkStats
from .messages import (
    MAX_CHUNK_SIZE,
    MAX_MESSAGE_SIZE,
    PROTOCOL_VERSION,
    SPECS,
    BootAbort,
    BootBegin,
    BootChunk,
    BootCommit,
    BootStatus,
    CommandResult,
    Event,
    Heartbeat,
    Hello,
    Message,
    RequestHello,
    Reset,
    SetContactor,
    SetCurrent,
    SetLock,
    Status,
    decode,
    default_reliable,
    encode,
)
from .pdu import crc32
from .pilot import check_offer, current_for_duty, duty_permille, pp_rating
from .serial_link import SerialLink, open_pty_pair, open_serial

__all__ = [
    "CAN_FUNCTIONS", "FAULT_BITS", "FAULT_BY_NAME", "MAX_CHUNK_SIZE", "MAX_MESSAGE_SIZE", "PP_RATINGS_A",
    "PROTOCOL_VERSION", "SPECS",
    "BootAbort", "BootBegin", "BootChunk", "BootCommit", "BootError", "BootState", "BootStatus", "CanLink",
    "CommandResult", "ConnectorType", "CpState", "Event", "EventCode", "FaultBit", "Heartbeat", "Hello",
    "LinkClosed", "LinkDown", "LinkError", "LinkStats", "LinkTimeout", "LockState", "Message", "MessageType",
    "ProtocolError", "RcdState", "RequestHello", "Reset", "ResetKind", "ResultReason", "Sender", "SerialLink",
    "SetContactor", "SetCurrent", "SetLock", "Status",
    "can_id", "check_offer", "crc32", "current_for_duty", "decode", "default_reliable", "duty_permille",
    "encode", "open_pty_pair", "open_serial", "pp_rating", "split_id",
]
