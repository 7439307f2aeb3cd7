"""The whitelist as a CSV file (SPEC.md §6): the vendor's format, read strictly, written safely.

Format::

    UID,GID,Expiry,Authorization
    aec78085,,,accepted
    4b13b318,,2020-01-01T12:00:00,accepted

Reading (:func:`parse_csv`) reports *every* problem with its line number and builds nothing
from a file that has one; :func:`import_csv` then changes nothing. The rules, decided:

* **Encoding**: UTF-8 (the content is ASCII anyway: UIDs and dates). A line with bytes that
  are not UTF-8 (a Latin-1 or Windows-1252 file) is an error on that line.
* **BOM**: a UTF-8 byte-order mark (Excel's "CSV UTF-8" writes one) is an error (line 1),
  reported together with whatever else the file has. Why not skip it silently: the format's
  first line must be exactly ``UID,GID,Expiry,Authorization`` and a file with a BOM does not
  start with that, so it is not portable to the vendor's stations and tools that read the
  format literally; the issue asks for an error; and our own exports never carry one, so a
  round trip is unaffected. The message says how to save the file without it.
* **Header**: the first line that is not blank must be ``UID,GID,Expiry,Authorization``:
  those four names in that order. Case and blanks around a name are forgiven (``uid, gid,
  expiry, authorization`` means the same and nobody is helped by a refusal); a missing
  header (the file starts with a card), other names, other order or another column count
  are errors, and the file is not read further (its layout is unknown).
* **Rows**: exactly four fields, RFC 4180 quoting (``"a,b"``, ``""`` for a quote), blanks
  around a field ignored. Blank lines and rows of empty fields (``,,,``, spreadsheets write
  them) are skipped. LF, CRLF (and CR) line ends all work. A field may not span lines.
* **Vendor single-cell rows**: the vendor's guide tells technicians to type the whole row
  into one spreadsheet cell (column A), which a spreadsheet then saves as one quoted field
  (``"aec78085,,,accepted"``). Such a one-field row that contains commas is read as the row
  it spells. No ambiguity: a single field could never be a valid row.
* **UID / GID**: normalized by :mod:`stationd.auth.uid` (``AEC78085`` and ``ae:c7:80:85``
  are ``aec78085``); an empty UID, more than 20 characters, control or non-ASCII characters
  are errors. A UID twice in one file (also in two spellings of the same card) is an error
  on the second line, naming the first.
* **Expiry**: empty, or ``YYYY-MM-DDTHH:MM:SS`` as in the vendor's example, UTC; also ``Z``,
  offsets and fractions (see :func:`stationd.auth.whitelist.parse_expiry`). A date without
  time and spreadsheet-reformatted dates (``01.01.2020 12:00``) are errors with a hint.
* **Authorization**: ``accepted`` or ``blocked``, any case (exports write lower case).
* **Not CSV at all**: an empty file, HTML, an Excel workbook (``.xlsx``/``.xls``), a PDF,
  UTF-16 text or other binary data gets one error saying what the file is.
* **Semicolons / tabs**: a header or row separated by ``;`` (a German spreadsheet's "CSV")
  or tabs gets "this looks like a semicolon-separated export; save as CSV with commas".
* **Limits**: at most the whitelist's capacity (100,000) entries — the row after the last
  that fits is an error and reading stops; at most :data:`MAX_LINE_CHARS` characters a
  line; at most :data:`MAX_ERRORS` errors are listed (then a count of the rest).
* **Processed: N** counts the rows read, the header included (the vendor's UI does so):
  for a file without errors, N = entries + 1. Skipped blank lines are not counted.

Writing (:func:`export_csv`, :func:`iter_csv`): the header and one row per entry in list
order, CRLF line ends (RFC 4180, and the vendor's: its export of an empty list,
``user-export.csv``, is 30 bytes: the 28-character header and CRLF), expiry in the vendor's
form (UTC, no zone), minimal RFC 4180 quoting. **Formula injection**: a UID or GID that starts with ``=``, ``+``, ``-``,
``@``, a tab or CR would be run as a formula by a spreadsheet; such a cell is written with a
``'`` in front (so is a cell that starts with ``'`` itself), and reading removes a leading
``'`` that is followed by one of those characters. So an export imports back to the same
list, byte for byte on the next export.

All or nothing, also for Import (Update): a file with an error changes nothing. A partly
applied file would leave the technician guessing which rows made it, and a row skipped for
a typo may be the one that blocks a lost card (``blokced``) — skipping it would leave the
card working. Fix the file and import again; an Update import is idempotent.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from .uid import InvalidUid, normalize_optional_uid, normalize_uid
from .whitelist import (
    ACCEPTED,
    BLOCKED,
    MAX_ENTRIES,
    ChangeSummary,
    Entry,
    InvalidEntry,
    Whitelist,
    WhitelistFull,
    parse_authorization,
    parse_expiry,
)

__all__ = [
    "EXPORT_FILENAME", "HEADER", "MAX_ERRORS", "MAX_LINE_CHARS", "CsvError", "ImportResult", "ParseResult",
    "export_csv", "import_csv", "iter_csv", "max_file_bytes", "parse_csv",
]

HEADER = ("UID", "GID", "Expiry", "Authorization")
HEADER_LINE = ",".join(HEADER)
EXPORT_FILENAME = "user-export.csv"
_EOL = "\r\n"  # RFC 4180; the vendor's export (see the module docstring)
MAX_LINE_CHARS = 256  # a legal row is at most ~140 characters, quoted and escaped
MAX_ERRORS = 100
FORMULA_START = frozenset("=+-@\t\r")
ESCAPE = "'"
_ESCAPED_START = FORMULA_START | {ESCAPE}

_UTF8_BOM = b"\xef\xbb\xbf"
_SIGNATURES = (  # (magic bytes, what the file is)
    (b"PK\x03\x04", "a ZIP archive (an Excel .xlsx workbook?), not CSV text: save it as \"CSV (comma delimited)\""),
    (b"\xd0\xcf\x11\xe0", "an Excel .xls workbook, not CSV text: save it as \"CSV (comma delimited)\""),
    (b"%PDF", "a PDF document, not CSV text"),
    (b"\xff\xfe", "UTF-16 text (Excel's \"Unicode Text\"), not UTF-8 CSV: save it as \"CSV (comma delimited)\""),
    (b"\xfe\xff", "UTF-16 text, not UTF-8 CSV: save it as \"CSV (comma delimited)\""),
)
_SURROGATE = re.compile("[\udc80-\udcff]")
_PLAIN_HEX = re.compile(r"(?:[0-9a-fA-F]{8}|[0-9a-fA-F]{14}|[0-9a-fA-F]{20})")  # as uid.py's fast path
_UNKNOWN = object()
_HEADER_KEYS = tuple(name.lower() for name in HEADER)


def max_file_bytes(max_rows: int = MAX_ENTRIES) -> int:
    """The largest file :func:`parse_csv` reads (longer cannot be valid): every line at the limit."""
    return (max_rows + 1) * (MAX_LINE_CHARS + 2)


@dataclass(frozen=True)
class CsvError:
    """One problem: ``line`` is the 1-based line in the file (None: the file as a whole)."""

    line: int | None
    message: str

    def __str__(self) -> str:
        return self.message if self.line is None else f"line {self.line}: {self.message}"


@dataclass
class ParseResult:
    entries: list[Entry]
    processed: int  # rows read, the header included
    errors: list[CsvError]
    lines: list[int] = field(default_factory=list)  # the line of each entry
    error_count: int = 0  # all errors, also those beyond MAX_ERRORS

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass(frozen=True)
class ImportResult:
    processed: int
    errors: list[CsvError]
    summary: ChangeSummary | None = None  # None: nothing was changed
    replace: bool = False

    @property
    def ok(self) -> bool:
        return not self.errors


# ----------------------------------------------------------------------------- reading
class _Errors:
    def __init__(self) -> None:
        self.shown: list[CsvError] = []
        self.count = 0

    def add(self, line: int | None, message: str) -> None:
        self.count += 1
        if len(self.shown) < MAX_ERRORS:
            self.shown.append(CsvError(line, message))

    def final(self) -> list[CsvError]:
        hidden = self.count - len(self.shown)
        return self.shown + ([CsvError(None, f"... and {hidden:,} more problems not listed")] if hidden else [])


def _not_csv(data: bytes) -> CsvError | None:
    """One error for a file that is not CSV text at all, else None."""
    if not data.strip():
        return CsvError(1, f"the file is empty: its first line must be {HEADER_LINE}")
    for magic, what in _SIGNATURES:
        if data.startswith(magic):
            return CsvError(1, f"this file is {what}")
    nul = data.find(b"\x00")
    if nul >= 0:
        return CsvError(data.count(b"\n", 0, nul) + 1, "the file contains NUL bytes: it is binary data, not CSV text")
    head = data.lstrip(_UTF8_BOM).lstrip()
    if head.startswith(b"<"):
        return CsvError(1, "this is an HTML or XML document, not a CSV file (a web page saved instead of the export?)")
    return None


def _separator_hint(text: str) -> str | None:
    if ";" in text:
        return "this looks like a semicolon-separated export; save as CSV with commas"
    if "\t" in text:
        return "this looks like a tab-separated export; save as CSV with commas"
    return None


def _unescape(cell: str) -> str:
    return cell[1:] if len(cell) > 1 and cell[0] == ESCAPE and cell[1] in _ESCAPED_START else cell


def _physical_lines(text: str, errors: _Errors) -> Iterator[str]:
    """The file's lines for the csv reader; a line too long or not UTF-8 becomes an error and
    reaches the reader as a blank line (so line numbers stay right)."""
    for number, line in enumerate(io.StringIO(text, newline=""), start=1):
        body = line.rstrip("\r\n")
        if len(body) > MAX_LINE_CHARS:
            errors.add(number, f"the line is too long ({len(body):,} characters; at most {MAX_LINE_CHARS})")
            yield "\n"
        elif _SURROGATE.search(body):
            bad = ord(_SURROGATE.search(body).group()) - 0xDC00  # type: ignore[union-attr]
            errors.add(number, f"not UTF-8 text (byte 0x{bad:02x}): save the file as UTF-8 "
                               f"(\"CSV (comma delimited)\" with plain ASCII content)")
            yield "\n"
        else:
            yield line


def _csv_error_message(exc: csv.Error) -> str:
    text = str(exc)
    if "unexpected end of data" in text or "EOF" in text:
        return "a quoted field is not closed (a \" without its closing \")"
    if "expected after" in text:
        return "bad quoting: a quoted field must end right before a comma, and a \" inside it is written \"\""
    return f"not valid CSV ({text})"


def _vendor_cell(row: list[str]) -> list[str]:
    """A row typed into a single spreadsheet cell, saved as one quoted field: the row it spells."""
    if len(row) == 1 and "," in row[0]:
        try:
            return next(csv.reader([row[0]], strict=True))
        except (csv.Error, StopIteration):
            return row
    return row


def _check_header(row: list[str], line: int, errors: _Errors) -> bool:
    row = _vendor_cell(row)
    if tuple(cell.strip().lower() for cell in row) == _HEADER_KEYS:
        return True
    shown = ",".join(row)
    hint = _separator_hint(shown) if len(row) == 1 else None
    if hint:
        errors.add(line, hint)
    elif len(row) == len(HEADER) and _looks_like_uid(row[0]):
        errors.add(line, f"the header line is missing: the first line must be {HEADER_LINE} "
                         f"(found a card: {_clip(shown)})")
    else:
        errors.add(line, f"the header must be {HEADER_LINE} (found {_clip(shown)})")
    return False


def _looks_like_uid(cell: str) -> bool:
    try:
        normalize_uid(_unescape(cell.strip()))
    except InvalidUid:
        return False
    return cell.strip().lower() not in _HEADER_KEYS


def _clip(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


def _longest_line(text: str, piece: int = 1 << 20) -> int:
    """The longest line's length (without its "\n"), a piece of about 1 MiB at a time: a list
    of every line of a 16 MiB upload would cost about 90 MiB."""
    longest, start = 0, 0
    while start <= len(text):
        end = text.find("\n", start + piece)
        end = len(text) if end < 0 else end
        longest = max(longest, max(map(len, text[start:end].split("\n"))))
        start = end + 1
    return longest


def parse_csv(data: bytes, *, max_rows: int = MAX_ENTRIES) -> ParseResult:
    """Read a whitelist CSV file; see the module docstring for the rules."""
    errors = _Errors()
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError("parse_csv reads bytes (the file as uploaded)")
    data = bytes(data)
    problem = _not_csv(data)
    if problem is not None:
        return ParseResult([], 0, [problem], [], 1)
    if len(data) > max_file_bytes(max_rows):
        return ParseResult([], 0, [CsvError(None, f"the file is too large ({len(data):,} bytes): a whitelist of "
                                                  f"{max_rows:,} entries is at most {max_file_bytes(max_rows):,}")],
                           [], 1)
    if data.startswith(_UTF8_BOM):
        errors.add(1, "the file starts with a UTF-8 byte-order mark (BOM; Excel's \"CSV UTF-8\" writes one): "
                      "save it as \"CSV (comma delimited)\" or remove the BOM; the first line must be exactly "
                      + HEADER_LINE)
        data = data[len(_UTF8_BOM):]
    text = data.decode("utf-8", errors="surrogateescape")

    clean = _SURROGATE.search(text) is None and _longest_line(text) <= MAX_LINE_CHARS + 1
    # A clean file (the usual case) goes to the reader directly; otherwise line by line.
    source = io.StringIO(text, newline="") if clean else _physical_lines(text, errors)
    reader = csv.reader(source, strict=True)
    next_row = reader.__next__
    entries: list[Entry] = []
    lines: list[int] = []
    first_line: dict[str, int] = {}
    expiries: dict[str, object] = {"": None}  # expiry text -> datetime: files repeat a few dates
    plain_hex = _PLAIN_HEX.fullmatch
    authorizations = {ACCEPTED: ACCEPTED, BLOCKED: BLOCKED}
    processed = 0
    header_seen = False
    while True:
        start = reader.line_num + 1
        try:
            row = next_row()
        except StopIteration:
            break
        except csv.Error as exc:
            processed += 1
            errors.add(start, _csv_error_message(exc))
            continue
        if not row or (not row[0].strip() and all(not cell.strip() for cell in row)):
            continue  # blank line, or a spreadsheet's row of empty cells
        processed += 1
        if reader.line_num != start:
            errors.add(start, f"a field spans lines {start}-{reader.line_num} (a line break inside quotes); "
                              f"no field may contain one")
            continue
        if not header_seen:
            header_seen = True
            if not _check_header(row, start, errors):
                break  # the layout is unknown: reading on would only list noise
            continue
        if processed - 1 > max_rows:  # data rows so far, this one included
            errors.add(start, f"too many entries: the whitelist holds at most {max_rows:,}; "
                              f"this is entry {processed - 1:,}")
            break
        entry = None
        if len(row) == 4:  # the fast path: plain hex UID, no GID, a known expiry text, exact authorization
            uid_text, gid_text, expiry_text, authorization_text = row
            authorization = authorizations.get(authorization_text)
            expiry = expiries.get(expiry_text, _UNKNOWN)
            if authorization is not None and not gid_text and expiry is not _UNKNOWN and plain_hex(uid_text):
                entry = Entry(uid_text.lower(), None, expiry, authorization)  # type: ignore[arg-type]
        if entry is None:
            row = _vendor_cell(row)
            if len(row) != len(HEADER):
                hint = _separator_hint(row[0]) if len(row) == 1 else None
                errors.add(start, hint or f"{len(row)} fields, expected {len(HEADER)} ({HEADER_LINE})")
                continue
            entry = _entry(row, start, errors)
            if entry is None:
                continue
            if len(expiries) < 1000:
                expiries[row[2]] = entry.expiry
        seen = first_line.get(entry.uid)
        if seen is not None:
            errors.add(start, f"duplicate UID {entry.uid}: already on line {seen}")
            continue
        first_line[entry.uid] = start
        entries.append(entry)
        lines.append(start)
    if not header_seen and errors.count == 0:
        errors.add(1, f"the file has no rows: its first line must be {HEADER_LINE}")
    shown = errors.final()
    return ParseResult([] if shown else entries, processed, shown, [] if shown else lines, errors.count)


def _entry(row: list[str], line: int, errors: _Errors) -> Entry | None:
    uid_text, gid_text, expiry_text, authorization_text = (cell.strip() for cell in row)
    before = errors.count
    uid = gid = expiry = authorization = None
    try:
        uid = normalize_uid(_unescape(uid_text))
    except InvalidUid as exc:
        errors.add(line, f"bad UID: {exc}")
    try:
        gid = normalize_optional_uid(_unescape(gid_text))
    except InvalidUid as exc:
        errors.add(line, f"bad GID: {str(exc).replace('the UID', 'the GID')}")
    try:
        expiry = parse_expiry(expiry_text)
    except InvalidEntry as exc:
        errors.add(line, f"bad expiry: {exc}")
    try:
        authorization = parse_authorization(authorization_text)
    except InvalidEntry as exc:
        errors.add(line, f"bad authorization: {exc}")
    if errors.count != before:
        return None
    assert uid is not None and authorization is not None
    return Entry(uid, gid, expiry, authorization)


def import_csv(whitelist: Whitelist, data: bytes, replace: bool) -> ImportResult:
    """Import (Update) (``replace=False``: merge) or Import (Replace); a file with any error,
    or one that would overfill the list, changes nothing."""
    parsed = parse_csv(data, max_rows=whitelist.capacity)
    if parsed.errors:
        return ImportResult(parsed.processed, parsed.errors, None, replace)
    try:
        summary = (whitelist.replace_all if replace else whitelist.merge)(parsed.entries)
    except WhitelistFull as full:
        line = parsed.lines[full.index] if full.index is not None and full.index < len(parsed.lines) else None
        return ImportResult(parsed.processed, [CsvError(line, str(full))], None, replace)
    return ImportResult(parsed.processed, [], summary, replace)


# ----------------------------------------------------------------------------- writing
def _escape(cell: str) -> str:
    return ESCAPE + cell if cell and cell[0] in _ESCAPED_START else cell


def iter_csv(whitelist: Whitelist, chunk_rows: int = 5000) -> Iterator[bytes]:
    """The export, in chunks (stream it to a file or an HTTP response)."""
    rows = whitelist.rows_for_export()  # one query: a consistent snapshot
    yield (HEADER_LINE + _EOL).encode("ascii")
    for begin in range(0, len(rows), chunk_rows):
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator=_EOL)
        writer.writerows(
            (_escape(uid), "" if gid is None else _escape(gid), "" if expiry is None else expiry.rstrip("Z"),
             authorization)
            for uid, gid, expiry, authorization in rows[begin:begin + chunk_rows]
        )
        yield buffer.getvalue().encode("ascii")


def export_csv(whitelist: Whitelist) -> bytes:
    """The whole list as ``user-export.csv`` content."""
    return b"".join(iter_csv(whitelist))
