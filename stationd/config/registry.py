"""The configuration key registry: every key the station knows, as declarative data.

A key (``KeyDef``) is one stored setting. An ``Alias`` is another name for the same stored
setting, possibly in another unit (``/power/station/mainsMaxCurrent`` in mA is
``GridMaxCurrentPerPhase`` in A). Key names are case-insensitive, as OCPP's CiString is.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from .value_types import Csl, InvalidValue, Source, ValueType

CONNECTOR_PLACEHOLDER = "{connector}"


class Access(enum.Enum):
    R = "R"
    RW = "RW"
    W = "W"


class Effect(enum.Enum):
    IMMEDIATE = "at once"
    REBOOT = "after reboot"


class KeyContext(Protocol):
    """What a cross-key check may look at: the other keys' current values."""

    source: Source

    def get(self, name: str) -> Any: ...

    def now(self) -> Any: ...

    def is_set(self, name: str) -> bool: ...


# A check returns None when the value is fine, else the reason it is refused.
Check = Callable[[Any, KeyContext], str | None]


@dataclass(frozen=True)
class KeyDef:
    name: str
    type: ValueType
    default: Any
    access: Access = Access.RW
    effect: Effect = Effect.IMMEDIATE
    family: str = ""
    unit: str | None = None
    description: str = ""
    hidden: bool = False  # not in a GetConfiguration without key names
    reconnects: bool = False  # a change may make the station reconnect to its backend
    computed: bool = False  # a station component supplies the value at run time
    derive: Callable[[KeyContext], Any] | None = None  # value computed from other keys
    max_items_key: str | None = None  # companion "...MaxLength" key of a CSL
    check: Check | None = None

    @property
    def secret(self) -> bool:
        return self.type.secret

    @property
    def per_connector(self) -> bool:
        return CONNECTOR_PLACEHOLDER in self.name


@dataclass(frozen=True)
class Alias:
    """Another name of a stored key; with ``type`` and converters it shows another unit."""

    name: str
    of: str
    family: str = ""
    description: str = ""
    type: ValueType | None = None
    unit: str | None = None
    to_alias: Callable[[Any], Any] | None = None  # stored value -> alias value
    from_alias: Callable[[Any], Any] | None = None  # alias value -> stored value


@dataclass(frozen=True)
class Entry:
    """A name as a reader sees it: the key behind it, and how its value is shown."""

    name: str
    key: KeyDef
    alias: Alias | None = None
    connector: int | None = None

    @property
    def type(self) -> ValueType:
        return self.alias.type if self.alias and self.alias.type else self.key.type

    @property
    def unit(self) -> str | None:
        return self.alias.unit if self.alias and self.alias.type else self.key.unit

    @property
    def family(self) -> str:
        return self.alias.family if self.alias else self.key.family

    @property
    def description(self) -> str:
        return self.alias.description if self.alias and self.alias.description else self.key.description

    @property
    def default(self) -> Any:
        return self.to_shown(self.key.default)

    def to_shown(self, stored: Any) -> Any:
        if stored is not None and self.alias and self.alias.to_alias:
            return self.alias.to_alias(stored)
        return stored

    def to_stored(self, shown: Any) -> Any:
        if self.alias and self.alias.from_alias:
            return self.alias.from_alias(shown)
        return shown

    @property
    def storage_name(self) -> str:
        """The name a value is stored under (per-connector keys: one value per connector)."""
        if self.connector is None:
            return self.key.name
        return self.key.name.replace(CONNECTOR_PLACEHOLDER, str(self.connector))


class RegistryError(Exception):
    """The key tables themselves are inconsistent (a programming error)."""


@dataclass
class Registry:
    keys: tuple[KeyDef, ...]
    aliases: tuple[Alias, ...] = ()
    _by_name: dict[str, KeyDef | Alias] = field(default_factory=dict, init=False, repr=False)
    _patterns: list[tuple[re.Pattern[str], KeyDef | Alias]] = field(default_factory=list, init=False, repr=False)
    _order: list[KeyDef | Alias] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        for item in (*self.keys, *self.aliases):
            folded = item.name.lower()
            if folded in self._by_name:
                raise RegistryError(f"key {item.name} is defined twice")
            self._by_name[folded] = item
            if CONNECTOR_PLACEHOLDER in item.name:
                before, _, after = item.name.partition(CONNECTOR_PLACEHOLDER)
                pattern = re.compile(re.escape(before) + r"([1-9][0-9]?)" + re.escape(after), re.IGNORECASE)
                self._patterns.append((pattern, item))
        keys = {k.name.lower(): k for k in self.keys}
        for alias in self.aliases:
            if alias.of.lower() not in keys:
                raise RegistryError(f"alias {alias.name} points at unknown key {alias.of}")
            if (alias.type is None) != (alias.to_alias is None) or (alias.to_alias is None) != (alias.from_alias is None):
                raise RegistryError(f"alias {alias.name}: a unit conversion needs type, to_alias and from_alias")
        for key in self.keys:
            if key.max_items_key and key.max_items_key.lower() not in keys:
                raise RegistryError(f"{key.name}: companion key {key.max_items_key} is unknown")
            self._check_default(key)
        self._order = sorted((*self.keys, *self.aliases), key=lambda item: FAMILY_ORDER.index(item.family))

    def _check_default(self, key: KeyDef) -> None:
        if key.default is None:
            return
        try:
            reparsed = key.type.parse(key.type.render(key.default), Source.STORED)
        except InvalidValue as exc:
            raise RegistryError(f"{key.name}: default {key.default!r} is not valid: {exc}") from None
        if reparsed != key.default and not key.secret:
            raise RegistryError(f"{key.name}: default {key.default!r} does not survive a round trip")

    def resolve(self, name: str) -> Entry | None:
        """The entry for a key name (any case), or None when the station does not know it."""
        item = self._by_name.get(name.lower())
        connector = None
        if item is None:
            for pattern, candidate in self._patterns:
                match = pattern.fullmatch(name)
                if match:
                    item, connector = candidate, int(match.group(1))
                    break
        if item is None or (connector is None and CONNECTOR_PLACEHOLDER in item.name):
            return None
        shown = item.name.replace(CONNECTOR_PLACEHOLDER, str(connector)) if connector else item.name
        if isinstance(item, Alias):
            return Entry(shown, self._by_name[item.of.lower()], item, connector)  # type: ignore[arg-type]
        return Entry(shown, item, None, connector)

    def entries(self, connectors: int, include_hidden: bool = False) -> Iterator[Entry]:
        """Every name in listing order; per-connector keys once per connector."""
        for item in self._order:
            targets = [None]
            if CONNECTOR_PLACEHOLDER in item.name:
                targets = list(range(1, connectors + 1))
            for connector in targets:
                name = item.name.replace(CONNECTOR_PLACEHOLDER, str(connector)) if connector else item.name
                entry = self.resolve(name)
                assert entry is not None
                if entry.key.hidden and not include_hidden:
                    continue
                yield entry

    def key(self, name: str) -> KeyDef:
        item = self._by_name[name.lower()]
        if isinstance(item, Alias):
            raise RegistryError(f"{name} is an alias of {item.of}")
        return item

    def families(self) -> Iterable[str]:
        return [f for f in FAMILY_ORDER if any(i.family == f for i in self._order)]


def max_items(entry: Entry, context: KeyContext) -> int | None:
    """How many items a CSL key may hold: its type's fixed maximum or its companion key."""
    if not isinstance(entry.type, Csl):
        return None
    if entry.key.max_items_key:
        return int(context.get(entry.key.max_items_key))
    return entry.type.max_items


FAMILY_ORDER = [
    "OCPP 1.6 Core",
    "OCPP 1.6 Local Auth List Management",
    "OCPP 1.6 Reservation",
    "OCPP 1.6 Smart Charging",
    "OCPP 1.6 Security",
    "Technagon",
    "CTEK Charge Portal",
    "Eaton",
    "Eaton load balancing",
    "Eaton special",
    "Technagon path",
    "stationd",
]
