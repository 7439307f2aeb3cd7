"""Faults the station knows (SPEC.md §7), as data: OCPP error code, status effect, LED blinks.

A code that is not an OCPP 1.6 ChargePointErrorCode is reported as ``OtherError`` with the
code in ``vendorErrorCode``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Scope(enum.Enum):
    STATION = 0  # connector id 0: the whole station
    CONNECTOR = 1  # one connector


OCPP_ERROR_CODES = frozenset({
    "ConnectorLockFailure", "EVCommunicationError", "GroundFailure", "HighTemperature", "InternalError",
    "LocalListConflict", "NoError", "OtherError", "OverCurrentFailure", "OverVoltage", "PowerMeterFailure",
    "PowerSwitchFailure", "ReaderFailure", "ResetFailure", "UnderVoltage", "WeakSignal",
})


@dataclass(frozen=True)
class Fault:
    code: str
    scope: Scope
    faulted: bool  # True: the status becomes Faulted; False: the station stays Available
    description: str
    led_blinks: int | None = None  # blink code of the station's LED (SPEC.md §7)

    @property
    def error_code(self) -> str:
        return self.code if self.code in OCPP_ERROR_CODES else "OtherError"

    @property
    def vendor_error_code(self) -> str | None:
        return None if self.code in OCPP_ERROR_CODES else self.code


STATION, CONNECTOR = Scope.STATION, Scope.CONNECTOR

FAULTS = {f.code: f for f in (
    # SPEC.md §7 (Technagon error table, CTEK alarms)
    Fault("WeakSignal", STATION, False, "poor mobile reception"),
    Fault("OverVoltageProtectionFailure", STATION, False, "over-voltage protection no longer ensured"),
    Fault("RegulatoryComplianceFailure", STATION, True, "calibration-law module: storage problem", 7),
    Fault("EVCommunicationError", CONNECTOR, True, "vehicle fault (control pilot state E or F)", 1),
    Fault("ReaderFailure", STATION, False, "no working RFID reader found"),
    Fault("PowerMeterFailure", CONNECTOR, True, "meter communication failed", 6),
    Fault("UnderVoltage", STATION, True, "phase loss: at least one phase missing"),
    Fault("OverCurrentFailure", CONNECTOR, True, "over-current protection tripped", 3),
    Fault("GroundFailure", CONNECTOR, True, "residual current device (RCD) tripped", 4),
    Fault("ConnectorLockFailure", CONNECTOR, True, "lock broken or cable not seated", 5),
    Fault("PowerSwitchFailure", CONNECTOR, True, "contactor welded or not switching", 2),
    # Reported by the EVSE controllers and the station itself
    Fault("HighTemperature", CONNECTOR, True, "controller temperature too high"),
    Fault("OverVoltage", CONNECTOR, True, "grid voltage too high"),
    Fault("InternalError", CONNECTOR, True, "EVSE controller internal error"),
    Fault("ControllerLinkLost", CONNECTOR, True, "no answer from the EVSE controller"),
    Fault("HeartbeatTimeout", CONNECTOR, True, "the controller missed the station's heartbeat and went safe"),
    Fault("CableRatingInvalid", CONNECTOR, True, "the cable's proximity resistor is out of range"),
    Fault("TamperDetected", STATION, True, "front door or cover open (TamperDetectionEnabled)"),
    Fault("LocalListConflict", STATION, False, "the backend's answer contradicts its local list"),
    # Storage (the data directory): see StationCore.storage_failure
    Fault("StorageFailure", STATION, True, "the data directory cannot be written (disk full or read-only): "
          "no new session until it can"),
    Fault("DatabaseReplaced", STATION, False, "the database was corrupt: moved aside, started afresh"),
)}


def fault(code: str) -> Fault:
    """The fault for a code; KeyError names the unknown code."""
    try:
        return FAULTS[code]
    except KeyError:
        raise KeyError(f"unknown fault code {code!r}") from None
