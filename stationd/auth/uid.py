"""idTags and card UIDs: one normal form, so a card matches its whitelist entry wherever it came from.

An idTag is an OCPP ``CiString20``: at most 20 characters, compared case-insensitively. It
reaches the station from three places, and all three must find the same stored entry:

* the RFID reader (``stationd/hw/rfid.py``): the card's UID as lower-case hex, 4, 7 or 10
  bytes (8, 14 or 20 hex digits), e.g. ``aec78085``;
* the backend (SendLocalList, Authorize answers, RemoteStartTransaction): any CiString20, in
  whatever case the backend keeps it, e.g. ``AEC78085`` or ``Fleet-007``;
* a technician (CSV file, CLI, WebUI): what a person types or a spreadsheet kept, e.g.
  ``AEC78085``, ``AE:C7:80:85``, ``ae-c7-80-85``.

The rule (:func:`normalize_uid`):

1. Leading and trailing blanks are dropped.
2. A card UID written as hex byte pairs with one kind of separator between *every* pair
   (``:``, ``-`` or a space) and 4, 7 or 10 bytes in all loses the separators:
   ``AE:C7:80:85`` → ``aec78085``, ``04 88 DD 2A 56 1D 80`` → ``0488dd2a561d80``. Only that
   exact shape counts: ``AE:C780:85`` or ``1-2-3-4`` stay as they are (step 3), and so does a
   5-byte ``11:22:33:44:55`` (no reader reports 5-byte UIDs). Consequence, on purpose: the
   tags ``12-34-56-78`` and ``12345678`` are the same card.
3. Everything is folded to lower case (CiString is case-insensitive; the reader already sends
   lower case, so a reader UID needs no work at all): ``AEC78085`` → ``aec78085``,
   ``Fleet-007`` → ``fleet-007``.
4. The result must be 1 to 20 printable ASCII characters (``0x20``–``0x7E``; blanks inside
   are allowed, as CiString allows them). Anything else is refused with
   :class:`InvalidUid`: an empty UID, more than 20 characters (``0123456789abcdef01234`` is
   21), control characters, and non-ASCII letters (``Müller``: there is no single
   case-insensitive comparison of non-ASCII text every backend agrees on, and no RFID UID
   or OCPP token in the field uses one).

The limit of 20 applies to the normal form: ``AE:C7:80:85:12:34:56:78:9A:BC`` (29 characters
as typed) is the 20-digit UID ``aec78085123456789abc`` and is accepted.

The normal form is what the whitelist stores, exports and looks up. What the station *sends*
to a backend is the idTag as presented (the reader's lower-case hex), never rewritten here.
"""

from __future__ import annotations

import re

__all__ = ["MAX_UID_LENGTH", "InvalidUid", "normalize_optional_uid", "normalize_uid"]

MAX_UID_LENGTH = 20  # CiString20

# The reader's own form (and the common case of a CSV file): 8, 14 or 20 hex digits.
_PLAIN_HEX = re.compile(r"(?:[0-9a-fA-F]{8}|[0-9a-fA-F]{14}|[0-9a-fA-F]{20})")
# Hex byte pairs with one separator kind between every pair: 4, 7 or 10 bytes.
_SEPARATED_HEX = re.compile(
    r"[0-9a-fA-F]{2}(?P<sep>[:\- ])[0-9a-fA-F]{2}(?:(?P=sep)[0-9a-fA-F]{2}){2}"
    r"(?:(?:(?P=sep)[0-9a-fA-F]{2}){3}(?:(?:(?P=sep)[0-9a-fA-F]{2}){3})?)?"
)
_PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]+")


class InvalidUid(ValueError):
    """Text that cannot be an idTag; the message says why, in words for a technician."""


def normalize_uid(text: str) -> str:
    """The normal form of an idTag or card UID (see the module docstring); InvalidUid if none."""
    if not isinstance(text, str):
        raise InvalidUid(f"a UID must be text, not {type(text).__name__}")
    if _PLAIN_HEX.fullmatch(text):  # the fast path: reader UIDs and most CSV rows
        return text.lower()
    stripped = text.strip(" \t")
    if not stripped:
        raise InvalidUid("the UID is empty")
    if _SEPARATED_HEX.fullmatch(stripped):
        return re.sub(r"[:\- ]", "", stripped).lower()
    if not _PRINTABLE_ASCII.fullmatch(stripped):
        bad = next(ch for ch in stripped if not ("\x20" <= ch <= "\x7e"))
        what = "a control character" if ord(bad) < 0x20 or ord(bad) == 0x7F else "a non-ASCII character"
        raise InvalidUid(f"the UID {_show(stripped)} contains {what} ({_codepoint(bad)}); "
                         f"an idTag is printable ASCII")
    if len(stripped) > MAX_UID_LENGTH:
        raise InvalidUid(f"the UID {_show(stripped)} has {len(stripped)} characters; "
                         f"an idTag has at most {MAX_UID_LENGTH}")
    return stripped.lower()


def normalize_optional_uid(text: str | None) -> str | None:
    """Like :func:`normalize_uid`, but empty text and None mean "none" (a GID may be empty)."""
    if text is None or not text.strip(" \t"):
        return None
    return normalize_uid(text)


def _show(text: str, limit: int = 32) -> str:
    shown = text if len(text) <= limit else text[: limit - 1] + "…"
    return repr(shown)


def _codepoint(ch: str) -> str:
    return f"U+{ord(ch):04X}"
