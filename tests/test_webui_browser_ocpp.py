"""Communication > OCPP in a real browser (see browser_helpers) against the test central system:
a setting saved in the page is the value the backend reads with GetConfiguration (and saving
one field changes no other key and does not reconnect), and a value the backend writes with
ChangeConfiguration is what the page shows — in its field and in the Expert's custom settings.

The page has no live values (no ``data-live``): it shows a backend's change when it is loaded
again."""

from __future__ import annotations

import re
from pathlib import Path

from browser_helpers import browsing, chromium_fixture  # noqa: F401 - the fixture "chromium"
from playwright.async_api import expect
from test_ocpp_client import until
from test_webui_browser import first_login, set_profile
from webui_helpers import webui_station

BOX = "TE-IT0001"
UI_KEY, UI_VALUE = "HeartbeatInterval", "900"
CS_KEY, CS_VALUE = "TransactionMessageRetryInterval", "45"


def values(station) -> dict[str, str | None]:
    """Every writable key's value (read-only ones such as CurrentDateTime change by themselves)."""
    return {reading.name: reading.value for reading in station.store.readings() if not reading.readonly}


async def test_a_setting_saved_in_the_ui_is_read_by_the_backend_and_a_backend_change_is_shown(
        tmp_path: Path, chromium):
    async with webui_station(tmp_path) as (station, base, _ca, cs), browsing(chromium, base) as b:
        # The BootNotification's answer sets HeartbeatInterval: wait for it, or it could undo the UI's value.
        await cs.wait_for("BootNotification", chargebox_id=BOX, timeout=15)
        await until(lambda: str(station.store.get(UI_KEY)) == str(cs.heartbeat_interval), 15)
        assert str(cs.heartbeat_interval) != UI_VALUE and station.store.render(CS_KEY) != CS_VALUE
        page = b.page
        await first_login(b)
        await set_profile(b, level="Expert")  # also shows the custom settings (every key)
        await page.click("nav.menu a[href='/communication/ocpp']")
        await page.wait_for_url("**/communication/ocpp")
        form = page.locator("form[action='/communication/ocpp']")
        field = form.locator(f"input[name={UI_KEY}]")
        await expect(field).to_have_value(str(cs.heartbeat_interval))

        before, handshakes = values(station), len(cs.handshakes(BOX))
        await field.fill(UI_VALUE)
        await form.locator("button[type=submit]").click()
        await expect(page.locator("p.flash", has_text="Saved.")).to_have_count(1)
        await expect(field).to_have_value(UI_VALUE)
        after = values(station)
        assert {name: (before[name], value) for name, value in after.items() if before.get(name) != value} == {
            UI_KEY: (str(cs.heartbeat_interval), UI_VALUE)}  # one field changed: one key
        answer = await cs.call(BOX, "GetConfiguration", {"key": [UI_KEY]})
        assert answer["configurationKey"] == [{"key": UI_KEY, "readonly": False, "value": UI_VALUE}], answer
        assert not answer.get("unknownKey"), answer

        answer = await cs.call(BOX, "ChangeConfiguration", {"key": CS_KEY, "value": CS_VALUE})
        assert answer == {"status": "Accepted"}
        assert station.store.render(CS_KEY) == CS_VALUE
        await page.reload()
        await expect(form.locator(f"input[name={CS_KEY}]")).to_have_value(CS_VALUE)
        await expect(field).to_have_value(UI_VALUE)
        custom = page.locator("#custom-settings tr", has=page.locator("code", has_text=re.compile(f"^{CS_KEY}$")))
        await expect(custom.locator("td").nth(1)).to_have_text(CS_VALUE)
        assert len(cs.handshakes(BOX)) == handshakes  # neither change made the station connect again
        assert b.problems() == []
