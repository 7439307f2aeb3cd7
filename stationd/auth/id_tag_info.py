"""OCPP 1.6 ``IdTagInfo``: what the backend says about an idTag, as one checked value.

The backend sends an IdTagInfo in every Authorize, StartTransaction and StopTransaction
answer and in every SendLocalList entry. The local authorization list
(:mod:`stationd.auth.local_list`) and the authorization cache (:mod:`stationd.auth.cache`)
store it as :class:`IdTagInfo`:

* ``status``: ``Accepted``, ``Blocked``, ``Expired``, ``Invalid`` or ``ConcurrentTx``, spelled
  exactly so (an OCPP enumeration is case-sensitive).
* ``expiry``: when the idTag stops being valid, an aware datetime in UTC, whole seconds (a
  fraction is dropped: an idTag expires up to a second early, never late — the whitelist does
  the same). None: no expiry.
* ``parent_id_tag``: the group idTag, in the normal form of :mod:`stationd.auth.uid` (so it
  compares case-insensitively, as a CiString20 must); None: no parent.

:meth:`IdTagInfo.status_at` is the status at a moment: ``Accepted`` and ``ConcurrentTx`` become
``Expired`` once ``expiry <= now``; ``Blocked``, ``Invalid`` and ``Expired`` stay what they are
(a blocked card is blocked, whatever its date says).

Bad values raise :class:`InvalidIdTagInfo` (a ``ValueError``) with a message saying which field
and why; :meth:`IdTagInfo.from_ocpp` reads the JSON object of a message (``expiryDate`` in ISO
8601; a time without zone counts as UTC, as in the whitelist) and ignores fields it does not
know, :meth:`IdTagInfo.to_ocpp` writes one (``expiryDate`` as ``YYYY-MM-DDTHH:MM:SSZ``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from .uid import InvalidUid, normalize_optional_uid
from .whitelist import InvalidEntry, parse_expiry

__all__ = [
    "ACCEPTED",
    "BLOCKED",
    "CONCURRENT_TX",
    "EXPIRED",
    "INVALID",
    "STATUSES",
    "IdTagInfo",
    "InvalidIdTagInfo",
]

ACCEPTED, BLOCKED, EXPIRED, INVALID, CONCURRENT_TX = "Accepted", "Blocked", "Expired", "Invalid", "ConcurrentTx"
STATUSES = (ACCEPTED, BLOCKED, EXPIRED, INVALID, CONCURRENT_TX)  # OCPP 1.6 AuthorizationStatus
_STATUS_SET = frozenset(STATUSES)
_EXPIRES = frozenset((ACCEPTED, CONCURRENT_TX))  # the statuses an expiry date turns into Expired

DB_TIME = "%Y-%m-%dT%H:%M:%SZ"  # how the auth tables store times (the whitelist's form)
_UTC = timezone.utc


class InvalidIdTagInfo(ValueError):
    """An IdTagInfo field that is not valid OCPP 1.6; the message names the field."""


@dataclass(frozen=True, slots=True)
class IdTagInfo:
    """One OCPP 1.6 IdTagInfo (checked and normalized when created; see the module docstring)."""

    status: str
    expiry: datetime | None = None
    parent_id_tag: str | None = None

    def __post_init__(self) -> None:
        if self.status not in _STATUS_SET:
            hint = ""
            if isinstance(self.status, str) and self.status.lower() in {s.lower() for s in STATUSES}:
                hint = " (the status is case-sensitive)"
            raise InvalidIdTagInfo(f"idTagInfo status {self.status!r} is not one of {', '.join(STATUSES)}{hint}")
        expiry = self.expiry
        if expiry is not None:
            if not isinstance(expiry, datetime):
                raise InvalidIdTagInfo(f"idTagInfo expiry must be a datetime, not {type(expiry).__name__}")
            if expiry.tzinfo is None:
                raise InvalidIdTagInfo("idTagInfo expiry needs a time zone (a naive datetime is ambiguous)")
            if expiry.tzinfo is not _UTC or expiry.microsecond:
                object.__setattr__(self, "expiry", expiry.astimezone(_UTC).replace(microsecond=0))
        parent = self.parent_id_tag
        if parent is not None:
            try:
                object.__setattr__(self, "parent_id_tag", normalize_optional_uid(parent))
            except InvalidUid as exc:
                raise InvalidIdTagInfo(f"idTagInfo parentIdTag: {exc}") from None

    # ---- OCPP JSON ----------------------------------------------------------------------

    @classmethod
    def from_ocpp(cls, data: Any) -> IdTagInfo:
        """The IdTagInfo of an OCPP message (a dict with ``status`` and the optional
        ``expiryDate``, ``parentIdTag``); InvalidIdTagInfo if it is not valid."""
        if not isinstance(data, dict):
            raise InvalidIdTagInfo(f"idTagInfo must be a JSON object, not {type(data).__name__}")
        if "status" not in data:
            raise InvalidIdTagInfo("idTagInfo has no status")
        status = data["status"]
        if not isinstance(status, str):
            raise InvalidIdTagInfo(f"idTagInfo status must be text, not {type(status).__name__}")
        expiry_text = data.get("expiryDate")
        expiry = None
        if expiry_text is not None:
            if not isinstance(expiry_text, str):
                raise InvalidIdTagInfo(f"idTagInfo expiryDate must be text, not {type(expiry_text).__name__}")
            if not expiry_text.strip():
                raise InvalidIdTagInfo("idTagInfo expiryDate is empty")
            try:
                expiry = parse_expiry(expiry_text)
            except InvalidEntry as exc:
                raise InvalidIdTagInfo(f"idTagInfo expiryDate: {exc}") from None
        parent = data.get("parentIdTag")
        if parent is not None and not isinstance(parent, str):
            raise InvalidIdTagInfo(f"idTagInfo parentIdTag must be text, not {type(parent).__name__}")
        return cls(status, expiry, parent)

    def to_ocpp(self) -> dict[str, str]:
        """The OCPP JSON object (optional fields only when set)."""
        data = {"status": self.status}
        if self.expiry is not None:
            data["expiryDate"] = self.expiry.strftime(DB_TIME)
        if self.parent_id_tag is not None:
            data["parentIdTag"] = self.parent_id_tag
        return data

    # ---- meaning ------------------------------------------------------------------------

    def status_at(self, now: datetime) -> str:
        """The status at ``now`` (aware): Expired for an Accepted/ConcurrentTx entry whose
        expiry is at or before ``now``; otherwise the stored status."""
        if self.expiry is not None and self.status in _EXPIRES and self.expiry <= now:
            return EXPIRED
        return self.status

    # ---- storage (the local list and the cache share the row form) -----------------------

    def db_fields(self) -> tuple[str, str | None, str | None]:
        """(status, expiry text or None, parent_id_tag) as the auth tables store them."""
        return (self.status, None if self.expiry is None else self.expiry.strftime(DB_TIME), self.parent_id_tag)

    @classmethod
    def from_db(cls, status: str, expiry: str | None, parent_id_tag: str | None) -> IdTagInfo:
        """The inverse of :meth:`db_fields`."""
        return cls(status, None if expiry is None else datetime.strptime(expiry, DB_TIME).replace(tzinfo=_UTC),
                   parent_id_tag)
