"""User Management > Users in a real browser (see browser_helpers): the vendor seed's whitelist
example (tests/data/csv/golden_vendor_example.csv) through Import (Replace), edited in the
editor (block, delete, a new expiry from the date picker, a new card), saved, and exported: the
downloaded ``user-export.csv`` is compared row by row with the seed's rows with those edits
applied, in the export's format (stationd.auth.csv_io: the header, CRLF, lower-case UIDs,
``YYYY-MM-DDTHH:MM:SS`` UTC expiry), and the station's whitelist is what the page shows."""

from __future__ import annotations

import csv
import re
from datetime import UTC, datetime
from pathlib import Path

from browser_helpers import browsing, chromium_fixture  # noqa: F401 - the fixture "chromium"
from playwright.async_api import expect
from test_webui_browser import first_login
from webui_helpers import webui_station

from stationd.auth.whitelist import format_expiry

SEED = Path(__file__).parent / "data" / "csv" / "golden_vendor_example.csv"
HEADER = ["UID", "GID", "Expiry", "Authorization"]
BEFORE = "11223344"  # on the station before the import: Replace deletes it

BLOCK, DELETE, REDATE = "ae36959e", "d2006c8e", "4b13b318"
NEW_EXPIRY_PICKED = "2031-06-30T18:30"  # what the date picker holds: no seconds when they are 0
NEW_EXPIRY = "2031-06-30T18:30:00"
ADDED = {"typed": "04:A1:B2:C3:D4:E5:F6", "uid": "04a1b2c3d4e5f6", "gid_typed": "AEC78085", "gid": "aec78085",
         "expiry": "2030-12-31T23:59:59", "authorization": "blocked"}


def seed_rows() -> list[list[str]]:
    with SEED.open(newline="") as file:
        rows = list(csv.reader(file))
    assert rows[0] == HEADER and len(rows) == 6, rows
    return rows[1:]


def expected_rows() -> list[list[str]]:
    """The seed's rows with the test's edits applied, in list order (a new card comes last)."""
    rows = []
    for uid, gid, expiry, authorization in seed_rows():
        if uid == DELETE:
            continue
        if uid == BLOCK:
            authorization = "blocked"
        if uid == REDATE:
            expiry = NEW_EXPIRY
        rows.append([uid, gid, expiry, authorization])
    return rows + [[ADDED["uid"], ADDED["gid"], ADDED["expiry"], ADDED["authorization"]]]


async def table(page) -> list[list[str]]:
    """The whitelist table as the page shows it: UID, GID, expiry, status (no "unsaved" mark)."""
    rows = []
    for row in await page.locator("#whitelist tbody tr[data-uid]").all():
        cells = [text.strip() for text in await row.locator("td").all_inner_texts()]
        rows.append(cells[1:4] + [cells[4].removesuffix("(unsaved)").strip()])
    return rows


async def test_the_seed_whitelist_imports_edits_and_exports_row_by_row(tmp_path: Path, chromium):
    async with webui_station(tmp_path) as (station, base, _ca, _cs), browsing(chromium, base) as b:
        whitelist = station.station.whitelist
        whitelist.add(BEFORE)
        page = b.page
        await first_login(b)
        await page.click("nav.menu a[href='/users/list']")
        await page.wait_for_url("**/users/list")
        await expect(page.locator("#whitelist tbody tr[data-uid]")).to_have_count(1)

        # Import (Replace) asks first, then shows what it did.
        asked = []

        async def confirm(dialog) -> None:
            asked.append(dialog.message)
            await dialog.accept()

        page.once("dialog", confirm)
        replace = page.locator("form.upload", has=page.locator("input[name=mode][value=replace]"))
        await replace.locator("input[type=file]").set_input_files(str(SEED))
        await replace.locator("button[type=submit]").click()
        result = page.locator(".import-result")
        await expect(result).to_contain_text("Processed: 6")  # the header and 5 cards
        assert asked and "Replace the whole whitelist" in asked[0]
        await expect(result).to_contain_text("(Import (Replace))")
        await expect(result).to_contain_text("Added: 5, changed: 0, unchanged: 0, deleted: 1.")
        seeded = [[uid, gid, expiry, "Expired" if uid == REDATE else "Accepted"]  # its expiry is 2020
                  for uid, gid, expiry, _authorization in seed_rows()]
        assert await table(page) == seeded
        assert [e.uid for e in whitelist.entries()] == [row[0] for row in seeded]
        assert whitelist.get(BEFORE).deleted

        # Edits in the editor wait for Save.
        row = page.locator(f"#whitelist tr[data-uid='{BLOCK}']")
        await row.locator("button[value=block]").click()
        await expect(row.locator("td.status")).to_have_text("Blocked (unsaved)")

        row = page.locator(f"#whitelist tr[data-uid='{DELETE}']")
        await row.locator("button[value=delete]").click()
        await expect(row.locator("td.status")).to_have_text("Deleted (unsaved)")

        await page.locator(f"#whitelist tr[data-uid='{REDATE}'] a").click()
        edit = page.locator("section#edit")
        await expect(edit.locator("h2")).to_contain_text(REDATE)
        picker = edit.locator("input[name=expiry]")
        await expect(picker).to_have_attribute("type", "datetime-local")
        await expect(picker).to_have_value("2020-01-01T12:00")  # the picker's form of 2020-01-01T12:00:00
        await picker.fill(NEW_EXPIRY_PICKED)
        await edit.locator("button[type=submit]").click()
        row = page.locator(f"#whitelist tr[data-uid='{REDATE}']")
        await expect(row.locator("td.status")).to_have_text("Accepted (unsaved)")
        await expect(row.locator("td").nth(3)).to_have_text(NEW_EXPIRY)

        add = page.locator("form[action='/users/list/add']")
        await add.locator("input[name=uid]").fill(ADDED["typed"])
        await add.locator("input[name=gid]").fill(ADDED["gid_typed"])
        await add.locator("input[name=expiry]").fill(ADDED["expiry"])
        await add.locator("select[name=authorization]").select_option(ADDED["authorization"])
        await add.locator("button[type=submit]").click()
        await expect(page.locator(f"#whitelist tr[data-uid='{ADDED['uid']}'] td.status")).to_have_text(
            "Blocked (unsaved)")
        await expect(page.locator(".save-bar")).to_contain_text("4 unsaved change(s)")
        assert [e.uid for e in whitelist.entries()] == [row[0] for row in seeded]  # nothing saved yet
        assert not whitelist.get(BLOCK).blocked and whitelist.get(ADDED["uid"]) is None

        await page.locator("form[action='/users/list/save'] button[type=submit]").click()
        await expect(page.get_by_text("Saved: 4 change(s).")).to_have_count(1)
        await expect(page.locator("#whitelist tr.unsaved")).to_have_count(0)

        # The export: the seed's rows with the edits, row by row.
        async with page.expect_download() as info:
            await page.locator("a[href='/users/list/export']").click()
        download = await info.value
        assert download.suggested_filename == "user-export.csv"
        exported = Path(await download.path()).read_bytes()
        assert exported.endswith(b"\r\n") and b"\n" not in exported.replace(b"\r\n", b""), exported
        lines = exported.decode("ascii").split("\r\n")[:-1]
        assert lines[0] == ",".join(HEADER)
        want = expected_rows()
        for number, (got, expected) in enumerate(zip(lines[1:], want, strict=False), start=2):
            assert got == ",".join(expected), f"line {number} of the export"
        assert len(lines) - 1 == len(want), f"{len(lines) - 1} rows exported, {len(want)} expected: {lines}"

        # The station's whitelist is what the page shows (reloaded: the saved list).
        await page.reload()
        now = datetime.now(UTC)
        shown = await table(page)
        stored = [[e.uid, e.gid or "", format_expiry(e.expiry), e.status_at(now)] for e in whitelist.entries()]
        assert shown == stored
        assert shown == [[uid, gid, expiry, "Blocked" if authorization == "blocked" else "Accepted"]
                         for uid, gid, expiry, authorization in want]
        assert whitelist.get(DELETE).deleted  # restorable until the daemon restarts
        assert re.search(r"\b5 of 100,000 entries", await page.locator("main").inner_text())
        assert b.problems() == []
