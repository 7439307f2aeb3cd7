"""Value types of the station file's fields: ranges, texts, paths, addresses, URLs.

Each check raises FieldError with a message an installer can act on; values that may hold a
secret (URLs, the authorization key) are never echoed.
"""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    SecretStr,
    StrictInt,
    StrictStr,
    ValidationInfo,
)

from .keys.shapes import CHARGEBOX_ID_HELP, CHARGEBOX_ID_PATTERN
from .value_types import InvalidValue, Source, Url
from .yaml_lines import FieldError, show_value

_CHARGEBOX_CHARS = re.compile(CHARGEBOX_ID_PATTERN.replace("{1,48}", "+"))
_HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


def between(low: int, high: int) -> Any:
    def check(value: int) -> int:
        if not low <= value <= high:
            raise FieldError(f"must be between {low} and {high} (got {value})")
        return value

    return Annotated[StrictInt, AfterValidator(check)]


def one_of(*choices: int) -> Any:
    def check(value: int) -> int:
        if value not in choices:
            listed = ", ".join(map(str, choices[:-1])) + f" or {choices[-1]}"
            raise FieldError(f"must be {listed} (got {value})")
        return value

    return Annotated[StrictInt, AfterValidator(check)]


def _text(low: int, high: int, chars: str = "", described: str = "") -> Any:
    allowed = re.compile(f"[{chars}]*") if chars else None

    def check(value: str) -> str:
        if not value:
            raise FieldError("must not be empty")
        if not low <= len(value) <= high:
            raise FieldError(f"must be {low} to {high} characters long (got {len(value)})")
        if allowed is not None and not allowed.fullmatch(value):
            bad = next(char for char in value if not allowed.fullmatch(char))
            raise FieldError(f"may only contain {described} (found {bad!r})")
        return value

    return Annotated[StrictStr, AfterValidator(check)]


def _path_text(value: Any) -> Any:
    if not isinstance(value, str):
        raise FieldError(f"must be a path (got {show_value(value)})")
    if not value:
        raise FieldError("must not be empty")
    return value


def _resolve(path: Path, info: ValidationInfo) -> Path:
    base = Path((info.context or {}).get("base_dir") or Path.cwd())
    return Path(os.path.normpath(base / path))


def _existing_file(path: Path, info: ValidationInfo) -> Path:
    if (info.context or {}).get("check_files", True) and not path.is_file():
        raise FieldError(f"no such file: {path}" if not path.exists() else f"not a file: {path}")
    return path


def _secret_text(value: Any) -> Any:
    if not isinstance(value, str):  # says nothing about the value itself
        raise FieldError("must be a string; put it in quotes")
    if not value:
        raise FieldError("must not be empty")
    return value


def _check_host(host: str) -> None:
    try:
        ipaddress.ip_address(host)
        return
    except ValueError:
        pass
    labels = host.split(".")
    if all(label.isdigit() for label in labels):
        raise ValueError(f"{host!r} is not a valid IPv4 address")
    if len(host) > 253 or not all(_HOST_LABEL.fullmatch(label) for label in labels):
        raise ValueError(f"{host!r} is not a valid host name or address")


def parse_bind(text: str) -> tuple[str, int]:
    """``"127.0.0.1:8443"`` -> ``("127.0.0.1", 8443)``; ``"[::1]:8443"`` -> ``("::1", 8443)``.

    Port 0 means "any free port". Raises ValueError with an installer-readable reason.
    """
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
        if not sep:
            raise ValueError("must be [IPv6]:PORT, e.g. [::1]:8443")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{host!r} is not an IPv6 address") from None
    else:
        host, sep, port = text.rpartition(":")
        if not sep or not host:
            raise ValueError("must be HOST:PORT, e.g. 127.0.0.1:8443")
        if ":" in host:
            raise ValueError("an IPv6 address goes in brackets, e.g. [::1]:8443")
        _check_host(host)
    if not (port.isascii() and port.isdigit()) or int(port) > 65535:
        raise ValueError(f"port must be a number from 0 to 65535 (got {port!r})")
    return host, int(port)


def _check_bind(value: str) -> str:
    try:
        parse_bind(value)
    except ValueError as exc:
        raise FieldError(f"{exc} (got {show_value(value)})") from None
    return value


def check_host_value(value: str) -> str:
    try:
        _check_host(value)
    except ValueError as exc:
        raise FieldError(str(exc)) from None
    return value


_WS_URL = Url(allow_empty=False, credentials_hint="ocpp.authorization_key")


def _check_ws_url(value: str) -> str:
    """The same check as the Endpoint key's (one definition, in the key registry's types)."""
    try:
        return _WS_URL.parse(value, Source.LOCAL)
    except InvalidValue as exc:
        raise FieldError(str(exc)) from None


def check_endpoint(value: str) -> str:
    return value and _check_ws_url(value)  # "" = no backend configured


def none_as(default: Any) -> Any:
    return lambda value: default if value is None else value


def render_chargebox_id(template: str, serial: str) -> str:
    """The chargebox id ``template`` gives for ``serial``; ValueError if it is not a valid id."""
    if "{" in template.replace("{serial}", "") or "}" in template.replace("{serial}", ""):
        raise ValueError("may use only the placeholder {serial}")
    chargebox_id = template.replace("{serial}", serial)
    if not 1 <= len(chargebox_id) <= 48:
        raise ValueError(f"gives a chargebox id of {len(chargebox_id)} characters; at most 48 are allowed")
    if not _CHARGEBOX_CHARS.fullmatch(chargebox_id):
        bad = next(char for char in chargebox_id if not _CHARGEBOX_CHARS.fullmatch(char))
        raise ValueError(
            f"gives {chargebox_id!r}, but a chargebox id may only be {CHARGEBOX_ID_HELP} "
            f"(found {bad!r})"
        )
    return chargebox_id


SerialNumber = _text(1, 25, r"A-Za-z0-9._\-", "letters, digits, '.', '_' and '-'")
CiString20 = _text(1, 20)
Name = _text(1, 64)
Template = _text(1, 100)
DevicePort = _text(1, 255)  # serial device or pyserial URL, used as written
Baudrate = between(300, 4_000_000)
Bind = Annotated[StrictStr, AfterValidator(_check_bind)]
WsUrl = Annotated[StrictStr, AfterValidator(_check_ws_url)]
ExistingFile = Annotated[
    Path, BeforeValidator(_path_text), AfterValidator(_resolve), AfterValidator(_existing_file)
]
Directory = Annotated[Path, BeforeValidator(_path_text), AfterValidator(_resolve)]
AuthorizationKey = Annotated[SecretStr, BeforeValidator(_secret_text)]


def only_for(model: BaseModel, transport: str, fields_by_transport: dict[str, tuple[str, ...]]) -> None:
    for owner, names in fields_by_transport.items():
        for name in names:
            if owner != transport and getattr(model, name) is not None:
                raise FieldError(f"only used with transport {owner} (this one is {transport})", at=(name,))
