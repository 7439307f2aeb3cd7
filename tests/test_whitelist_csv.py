"""The whitelist CSV format: golden files, a hostile corpus, import semantics, the export round trip."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stationd.auth import Entry, InvalidUid, Whitelist, export_csv, import_csv, normalize_uid, parse_csv
from stationd.auth.csv_io import EXPORT_FILENAME, MAX_ERRORS, _longest_line, iter_csv
from stationd.auth.whitelist import MAX_ENTRIES
from stationd.storage import Database

CSV_DIR = Path(__file__).resolve().parent / "data" / "csv"
UTC = timezone.utc
HEADER = b"UID,GID,Expiry,Authorization\r\n"


def read(name: str) -> bytes:
    return (CSV_DIR / name).read_bytes()


@pytest.fixture
def wl(tmp_path: Path):
    db = Database.open(tmp_path)
    yield Whitelist(db)
    db.close()


def summary_of(entries: list[Entry]) -> list[tuple]:
    return [(e.uid, e.gid, e.expiry, e.authorization) for e in entries]


# ----------------------------------------------------------------------------- golden files
VENDOR_EXAMPLE = [
    ("aec78085", None, None, "accepted"),
    ("ae36959e", None, None, "accepted"),
    ("0488dd2a561d80", None, None, "accepted"),
    ("4b13b318", None, datetime(2020, 1, 1, 12, tzinfo=UTC), "accepted"),
    ("d2006c8e", None, None, "accepted"),
]


@pytest.mark.parametrize("name", ["golden_vendor_example.csv", "golden_vendor_example_crlf.csv"])
def test_the_vendor_example_reads_as_written(name):
    result = parse_csv(read(name))
    assert result.errors == []
    assert summary_of(result.entries) == VENDOR_EXAMPLE
    assert result.processed == len(result.entries) + 1 == 6  # the header counts, as in the vendor's UI


def test_rows_typed_into_one_spreadsheet_cell_as_the_vendor_guide_says():
    result = parse_csv(read("golden_vendor_single_cells.csv"))
    assert result.errors == []
    assert summary_of(result.entries) == [VENDOR_EXAMPLE[0], VENDOR_EXAMPLE[3]]


def test_rfc4180_quoting():
    result = parse_csv(read("golden_quoted.csv"))
    assert result.errors == []
    assert summary_of(result.entries) == [
        ("aec78085", None, None, "accepted"),
        ('card "7"', "aec78085", datetime(2030, 6, 30, 23, 59, 59, tzinfo=UTC), "blocked"),
        ("a,b", None, None, "accepted"),
    ]


def test_lenient_spellings_case_blanks_and_blank_lines():
    result = parse_csv(read("golden_lenient.csv"))
    assert result.errors == []
    assert summary_of(result.entries) == [
        ("aec78085", None, None, "accepted"),
        ("0488dd2a561d80", "aec78085", datetime(2030, 1, 1, 12, tzinfo=UTC), "blocked"),
        ("fleet-007", None, datetime(2030, 1, 1, 12, 30, tzinfo=UTC), "accepted"),
        ("d2006c8e", None, datetime(2030, 1, 1, 12, tzinfo=UTC), "accepted"),
    ]
    assert result.processed == 5  # blank lines and the ",,," row are not rows
    assert result.lines == [3, 5, 6, 7]


def export_golden_list(wl: Whitelist) -> None:
    wl.merge([
        Entry.make("AEC78085"),
        Entry.make("4b13b318", expiry="2020-01-01T12:00:00"),
        Entry.make("04:88:DD:2A:56:1D:80", gid="aec78085", expiry="2032-01-01T00:59:59+01:00",
                   authorization="blocked"),
        Entry.make("=1+2"),
        Entry.make("+4917012345", gid="@group"),
        Entry.make("-5", authorization="blocked"),
        Entry.make("@SUM(A1)"),
        Entry.make("'=quoted"),
        Entry.make("'quoted"),
        Entry.make("a,b"),
        Entry.make('say "hi"'),
    ])


def test_export_matches_the_golden_file(wl):
    export_golden_list(wl)
    assert export_csv(wl) == read("golden_export.csv")


def test_export_of_an_empty_list_is_the_vendors_30_bytes(wl):
    data = export_csv(wl)
    assert data == read("golden_empty_list.csv") == HEADER
    assert len(data) == 30  # the vendor's user-export.csv of an empty list: "(30 Bytes)"
    assert EXPORT_FILENAME == "user-export.csv"


def test_formula_cells_are_neutralized_and_read_back(wl):
    export_golden_list(wl)
    data = export_csv(wl)
    for line in data.decode().splitlines()[1:]:
        for cell in line.split(",")[:2]:
            assert not cell.startswith(("=", "+", "-", "@")), line
    before = wl.entries()
    other = Whitelist(Database.open(wl.db.path.parent / "other"))
    result = import_csv(other, data, replace=True)
    assert result.ok and result.processed == len(before) + 1
    assert other.entries() == before
    assert export_csv(other) == data
    other.db.close()


def test_a_leading_apostrophe_is_removed_only_before_a_formula_character():
    data = HEADER + b"'abc,,,accepted\r\n'=abc,,,accepted\r\n''x,,,accepted\r\n'-1,'@g,,accepted\r\n"
    assert [(e.uid, e.gid) for e in parse_csv(data).entries] == [
        ("'abc", None), ("=abc", None), ("'x", None), ("-1", "@g")]


# ----------------------------------------------------------------------------- hostile corpus
HOSTILE = {  # file: (line of the (first) error, fragment of its message)
    "bom.csv": (1, "byte-order mark"),
    "latin1.csv": (2, "not UTF-8"),
    "utf16.csv": (1, "UTF-16"),
    "semicolon.csv": (1, "this looks like a semicolon-separated export; save as CSV with commas"),
    "semicolon_rows.csv": (2, "semicolon-separated export"),
    "tab.csv": (1, "tab-separated"),
    "binary.png": (3, "binary data, not CSV text"),  # \x89PNG\r\n \x1a\n \x00
    "workbook.xlsx": (1, "xlsx"),
    "empty.csv": (1, "the file is empty"),
    "blank.csv": (1, "the file is empty"),
    "html.csv": (1, "HTML"),
    "header_wrong.csv": (1, "the header must be UID,GID,Expiry,Authorization"),
    "header_order.csv": (1, "the header must be UID,GID,Expiry,Authorization"),
    "header_only_three.csv": (1, "the header must be"),
    "header_missing.csv": (1, "the header line is missing"),
    "uid_too_long.csv": (3, "at most 20"),
    "uid_empty.csv": (2, "the UID is empty"),
    "uid_non_ascii.csv": (2, "non-ASCII"),
    "uid_control.csv": (2, "control character"),
    "gid_too_long.csv": (2, "bad GID"),
    "date_invalid.csv": (2, "not a valid date"),
    "date_text.csv": (2, "is not a date and time like 2020-01-01T12:00:00"),
    "date_only.csv": (2, "has no time"),
    "date_spreadsheet.csv": (2, "spreadsheet"),
    "authorization_unknown.csv": (2, "unknown authorization 'allowed': write accepted or blocked"),
    "authorization_ocpp_status.csv": (2, "an expiry date makes an entry expire"),
    "authorization_empty.csv": (2, "the authorization is empty"),
    "duplicate_uid.csv": (4, "duplicate UID aec78085: already on line 2"),
    "duplicate_uid_spelling.csv": (3, "duplicate UID aec78085: already on line 2"),
    "fields_three.csv": (2, "3 fields, expected 4"),
    "fields_five.csv": (2, "5 fields, expected 4"),
    "quote_bad.csv": (2, "bad quoting"),
    "quote_unclosed.csv": (3, "not closed"),
    "field_multiline.csv": (2, "spans lines 2-3"),
    "line_too_long.csv": (3, "too long"),
    "many_errors.csv": (3, "unknown authorization"),
}


def test_every_hostile_file_is_in_the_corpus():
    hostile_files = {p.name for p in CSV_DIR.iterdir() if not p.name.startswith("golden_")}
    assert hostile_files == set(HOSTILE)


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_file_is_refused_with_line_and_reason(name, wl):
    line, fragment = HOSTILE[name]
    data = read(name)
    result = parse_csv(data)
    assert result.errors, name
    assert result.entries == []
    first = result.errors[0]
    assert first.line == line, (name, result.errors)
    assert fragment in first.message, (name, first.message)
    # and an import of it changes nothing, Update or Replace
    wl.add("ffffffff")
    counter = wl.change_counter()
    for replace in (False, True):
        imported = import_csv(wl, data, replace=replace)
        assert not imported.ok and imported.summary is None
    assert wl.change_counter() == counter and [e.uid for e in wl.entries()] == ["ffffffff"]


def test_bom_is_reported_together_with_the_other_problems():
    result = parse_csv(b"\xef\xbb\xbf" + HEADER + b"aec78085,,,maybe\r\n")
    assert [(e.line, e.message.split(":")[0]) for e in result.errors] == [
        (1, "the file starts with a UTF-8 byte-order mark (BOM; Excel's \"CSV UTF-8\" writes one)"),
        (2, "bad authorization")]


def test_every_problem_is_listed_with_its_line():
    data = (HEADER + b"aec78085,,,accepted\r\n"  # 2 fine
            + b"x" * 21 + b",,,accepted\r\n"     # 3 bad UID
            + b"ae36959e,,2020-01-01,blocked\r\n"  # 4 bad date
            + b"d2006c8e,,,\r\n"                 # 5 empty authorization
            + b"AEC78085,,,blocked\r\n"           # 6 duplicate
            + b"4b13b318,,,accepted\r\n"          # 7 fine
            + b"0488dd2a561d80;;;accepted\r\n"    # 8 semicolons
            + b"c0ffee00,0123456789abcdef01234,nope,maybe\r\n")  # 9: three problems
    result = parse_csv(data)
    assert [e.line for e in result.errors] == [3, 4, 5, 6, 8, 9, 9, 9]
    assert [m.message.split(":")[0] for m in result.errors[5:]] == ["bad GID", "bad expiry", "bad authorization"]
    assert result.processed == 9


def test_the_error_list_is_capped(wl):
    result = parse_csv(read("many_errors.csv"))
    assert result.error_count == 150
    assert len(result.errors) == MAX_ERRORS + 1
    assert result.errors[-1].line is None and "50 more problems" in result.errors[-1].message


def test_too_many_rows_is_an_error_at_the_first_row_that_does_not_fit(wl):
    rows = b"".join(b"%08x,,,accepted\r\n" % i for i in range(MAX_ENTRIES + 1))
    result = parse_csv(HEADER + rows)
    assert [(e.line, e.message) for e in result.errors] == [
        (MAX_ENTRIES + 2, f"too many entries: the whitelist holds at most {MAX_ENTRIES:,}; "
                          f"this is entry {MAX_ENTRIES + 1:,}")]
    small = Whitelist(wl.db, capacity=2)
    imported = import_csv(small, HEADER + rows[: 3 * 19], replace=True)
    assert imported.errors[0].line == 4 and "at most 2" in imported.errors[0].message


def test_a_merge_that_would_overfill_the_list_names_the_row(wl):
    small = Whitelist(wl.db, capacity=3)
    small.merge([Entry.make("aaaaaaaa"), Entry.make("bbbbbbbb")])
    result = import_csv(small, HEADER + b"aaaaaaaa,,,blocked\r\ncccccccc,,,accepted\r\ndddddddd,,,accepted\r\n",
                        replace=False)
    assert not result.ok and result.errors[0].line == 4 and "at most 3" in result.errors[0].message
    assert [e.authorization for e in small.entries()] == ["accepted", "accepted"]  # nothing changed


def test_parse_refuses_text():
    with pytest.raises(TypeError):
        parse_csv("UID,GID,Expiry,Authorization\n")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- import semantics
def test_update_merges_and_replace_replaces(wl):
    first = import_csv(wl, read("golden_vendor_example.csv"), replace=False)
    assert first.ok and first.processed == 6 and first.summary.added == 5
    update = import_csv(wl, HEADER + b"aec78085,,,blocked\r\nc0ffee00,,,accepted\r\n", replace=False)
    assert update.processed == 3
    assert (update.summary.added, update.summary.changed, update.summary.removed) == (1, 1, 0)
    assert wl.count() == 6 and wl.get("aec78085").blocked
    replace = import_csv(wl, HEADER + b"c0ffee00,,,accepted\r\nAEC78085,,,accepted\r\n", replace=True)
    assert replace.processed == 3
    assert (replace.summary.added, replace.summary.changed, replace.summary.removed) == (0, 1, 4)
    assert [e.uid for e in wl.entries()] == ["aec78085", "c0ffee00"]
    assert wl.count(include_deleted=True) == 6  # the four others stay restorable until the next start


def test_update_is_all_or_nothing_too(wl):
    import_csv(wl, read("golden_vendor_example.csv"), replace=False)
    before = wl.entries()
    result = import_csv(wl, HEADER + b"aec78085,,,blocked\r\nc0ffee00,,,blokced\r\n", replace=False)
    assert not result.ok and result.errors[0].line == 3
    assert wl.entries() == before  # the good row 2 did not slip in either


def test_header_only_file_replaces_with_an_empty_list(wl):
    import_csv(wl, read("golden_vendor_example.csv"), replace=False)
    result = import_csv(wl, read("golden_empty_list.csv"), replace=True)
    assert result.ok and result.processed == 1 and wl.count() == 0


# ----------------------------------------------------------------------------- round trip
uid_text = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=20)


def normal_or_none(text: str) -> str | None:
    try:
        return normalize_uid(text)
    except InvalidUid:
        return None


entries_strategy = st.lists(
    st.tuples(
        uid_text.map(normal_or_none).filter(lambda u: u is not None),
        st.one_of(st.none(), uid_text.map(normal_or_none)),
        st.one_of(st.none(), st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(9998, 1, 1))),
        st.sampled_from(["accepted", "blocked"]),
    ),
    max_size=12, unique_by=lambda t: t[0],
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=entries_strategy)
def test_export_then_import_is_the_identity(rows, wl):
    entries = [Entry(uid, gid, None if when is None else when.replace(microsecond=0, tzinfo=UTC), auth)
               for uid, gid, when, auth in rows]
    wl.replace_all([])
    wl.purge_deleted()  # each example starts from an empty list: list order is then the given order
    wl.replace_all(entries)
    data = export_csv(wl)
    parsed = parse_csv(data)
    assert parsed.errors == []
    assert parsed.entries == wl.entries() == entries
    assert parsed.processed == len(entries) + 1
    summary = wl.replace_all(parsed.entries)
    assert summary.total_changes == 0
    assert export_csv(wl) == data


def test_100k_rows_import_and_export(wl):
    """Timings are printed, not asserted (the benchmarks measure them)."""
    rows = b"".join(b"%08x,,%s,%s\r\n" % (i * 2654435761 % 2**32, b"2030-01-01T12:00:00" if i % 4 == 0 else b"",
                                          b"blocked" if i % 50 == 0 else b"accepted")
                    for i in range(MAX_ENTRIES))
    data = HEADER + rows
    started = time.perf_counter()
    result = import_csv(wl, data, replace=True)
    imported = time.perf_counter() - started
    assert result.ok, result.errors[:3]
    assert result.processed == MAX_ENTRIES + 1 and wl.count() == MAX_ENTRIES
    started = time.perf_counter()
    exported = export_csv(wl)
    export_time = time.perf_counter() - started
    assert exported == data
    started = time.perf_counter()
    again = import_csv(wl, exported, replace=False)
    reimported = time.perf_counter() - started
    assert again.summary.unchanged == MAX_ENTRIES
    chunks = list(iter_csv(wl))
    assert len(chunks) > 10 and b"".join(chunks) == data  # streamed in pieces
    print(f"\n100k rows ({len(data) / 1e6:.1f} MB): import {imported:.2f} s, export {export_time:.2f} s, "
          f"unchanged re-import {reimported:.2f} s")


@given(st.text(alphabet="ab\r\n,", max_size=200), st.integers(min_value=1, max_value=64))
def test_the_longest_line_is_found_piece_by_piece_as_over_the_whole_text(text, piece):
    assert _longest_line(text, piece) == max(map(len, text.split("\n")))
