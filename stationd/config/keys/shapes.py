"""Shapes shared by several keys: identities, idTags, JSON documents."""

from __future__ import annotations

from typing import Any

from ..value_types import InvalidValue, Text

# OCPP charge point identity: URL-safe, at most 48 characters.
CHARGEBOX_ID_PATTERN = r"[A-Za-z0-9*_=:+|@.\-]{1,48}"
CHARGEBOX_ID_HELP = "1 to 48 characters: letters, digits and * _ = : + | @ . -"

# OCPP IdToken: CiString20.
ID_TAG = Text(min_length=1, max_length=20, pattern=r"[\x21-\x7e]{1,20}",
              pattern_help="an idTag is 1 to 20 printable characters without spaces")


def evses_shape(value: Any) -> None:
    if not isinstance(value, list) or not value:
        raise InvalidValue("must be a non-empty JSON array")
    for item in value:
        if not (isinstance(item, dict) and type(item.get("id")) is int and isinstance(item.get("type"), str)
                and type(item.get("maxPower")) is int):
            raise InvalidValue('each item needs "id" (int), "type" (text) and "maxPower" (int, W)')


def network_shape(value: Any) -> None:
    if not (isinstance(value, list) and all(isinstance(i, dict) and isinstance(i.get("link"), str) for i in value)):
        raise InvalidValue('must be a JSON array of objects with a "link" name')
