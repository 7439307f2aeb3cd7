"""Seeing what another process (the CLI, a second daemon part) changed in the database."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable

from .database import StorageError

log = logging.getLogger("stationd.storage")


async def poll_changes(refresh: Callable[[], object], what: str, interval: float = 1.0) -> None:
    """Run forever: ``refresh()`` (a cheap change-counter check) off the event loop every
    ``interval`` seconds; a storage error is logged and tried again next time."""
    while True:
        try:
            await asyncio.to_thread(refresh)
        except (sqlite3.Error, StorageError) as exc:
            log.error("cannot re-read %s: %s", what, exc)
        await asyncio.sleep(interval)
