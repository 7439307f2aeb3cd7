"""The register map of the station's Modbus TCP server, as data.

The server speaks the map of the Heidelberg (Amperfied) Energy Control wallbox, register
layout 1.0.8, so energy managers that already drive that wallbox (evcc's ``heidelberg``
charger, openWB through the hdec bridge, wbec, OpenEMS) work unchanged. One Modbus device
(unit id) per connector. ``docs/modbus-server.md`` explains the choices; its register table
is :func:`render_markdown` (a test keeps the two equal).

Addresses are 0-based protocol addresses, values are big-endian uint16 words, a uint32 is
high word first. Input registers are read with FC 4, holding registers with FC 3 and written
with FC 6 or FC 16.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ..core.iec61851 import MIN_CURRENT_A, CpState

LAYOUT_VERSION = 0x0108  # "V1.0.8": the layout where 258 and 259 can be read back
DEFAULT_WATCHDOG_MS = 15_000  # Heidelberg's default watchdog timeout
STANDBY_ENABLED, STANDBY_DISABLED = 0, 4  # register 258
LOCKED, UNLOCKED = 0, 1  # registers 13 and 259
LOGISTIC_WORDS = 32  # registers 102..133: a 64-character ASCII string
PAUSE = 0  # register 261/262 value that means "offer nothing"


class Table(enum.StrEnum):
    INPUT = "input"
    HOLDING = "holding"


class Rule(enum.StrEnum):
    """What a write to a holding register may contain."""

    NONE = "read-only"
    ANY = "any"  # any uint16
    CHOICE = "choice"  # one of Register.choices
    CURRENT = "current"  # 0, or 60 .. the connector's maximum × 10 (0.1 A)


@dataclass(frozen=True)
class Register:
    table: Table
    address: int
    name: str  # the value the server puts here (input) or keeps here (holding)
    type: str  # uint16 | int16 | uint32 | ascii
    unit: str
    meaning: str
    values: str  # the range, as the documentation states it
    words: int = 1
    rule: Rule = Rule.NONE
    choices: tuple[int, ...] = ()

    @property
    def writable(self) -> bool:
        return self.rule is not Rule.NONE

    @property
    def addresses(self) -> range:
        return range(self.address, self.address + self.words)


def _input(address: int, name: str, type_: str, unit: str, meaning: str, values: str, words: int = 1) -> Register:
    return Register(Table.INPUT, address, name, type_, unit, meaning, values, words)


def _holding(address: int, name: str, unit: str, meaning: str, values: str, rule: Rule = Rule.NONE,
             choices: tuple[int, ...] = ()) -> Register:
    return Register(Table.HOLDING, address, name, "uint16", unit, meaning, values, 1, rule, choices)


REGISTERS: tuple[Register, ...] = (
    _input(1, "reserved", "uint16", "", "reserved (some clients read 1..18 in one request)", "0", words=3),
    _input(4, "layout_version", "uint16", "", "Modbus register layout version", "0x0108 (V1.0.8)"),
    _input(5, "charging_state", "uint16", "", "charging state (table below)", "2..10"),
    _input(6, "current_l1", "uint16", "0.1 A", "RMS current L1 (meter)", "0..65535"),
    _input(7, "current_l2", "uint16", "0.1 A", "RMS current L2 (meter)", "0..65535"),
    _input(8, "current_l3", "uint16", "0.1 A", "RMS current L3 (meter)", "0..65535"),
    _input(9, "pcb_temperature", "int16", "0.1 °C", "controller temperature", "-32768..32767; 0 unknown"),
    _input(10, "voltage_l1", "uint16", "V", "RMS voltage L1-N (meter)", "0..65535"),
    _input(11, "voltage_l2", "uint16", "V", "RMS voltage L2-N (meter)", "0..65535"),
    _input(12, "voltage_l3", "uint16", "V", "RMS voltage L3-N (meter)", "0..65535"),
    _input(13, "external_lock_state", "uint16", "", "external lock: 0 locked (connector or station "
           "Inoperative), 1 unlocked", "0, 1"),
    _input(14, "power", "uint16", "W", "active power L1+L2+L3 (meter)", "0..65535"),
    _input(15, "energy_since_power_on", "uint32", "Wh", "energy since the daemon started", "0..2^32-1",
           words=2),
    _input(17, "energy_total", "uint32", "Wh", "energy since installation (the meter's import register)",
           "0..2^32-1", words=2),
    _input(19, "energy_since_power_on", "uint32", "Wh", "copy of 15-16 (where the Heidelberg Connect "
           "layout keeps it)", "0..2^32-1", words=2),
    _input(100, "hardware_max_current", "uint16", "A", "the connector's maximum current", "6..80"),
    _input(101, "hardware_min_current", "uint16", "A", "the minimum current PWM can offer", "6"),
    _input(102, "logistic_string", "ascii", "", "station serial number and connector, ASCII, "
           "2 characters a register (high byte first), NUL-padded", "64 characters", words=LOGISTIC_WORDS),
    _holding(257, "watchdog_timeout", "ms", "watchdog timeout; 0 = watchdog off", "0..65535; default 15000",
             Rule.ANY),
    _holding(258, "standby_control", "", "standby function control (the station never sleeps; the value "
             "is kept and read back)", "0 enable, 4 disable; default 4", Rule.CHOICE,
             (STANDBY_ENABLED, STANDBY_DISABLED)),
    _holding(259, "remote_lock", "", "remote lock: 0 locked (pause, state 10), 1 unlocked",
             "0, 1; default 1", Rule.CHOICE, (LOCKED, UNLOCKED)),
    _holding(260, "reserved", "", "reserved (some clients read 257..261 in one request)", "0, read-only"),
    _holding(261, "max_current", "0.1 A", "maximum current command; 0 = pause",
             "0 or 60..max×10; default max×10", Rule.CURRENT),
    _holding(262, "failsafe_current", "0.1 A", "current after a watchdog timeout; 0 = pause",
             "0 or 60..max×10; default 0", Rule.CURRENT),
)

# Register 5: (CP state, the station allows charging) -> Heidelberg charging state.
# Even codes (A1, B1, C1) = "the wallbox does not allow charging", odd ones (A2, B2, C2) = "it
# does". 8 is Heidelberg's "derating" (evcc reads it as D, OpenEMS as charging): the station
# reports a ventilation request (CP D) that it serves there. 9 = E, 10 = F "locked or not ready".
CHARGING_STATE: dict[tuple[CpState, bool], int] = {
    (CpState.A, False): 2, (CpState.A, True): 3,
    (CpState.B, False): 4, (CpState.B, True): 5,
    (CpState.C, False): 6, (CpState.C, True): 7,
    (CpState.D, False): 6, (CpState.D, True): 8,
    (CpState.E, False): 9, (CpState.E, True): 9,
    (CpState.F, False): 10, (CpState.F, True): 10,
}
NOT_READY = 10  # F: remote lock, connector Faulted or Unavailable

MIN_DECIAMPS = int(MIN_CURRENT_A * 10)  # 60


def by_table(table: Table) -> tuple[Register, ...]:
    return tuple(r for r in REGISTERS if r.table is table)


def holding(address: int) -> Register | None:
    return next((r for r in REGISTERS if r.table is Table.HOLDING and r.address == address), None)


def max_deciamps(max_current_a: float) -> int:
    return round(max_current_a * 10)


def accepts(register: Register, value: int, connector_max_a: float) -> bool:
    """Whether a write of ``value`` to ``register`` is allowed (for a connector of that size)."""
    if register.rule is Rule.ANY:
        return 0 <= value <= 0xFFFF
    if register.rule is Rule.CHOICE:
        return value in register.choices
    if register.rule is Rule.CURRENT:
        return value == PAUSE or MIN_DECIAMPS <= value <= max_deciamps(connector_max_a)
    return False


def allowed_text(register: Register, connector_max_a: float) -> str:
    if register.rule is Rule.CURRENT:
        return f"0 or {MIN_DECIAMPS}..{max_deciamps(connector_max_a)}"
    if register.rule is Rule.CHOICE:
        return " or ".join(str(c) for c in register.choices)
    return "0..65535" if register.rule is Rule.ANY else "nothing (read-only)"


def render_markdown() -> str:
    """The register table of docs/modbus-server.md."""
    lines = ["| address | FC | type | unit | meaning | access | values |",
             "|---|---|---|---|---|---|---|"]
    for r in REGISTERS:
        last = r.address + r.words - 1
        address = str(r.address) if r.words == 1 else f"{r.address}–{last}"
        fc = "4" if r.table is Table.INPUT else ("3, 6, 16" if r.writable else "3")
        access = "read/write" if r.writable else "read"
        lines.append(f"| {address} | {fc} | {r.type} | {r.unit or '–'} | {r.meaning} | {access} | {r.values} |")
    return "\n".join(lines) + "\n"
