"""The fault table against SPEC.md §7 (rows written here from the spec, not from the code)."""

from __future__ import annotations

import pytest

from stationd.core.faults import FAULTS, Scope

# (code, connector id 0 = station / n, status, LED blinks) — SPEC.md §7
SPEC_TABLE = [
    ("WeakSignal", 0, "Available", None),
    ("OverVoltageProtectionFailure", 0, "Available", None),
    ("RegulatoryComplianceFailure", 0, "Faulted", 7),
    ("EVCommunicationError", "n", "Faulted", 1),
    ("ReaderFailure", 0, "Available", None),
    ("PowerMeterFailure", "n", "Faulted", 6),
    ("UnderVoltage", 0, "Faulted", None),
    ("OverCurrentFailure", "n", "Faulted", 3),
    ("GroundFailure", "n", "Faulted", 4),
    ("ConnectorLockFailure", "n", "Faulted", 5),
    ("PowerSwitchFailure", "n", "Faulted", 2),
]
OCPP_16_ERROR_CODES = {
    "ConnectorLockFailure", "EVCommunicationError", "GroundFailure", "HighTemperature", "InternalError",
    "LocalListConflict", "NoError", "OtherError", "OverCurrentFailure", "OverVoltage", "PowerMeterFailure",
    "PowerSwitchFailure", "ReaderFailure", "ResetFailure", "UnderVoltage", "WeakSignal",
}


@pytest.mark.parametrize("code,where,status,blinks", SPEC_TABLE)
def test_each_spec_fault(code, where, status, blinks):
    fault = FAULTS[code]
    assert fault.scope is (Scope.STATION if where == 0 else Scope.CONNECTOR)
    assert fault.faulted == (status == "Faulted")
    assert fault.led_blinks == blinks


def test_codes_outside_ocpp_16_go_out_as_other_error_with_the_vendor_code():
    for fault in FAULTS.values():
        if fault.code in OCPP_16_ERROR_CODES:
            assert (fault.error_code, fault.vendor_error_code) == (fault.code, None)
        else:
            assert (fault.error_code, fault.vendor_error_code) == ("OtherError", fault.code)
    assert FAULTS["RegulatoryComplianceFailure"].error_code == "OtherError"


def test_every_blink_code_means_one_fault():
    blinks = [f.led_blinks for f in FAULTS.values() if f.led_blinks is not None]
    assert sorted(blinks) == list(range(1, 8))
