"""The OCPP message journal: every frame in both directions, secrets masked.

The RPC layer hands each frame to :meth:`MessageJournal.record` the moment it is received or
sent. The journal keeps the most recent ones in memory (for the WebUI's "OCPP message log":
:meth:`MessageJournal.recent`) and appends every one to a size-capped rotating file in the
data directory (``ocpp-journal.log``, rotated to ``ocpp-journal.log.1``), which GetDiagnostics
puts into the diagnostics archive (:meth:`MessageJournal.read`).

One line per frame in the file::

    2024-05-01T12:00:00.123Z <- [2,"c1","ChangeConfiguration",{"key":"AuthorizationKey","value":"***"}]
    2024-05-01T12:00:00.125Z -> [3,"c1",{"status":"Accepted"}]

``<-`` received from the backend, ``->`` sent to it. Line breaks inside a frame (only JSON
whitespace can hold one) become spaces.

**Secrets are masked before anything is kept** (DESIGN.md §5.5), in memory and on disk:

* the ``value`` of a ChangeConfiguration whose key the registry marks secret
  (AuthorizationKey, passwords, tokens; aliases and any case included) — the store does not
  know the new value yet when the frame arrives, so the journal looks at the frame itself; a
  frame that is not valid JSON but names a secret key has every ``"value": "…"`` masked;
* what :func:`stationd.ocpp_client.rpc.mask_secrets` masks in the RPC layer's log lines
  (fields named like password/secret/psk, a ``value`` next to a secret-looking ``key``);
* every secret the log redaction knows (:mod:`stationd.logs`: ``add_secret_source``, e.g. the
  store's AuthorizationKey as hex in any case, its password and its HTTP Basic token), also as
  hex and base64 (:func:`secret_forms`), through the same :class:`stationd.logs.SecretFilter`
  the log lines pass;
* the password in a URL (``ftp://user:password@host/``, a GetDiagnostics location).

The list of secrets is not worked out per frame: :meth:`MessageJournal.for_store` (how the
client makes its journal) works it out again as soon as a secret key (or BoxId) changes, and
any other source is asked again at least every :data:`SECRETS_REFRESH_S`. A frame in which no
known secret occurs (any case) skips the filter's regular expression. About 25 µs per frame.

**A journal failure never breaks the OCPP connection.** :meth:`record` never raises: a file
that cannot be written (disk full, read-only) is logged once and the journal goes on in memory,
trying the file again after :data:`REOPEN_AFTER_S`.

Bounds: :data:`MEMORY_ENTRIES` frames and :data:`MEMORY_CHARS` characters in memory; a frame
is kept up to :data:`MAX_FRAME_CHARS` characters (the station refuses bigger ones anyway);
:data:`FILE_BYTES` per file, one older file: at most about 2 × 5 MB on disk.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

from .. import logs
from ..config.keys import REGISTRY
from ..config.registry import Registry
from .rpc import mask_secrets

log = logging.getLogger("stationd.ocpp.journal")

JOURNAL_FILE = "ocpp-journal.log"
MEMORY_ENTRIES = 500
MEMORY_CHARS = 2_000_000
MAX_FRAME_CHARS = 64 * 1024
FILE_BYTES = 5 * 1024 * 1024
BACKUPS = 1
REOPEN_AFTER_S = 60.0
SECRETS_REFRESH_S = 1.0
MASK = logs.REDACTED

RECEIVED, SENT = "in", "out"
_ARROWS = {RECEIVED: "<-", SENT: "->"}
_DIRECTIONS = {arrow: direction for direction, arrow in _ARROWS.items()}
_LINE_RE = re.compile(r"^(\S+) (<-|->) (.*)$")
# Frames worth parsing for structural masking (words looked for in the lower-cased frame);
# everything else only passes the secret filter.
_LOOK_CLOSER_WORDS = ("changeconfiguration", "passw", "secret", "psk", "key")
_HEX_RE = re.compile(r"[0-9A-Fa-f]+")
_JSON_VALUE_RE = re.compile(r'("value"\s*:\s*)"(?:[^"\\]|\\.)*"?')


@dataclass(frozen=True)
class JournalEntry:
    """One frame: when, which way (``"in"`` from the backend, ``"out"`` to it), the text."""

    time: datetime
    direction: str
    text: str

    @property
    def arrow(self) -> str:
        return _ARROWS[self.direction]

    def line(self) -> str:
        """The entry as one line of the journal file (without the newline)."""
        stamp = self.time.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        return f"{stamp} {self.arrow} {self.text}"

    @classmethod
    def parse(cls, line: str) -> JournalEntry | None:
        """An entry from a journal file line; None for a line that is not one."""
        match = _LINE_RE.match(line.rstrip("\n"))
        if match is None:
            return None
        try:
            moment = datetime.fromisoformat(match.group(1).replace("Z", "+00:00"))
        except ValueError:
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        return cls(moment, _DIRECTIONS[match.group(2)], match.group(3))


class SecretMasker:
    """Masks secrets in a frame's text (see the module docstring). ``secrets``: a source of
    secrets besides the ones registered with :func:`stationd.logs.add_secret_source` (those
    only, with ``include_registered=False``: a fixed list another thread may use)."""

    def __init__(self, registry: Registry = REGISTRY,
                 secrets: Callable[[], Iterable[str]] | None = None, *, include_registered: bool = True,
                 monotonic: Callable[[], float] = time.monotonic):
        self.registry = registry
        self._extra = secrets
        self._registered = logs._all_secrets if include_registered else list
        self._monotonic = monotonic
        self._known: list[str] | None = None
        self._folded: list[str] = []
        self._known_at = 0.0
        # The log lines' redaction, reused: same secrets, same rules (case-insensitive, >= 4 chars).
        self._filter = logs.SecretFilter(self.known)
        self._secret_names = [key.name for key in registry.keys if key.secret]
        self._secret_names += [alias.name for alias in registry.aliases if registry.key(alias.of).secret]

    def known(self) -> list[str]:
        """What the log redaction knows and the caller's own source, in every form. Worked out
        again after :meth:`invalidate` (a secret key changed) and at least every
        :data:`SECRETS_REFRESH_S` (sources the journal hears nothing from), not per frame."""
        now = self._monotonic()
        if self._known is None or now - self._known_at >= SECRETS_REFRESH_S:
            self._known = secret_forms([*self._registered(), *(self._extra() if self._extra else ())])
            self._folded = [form.casefold() for form in self._known if len(form) >= 4]
            self._known_at = now
        return self._known

    def invalidate(self) -> None:
        self._known = None

    def _may_hold_secret(self, text: str) -> bool:
        """False only when no known secret occurs in ``text`` (any case): the filter would
        change nothing, so frames without secrets skip its regular expression."""
        self.known()
        folded = text.casefold()
        return any(form in folded for form in self._folded)

    def mask(self, text: str) -> str:
        folded = text.lower()
        if any(word in folded for word in _LOOK_CLOSER_WORDS):
            text = self._mask_structure(text)
        return self.redact(text)

    def redact(self, text: str) -> str:
        """Every secret the log redaction knows replaced by ``***``, and the password of a URL
        (``ftp://user:password@host/``: GetDiagnostics and UpdateFirmware locations)."""
        text = logs.mask_url_passwords(text)
        if not self._may_hold_secret(text):
            return text
        record = logging.LogRecord("stationd.ocpp.journal", logging.INFO, __file__, 0, text, None, None)
        self._filter.filter(record)
        return str(record.msg)

    def _mask_structure(self, text: str) -> str:
        try:
            message = json.loads(text)
        except (ValueError, RecursionError):
            return self._mask_unparsed(text)
        masked = self._masked_message(message)
        if masked == message:
            return text
        try:
            return json.dumps(masked, separators=(",", ":"), ensure_ascii=False)
        except (TypeError, ValueError, RecursionError):
            return self._mask_unparsed(text)

    def _masked_message(self, message: Any) -> Any:
        if not isinstance(message, list):
            return mask_secrets(message)
        masked = mask_secrets(message)
        if len(masked) >= 4 and masked[0] == 2 and masked[2] == "ChangeConfiguration" and isinstance(masked[3], dict):
            payload = dict(masked[3])
            if "value" in payload and self._is_secret_key(payload.get("key")):
                payload["value"] = MASK
            masked[3] = payload
        return masked

    def _is_secret_key(self, name: Any) -> bool:
        if not isinstance(name, str):
            return False
        entry = self.registry.resolve(name)
        return entry is not None and entry.key.secret

    def _mask_unparsed(self, text: str) -> str:
        """Not JSON (or not re-encodable): mask every ``"value": "…"`` when a secret key is named."""
        folded = text.lower()
        if "changeconfiguration" in folded and any(name.lower() in folded for name in self._secret_names):
            return _JSON_VALUE_RE.sub(lambda m: m.group(1) + f'"{MASK}"', text)
        return text


class MessageJournal:
    """The journal of one station (see the module docstring)."""

    def __init__(self, path: Path | None, *, registry: Registry = REGISTRY,
                 secrets: Callable[[], Iterable[str]] | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
                 monotonic: Callable[[], float] = time.monotonic,
                 memory_entries: int = MEMORY_ENTRIES, memory_chars: int = MEMORY_CHARS,
                 file_bytes: int = FILE_BYTES, backups: int = BACKUPS,
                 max_frame_chars: int = MAX_FRAME_CHARS, load: bool = True):
        self.path = Path(path) if path is not None else None
        self.masker = SecretMasker(registry, secrets, monotonic=monotonic)
        self._clock, self._monotonic = clock, monotonic
        self._entries: deque[JournalEntry] = deque()
        self._chars = 0
        self.memory_entries, self.memory_chars = memory_entries, memory_chars
        self.file_bytes, self.backups, self.max_frame_chars = file_bytes, max(0, backups), max_frame_chars
        self._file: TextIO | None = None
        self._size = 0
        self._failed_at: float | None = None  # monotonic time of the last file failure
        self.file_errors = 0
        self.recorded = 0
        if load and self.path is not None:
            self._load_tail()

    @classmethod
    def for_store(cls, path: Path | None, store: Any, **kwargs: Any) -> MessageJournal:
        """The journal of a station: the store's registry and secrets; a change of a secret key
        (or of BoxId, part of the Basic token) takes effect on the next frame."""
        journal = cls(path, registry=store.registry, secrets=store.secret_values, **kwargs)
        watched = [key.name for key in store.registry.keys if key.secret and not key.per_connector]
        store.subscribe(lambda change: journal.masker.invalidate(), names=[*watched, "BoxId"])
        return journal

    # ---- recording ----------------------------------------------------------------------

    def record(self, direction: str, frame: str | bytes) -> None:
        """Keep one frame (``"in"`` or ``"out"``). Never raises."""
        try:
            entry = JournalEntry(self._clock(), direction, self._text(frame))
            self._remember(entry)
            self._append(entry)
            self.recorded += 1
        except Exception:  # noqa: BLE001 - the journal must never break the connection
            log.exception("OCPP journal: could not record a frame")

    def _text(self, frame: str | bytes) -> str:
        if not isinstance(frame, str):
            return f"<binary frame, {len(frame)} bytes>"
        text = self.masker.mask(frame.replace("\r", " ").replace("\n", " "))
        if len(text) > self.max_frame_chars:
            text = text[:self.max_frame_chars] + f"… [cut: {len(text)} characters]"
        return text

    def _remember(self, entry: JournalEntry) -> None:
        self._entries.append(entry)
        self._chars += len(entry.text)
        while self._entries and (len(self._entries) > self.memory_entries or self._chars > self.memory_chars):
            self._chars -= len(self._entries.popleft().text)

    def _append(self, entry: JournalEntry) -> None:
        if self.path is None:
            return
        if self._file is None and not self._open():
            return
        data = entry.line() + "\n"
        size = len(data.encode("utf-8", "surrogatepass"))
        try:
            if self._size and self._size + size > self.file_bytes:
                self._rotate()
            assert self._file is not None
            self._file.write(data)
            self._file.flush()
            self._size += size
        except (OSError, ValueError) as problem:
            self._file_failed(problem)

    def _open(self) -> bool:
        assert self.path is not None
        if self._failed_at is not None and self._monotonic() - self._failed_at < REOPEN_AFTER_S:
            return False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "a", encoding="utf-8", errors="surrogatepass", newline="\n")
            self._size = self._file.tell()
        except OSError as problem:
            self._file_failed(problem)
            return False
        if self._failed_at is not None:
            log.info("OCPP journal: writing %s again", self.path)
            self._failed_at = None
        return True

    def _rotate(self) -> None:
        assert self.path is not None and self._file is not None
        self._file.close()
        self._file = None
        if self.backups:
            for number in range(self.backups, 1, -1):
                older = self._backup(number - 1)
                if older.exists():
                    older.replace(self._backup(number))
            self.path.replace(self._backup(1))
        else:
            self.path.unlink(missing_ok=True)
        self._file = open(self.path, "a", encoding="utf-8", errors="surrogatepass", newline="\n")
        self._size = 0

    def _file_failed(self, problem: Exception) -> None:
        self.file_errors += 1
        if self._failed_at is None:
            log.warning("OCPP journal: cannot write %s (%s); keeping frames in memory only, trying again "
                        "in %.0f s", self.path, problem, REOPEN_AFTER_S)
        self._failed_at = self._monotonic()
        if self._file is not None:
            try:
                self._file.close()
            except (OSError, ValueError):
                pass
            self._file = None

    def _backup(self, number: int) -> Path:
        assert self.path is not None
        return self.path.with_name(f"{self.path.name}.{number}")

    def close(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except (OSError, ValueError):
                pass
            self._file = None

    # ---- reading ------------------------------------------------------------------------

    def recent(self, n: int = MEMORY_ENTRIES) -> list[JournalEntry]:
        """The last ``n`` frames kept in memory, oldest first."""
        if n <= 0:
            return []
        entries = list(self._entries)
        return entries[-n:]

    def files(self) -> list[Path]:
        """The journal files, oldest first (those that exist)."""
        if self.path is None:
            return []
        candidates = [self._backup(n) for n in range(self.backups, 0, -1)] + [self.path]
        return [p for p in candidates if p.exists()]

    def read(self, start: datetime | None = None, stop: datetime | None = None) -> Iterator[JournalEntry]:
        """Every frame in the files (memory only when there is no file) with start <= time <= stop,
        oldest first. Safe to call from another thread."""
        files = self.files()
        if not files:
            yield from (e for e in list(self._entries) if _inside(e.time, start, stop))
            return
        for path in files:
            try:
                with open(path, encoding="utf-8", errors="replace") as lines:
                    for line in lines:
                        entry = JournalEntry.parse(line)
                        if entry is not None and _inside(entry.time, start, stop):
                            yield entry
            except FileNotFoundError:  # rotated away while we read
                continue

    def _load_tail(self, max_bytes: int = 256 * 1024) -> None:
        """Seed the memory from the end of the files, so the WebUI's log survives a restart."""
        budget, chunks = max_bytes, []
        for path in reversed(self.files()):
            try:
                with open(path, "rb") as source:
                    size = source.seek(0, 2)
                    source.seek(max(0, size - budget))
                    data = source.read(budget)
            except OSError:
                continue
            if size > budget:  # the first line is probably cut
                data = data.split(b"\n", 1)[1] if b"\n" in data else b""
            chunks.insert(0, data)
            budget -= len(data)
            if budget <= 0:
                break
        for line in b"".join(chunks).decode("utf-8", "replace").splitlines():
            entry = JournalEntry.parse(line)
            if entry is not None:
                self._remember(entry)


def secret_forms(secrets: Iterable[str]) -> list[str]:
    """Each secret as text may carry it: itself, as hex, in base64 (padding left off, so it
    is found inside longer base64 too); a hex secret (AuthorizationKey) also as its bytes in
    base64. The store adds the decoded password and the HTTP Basic token itself."""
    forms: list[str] = []
    for secret in secrets:
        if not secret:
            continue
        forms.append(secret)
        if len(secret) % 2 == 0 and _HEX_RE.fullmatch(secret):  # already hex: its bytes in base64
            forms.append(base64.b64encode(bytes.fromhex(secret)).decode().rstrip("="))
        else:
            forms += [secret.encode().hex(), base64.b64encode(secret.encode()).decode().rstrip("=")]
    return list(dict.fromkeys(forms))


def _inside(moment: datetime, start: datetime | None, stop: datetime | None) -> bool:
    return (start is None or moment >= start) and (stop is None or moment <= stop)
