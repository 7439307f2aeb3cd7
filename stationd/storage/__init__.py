"""Storage: the SQLite database in the data directory (what must survive a power cut).

``Database.open(data_dir)`` opens ``<data_dir>/station.db`` in WAL mode and applies the
schema migrations in :data:`MIGRATIONS` (one append-only list; see ``migrations.py``).
"""

from .database import Database, StorageError
from .migrations import MIGRATIONS, Migration

__all__ = ["Database", "Migration", "StorageError", "MIGRATIONS"]
