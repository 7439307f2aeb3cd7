"""Small named values that must survive a restart (the ``station_meta`` table), as JSON."""

from __future__ import annotations

import json
from typing import Any

from .database import Database


class StationMeta:
    def __init__(self, db: Database):
        self.db = db

    def get(self, key: str, default: Any = None) -> Any:
        rows = self.db.query("SELECT value FROM station_meta WHERE key = ?", (key,))
        return json.loads(rows[0]["value"]) if rows else default

    def set(self, key: str, value: Any) -> None:
        self.db.execute("INSERT INTO station_meta (key, value) VALUES (?, ?) "
                        "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, json.dumps(value)))
