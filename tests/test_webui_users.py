"""User Management > Users over real HTTPS: the whitelist editor (pending changes applied by
Save), paging, hide deleted, Import (Update) / Import (Replace) with "Processed: N", CSV
errors with their lines, Export, the upload limit — and an imported card authorizes at the
station."""

from __future__ import annotations

import re
from pathlib import Path

import aiohttp
from webui_helpers import WebClient, logged_in, webui_station

from stationd.auth.whitelist import Entry
from stationd.webui.pages.users import MAX_CSV_BYTES

HEADER = "UID,GID,Expiry,Authorization\r\n"


def uids_on(text: str) -> list[str]:
    return re.findall(r'<tr data-uid="([0-9a-f]+)"', text)


def status_of(text: str, uid: str) -> str:
    row = re.search(rf'<tr data-uid="{uid}".*?</tr>', text, re.S).group(0)
    return re.sub(r"<[^>]+>", "", re.search(r'<td class="status">(.*?)</td>', row, re.S).group(1)).strip()


async def upload(client: WebClient, path: str, fields: dict, content: bytes, *, token: bool = True,
                 filename: str = "list.csv") -> tuple[int, str]:
    form = aiohttp.FormData()
    if token:
        form.add_field("csrf_token", client.csrf)
    for name, value in fields.items():
        form.add_field(name, value)
    form.add_field("file", content, filename=filename, content_type="text/csv")
    async with client.http.post(client.base + path, data=form, headers={"Origin": client.base}) as response:
        return response.status, await response.text()


async def test_editor_changes_wait_for_save_then_apply(tmp_path: Path):
    async with webui_station(tmp_path) as (station, base, ca, _cs):
        whitelist = station.station.whitelist
        async with logged_in(base, ca, page="/users/list") as client:
            status, text = await client.post("/users/list/add", {"uid": "AE:C7:80:85", "gid": "", "expiry": "2030-01-01T12:00",
                                                                "authorization": "accepted", "page": "1", "hide": "1"})
            assert status == 200 and "aec78085" in text and "unsaved" in text
            assert whitelist.get("aec78085") is None  # not before Save
            status, text = await client.post("/users/list/add", {"uid": "a" * 25, "gid": "", "expiry": "01.01.2020 12:00",
                                                                "authorization": "accepted"})
            assert status == 400 and text.count('aria-invalid="true"') == 2 and "spreadsheet" in text
            await client.post("/users/list/save", {"page": "1", "hide": "1"})
            entry = whitelist.get("aec78085")
            assert entry is not None and entry.expiry.isoformat() == "2030-01-01T12:00:00+00:00"

            await client.post("/users/list/action", {"uid": "aec78085", "action": "block", "page": "1", "hide": "1"})
            assert not whitelist.get("aec78085").blocked
            await client.post("/users/list/save", {})
            assert whitelist.get("aec78085").blocked
            await client.post("/users/list/action", {"uid": "aec78085", "action": "accept"})
            await client.post("/users/list/save", {})
            assert not whitelist.get("aec78085").blocked

            status, text = await client.post("/users/list/edit", {"uid": "aec78085", "gid": "", "expiry": "bad",
                                                                 "authorization": "accepted"})
            assert status == 400 and 'aria-invalid="true"' in text
            await client.post("/users/list/edit", {"uid": "aec78085", "gid": "4b13b318", "expiry": "2031-02-03T04:05:06",
                                                   "authorization": "accepted"})
            await client.post("/users/list/save", {})
            assert whitelist.get("aec78085")[:3] == Entry.make("aec78085", "4b13b318", "2031-02-03T04:05:06")[:3]

            await client.post("/users/list/action", {"uid": "aec78085", "action": "delete"})
            await client.post("/users/list/save", {})
            assert whitelist.count() == 0
            status, text = await client.get("/users/list?hide=1")
            assert "aec78085" not in uids_on(text)
            status, text = await client.get("/users/list?hide=0")
            assert uids_on(text) == ["aec78085"] and status_of(text, "aec78085") == "Deleted"
            await client.post("/users/list/action", {"uid": "aec78085", "action": "restore", "hide": "0"})
            await client.post("/users/list/save", {})
            assert whitelist.count() == 1 and not whitelist.get("aec78085").deleted

            await client.post("/users/list/action", {"uid": "aec78085", "action": "block"})
            status, text = await client.post("/users/list/discard", {})
            assert "aec78085" in uids_on(text) and "unsaved" not in status_of(text, "aec78085")
            await client.post("/users/list/save", {})
            assert not whitelist.get("aec78085").blocked


async def test_paging_and_import_update_replace_and_export(tmp_path: Path):
    async with webui_station(tmp_path) as (station, base, ca, _cs):
        whitelist = station.station.whitelist
        async with logged_in(base, ca, page="/users/list") as client:
            cards = [f"{i:08x}" for i in range(0x10000000, 0x10000000 + 25)]
            body = HEADER + "".join(f"{uid},,,accepted\r\n" for uid in cards)
            status, text = await upload(client, "/users/list/import", {"mode": "update"}, body.encode())
            assert status == 200 and "Processed: 26" in text and whitelist.count() == 25
            status, text = await client.get("/users/list?page=2&hide=1")
            assert uids_on(text) == cards[10:20]
            assert re.findall(r'<tr data-uid="[0-9a-f]+">\s*<td>(\d+)</td>', text) == [str(n) for n in range(11, 21)]
            status, text = await client.get("/users/list?page=3")
            assert uids_on(text) == cards[20:]

            status, text = await upload(client, "/users/list/import", {"mode": "replace"},
                                        (HEADER + "aec78085,,2030-01-01T12:00:00,accepted\r\n4b13b318,,,blocked\r\n").encode())
            assert status == 200 and "Processed: 3" in text
            assert [e.uid for e in whitelist.entries()] == ["aec78085", "4b13b318"]
            status, text = await client.get("/users/list?hide=0&page=1")
            assert "Deleted" in text  # the replaced cards stay restorable until the daemon restarts

            async with client.http.get(base + "/users/list/export") as response:
                assert response.status == 200
                assert 'filename="user-export.csv"' in response.headers["Content-Disposition"]
                exported = await response.read()
            assert exported == (HEADER + "aec78085,,2030-01-01T12:00:00,accepted\r\n4b13b318,,,blocked\r\n").encode()


async def test_a_bad_csv_changes_nothing_and_names_its_lines(tmp_path: Path):
    async with webui_station(tmp_path) as (station, base, ca, _cs):
        whitelist = station.station.whitelist
        whitelist.add("aec78085")
        async with logged_in(base, ca, page="/users/list") as client:
            status, text = await upload(client, "/users/list/import", {"mode": "replace"},
                                        b"UID;GID;Expiry;Authorization\r\n4b13b318;;;accepted\r\n")
            assert status == 400 and "line 1" in text and "semicolon" in text
            status, text = await upload(client, "/users/list/import", {"mode": "update"},
                                        (HEADER + "4b13b318,,,accepted\r\nd2006c8e,,,blokced\r\n").encode())
            assert status == 400 and "Processed: 3" in text and "line 3" in text and "blokced" in text
            assert "Nothing was imported" in text
            assert [e.uid for e in whitelist.entries()] == ["aec78085"]
            status, _ = await upload(client, "/users/list/import", {"mode": "update"}, HEADER.encode(), token=False)
            assert status == 403


async def test_an_over_limit_upload_is_refused(tmp_path: Path):
    async with webui_station(tmp_path) as (station, base, ca, _cs):
        async with logged_in(base, ca, page="/users/list") as client:
            line = b"aec78085,,,accepted\r\n"
            content = HEADER.encode() + line * (MAX_CSV_BYTES // len(line) + 1)
            status, text = await upload(client, "/users/list/import", {"mode": "update"}, content)
            assert status == 413 and "too large" in text
            assert station.station.whitelist.count() == 0


async def test_an_imported_card_authorizes_at_the_station(tmp_path: Path):
    async with webui_station(tmp_path) as (station, base, ca, _cs):
        authorizer = station.station.ocpp.authorizer
        async with logged_in(base, ca, page="/users/list") as client:
            decision = await authorizer.authorize("aec78085", online=False, ask_backend=None)
            assert not decision.accepted
            status, text = await upload(client, "/users/list/import", {"mode": "update"},
                                        (HEADER + "aec78085,,,accepted\r\n4b13b318,,,blocked\r\n").encode())
            assert status == 200
            decision = await authorizer.authorize("AE:C7:80:85", online=False, ask_backend=None)
            assert decision.accepted and decision.source == "whitelist"
            decision = await authorizer.authorize("4b13b318", online=False, ask_backend=None)
            assert not decision.accepted and decision.source == "whitelist"
