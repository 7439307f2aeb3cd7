"""Reservations: a connector kept for one idTag (or its parent) until it arrives or time runs out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Reservation:
    reservation_id: int
    connector_id: int
    id_tag: str
    expires_at: datetime
    parent_id_tag: str | None = None

    def admits(self, id_tag: str, parent_id_tag: str | None) -> bool:
        """The reserved idTag, or one with the reservation's parent, may use it (case-insensitive)."""
        if id_tag.lower() == self.id_tag.lower():
            return True
        return bool(self.parent_id_tag and parent_id_tag and parent_id_tag.lower() == self.parent_id_tag.lower())
