"""Value types of configuration keys: how a key's text is parsed, checked and rendered.

OCPP carries every configuration value as a string. Each type turns that string into a
Python value (or refuses it with a reason a person can act on) and renders a value back the
way OCPP backends expect: booleans as ``true``/``false``, lists as comma-separated values
without spaces, JSON as JSON text.
"""

from __future__ import annotations

import enum
import functools
import hashlib
import hmac
import ipaddress
import json
import re
import secrets
import zoneinfo
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

# OCPP 1.6 KeyValue.value and ChangeConfiguration.value are CiString500.
MAX_VALUE_LENGTH = 500


class InvalidValue(ValueError):
    """A value a key cannot take; the message says why, without echoing secrets."""


class Source(enum.Enum):
    """Who writes a value. Some keys read differently depending on who typed them."""

    OCPP = "ocpp"  # a backend, through ChangeConfiguration
    LOCAL = "local"  # an installer or technician: WebUI, CLI, config file
    STORED = "stored"  # the settings file's own canonical form


class ValueType:
    """Base class: parse text to a value, render a value to text."""

    name = "STR"
    secret = False

    def parse(self, text: str, source: Source = Source.OCPP) -> Any:
        raise NotImplementedError

    def render(self, value: Any) -> str:
        return str(value)

    def describe(self) -> str:
        """A short human description of the accepted values (docs, CLI, errors)."""
        return self.name


@dataclass(frozen=True)
class Bool(ValueType):
    name = "BOOL"

    def parse(self, text: str, source: Source = Source.OCPP) -> bool:
        lowered = text.strip().lower()
        # CTEK's portal shows booleans as 1/0; OCPP says true/false. Accept both.
        if lowered in ("true", "1"):
            return True
        if lowered in ("false", "0"):
            return False
        raise InvalidValue(f"expected true or false, got {_quote(text)}")

    def render(self, value: Any) -> str:
        return "true" if value else "false"

    def describe(self) -> str:
        return "true|false"


_INT_RE = re.compile(r"[+-]?[0-9]{1,18}")


@dataclass(frozen=True)
class Int(ValueType):
    minimum: int | None = None
    maximum: int | None = None
    name = "INT"

    def parse(self, text: str, source: Source = Source.OCPP) -> int:
        stripped = text.strip()
        if not _INT_RE.fullmatch(stripped):
            raise InvalidValue(f"expected a whole number, got {_quote(text)}")
        value = int(stripped)
        if self.minimum is not None and value < self.minimum:
            raise InvalidValue(f"must be at least {self.minimum} (got {value})")
        if self.maximum is not None and value > self.maximum:
            raise InvalidValue(f"must be at most {self.maximum} (got {value})")
        return value

    def describe(self) -> str:
        if self.minimum is not None and self.maximum is not None:
            return f"INT {self.minimum}..{self.maximum}"
        if self.minimum is not None:
            return f"INT >= {self.minimum}"
        return "INT"


@dataclass(frozen=True)
class Text(ValueType):
    """A string, optionally limited in length, to a pattern, or to a set of values."""

    max_length: int = MAX_VALUE_LENGTH
    min_length: int = 0
    pattern: str | None = None
    pattern_help: str = ""
    choices: tuple[str, ...] = ()
    name = "STR"

    def parse(self, text: str, source: Source = Source.OCPP) -> str:
        if self.choices:
            for choice in self.choices:
                if text.strip().lower() == choice.lower():
                    return choice  # canonical spelling
            allowed = ", ".join(c if c else '""' for c in self.choices)
            raise InvalidValue(f"must be one of {allowed} (got {_quote(text)})")
        if len(text) > self.max_length:
            raise InvalidValue(f"must be at most {self.max_length} characters (got {len(text)})")
        if len(text) < self.min_length:
            raise InvalidValue(f"must be at least {self.min_length} characters")
        if not text.isprintable():
            raise InvalidValue("must not contain control characters")
        if self.pattern and text and not re.fullmatch(self.pattern, text):
            raise InvalidValue(self.pattern_help or f"does not match {self.pattern}")
        return text

    def describe(self) -> str:
        if self.choices:
            return "one of " + "|".join(c if c else '""' for c in self.choices)
        return f"STR (max {self.max_length})" if self.max_length < MAX_VALUE_LENGTH else "STR"


@dataclass(frozen=True)
class SecretText(Text):
    """A string that is written but never read back (tokens, codes)."""

    secret = True


@dataclass(frozen=True)
class TimeZone(ValueType):
    """An IANA time zone name such as Europe/Berlin."""

    name = "STR"

    def parse(self, text: str, source: Source = Source.OCPP) -> str:
        text = text.strip()
        if text.upper() == "UTC":
            return "UTC"
        if text in _zone_names():
            return text
        raise InvalidValue(f"unknown time zone {_quote(text)}; use a name like Europe/Berlin")

    def describe(self) -> str:
        return "IANA time zone (e.g. Europe/Berlin)"


@functools.cache
def _zone_names() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


@dataclass(frozen=True)
class Url(ValueType):
    """A backend URL (ws:// or wss://) with a host; may hold a {BoxId} placeholder. The chargebox
    id is appended as the last path segment, so no query or fragment. A URL is never echoed in
    an error: an installer may have pasted a password into it."""

    schemes: tuple[str, ...] = ("ws", "wss")
    allow_empty: bool = True
    credentials_hint: str = "the AuthorizationKey"  # where the password belongs instead
    name = "STR"

    def parse(self, text: str, source: Source = Source.OCPP) -> str:
        if not text.strip() and self.allow_empty:
            return ""
        if not text:
            raise InvalidValue("must not be empty")
        if len(text) > MAX_VALUE_LENGTH:
            raise InvalidValue(f"must be at most {MAX_VALUE_LENGTH} characters")
        try:
            parts = urlsplit(text)
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError:
            raise InvalidValue("is not a valid URL (bad host or port)") from None
        if parts.scheme.lower() not in self.schemes:
            raise InvalidValue("must start with " + " or ".join(f"{s}://" for s in self.schemes))
        if not parts.hostname:
            raise InvalidValue(f"must name a host, e.g. {self.schemes[0]}://backend.example.com/ocpp")
        if parts.username is not None or parts.password is not None:
            raise InvalidValue(f"must not contain a user name or password (use {self.credentials_hint})")
        if parts.query or parts.fragment or not text.isprintable() or any(c.isspace() for c in text):
            raise InvalidValue("must not contain spaces, '?' or '#' (the chargebox id is appended as the last "
                               "path segment)")
        return text

    def describe(self) -> str:
        return "URL (" + ", ".join(f"{s}://" for s in self.schemes) + ")"


@dataclass(frozen=True)
class IpAddress(ValueType):
    """An IPv4/IPv6 address, optionally with a :port; empty allowed."""

    name = "STR"

    def parse(self, text: str, source: Source = Source.OCPP) -> str:
        text = text.strip()
        if not text:
            return ""
        host, port = text, None
        if text.startswith("["):
            host, _, rest = text[1:].partition("]")
            port = rest[1:] if rest.startswith(":") else None
        elif text.count(":") == 1:
            host, port = text.split(":")
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise InvalidValue(f"not an IP address: {_quote(text)}") from None
        if port is not None and not (port.isdigit() and 1 <= int(port) <= 65535):
            raise InvalidValue(f"port must be 1..65535 (got {_quote(port)})")
        return text

    def describe(self) -> str:
        return "IP address[:port]"


@dataclass(frozen=True)
class Csl(ValueType):
    """A comma-separated list. ``members`` limits the items (case-insensitive)."""

    members: tuple[str, ...] = ()
    item_pattern: str | None = None
    item_help: str = ""
    max_items: int | None = None  # fixed maximum; a registry may also name a companion key
    members_label: str = ""  # how docs name a long member list ("measurands")
    name = "CSL"

    def parse(self, text: str, source: Source = Source.OCPP) -> tuple[str, ...]:
        if len(text) > MAX_VALUE_LENGTH:
            raise InvalidValue(f"must be at most {MAX_VALUE_LENGTH} characters")
        items = [item.strip() for item in text.split(",")] if text.strip() else []
        result: list[str] = []
        for item in items:
            if not item:
                raise InvalidValue("empty item in the list")
            if self.members:
                canonical = next((m for m in self.members if m.lower() == item.lower()), None)
                if canonical is None:
                    raise InvalidValue(f"{_quote(item)} is not supported; allowed: {', '.join(self.members)}")
                item = canonical
            elif self.item_pattern and not re.fullmatch(self.item_pattern, item):
                raise InvalidValue(self.item_help or f"{_quote(item)} is not a valid item")
            if item.lower() in (r.lower() for r in result):
                raise InvalidValue(f"{_quote(item)} appears twice")
            result.append(item)
        if self.max_items is not None and len(result) > self.max_items:
            raise InvalidValue(f"at most {self.max_items} items (got {len(result)})")
        return tuple(result)

    def render(self, value: Any) -> str:
        return ",".join(value)

    def describe(self) -> str:
        if self.members_label:
            return f"CSL of {self.members_label}"
        return "CSL of " + "|".join(self.members) if self.members else "CSL"


@dataclass(frozen=True)
class Json(ValueType):
    """JSON text, checked by a shape function that raises InvalidValue."""

    shape: Any = None  # Callable[[Any], None]
    shape_help: str = "JSON"
    name = "JSON"

    def parse(self, text: str, source: Source = Source.OCPP) -> Any:
        if len(text) > 64 * 1024:
            raise InvalidValue("JSON value too long")
        try:
            value = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise InvalidValue(f"not valid JSON: {exc}") from None
        if self.shape is not None:
            self.shape(value)
        return value

    def render(self, value: Any) -> str:
        flat = isinstance(value, list) and all(not isinstance(v, (list, dict)) for v in value)
        return json.dumps(value, separators=(",", ":") if flat else (", ", ": "))

    def describe(self) -> str:
        return self.shape_help


@dataclass(frozen=True)
class AuthorizationKey(ValueType):
    """The HTTP Basic password of security profiles 1 and 2. Secret, stored as hex.

    From a backend it arrives hex-encoded (OCPP 1.6 security whitepaper: 16-20 bytes, 32-40
    hex digits; the password on the wire is the decoded bytes). Where a person types it
    (WebUI, CLI, demo option) it is the plain text itself.
    """

    name = "STR"
    secret = True

    def parse(self, text: str, source: Source = Source.OCPP) -> str:
        if source is Source.LOCAL:
            if not 8 <= len(text) <= 40 or not text.isprintable() or not text.isascii():
                raise InvalidValue("the authorization key must be 8 to 40 printable ASCII characters")
            return text.encode("ascii").hex()
        if not re.fullmatch(r"(?:[0-9A-Fa-f]{2}){1,40}", text):
            raise InvalidValue("the authorization key must be hex digits (two per byte)")
        if source is Source.OCPP and not 32 <= len(text) <= 40:
            raise InvalidValue("the authorization key must be 16 to 20 bytes (32 to 40 hex digits)")
        return text.lower()

    def describe(self) -> str:
        return "hex, 16-20 bytes (write-only)"


_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


@dataclass(frozen=True)
class Password(ValueType):
    """A password a person types; stored only as a salted scrypt hash."""

    min_length: int = 8
    name = "STR"
    secret = True

    def parse(self, text: str, source: Source = Source.OCPP) -> str:
        if source is Source.STORED:
            if not text.startswith("scrypt$"):
                raise InvalidValue("stored password is not a scrypt hash")
            return text
        if not self.min_length <= len(text) <= 128 or not text.isprintable():
            raise InvalidValue(f"the password must be {self.min_length} to 128 printable characters")
        return hash_password(text)

    def describe(self) -> str:
        return f"password, {self.min_length}-128 characters (write-only)"


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **_SCRYPT)
    return f"scrypt${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        _, salt_hex, digest_hex = stored.split("$")
        digest = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt_hex), dklen=32, **_SCRYPT)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(digest.hex(), digest_hex)


def _quote(text: str, limit: int = 40) -> str:
    shown = text if len(text) <= limit else text[:limit] + "…"
    return json.dumps(shown, ensure_ascii=False)
