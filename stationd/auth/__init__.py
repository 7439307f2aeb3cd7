"""Authorization data: the local RFID whitelist (SPEC.md §6) and the idTag normal form.

* :mod:`.uid` — :func:`normalize_uid`: one form for a card UID from the reader, a backend or a
  CSV file.
* :mod:`.whitelist` — :class:`Whitelist`: the entries in SQLite, a change counter, the
  daemon's in-memory lookup.
* :mod:`.csv_io` — the vendor's CSV format: :func:`parse_csv`, :func:`import_csv`,
  :func:`export_csv`.
"""

from .csv_io import (
    CsvError,
    ImportResult,
    ParseResult,
    export_csv,
    import_csv,
    iter_csv,
    parse_csv,
)
from .uid import InvalidUid, normalize_uid
from .whitelist import (
    ACCEPTED,
    BLOCKED,
    MAX_ENTRIES,
    ChangeSummary,
    Entry,
    InvalidEntry,
    UnknownUid,
    Whitelist,
    WhitelistError,
    WhitelistFull,
)

__all__ = [
    "ACCEPTED", "BLOCKED", "MAX_ENTRIES", "ChangeSummary", "CsvError", "Entry", "ImportResult", "InvalidEntry",
    "InvalidUid", "ParseResult", "UnknownUid", "Whitelist", "WhitelistError", "WhitelistFull", "export_csv",
    "import_csv", "iter_csv", "normalize_uid", "parse_csv",
]
