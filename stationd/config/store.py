"""ConfigStore: read, validate, write and watch every configuration key of the station.

A value comes from, in order: a station component (live values such as NetworkStatus), the
settings file (values changed over OCPP, in the WebUI or with the CLI), the station config
file (installation values such as the serial number or the backend URL), and the registry's
default. When an installer edits the config file, its new value replaces an older change.

Writes answer with the four OCPP outcomes: Accepted, Rejected (with a reason), RebootRequired
and NotSupported. A rejected write changes nothing.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import enum
import hashlib
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .keys import REGISTRY
from .registry import Access, Effect, Entry, KeyDef, Registry, max_items
from .settings_file import Settings, SettingsFile
from .value_types import MAX_VALUE_LENGTH, InvalidValue, Source

log = logging.getLogger("stationd.config")

SETTINGS_FILE_NAME = "settings.json"
SECRET_RECORD = "sha256:"  # a secret installation value is recorded by its digest only
RECORDED_SECRET = object()  # "the config file sets this secret" as seen by a tool without it


class ConfigStatus(enum.Enum):
    """ChangeConfiguration.conf status values of OCPP 1.6."""

    ACCEPTED = "Accepted"
    REJECTED = "Rejected"
    REBOOT_REQUIRED = "RebootRequired"
    NOT_SUPPORTED = "NotSupported"


@dataclass(frozen=True)
class SetResult:
    status: ConfigStatus
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.status in (ConfigStatus.ACCEPTED, ConfigStatus.REBOOT_REQUIRED)


@dataclass(frozen=True)
class Reading:
    """A key as GetConfiguration reports it. ``value`` is None for write-only keys."""

    name: str
    value: str | None
    readonly: bool
    entry: Entry


@dataclass(frozen=True)
class Change:
    key: str  # the stored key's name (aliases resolve to it); per connector: the expanded name
    old: Any
    new: Any
    source: Source


class ConfigError(Exception):
    """Installation values the registry refuses (a station config file problem)."""


Listener = Callable[[Change], None]


class ConfigStore:
    def __init__(
        self,
        path: Path | None = None,
        *,
        installation: Mapping[str, str] | None = None,
        registry: Registry = REGISTRY,
        clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    ):
        self.registry = registry
        self._clock = clock
        self._file = SettingsFile(path) if path else None
        self._values: dict[str, Any] = {}
        self._installation = self._parse_installation(installation or {})
        self._providers: dict[str, Callable[..., Any]] = {}
        self._listeners: list[tuple[frozenset[str] | None, Listener]] = []
        self._signature: tuple[int, int, int] | None = None
        self.pending_reboot: set[str] = set()
        if self._file:
            with self._file.locked():
                settings = self._file.load()
                self._values = self._parse_values(settings.values)
                if installation is None:  # a tool without the config file: use what the daemon saw
                    self._installation = self._recorded_installation(settings.installation)
                elif self._adopt_installation(settings):
                    self._file.save(settings)
                self._signature = self._file.signature()

    @classmethod
    def open(cls, data_dir: Path, **kwargs: Any) -> ConfigStore:
        return cls(Path(data_dir) / SETTINGS_FILE_NAME, **kwargs)

    # ---- reading ----------------------------------------------------------------------

    def resolve(self, name: str) -> Entry | None:
        return self.registry.resolve(name)

    def get(self, name: str) -> Any:
        """The value of a key as that name shows it (aliases converted). KeyError if unknown."""
        entry = self.registry.resolve(name)
        if entry is None:
            raise KeyError(name)
        return entry.to_shown(self._stored(entry))

    def is_set(self, name: str) -> bool:
        entry = self.registry.resolve(name)
        return entry is not None and self._stored(entry) is not None

    def read(self, name: str) -> Reading | None:
        """The key as GetConfiguration reports it, under the name (and case) asked for; None if unknown."""
        entry = self.registry.resolve(name)
        if entry is None:
            return None
        return self._reading(entry, name)

    def readings(self, include_hidden: bool = False) -> list[Reading]:
        """Every key, as a GetConfiguration without key names lists them."""
        return [self._reading(e) for e in self.registry.entries(self.connectors, include_hidden)]

    @property
    def connectors(self) -> int:
        return int(self.get("NumberOfConnectors"))

    def render(self, name: str) -> str | None:
        reading = self.read(name)
        return reading.value if reading else None

    def secret_values(self) -> list[str]:
        """Every form a secret may take in text (for the log redaction filter): the value, the
        AuthorizationKey's decoded password and its HTTP Basic token."""
        found = []
        for key in self.registry.keys:
            value = self._values.get(key.name, self._installation.get(key.name)) if key.secret else None
            if not isinstance(value, str) or not value:  # unset, or RECORDED_SECRET
                continue
            found.append(value)
            if key.name == "AuthorizationKey":
                password = bytes.fromhex(value)
                with contextlib.suppress(UnicodeDecodeError):
                    found.append(password.decode())
                box_id = self.get("BoxId") or ""
                found.append(base64.b64encode(box_id.encode() + b":" + password).decode())
        return found

    def _reading(self, entry: Entry, asked_as: str | None = None) -> Reading:
        stored = self._stored(entry)
        value = None
        if not entry.key.secret and entry.key.access is not Access.W and stored is not None:
            value = entry.type.render(entry.to_shown(stored))
        return Reading(asked_as or entry.name, value, entry.key.access is Access.R, entry)

    def _stored(self, entry: Entry) -> Any:
        key, name = entry.key, entry.storage_name
        if key.access is Access.R:
            provider = self._providers.get(key.name)
            if provider is not None:
                return provider(entry.connector) if entry.connector else provider()
            if key.derive is not None:
                return key.derive(_Context(self, Source.STORED))
        if name in self._values:
            return self._values[name]
        if name in self._installation:
            return self._installation[name]
        return key.default

    # ---- components -------------------------------------------------------------------

    def provide(self, name: str, provider: Callable[..., Any]) -> None:
        """Let a component supply a read-only key's live value (per connector: fn(connector))."""
        key = self.registry.key(name)
        if key.access is not Access.R:
            raise ValueError(f"{name} is writable; only read-only keys take a provider")
        self._providers[key.name] = provider

    def subscribe(self, listener: Listener, names: Iterable[str] | None = None) -> Callable[[], None]:
        """Call ``listener(change)`` after a key changes; returns the unsubscribe function."""
        wanted = None
        if names is not None:
            wanted = frozenset(self._canonical(n) for n in names)
        item = (wanted, listener)
        self._listeners.append(item)
        return lambda: self._listeners.remove(item) if item in self._listeners else None

    def _canonical(self, name: str) -> str:
        entry = self.registry.resolve(name)
        if entry is None:
            raise KeyError(name)
        return entry.storage_name

    # ---- writing ----------------------------------------------------------------------

    def set(self, name: str, text: str, source: Source = Source.OCPP) -> SetResult:
        """Validate and store a value; the result tells the writer what happened."""
        checked = self._checked(name, text, source)
        if isinstance(checked, SetResult):
            return checked
        entry, stored = checked
        changed = self._commit({entry.storage_name: stored}, source)
        if entry.key.effect is Effect.REBOOT and changed:
            self.pending_reboot.add(entry.key.name)
            return SetResult(ConfigStatus.REBOOT_REQUIRED, f"{entry.name} takes effect after a reboot")
        return SetResult(ConfigStatus.ACCEPTED)

    def check(self, name: str, text: str, source: Source = Source.LOCAL) -> SetResult:
        """Validate a value without storing it (forms, dry runs)."""
        checked = self._checked(name, text, source)
        return checked if isinstance(checked, SetResult) else SetResult(ConfigStatus.ACCEPTED)

    def check_together(self, texts: Mapping[str, str], source: Source = Source.LOCAL) -> dict[str, SetResult]:
        """Validate several values as one change (a form): each key's cross-key check sees the
        other keys' new values, e.g. a new AuthorizationKey with the SecurityProfile that needs it.
        Returns the refusals by name (empty: all would be accepted)."""
        return {name: result for name, result in self._checked_together(texts, source).items()
                if isinstance(result, SetResult)}

    def set_together(self, texts: Mapping[str, str], source: Source = Source.LOCAL) -> dict[str, SetResult]:
        """Store several values as one change, all or none: the refusals by name, or the result of
        each (Accepted / RebootRequired) when all were stored."""
        checked = self._checked_together(texts, source)
        refused = {name: result for name, result in checked.items() if isinstance(result, SetResult)}
        if refused:
            return refused
        updates = {entry.storage_name: stored for entry, stored in checked.values()}
        before = {entry.storage_name: self._values.get(entry.storage_name) for entry, _ in checked.values()}
        self._commit(updates, source)
        results = {}
        for name, (entry, stored) in checked.items():
            if entry.key.effect is Effect.REBOOT and before[entry.storage_name] != stored:
                self.pending_reboot.add(entry.key.name)
                results[name] = SetResult(ConfigStatus.REBOOT_REQUIRED, f"{entry.name} takes effect after a reboot")
            else:
                results[name] = SetResult(ConfigStatus.ACCEPTED)
        return results

    def _checked_together(self, texts: Mapping[str, str], source: Source) -> dict[str, tuple[Entry, Any] | SetResult]:
        parsed: dict[str, tuple[Entry, Any] | SetResult] = {}
        for name, text in texts.items():  # each value on its own first: the overlay holds only valid ones
            parsed[name] = self._checked(name, text, source, cross_checks=False)
        overlay = {entry.key.name: stored for entry, stored in
                   (value for value in parsed.values() if not isinstance(value, SetResult))}
        return {name: value if isinstance(value, SetResult) else self._checked(name, texts[name], source, overlay)
                for name, value in parsed.items()}

    def _checked(self, name: str, text: str, source: Source, overlay: Mapping[str, Any] | None = None, *,
                 cross_checks: bool = True) -> tuple[Entry, Any] | SetResult:
        """(entry, value to store), or the refusal. ``overlay``: other keys' new values (by key
        name) that the cross-key checks see instead of the stored ones."""
        entry = self.registry.resolve(name)
        if entry is None:
            return SetResult(ConfigStatus.NOT_SUPPORTED, f"unknown configuration key {name!r}")
        if entry.key.access is Access.R:
            return SetResult(ConfigStatus.REJECTED, f"{entry.name} is read-only")
        try:
            return entry, self._validate(entry, text, source, overlay, cross_checks=cross_checks)
        except InvalidValue as problem:
            return SetResult(ConfigStatus.REJECTED, f"{entry.name}: {problem}")

    def reset(self, name: str) -> SetResult:
        """Forget a changed value: back to the config file's value or the default."""
        entry = self.registry.resolve(name)
        if entry is None:
            return SetResult(ConfigStatus.NOT_SUPPORTED, f"unknown configuration key {name!r}")
        self._commit({entry.storage_name: None}, Source.LOCAL)
        return SetResult(ConfigStatus.ACCEPTED)

    def _validate(self, entry: Entry, text: str, source: Source, overlay: Mapping[str, Any] | None = None, *,
                  cross_checks: bool = True) -> Any:
        if not isinstance(text, str):
            raise InvalidValue("the value must be text")
        if len(text) > MAX_VALUE_LENGTH:
            raise InvalidValue(f"must be at most {MAX_VALUE_LENGTH} characters (got {len(text)})")
        shown = entry.type.parse(text, source)
        stored = entry.to_stored(shown)
        if entry.alias and entry.alias.type:  # the converted value must fit the stored key too
            entry.key.type.parse(entry.key.type.render(stored), Source.STORED)
        if not cross_checks:
            return stored
        context = _Context(self, source, overlay)
        limit = max_items(entry, context)
        if limit is not None and len(shown) > limit:
            raise InvalidValue(f"at most {limit} items (got {len(shown)})")
        if entry.key.check is not None:
            reason = entry.key.check(stored, context)
            if reason:
                raise InvalidValue(reason)
        return stored

    def _commit(self, updates: dict[str, Any], source: Source) -> bool:
        """Store values (None = forget) under the file lock; notify listeners of changes."""
        if self._file is None:
            before = dict(self._values)
            self._apply(updates)
            return self._announce(before, source, updates.keys())
        with self._file.locked():
            self._reload_locked()  # another process may have written since we last looked
            before = dict(self._values)
            self._apply(updates)
            if before != self._values:
                settings = self._file.load()
                settings.values = {name: self._render_stored(name, v) for name, v in self._values.items()}
                self._file.save(settings)
                self._signature = self._file.signature()
        return self._announce(before, source, updates.keys())

    def _apply(self, updates: dict[str, Any]) -> None:
        for name, value in updates.items():
            if value is None:
                self._values.pop(name, None)
            else:
                self._values[name] = value

    def _announce(self, before: dict[str, Any], source: Source, names: Iterable[str]) -> bool:
        changed = False
        for name in names:
            entry = self.registry.resolve(name)
            assert entry is not None
            old = before.get(name, self._installation.get(name, entry.key.default))
            new = self._stored(entry)
            if old == new:
                continue
            changed = True
            self._log_change(entry, old, new, source)
            self._notify(Change(name, old, new, source))
        return changed

    def _log_change(self, entry: Entry, old: Any, new: Any, source: Source) -> None:
        if entry.key.secret:
            log.info("configuration key %s changed (by %s)", entry.storage_name, source.value)
        else:
            log.info("configuration key %s changed from %s to %s (by %s)", entry.storage_name,
                     _show(entry.key, old), _show(entry.key, new), source.value)

    def _notify(self, change: Change) -> None:
        for wanted, listener in list(self._listeners):
            if wanted is None or change.key in wanted:
                try:
                    listener(change)
                except Exception:  # a broken listener must not undo or block a stored change
                    log.exception("listener of configuration key %s failed", change.key)

    # ---- the settings file ------------------------------------------------------------

    def reload(self) -> list[str]:
        """Pick up changes another process wrote (the CLI while the daemon runs)."""
        if self._file is None or self._file.signature() == self._signature:
            return []
        with self._file.locked():
            before = dict(self._values)
            self._reload_locked()
        names = set(before) | set(self._values)
        changed = [n for n in sorted(names) if before.get(n) != self._values.get(n)]
        self._announce(before, Source.LOCAL, changed)
        return changed

    async def watch(self, interval: float = 1.0) -> None:
        """Run forever: reload the settings file whenever it changes on disk."""
        while True:
            await asyncio.sleep(interval)
            try:
                self.reload()
            except OSError as exc:
                log.error("cannot re-read the settings file: %s", exc)

    def _reload_locked(self) -> None:
        assert self._file is not None
        if self._file.signature() != self._signature:
            self._values = self._parse_values(self._file.load().values)
            self._signature = self._file.signature()

    def _parse_values(self, texts: Mapping[str, str]) -> dict[str, Any]:
        values = {}
        for name, text in texts.items():
            entry = self.registry.resolve(name)
            if entry is None or entry.alias is not None or entry.key.access is Access.R:
                log.warning("settings file: ignoring unknown or read-only key %s", name)
                continue
            try:
                values[entry.storage_name] = entry.key.type.parse(text, Source.STORED)
            except InvalidValue as problem:
                log.warning("settings file: ignoring invalid value of %s (%s)", name, problem)
        return values

    def _render_stored(self, name: str, value: Any) -> str:
        entry = self.registry.resolve(name)
        assert entry is not None
        return entry.key.type.render(value)

    # ---- installation values (the station config file) --------------------------------

    def _parse_installation(self, texts: Mapping[str, str]) -> dict[str, Any]:
        values, problems = {}, []
        for name, text in texts.items():
            entry = self.registry.resolve(name)
            if entry is None or entry.alias is not None:
                problems.append(f"{name}: not a configuration key")
                continue
            try:
                values[entry.storage_name] = entry.key.type.parse(text, Source.LOCAL)
            except InvalidValue as problem:
                problems.append(f"{entry.name}: {problem}")
        if problems:
            raise ConfigError("; ".join(problems))
        return values

    def _adopt_installation(self, settings: Settings) -> bool:
        """Record the config file's values; where one changed since the last start, it wins
        over a value changed since (the installer's latest word)."""
        record = {name: self._record(name, value) for name, value in self._installation.items()}
        for name, text in record.items():
            previous = settings.installation.get(name)
            if previous is not None and previous != text and name in self._values:
                del self._values[name]
                settings.values.pop(name, None)
                log.info("configuration key %s: the station config file changed it; its new value replaces "
                         "the one changed since", name)
        dirty = record != settings.installation
        settings.installation = record
        return dirty

    def _record(self, name: str, value: Any) -> str:
        text = self._render_stored(name, value)
        return SECRET_RECORD + _digest(text) if self.registry.key(name).secret else text

    def _recorded_installation(self, record: Mapping[str, str]) -> dict[str, Any]:
        values = {}
        for name, text in record.items():
            entry = self.registry.resolve(name)
            if entry is None or entry.alias is not None:
                continue
            if text.startswith(SECRET_RECORD):
                values[entry.storage_name] = RECORDED_SECRET
                continue
            try:
                values[entry.storage_name] = entry.key.type.parse(text, Source.STORED)
            except InvalidValue:
                log.warning("settings file: ignoring the recorded installation value of %s", name)
        return values


class _Context:
    """What a key check sees: the store's current values and who is writing."""

    def __init__(self, store: ConfigStore, source: Source, overlay: Mapping[str, Any] | None = None):
        self._store, self.source = store, source
        self._overlay = {name.lower(): value for name, value in (overlay or {}).items()}

    def get(self, name: str) -> Any:
        if name.lower() in self._overlay:
            return self._overlay[name.lower()]
        return self._store.get(name)

    def is_set(self, name: str) -> bool:
        if name.lower() in self._overlay:
            return self._overlay[name.lower()] is not None
        return self._store.is_set(name)

    def now(self) -> datetime:
        return self._store._clock()


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _show(key: KeyDef, value: Any) -> str:
    return '""' if value is None else key.type.render(value) or '""'
