"""Energy-meter register maps as data: one declarative table per meter model.

Every address is the 0-based *protocol* address that goes on the wire (the "PDU address"),
never the 1-based "register number" (30001 / 40001 style) that some manuals print. Values
decode as ``raw × scale`` into SI units: V, A, W, Hz and Wh. The reader
(:mod:`stationd.hw.meters.reader`) and the simulated meters (:mod:`firmware_sim.meters`) both
walk these tables through :mod:`stationd.hw.meters.codec`; there is no second copy of any map.

Where an address could not be confirmed in a manufacturer document or in at least one public,
field-tested driver, the field carries ``verified=False`` and a note saying what is missing.

Sources (read to learn, nothing copied):

* Eastron SDM630 Modbus protocol (input registers 30001.. as float32, ABCD); the "40 parameters
  per request" read limit; serial number at holding 464513 (0xFC00, uint32) as printed in
  Eastron's SDM320Y/SDM530Y manuals of the same register scheme.
* Carlo Gavazzi "EM24-DIN PFA, PFB & X models - Communication Protocol" (LSW->MSW word order for
  INT32, serial number 1300h..1306h) and the aggsoft EM24 map; Victron dbus-modbus-client
  (EM24RTU / EM24 Ethernet / ET340 handlers) for the EM24 and EM300-series energy addresses.
* Carlo Gavazzi "EM300 Series and ET300 Series Communication Protocol" (EM330/EM340).
* ABB "B23/B24 User Manual" 2CMC485003M0201 (FC 3 only, up to 125 registers per read, all-FF /
  7FFF.. "not available"); openWB's B23 module and steefan85/ABB_B23_Energy_Meter for the
  addresses incl. serial number 0x8900.
* Janitza "UMG 96RM Modbus address list" (Dok. 1.040.034.b, "frequently required readings"
  19000..), cFos' UMG 96-PA meter definition (import 19068 / export 19076) and OpenEMS'
  UMG 96RM-E and UMG 604 drivers.
* Iskra WM3M4/WM3M4C Modbus description (types T5/T6, model and serial registers) as used by
  Tinkerforge's evse-v2-bricklet driver, which keeps the Iskra document's 1-based register
  numbers (106, 108, 127, ...) and subtracts one on the wire.
* EVerest's RsIskraMeter module (everest-core) for the WM3M4C's signing (OCMF) registers.

Iskra numbering decision: the addresses below are 0-based protocol addresses (105 = frequency,
107 = U L1-N, 126 = I L1, 1 = model). The Iskra document numbers registers from 1; the
Tinkerforge driver sends ``number - 1`` and reads frequency at 105, which matches HARDWARE.md's
table. Anyone copying numbers straight out of the Iskra PDF must subtract one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from enum import IntEnum, StrEnum
from types import MappingProxyType

__all__ = [
    "METER_MAPS",
    "PHASE_FIELDS",
    "PLAUSIBLE_RANGE",
    "SAMPLE_FIELDS",
    "DataType",
    "Field",
    "FunctionCode",
    "IdentityRegisters",
    "MeterMap",
    "NotAvailable",
    "Quantity",
    "SignatureStatus",
    "SigningRegisters",
    "SigningState",
    "WordOrder",
    "get_map",
    "quantity_of",
]

MAX_REGISTERS_PER_READ = 125  # Modbus application protocol limit for FC 3 / FC 4


class FunctionCode(IntEnum):
    READ_HOLDING_REGISTERS = 3
    READ_INPUT_REGISTERS = 4


class DataType(StrEnum):
    FLOAT32 = "float32"
    INT16 = "int16"
    UINT16 = "uint16"
    INT32 = "int32"
    UINT32 = "uint32"
    UINT64 = "uint64"
    ISKRA_T5 = "iskra_t5"  # signed 8-bit decimal exponent + unsigned 24-bit mantissa
    ISKRA_T6 = "iskra_t6"  # signed 8-bit decimal exponent + signed 24-bit mantissa


class WordOrder(StrEnum):
    BIG = "big"  # high word first (bytes inside a word are always high byte first)
    LITTLE = "little"  # low word first (Carlo Gavazzi "LSW->MSW")


class NotAvailable(StrEnum):
    NONE = "none"
    ABB = "abb"  # all bits set for unsigned types, 0x7FFF.. for signed types


class Quantity(StrEnum):
    ENERGY = "energy"  # Wh
    POWER = "power"  # W
    CURRENT = "current"  # A
    VOLTAGE = "voltage"  # V
    FREQUENCY = "frequency"  # Hz
    EXPONENT = "exponent"  # decimal exponent of another field (Iskra energy counters)


# The measurands a sample is made of, named as in MeterSample; maps use exactly these names.
SAMPLE_FIELDS = (
    "energy_import_wh", "energy_export_wh", "power_w",
    "power_l1_w", "power_l2_w", "power_l3_w",
    "current_l1_a", "current_l2_a", "current_l3_a",
    "voltage_l1_v", "voltage_l2_v", "voltage_l3_v",
    "frequency_hz",
)
PHASE_FIELDS = {
    "power": ("power_l1_w", "power_l2_w", "power_l3_w"),
    "current": ("current_l1_a", "current_l2_a", "current_l3_a"),
    "voltage": ("voltage_l1_v", "voltage_l2_v", "voltage_l3_v"),
}

# Plausible values per quantity (SI units). A decoded value outside is rejected as implausible.
PLAUSIBLE_RANGE: Mapping[Quantity, tuple[float, float]] = MappingProxyType({
    Quantity.VOLTAGE: (0.0, 1000.0),
    Quantity.CURRENT: (-2000.0, 2000.0),
    Quantity.POWER: (-2_000_000.0, 2_000_000.0),
    Quantity.FREQUENCY: (40.0, 70.0),
    Quantity.ENERGY: (0.0, 1e13),
    Quantity.EXPONENT: (-9.0, 9.0),
})


def quantity_of(name: str) -> Quantity:
    """The physical quantity a field name stands for."""
    if name.endswith("_exponent"):
        return Quantity.EXPONENT
    if name.startswith("energy_"):
        return Quantity.ENERGY
    if name.startswith("power_"):
        return Quantity.POWER
    if name.startswith("current_"):
        return Quantity.CURRENT
    if name.startswith("voltage_"):
        return Quantity.VOLTAGE
    if name.startswith("frequency"):
        return Quantity.FREQUENCY
    raise ValueError(f"no quantity for field name {name!r}")


@dataclass(frozen=True)
class Field:
    """One value in a meter's register map."""

    name: str  # one of SAMPLE_FIELDS, or "<field>_exponent" for an exponent register
    address: int  # 0-based protocol address of the first register
    dtype: DataType
    scale: float = 1.0  # raw × scale = SI value
    exponent_field: str | None = None  # value × 10 ** (that field's raw value)
    required: bool = False  # a sample without it is rejected
    verified: bool = True
    note: str = ""

    def __post_init__(self) -> None:
        quantity_of(self.name)
        if not 0 <= self.address <= 0xFFFF:
            raise ValueError(f"{self.name}: address {self.address} out of range")


@dataclass(frozen=True)
class IdentityRegisters:
    """Where a meter keeps an identity string (serial number or model)."""

    function_code: FunctionCode
    address: int
    count: int  # registers
    encoding: str  # "ascii" (2 characters per register, high byte first) or "uint32" (decimal)
    verified: bool = True
    note: str = ""


class SigningState(IntEnum):
    """A signing meter's transaction state register (Iskra: holding 7000)."""

    IDLE = 0
    ACTIVE = 1
    ACTIVE_AFTER_POWER_FAILURE = 2
    ACTIVE_AFTER_RESET = 3


class SignatureStatus(IntEnum):
    """A signing meter's signature status register (Iskra: holding 7052).

    Values 0, 1, 2 and 15 are the working states; 128 and above are errors. The names follow
    the status table the public EVerest Iskra driver decodes (it cites the Iskra manual's
    table 11); only the values below are known.
    """

    NOT_INITIALIZED = 0
    IDLE = 1
    IN_PROGRESS = 2
    OK = 15
    INVALID_DATE_TIME = 128
    CHECKSUM_ERROR = 129
    INVALID_COMMAND = 130
    INVALID_STATE = 131
    INVALID_MEASUREMENT = 132
    TEST_MODE_ERROR = 133
    VERIFY_STATE_ERROR = 243
    SIGNATURE_STATE_ERROR = 244
    KEY_PAIR_GENERATION_ERROR = 245
    SHA_FAILED = 246
    INIT_FAILED = 247
    DATA_NOT_LOCKED = 248
    CONFIG_NOT_LOCKED = 249
    VERIFY_ERROR = 250
    PUBLIC_KEY_ERROR = 251
    INVALID_MESSAGE_FORMAT = 252
    INVALID_MESSAGE_SIZE = 253
    SIGNATURE_ERROR = 254
    UNDEFINED_ERROR = 255


@dataclass(frozen=True)
class SigningRegisters:
    """Where a signing (OCMF, German calibration law) meter keeps its signing interface.

    All holding registers (read with FC 3, written with FC 16), 0-based protocol addresses.
    Text areas hold ASCII, two characters per register, high byte first; the lengths are in
    bytes. ``public_key`` holds the raw uncompressed point X‖Y (no 0x04 prefix), the
    signature area the DER-encoded ECDSA signature. The station writes time, time status,
    algorithm and the metadata (an OCMF payload template as JSON: identification, gateway,
    charge point) and then a command; the meter answers with a signed OCMF payload.
    ``unverified`` names the attributes no public source confirms (see ``note``).
    """

    state: int  # SigningState
    command: int  # write command_begin / command_end
    status: int  # SignatureStatus
    time_zone: int  # int16: minutes east of UTC
    time: int  # uint32 (2 registers, high word first): UTC seconds since 1970
    metadata_length: int
    record_length: int
    signature_length: int
    algorithm: int  # 0 = ECDSA-secp256r1-SHA256
    time_status: int  # 0 = not set (after a power failure), 1 = informative, 2 = synchronized
    metadata: int
    metadata_count: int
    record: int
    record_count: int
    public_key: int
    public_key_count: int
    signature: int
    signature_count: int
    command_begin: int = 0x4200  # "B"
    command_end: int = 0x7200
    signature_algorithm: str = "ECDSA-secp256r1-SHA256"
    unverified: tuple[str, ...] = ()
    note: str = ""

    @property
    def span(self) -> tuple[int, int]:
        """(start, count) of one holding-register block covering the whole interface."""
        start = min(self.state, self.command, self.status, self.metadata, self.record,
                    self.public_key, self.signature)
        end = max(self.metadata + self.metadata_count, self.record + self.record_count,
                  self.public_key + self.public_key_count, self.signature + self.signature_count,
                  self.time_status + 1)
        return start, end - start


@dataclass(frozen=True)
class MeterMap:
    model: str  # name used in the station config file
    product: str
    function_code: FunctionCode
    word_order: WordOrder
    fields: tuple[Field, ...]
    serial: IdentityRegisters
    model_register: IdentityRegisters | None = None
    not_available: NotAvailable = NotAvailable.NONE
    max_registers_per_read: int = MAX_REGISTERS_PER_READ
    default_device_id: int = 1
    notes: str = ""
    signing: SigningRegisters | None = None  # None: the meter does not sign readings
    _by_name: Mapping[str, Field] = dataclass_field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_name = {f.name: f for f in self.fields}
        if len(by_name) != len(self.fields):
            raise ValueError(f"{self.model}: duplicate field names")
        for f in self.fields:
            if f.exponent_field is not None and f.exponent_field not in by_name:
                raise ValueError(f"{self.model}: {f.name} refers to missing {f.exponent_field}")
        for required in ("energy_import_wh", "power_w"):
            if required not in by_name or not by_name[required].required:
                raise ValueError(f"{self.model}: {required} must be a required field")
        object.__setattr__(self, "_by_name", MappingProxyType(by_name))

    def field(self, name: str) -> Field:
        return self._by_name[name]

    def has(self, name: str) -> bool:
        return name in self._by_name


def _phases(prefix: str, unit: str, addresses: tuple[int, int, int], dtype: DataType,
            scale: float = 1.0, **extra: object) -> tuple[Field, ...]:
    return tuple(Field(f"{prefix}_l{n}_{unit}", address, dtype, scale, **extra)  # type: ignore[arg-type]
                 for n, address in enumerate(addresses, start=1))


F32, I16, U16, I32, U32, U64 = (DataType.FLOAT32, DataType.INT16, DataType.UINT16,
                                DataType.INT32, DataType.UINT32, DataType.UINT64)
T5, T6 = DataType.ISKRA_T5, DataType.ISKRA_T6
FC3, FC4 = FunctionCode.READ_HOLDING_REGISTERS, FunctionCode.READ_INPUT_REGISTERS

# --- Eastron SDM630 (V2 / MID): FC 4, float32 big-endian, energies in kWh -------------------
SDM630 = MeterMap(
    model="SDM630",
    product="Eastron SDM630",
    function_code=FC4,
    word_order=WordOrder.BIG,
    fields=(
        *_phases("voltage", "v", (0x00, 0x02, 0x04), F32),
        *_phases("current", "a", (0x06, 0x08, 0x0A), F32),
        *_phases("power", "w", (0x0C, 0x0E, 0x10), F32),
        Field("power_w", 0x34, F32, required=True),
        Field("frequency_hz", 0x46, F32),
        Field("energy_import_wh", 0x48, F32, 1000.0, required=True),
        Field("energy_export_wh", 0x4A, F32, 1000.0),
    ),
    serial=IdentityRegisters(
        FC3, 0xFC00, 2, "uint32", verified=False,
        note="0xFC00 uint32 is printed in Eastron's SDM320Y/SDM530Y manuals (same register "
             "scheme); the SDM630 V2 manual itself was not available to check. Some older "
             "SDM630 drivers read holding 0x2A/0x2C instead."),
    # Eastron: a request may ask for at most 40 parameters (80 registers).
    max_registers_per_read=80,
    notes="One request: 0x00..0x4B (76 registers) covers every field.",
)

# --- Carlo Gavazzi EM24-DIN: FC 4, INT32 low word first ---------------------------------------
_CG_PHASES = (
    *_phases("voltage", "v", (0x00, 0x02, 0x04), I32, 0.1),
    *_phases("current", "a", (0x0C, 0x0E, 0x10), I32, 0.001),
    *_phases("power", "w", (0x12, 0x14, 0x16), I32, 0.1),
    Field("power_w", 0x28, I32, 0.1, required=True),
)
EM24 = MeterMap(
    model="EM24",
    product="Carlo Gavazzi EM24-DIN",
    function_code=FC4,
    word_order=WordOrder.LITTLE,
    fields=(
        *_CG_PHASES,
        Field("frequency_hz", 0x37, I16, 0.1),
        # kWh(+) TOT at 003Eh (0.1 kWh). HARDWARE.md listed 0x42, which is kWh(+) PAR (partial,
        # resettable from the front panel) in the EM24-DIN protocol and in aggsoft's map; a
        # resettable counter must not be billed, so the total counter is used.
        Field("energy_import_wh", 0x3E, I32, 100.0, required=True),
        Field("energy_export_wh", 0x5C, I32, 100.0),
    ),
    serial=IdentityRegisters(FC4, 0x1300, 7, "ascii",
                             note="EM24-DIN PFA/PFB/X protocol table 2.9-12: 13 ASCII letters"),
    notes="One request: 0x00..0x5D (94 registers).",
)

# --- Carlo Gavazzi EM330/EM340 (EM300 series): same layout, other energy/frequency addresses ---
EM340 = MeterMap(
    model="EM340",
    product="Carlo Gavazzi EM340",
    function_code=FC4,
    word_order=WordOrder.LITTLE,
    fields=(
        *_CG_PHASES,
        Field("frequency_hz", 0x33, I16, 0.1),
        Field("energy_import_wh", 0x34, I32, 100.0, required=True),
        Field("energy_export_wh", 0x4E, I32, 100.0),
    ),
    serial=IdentityRegisters(FC4, 0x5000, 7, "ascii",
                             note="address from Victron's EM300-series handler; 2 characters "
                                  "per register as in the EM24 protocol"),
    notes="One request: 0x00..0x4F (80 registers).",
)

# --- ABB B23 (B2x family): FC 3 only, big-endian integers, all-FF = not available -------------
ABB_B23 = MeterMap(
    model="ABB_B23",
    product="ABB B23",
    function_code=FC3,
    word_order=WordOrder.BIG,
    fields=(
        Field("energy_import_wh", 0x5000, U64, 10.0, required=True),  # 0.01 kWh
        Field("energy_export_wh", 0x5004, U64, 10.0),
        *_phases("voltage", "v", (0x5B00, 0x5B02, 0x5B04), U32, 0.1),
        *_phases("current", "a", (0x5B0C, 0x5B0E, 0x5B10), U32, 0.01),
        Field("power_w", 0x5B14, I32, 0.01, required=True),
        *_phases("power", "w", (0x5B16, 0x5B18, 0x5B1A), I32, 0.01),
        Field("frequency_hz", 0x5B2C, U16, 0.01),
    ),
    serial=IdentityRegisters(FC3, 0x8900, 2, "uint32",
                             note="openWB B23 module, citing ABB 2CMC485003M0201"),
    not_available=NotAvailable.ABB,
    notes="Two requests: energies 0x5000..0x5007 and instantaneous values 0x5B00..0x5B2C lie "
          "0xB00 registers apart, far beyond one 125-register read.",
)

# --- Janitza UMG 96RM(-E): FC 3, float32 big-endian, "frequently required readings" -----------
JANITZA_UMG96RM = MeterMap(
    model="JANITZA_UMG96RM",
    product="Janitza UMG 96RM",
    function_code=FC3,
    word_order=WordOrder.BIG,
    fields=(
        *_phases("voltage", "v", (19000, 19002, 19004), F32),
        *_phases("current", "a", (19012, 19014, 19016), F32),
        *_phases("power", "w", (19020, 19022, 19024), F32),
        Field("power_w", 19026, F32, required=True),
        Field("frequency_hz", 19050, F32),
        # 19068 "real energy L1..L3, consumed" (import), 19076 "... delivered" (export): cFos'
        # UMG 96-PA definition names them import_wh / export_wh; OpenEMS reads the same pair.
        Field("energy_import_wh", 19068, F32, required=True),
        Field("energy_export_wh", 19076, F32),
    ),
    serial=IdentityRegisters(
        FC3, 911, 2, "uint32", verified=False,
        note="NOT VERIFIED: no public source for the serial-number register was found; "
             "check Janitza's address list before relying on it."),
    notes="One request: 19000..19077 (78 registers).",
)

# --- Janitza UMG 604: FC 3, float32 big-endian ------------------------------------------------
JANITZA_UMG604 = MeterMap(
    model="JANITZA_UMG604",
    product="Janitza UMG 604",
    function_code=FC3,
    word_order=WordOrder.BIG,
    fields=(
        *_phases("voltage", "v", (1317, 1319, 1321), F32),
        *_phases("current", "a", (1325, 1327, 1329), F32),
        *_phases("power", "w", (1333, 1335, 1337), F32),
        Field("power_w", 1369, F32, required=True),
        Field("frequency_hz", 1439, F32),
        Field("energy_import_wh", 9851, F32, required=True, verified=False,
              note="from OpenEMS' UMG 604 driver only (float, Wh); not checked against "
                   "Janitza's UMG 604 address list"),
        Field("energy_export_wh", 9863, F32, verified=False,
              note="from OpenEMS' UMG 604 driver only"),
    ),
    serial=IdentityRegisters(
        FC3, 911, 2, "uint32", verified=False,
        note="NOT VERIFIED: no public source for the serial-number register was found"),
    notes="Two requests: instantaneous values 1317..1440 (124 registers) and the energy "
          "counters 9851..9864; they are ~8400 registers apart.",
)

# --- Iskra WM3M4 / WM3M4C (Eaton's MID meter): FC 4, Iskra types T5/T6 ------------------------
# Signing (OCMF) interface of the WM3M4C. Addresses as the public EVerest driver
# (modules/HardwareDrivers/PowerMeters/RsIskraMeter, which cites the Iskra user manual 1.14,
# tables 5, 6 and 11 and chapters 6.5.14/6.5.15) puts them on the wire; that driver reads the
# measurements at the same 0-based addresses as Tinkerforge (frequency 105), so 7000/7051/7052
# are protocol addresses and the "one higher" list is the manual's 1-based numbering.
ISKRA_SIGNING = SigningRegisters(
    state=7000, command=7051, status=7052, time_zone=7053, time=7054, metadata_length=7056,
    record_length=7057, signature_length=7058, algorithm=7059, time_status=7071,
    metadata=7100, metadata_count=512, record=7612, record_count=512,
    public_key=8124, public_key_count=32, signature=8188, signature_count=36,
    unverified=("metadata_count", "record_count", "signature_count", "time_status",
                "command_end"),
    note="Start addresses from EVerest's field-tested RsIskraMeter driver, not from Iskra's "
         "manual itself (not available here). NOT VERIFIED: the sizes of the metadata and "
         "record areas (512 registers = the distance to the next area), of the signature area "
         "(36 registers = the longest DER P-256 signature), the meaning of time status 1 "
         "(only 0 = not set and 2 = synchronized are seen in the driver), what the end command "
         "0x7200 stands for, and which metadata keys the meter takes (EVerest writes FV GI GS "
         "GV PG MV MM MS MF IS IF IT ID CT CI RD; no IL, no TT).",
)

_ISKRA_ENERGY_NOTE = ("NOT VERIFIED: counter/exponent addresses from HARDWARE.md only; "
                      "no public driver table for them was found")
ISKRA_WM3M4 = MeterMap(
    model="ISKRA_WM3M4",
    product="Iskra WM3M4C",
    function_code=FC4,
    word_order=WordOrder.BIG,
    fields=(
        Field("frequency_hz", 105, T5),
        *_phases("voltage", "v", (107, 109, 111), T5),
        *_phases("current", "a", (126, 128, 130), T6),
        Field("power_w", 140, T6, required=True, verified=False,
              note="from HARDWARE.md; not found in a public driver"),
        *_phases("power", "w", (142, 144, 146), T6, verified=False,
                 note="from HARDWARE.md; not found in a public driver"),
        Field("energy_import_exponent", 414, I16, verified=False, note=_ISKRA_ENERGY_NOTE),
        Field("energy_export_exponent", 415, I16, verified=False, note=_ISKRA_ENERGY_NOTE),
        Field("energy_import_wh", 418, I32, exponent_field="energy_import_exponent",
              required=True, verified=False, note=_ISKRA_ENERGY_NOTE),
        Field("energy_export_wh", 420, I32, exponent_field="energy_export_exponent",
              verified=False, note=_ISKRA_ENERGY_NOTE),
    ),
    serial=IdentityRegisters(FC4, 9, 4, "ascii"),
    model_register=IdentityRegisters(FC4, 1, 8, "ascii",
                                     note="reads 'WM3M4C' (or 'WM3M4'); Tinkerforge detects "
                                          "the meter by it"),
    default_device_id=33,
    signing=ISKRA_SIGNING,
    notes="Two requests: instantaneous values 105..147 and the energy counters 414..421 are "
          "~270 registers apart.",
)

METER_MAPS: Mapping[str, MeterMap] = MappingProxyType({
    m.model: m for m in (SDM630, EM24, EM340, ABB_B23, JANITZA_UMG96RM, JANITZA_UMG604,
                         ISKRA_WM3M4)
})


def get_map(model: str) -> MeterMap:
    """The register map for a model name as used in the station config file."""
    try:
        return METER_MAPS[model]
    except KeyError:
        known = ", ".join(sorted(METER_MAPS))
        raise ValueError(f"unknown meter model {model!r}; known models: {known}") from None
