"""Register ⇄ value conversion and read planning for the meter maps in :mod:`.maps`.

Decoding is what the station's reader does with a reply; encoding is its exact inverse and is
what the simulated meters serve, so both sides walk the same map data.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from .maps import (
    PLAUSIBLE_RANGE,
    DataType,
    Field,
    FunctionCode,
    IdentityRegisters,
    MeterMap,
    NotAvailable,
    Quantity,
    WordOrder,
    quantity_of,
)

__all__ = [
    "BlockRead", "MeterError", "decode_fields", "decode_identity", "decode_raw", "encode_fields",
    "encode_identity", "encode_raw", "is_not_available", "plan_reads", "register_count",
    "validate_values",
]


class MeterError(Exception):
    """A meter reading that cannot be used.

    ``reason`` is short and stable (it is what the poller reports): "timeout", "connection",
    "exception <code>", "wrong register count", "not a number", "not available",
    "negative energy", "energy backwards", "implausible", "bad reply" (and "internal error"
    from the poller for a driver bug). ``detail`` says which value or request and why.
    """

    def __init__(self, reason: str, detail: str = "", *, exception_code: int | None = None,
                 field: str | None = None) -> None:
        self.reason = reason
        self.detail = detail
        self.exception_code = exception_code
        self.field = field
        super().__init__(f"{reason}: {detail}" if detail else reason)


_REGISTERS = {
    DataType.FLOAT32: 2, DataType.INT16: 1, DataType.UINT16: 1, DataType.INT32: 2,
    DataType.UINT32: 2, DataType.UINT64: 4, DataType.ISKRA_T5: 2, DataType.ISKRA_T6: 2,
}
_STRUCT = {
    DataType.FLOAT32: ">f", DataType.INT16: ">h", DataType.UINT16: ">H", DataType.INT32: ">i",
    DataType.UINT32: ">I", DataType.UINT64: ">Q",
}
# ABB B2x: "not available" is all bits set for unsigned types and the largest positive value for
# signed ones (0x7FFF, 0x7FFFFFFF, ...).
_ABB_NOT_AVAILABLE = {
    DataType.UINT16: 0xFFFF, DataType.UINT32: 0xFFFF_FFFF, DataType.UINT64: 0xFFFF_FFFF_FFFF_FFFF,
    DataType.INT16: 0x7FFF, DataType.INT32: 0x7FFF_FFFF,
}
_MANTISSA = {DataType.ISKRA_T5: (0, 0xFF_FFFF), DataType.ISKRA_T6: (-0x80_0000, 0x7F_FFFF)}


def register_count(dtype: DataType) -> int:
    return _REGISTERS[dtype]


def _ordered(registers: Sequence[int], word_order: WordOrder) -> list[int]:
    """Registers high word first, whatever order the meter sends them in."""
    words = list(registers)
    return words[::-1] if word_order is WordOrder.LITTLE else words


def _to_bytes(registers: Sequence[int]) -> bytes:
    return b"".join(int(r).to_bytes(2, "big") for r in registers)


def decode_raw(dtype: DataType, registers: Sequence[int],
               word_order: WordOrder = WordOrder.BIG) -> int | float:
    """The number the registers hold, before the map's scale is applied.

    Iskra T5/T6 carry their own decimal exponent, so they decode to the value itself.
    """
    size = register_count(dtype)
    if len(registers) != size:
        raise ValueError(f"{dtype} needs {size} registers, got {len(registers)}")
    data = _to_bytes(_ordered(registers, word_order))
    if dtype in _STRUCT:
        return struct.unpack(_STRUCT[dtype], data)[0]
    exponent = struct.unpack(">b", data[:1])[0]
    mantissa = int.from_bytes(data[1:], "big", signed=dtype is DataType.ISKRA_T6)
    return _times_power_of_ten(mantissa, exponent)


def _times_power_of_ten(value: int, exponent: int) -> int | float:
    # Dividing by an exact power of ten rounds once, so 123456 × 10^-3 decodes to 123.456.
    return value * 10 ** exponent if exponent >= 0 else value / 10 ** -exponent


def encode_raw(dtype: DataType, value: float,
               word_order: WordOrder = WordOrder.BIG) -> list[int]:
    """Registers holding ``value`` (already unscaled; an int for integer types)."""
    if dtype in _STRUCT:
        packed = struct.pack(_STRUCT[dtype], value)
    else:
        exponent, mantissa = _iskra_split(dtype, float(value))
        packed = struct.pack(">b", exponent) + (mantissa & 0xFF_FFFF).to_bytes(3, "big")
    words = [int.from_bytes(packed[i:i + 2], "big") for i in range(0, len(packed), 2)]
    return _ordered(words, word_order)


def _iskra_split(dtype: DataType, value: float) -> tuple[int, int]:
    """Exponent and mantissa with the finest resolution the 24-bit mantissa allows."""
    if not math.isfinite(value):
        raise ValueError(f"{dtype} cannot hold {value}")
    low, high = _MANTISSA[dtype]
    for exponent in range(-6, 100):
        mantissa = round(value * 10 ** -exponent) if exponent <= 0 else round(value / 10 ** exponent)
        if low <= mantissa <= high:
            return exponent, mantissa
    raise ValueError(f"{dtype} cannot hold {value}")


def is_not_available(meter_map: MeterMap, field: Field, raw: float) -> bool:
    if meter_map.not_available is NotAvailable.ABB:
        return _ABB_NOT_AVAILABLE.get(field.dtype) == raw
    return False


# --- whole maps -----------------------------------------------------------------------------

def _field_registers(field: Field, registers: Mapping[int, int]) -> list[int]:
    size = register_count(field.dtype)
    try:
        return [registers[field.address + i] for i in range(size)]
    except KeyError:
        raise MeterError("bad reply", f"{field.name}: register {field.address} was not read",
                         field=field.name) from None


def decode_fields(meter_map: MeterMap, registers: Mapping[int, int]) -> dict[str, float | None]:
    """SI values of every measurand in the map (exponent helpers are folded in).

    A value the meter marks "not available" is None when optional and rejected when required;
    NaN or infinity is always rejected.
    """
    raws: dict[str, int | float] = {}
    for field in meter_map.fields:
        raws[field.name] = decode_raw(field.dtype, _field_registers(field, registers),
                                      meter_map.word_order)
    values: dict[str, float | None] = {}
    for field in meter_map.fields:
        if quantity_of(field.name) is Quantity.EXPONENT:
            continue
        raw = raws[field.name]
        if isinstance(raw, float) and not math.isfinite(raw):
            raise MeterError("not a number", f"{field.name} reads {raw}", field=field.name)
        if is_not_available(meter_map, field, raw):
            if field.required:
                raise MeterError("not available", f"{field.name} is marked not available",
                                 field=field.name)
            values[field.name] = None
            continue
        value = float(raw) * field.scale
        if field.exponent_field is not None:
            exponent = raws[field.exponent_field]
            low, high = PLAUSIBLE_RANGE[Quantity.EXPONENT]
            if not low <= exponent <= high:
                raise MeterError("implausible", f"{field.exponent_field} is {exponent}",
                                 field=field.exponent_field)
            value = float(_times_power_of_ten(raw, int(exponent))) * field.scale  # type: ignore[arg-type]
        values[field.name] = value
    return values


def validate_values(values: Mapping[str, float | None]) -> None:
    """Reject negative energies and values outside PLAUSIBLE_RANGE."""
    present = {name: value for name, value in values.items() if value is not None}
    for name, value in present.items():
        if quantity_of(name) is Quantity.ENERGY and value < 0:
            raise MeterError("negative energy", f"{name} reads {value:g} Wh", field=name)
    for name, value in present.items():
        low, high = PLAUSIBLE_RANGE[quantity_of(name)]
        if not low <= value <= high:
            raise MeterError("implausible", f"{name} reads {value:g}, outside {low:g}..{high:g}",
                             field=name)


def _unscaled(field: Field, value: float) -> int | float:
    raw = value / field.scale
    if field.dtype in (DataType.FLOAT32, DataType.ISKRA_T5, DataType.ISKRA_T6):
        return raw
    return round(raw)


def encode_fields(meter_map: MeterMap, values: Mapping[str, float]) -> dict[int, int]:
    """Register address → value for every field in ``values`` (SI units), for a server.

    Counters with an exponent register get the smallest exponent ≥ 0 whose counter fits.
    """
    registers: dict[int, int] = {}
    for field in meter_map.fields:
        if field.name not in values or quantity_of(field.name) is Quantity.EXPONENT:
            continue
        value = values[field.name]
        if field.exponent_field is not None:
            exponent_field = meter_map.field(field.exponent_field)
            exponent, counter = _counter_with_exponent(field, value)
            _put(registers, exponent_field, encode_raw(exponent_field.dtype, exponent,
                                                       meter_map.word_order))
            _put(registers, field, encode_raw(field.dtype, counter, meter_map.word_order))
        else:
            _put(registers, field, encode_raw(field.dtype, _unscaled(field, value),
                                              meter_map.word_order))
    return registers


def _counter_with_exponent(field: Field, value: float) -> tuple[int, int]:
    bits = 8 * 2 * register_count(field.dtype)
    limit = 2 ** (bits - 1) - 1 if field.dtype in (DataType.INT16, DataType.INT32) else 2 ** bits - 1
    for exponent in range(10):
        counter = round(value / field.scale / 10 ** exponent)
        if abs(counter) <= limit:
            return exponent, counter
    raise ValueError(f"{field.name}: {value} does not fit")


def _put(registers: dict[int, int], field: Field, words: Sequence[int]) -> None:
    for offset, word in enumerate(words):
        registers[field.address + offset] = word


def encode_identity(spec: IdentityRegisters, text: str) -> list[int]:
    if spec.encoding == "uint32":
        return encode_raw(DataType.UINT32, int(text))
    data = text.encode("ascii")
    if len(data) > 2 * spec.count:
        raise ValueError(f"{text!r} does not fit in {spec.count} registers")
    data = data.ljust(2 * spec.count, b"\0")
    return [int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2)]


def decode_identity(spec: IdentityRegisters, registers: Sequence[int]) -> str:
    if len(registers) != spec.count:
        raise MeterError("wrong register count",
                         f"expected {spec.count} registers at {spec.address}, got {len(registers)}")
    if spec.encoding == "uint32":
        return str(decode_raw(DataType.UINT32, registers))
    text = _to_bytes(registers).replace(b"\0", b"").decode("ascii", errors="replace")
    return text.strip()


# --- read planning --------------------------------------------------------------------------

@dataclass(frozen=True)
class BlockRead:
    """One read request: ``count`` registers from ``address`` with ``function_code``."""

    function_code: FunctionCode
    address: int
    count: int
    fields: tuple[str, ...]

    @property
    def end(self) -> int:
        return self.address + self.count


def plan_reads(meter_map: MeterMap, fields: Iterable[Field] | None = None) -> tuple[BlockRead, ...]:
    """The fewest block reads that cover the map's fields.

    Fields are sorted by address and a block grows while it stays within the meter's read
    limit; for intervals on a line this greedy sweep gives the minimum number of blocks. Gaps
    between fields are read along (the meters answer them), so one sample costs one request
    wherever the map's addresses fit into one read.
    """
    chosen = sorted(meter_map.fields if fields is None else fields, key=lambda f: f.address)
    limit = meter_map.max_registers_per_read
    blocks: list[BlockRead] = []
    start = end = -1
    names: list[str] = []
    for field in chosen:
        field_end = field.address + register_count(field.dtype)
        if names and field_end - start <= limit:
            end = max(end, field_end)
            names.append(field.name)
            continue
        if names:
            blocks.append(BlockRead(meter_map.function_code, start, end - start, tuple(names)))
        start, end, names = field.address, field_end, [field.name]
    if names:
        blocks.append(BlockRead(meter_map.function_code, start, end - start, tuple(names)))
    return tuple(blocks)
