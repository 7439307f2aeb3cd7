"""Timestamps as OCPP carries them: ISO 8601, UTC, with a Z."""

from __future__ import annotations

from datetime import datetime, timezone


def ocpp_time(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def parse_ocpp_time(text: str) -> datetime:
    """An OCPP date-time (validated by the RPC layer); naive times are taken as UTC."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
