"""Wire types: how one message field becomes bytes (little-endian) and back.

Each wire type knows its size, how to pack a Python value, how to unpack it (raising
ProtocolError for anything out of range) and how to describe itself in the document.
"""

from __future__ import annotations

import math
import struct
from dataclasses import field as dataclass_field
from typing import Any

from .enums import FAULT_BY_BIT, FAULT_BY_NAME, DocEnum
from .errors import ProtocolError

_INT_NAMES = {"B": "u8", "H": "u16", "I": "u32", "b": "i8", "h": "i16", "i": "i32"}


class Wire:
    """Base of all wire types. ``size`` is None only for a variable-length tail."""

    size: int | None
    type_name: str
    range_doc: str = ""

    def pack(self, value: Any) -> bytes:
        raise NotImplementedError

    def unpack(self, data: bytes) -> Any:
        raise NotImplementedError


class Int(Wire):
    """Integer of struct format ``fmt`` with an optional allowed range."""

    def __init__(self, fmt: str, lo: int | None = None, hi: int | None = None) -> None:
        self._struct = struct.Struct("<" + fmt)
        self.size = self._struct.size
        self.type_name = _INT_NAMES[fmt]
        bits = 8 * self.size
        signed = fmt.islower()
        self.lo = lo if lo is not None else (-(1 << (bits - 1)) if signed else 0)
        self.hi = hi if hi is not None else ((1 << (bits - 1)) - 1 if signed else (1 << bits) - 1)
        self.range_doc = f"{self.lo}–{self.hi}"

    def _check(self, raw: int) -> int:
        if not self.lo <= raw <= self.hi:
            raise ProtocolError(f"{raw} outside {self.lo}–{self.hi}")
        return raw

    def pack(self, value: Any) -> bytes:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ProtocolError(f"integer expected, got {value!r}")
        return self._struct.pack(self._check(value))

    def unpack(self, data: bytes) -> int:
        return self._check(self._struct.unpack(data)[0])


class Fixed(Int):
    """Fixed-point number: the wire carries round(value × scale) as an integer."""

    def __init__(self, fmt: str, scale: int, lo: int | None = None, hi: int | None = None) -> None:
        super().__init__(fmt, lo, hi)
        self.scale = scale
        self.type_name = f"{self.type_name} ×{1 / scale:g}"
        self.range_doc = f"{self.lo / scale:g}–{self.hi / scale:g}"

    def pack(self, value: Any) -> bytes:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ProtocolError(f"finite number expected, got {value!r}")
        return self._struct.pack(self._check(round(value * self.scale)))

    def unpack(self, data: bytes) -> float:
        return self._check(self._struct.unpack(data)[0]) / self.scale


class Bool(Wire):
    """u8: 0 = false, 1 = true; anything else is refused."""

    size = 1
    type_name = "u8"
    range_doc = "0 = no, 1 = yes"

    def pack(self, value: Any) -> bytes:
        if value not in (True, False):  # also accepts 0 and 1
            raise ProtocolError(f"boolean expected, got {value!r}")
        return b"\x01" if value else b"\x00"

    def unpack(self, data: bytes) -> bool:
        if data[0] > 1:
            raise ProtocolError(f"boolean must be 0 or 1, got {data[0]}")
        return data[0] == 1


class Enum(Wire):
    """u8 holding a member of a DocEnum; unknown values are refused."""

    size = 1
    type_name = "u8"

    def __init__(self, enum: type[DocEnum]) -> None:
        self.enum = enum
        self.range_doc = f"see {enum.__name__}"

    def pack(self, value: Any) -> bytes:
        try:
            return bytes([int(self.enum(value))])
        except (ValueError, TypeError):
            raise ProtocolError(f"{value!r} is not a {self.enum.__name__}") from None

    def unpack(self, data: bytes) -> DocEnum:
        try:
            return self.enum(data[0])
        except ValueError:
            raise ProtocolError(f"{data[0]} is not a {self.enum.__name__}") from None


class Choice(Wire):
    """u8 restricted to a fixed set of values."""

    size = 1
    type_name = "u8"

    def __init__(self, values: tuple[int, ...]) -> None:
        self.values = values
        self.range_doc = ", ".join(str(v) for v in values)

    def pack(self, value: Any) -> bytes:
        if value not in self.values or isinstance(value, bool):
            raise ProtocolError(f"{value!r} is not one of {self.range_doc}")
        return bytes([int(value)])

    def unpack(self, data: bytes) -> int:
        if data[0] not in self.values:
            raise ProtocolError(f"{data[0]} is not one of {self.range_doc}")
        return data[0]


class IntTuple(Wire):
    """Several integers of one struct format, as a tuple (versions)."""

    def __init__(self, fmt: str, count: int, names: str) -> None:
        self._item = Int(fmt)
        self._struct = struct.Struct("<" + fmt * count)
        self.count = count
        self.size = self._struct.size
        self.type_name = f"{count} × {self._item.type_name}"
        self.range_doc = names

    def pack(self, value: Any) -> bytes:
        items = tuple(value) if isinstance(value, (tuple, list)) else ()
        if len(items) != self.count:
            raise ProtocolError(f"{self.count} integers expected, got {value!r}")
        return b"".join(self._item.pack(v) for v in items)

    def unpack(self, data: bytes) -> tuple[int, ...]:
        return self._struct.unpack(data)


class Ascii(Wire):
    """Fixed-size printable ASCII text, padded with 0x00 (no 0x00 inside the text)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.type_name = f"char[{size}]"
        self.range_doc = f"printable ASCII, ≤ {size} chars, 0x00-padded"

    def pack(self, value: Any) -> bytes:
        if not isinstance(value, str) or len(value) > self.size or not _printable(value):
            raise ProtocolError(f"printable ASCII of ≤ {self.size} characters expected, got {value!r}")
        return value.encode("ascii").ljust(self.size, b"\x00")

    def unpack(self, data: bytes) -> str:
        text = data.rstrip(b"\x00")
        try:
            value = text.decode("ascii")
        except UnicodeDecodeError:
            raise ProtocolError("text is not ASCII") from None
        if not _printable(value):
            raise ProtocolError("text contains control characters")
        return value


def _printable(text: str) -> bool:
    return all(" " <= ch <= "~" for ch in text)


class FaultSet(Wire):
    """u16 bit field of FAULT_BITS, as a frozenset of fault names."""

    size = 2
    type_name = "u16 bits"
    range_doc = "see Fault bits"

    def pack(self, value: Any) -> bytes:
        mask = 0
        for name in value:
            fault = FAULT_BY_NAME.get(name)
            if fault is None:
                raise ProtocolError(f"unknown fault {name!r}")
            mask |= 1 << fault.bit
        return mask.to_bytes(2, "little")

    def unpack(self, data: bytes) -> frozenset[str]:
        mask = int.from_bytes(data, "little")
        names = set()
        for bit in range(16):
            if mask & (1 << bit):
                fault = FAULT_BY_BIT.get(bit)
                if fault is None:
                    raise ProtocolError(f"undefined fault bit {bit}")
                names.add(fault.name)
        return frozenset(names)


class Tail(Wire):
    """Variable-length bytes running to the end of the message (always the last field)."""

    size = None

    def __init__(self, min_size: int, max_size: int) -> None:
        self.min_size = min_size
        self.max_size = max_size
        self.type_name = "u8[]"
        self.range_doc = f"{min_size}–{max_size} bytes, to the end of the message"

    def pack(self, value: Any) -> bytes:
        if not isinstance(value, (bytes, bytearray)) or not self.min_size <= len(value) <= self.max_size:
            raise ProtocolError(f"{self.min_size}–{self.max_size} bytes expected")
        return bytes(value)

    def unpack(self, data: bytes) -> bytes:
        return bytes(data)


def spec(wire: Wire, *, doc: str, unit: str = "", range_doc: str | None = None) -> Any:
    """Declare a message field: a dataclass field carrying its wire description."""
    meta = {"wire": wire, "doc": doc, "unit": unit, "range": range_doc or wire.range_doc}
    return dataclass_field(metadata=meta)


U8 = Int("B")
U16 = Int("H")
U32 = Int("I")
I32 = Int("i")
BOOL = Bool()
VERSION = IntTuple("H", 3, "(major, minor, patch)")
