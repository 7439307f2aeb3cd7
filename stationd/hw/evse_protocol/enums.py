"""Enumerations and the fault-bit table of the EVSE controller protocol.

Every value carries its own description, so docs/evse-protocol.md is rendered from here
(see reference.py) and the document and the code cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class DocEnum(IntEnum):
    """An IntEnum whose members are declared as ``NAME = value, "description"``."""

    doc: str

    def __new__(cls, value: int, doc: str = ""):
        member = int.__new__(cls, value)
        member._value_ = value
        member.doc = doc
        return member


class Sender(DocEnum):
    """Which side sends a message (bit 7 of the message type says the same)."""

    STATION = 0, "station (stationd) → controller"
    CONTROLLER = 1, "controller (MCU) → station"


class MessageType(DocEnum):
    """First byte of every message. Bit 7 set = sent by the controller."""

    REQUEST_HELLO = 0x01, "RequestHello"
    HEARTBEAT = 0x02, "Heartbeat"
    SET_CURRENT = 0x10, "SetCurrent"
    SET_CONTACTOR = 0x11, "SetContactor"
    SET_LOCK = 0x12, "SetLock"
    RESET = 0x13, "Reset"
    BOOT_BEGIN = 0x20, "BootBegin"
    BOOT_CHUNK = 0x21, "BootChunk"
    BOOT_COMMIT = 0x22, "BootCommit"
    BOOT_ABORT = 0x23, "BootAbort"
    HELLO = 0x81, "Hello"
    STATUS = 0x82, "Status"
    EVENT = 0x83, "Event"
    COMMAND_RESULT = 0x84, "CommandResult"
    BOOT_STATUS = 0xA0, "BootStatus"


class CpState(DocEnum):
    """IEC 61851-1 control pilot state as measured by the controller (debounced)."""

    A = 1, "+12 V: no vehicle"
    B = 2, "+9 V: vehicle connected, not asking for energy"
    C = 3, "+6 V: vehicle asks for energy"
    D = 4, "+3 V: vehicle asks for energy, ventilation required"
    E = 5, "0 V: error (pilot shorted, no diode)"
    F = 6, "−12 V: EVSE not available (set by the controller itself)"


class ConnectorType(DocEnum):
    """What is fitted at this connector (reported in Hello)."""

    TYPE2_SOCKET = 1, "IEC 62196 type 2 socket outlet (cable rating read from PP, lock fitted)"
    TYPE2_TETHERED = 2, "fixed type 2 cable (PP not evaluated, pp_current_a reported as 0)"
    TYPE1_TETHERED = 3, "fixed type 1 (SAE J1772) cable (PP not evaluated)"


class LockState(DocEnum):
    """State of the socket's cable lock actuator."""

    UNLOCKED = 0, "unlocked (feedback confirms)"
    LOCKED = 1, "locked (feedback confirms)"
    MOVING = 2, "actuator moving"
    FAULT = 3, "position not reached or feedback implausible (fault ConnectorLockFailure)"
    NOT_FITTED = 4, "no lock at this connector (tethered cable)"


class RcdState(DocEnum):
    """Residual current device (AC 30 mA / DC 6 mA detection)."""

    OK = 0, "armed, no residual current"
    TRIPPED = 1, "tripped: contactor opened (fault GroundFailure)"
    TESTING = 2, "self-test running"
    TEST_FAILED = 3, "self-test failed (fault GroundFailure)"


class ResetKind(DocEnum):
    """What a Reset command does (answered with CommandResult before acting)."""

    SOFT = 1, "open the contactor, restart the controller application"
    HARD = 2, "open the contactor, full MCU reset (as power-on)"
    CLEAR_FAULTS = 3, "clear latched faults whose cause is gone; no restart"


class ResultReason(DocEnum):
    """Outcome of a SetCurrent / SetContactor / SetLock / Reset command."""

    OK = 0, "done"
    OUT_OF_RANGE = 1, "a value outside the allowed range (e.g. 0 < current < 6 A, > 80 A)"
    NOT_ALLOWED = 2, "not allowed in the present state (e.g. close contactor in state A/B)"
    FAULT_ACTIVE = 3, "refused because a fault that opens the contactor is active"
    HARDWARE_FAILURE = 4, "tried, but the hardware did not follow (feedback)"
    BUSY = 5, "a firmware update is in progress"
    UNSUPPORTED = 6, "not supported by this hardware (e.g. lock on a tethered connector)"


class EventCode(DocEnum):
    """Event codes; the meaning of Event.value depends on the code (see value_doc)."""

    value_doc: str

    def __new__(cls, value: int, doc: str = "", value_doc: str = ""):
        member = int.__new__(cls, value)
        member._value_ = value
        member.doc = doc
        member.value_doc = value_doc
        return member

    BOOTED = (1, "the controller application started",
              "reset cause: 0 power-on, 1 watchdog, 2 Reset command, 3 brown-out, 4 new firmware")
    CP_STATE_CHANGED = 2, "the CP state changed (also reported by Status)", "new CpState value"
    FAULT_RAISED = 3, "a fault bit was set", "fault bit number"
    FAULT_CLEARED = 4, "a fault bit was cleared", "fault bit number"
    SAFETY_OPEN = (5, "the controller opened the contactor on its own",
                   "1 vehicle left C/D, 2 fault, 3 heartbeat timeout, 4 vehicle stayed in C/D 6 s after PWM stop")
    RCD_SELF_TEST = 6, "an RCD self-test finished", "1 passed, 0 failed"


class BootState(DocEnum):
    """State of the firmware-update receiver."""

    IDLE = 0, "no update in progress"
    RECEIVING = 1, "update accepted, waiting for the chunk at `offset`"
    COMPLETE = 2, "image verified and marked bootable; the controller restarts into it"
    FAILED = 3, "update ended with `error`; the running firmware stays"


class BootError(DocEnum):
    """Why a Boot* message was refused (BootStatus.error)."""

    NONE = 0, "no error"
    BUSY = 1, "contactor closed / charging: update refused"
    TOO_LARGE = 2, "image larger than the update slot"
    DOWNGRADE = 3, "version lower than the running one and `forced` not set"
    NOT_STARTED = 4, "BootChunk / BootCommit without an accepted BootBegin"
    OFFSET_MISMATCH = 5, "chunk offset is not the expected one (`offset` says which is)"
    CHUNK_CRC = 6, "chunk CRC-32 does not match its data; resend it"
    INCOMPLETE = 7, "commit before all `size` bytes were received"
    IMAGE_CRC = 8, "CRC-32 of the whole image does not match BootBegin.crc32"
    FLASH_ERROR = 9, "writing or erasing flash failed"
    BAD_VERSION = 10, "version rule violated at commit"


@dataclass(frozen=True)
class FaultBit:
    """One bit of Status.faults."""

    bit: int
    name: str
    meaning: str
    opens_contactor: bool
    latched: bool


#: Status.faults bit table. Names are the StatusNotification errorCode / vendor codes of SPEC.md §7.
#: Latched faults stay set until their cause is gone *and* the station sends Reset(CLEAR_FAULTS).
FAULT_BITS: tuple[FaultBit, ...] = (
    FaultBit(0, "GroundFailure", "RCD tripped or its self-test failed", True, True),
    FaultBit(1, "OverCurrentFailure", "vehicle drew more than offered + 10 % for > 5 s, or short circuit", True, True),
    FaultBit(2, "PowerSwitchFailure", "contactor feedback disagrees with the command (welded / does not close)",
             True, True),
    FaultBit(3, "ConnectorLockFailure", "lock did not reach or lost its position", True, False),
    FaultBit(4, "EVCommunicationError", "CP state E or missing vehicle diode", True, False),
    FaultBit(5, "HighTemperature", "temperature above the hard limit (station should derate earlier)", True, False),
    FaultBit(6, "OverVoltage", "a phase voltage above the limit", True, False),
    FaultBit(7, "UnderVoltage", "phase loss: at least one phase missing or too low", True, False),
    FaultBit(8, "InternalError", "controller self-check failed (ADC, flash, watchdog)", True, True),
    FaultBit(9, "TamperDetected", "housing opened while not in service mode", False, True),
    FaultBit(10, "PpInvalid", "proximity pilot resistance outside every range", True, False),
    FaultBit(11, "HeartbeatTimeout", "no station Heartbeat for 2 s; clears when heartbeats resume", True, False),
)

FAULT_BY_NAME: dict[str, FaultBit] = {f.name: f for f in FAULT_BITS}
FAULT_BY_BIT: dict[int, FaultBit] = {f.bit: f for f in FAULT_BITS}

#: Proximity pilot ratings a controller may report, in A (0 = no cable / not evaluated).
PP_RATINGS_A: tuple[int, ...] = (0, 13, 20, 32, 63)

#: Every enumeration, in document order.
ENUMS: tuple[type[DocEnum], ...] = (
    MessageType, CpState, ConnectorType, LockState, RcdState, ResetKind, ResultReason,
    EventCode, BootState, BootError,
)
