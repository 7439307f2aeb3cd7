"""The WebUI in a real browser (Debian's chromium via playwright, see browser_helpers): the first
login and forced password change, every menu page without a console error, CSP violation or
request to another host, live connector values, the German labels, and logout."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.async_api import expect

from browser_helpers import Browsing, browsing, chromium_fixture  # noqa: F401 - the fixture "chromium"
from webui_helpers import NEW_PASSWORD, SERIAL, webui_station

from stationd.config.value_types import Source
from stationd.webui.navigation import MENU


async def first_login(b: Browsing) -> None:
    """Login with the serial number, the forced password change, and the dashboard."""
    page = b.page
    await page.goto(b.base + "/")
    assert "/login" in page.url
    await page.fill("input[name=user]", "admin")
    await page.fill("input[name=password]", SERIAL)
    await page.click("button[type=submit]")
    await page.wait_for_url("**/password")
    assert await page.locator("nav.menu").count() == 0  # nowhere else to go yet
    await page.fill("input[name=old]", SERIAL)
    await page.fill("input[name=new]", NEW_PASSWORD)
    await page.fill("input[name=repeat]", NEW_PASSWORD)
    await page.click("main button[type=submit]")
    await page.wait_for_url("**/dashboard")


async def set_profile(b: Browsing, *, level: str | None = None, language: str | None = None) -> None:
    page = b.page
    await page.click("nav.admin a[href='/profile']")
    await page.wait_for_url("**/profile")
    if level:
        await page.select_option("select[name=level]", level)
    if language:
        await page.select_option("select[name=language]", language)
    await page.click("form[action='/profile'] button[type=submit]")
    await page.wait_for_load_state()


async def test_first_login_forces_the_password_change_then_shows_the_dashboard(tmp_path: Path, chromium):
    async with webui_station(tmp_path) as (_station, base, _ca, _cs), browsing(chromium, base) as b:
        await first_login(b)
        assert await b.page.locator("h1").inner_text() == "Dashboard"
        assert await b.page.get_by_text("OCPP Server connection").count() == 1
        await b.page.wait_for_load_state("networkidle")
        assert b.problems() == []


async def test_the_menu_reaches_every_page_cleanly(tmp_path: Path, chromium):
    async with webui_station(tmp_path) as (_station, base, _ca, _cs), browsing(chromium, base) as b:
        await first_login(b)
        await set_profile(b, level="Expert")  # the Diagnostics pages are in the Expert menu only
        page, failed = b.page, {}
        b.problems()
        for section in MENU:
            for entry in section.pages:
                async with page.expect_navigation() as navigation:
                    await page.click(f"nav.menu a[href='{entry.url}']")
                response = await navigation.value
                await page.wait_for_load_state("networkidle")
                problems = b.problems()
                if response is None or response.status >= 400:
                    problems.insert(0, f"HTTP {response.status if response else 'no answer'}")
                elif page.url != base + entry.url:
                    problems.insert(0, f"ended at {page.url}")
                elif await page.locator(f"nav.menu a[aria-current=page][href='{entry.url}']").count() != 1:
                    problems.insert(0, "the menu does not mark the page as current")
                if problems:
                    failed[entry.url] = problems
        assert not failed, "pages with problems:\n" + "\n".join(f"  {url}: {p}" for url, p in failed.items())


async def test_the_dashboard_shows_a_plugged_vehicle_without_reload(tmp_path: Path, chromium):
    async with webui_station(tmp_path) as (station, base, _ca, _cs), browsing(chromium, base) as b:
        await first_login(b)
        page = b.page
        status = page.locator("#connectors tr[data-row='1'] td[data-cell=status]")
        cp = page.locator("#connectors tr[data-row='1'] td[data-cell='controller.cpState']")
        assert (await status.inner_text()).startswith("Available")
        await page.evaluate("window.notReloaded = true")
        assert station.store.set("CsMode", "1", Source.LOCAL).ok  # free charging: plugging in starts it
        station.world.plug(1)
        station.world.charge(1)
        await expect(status).to_have_text(re.compile(r"^Charging"))
        assert await cp.inner_text() == "C"
        assert await page.evaluate("window.notReloaded === true")  # the same document, updated live
        assert (await page.locator("#connectors tr[data-row='2'] td[data-cell=status]").inner_text()).startswith(
            "Available")
        assert b.problems() == []


async def test_german_shows_the_vendor_labels(tmp_path: Path, chromium):
    async with webui_station(tmp_path) as (_station, base, _ca, _cs), browsing(chromium, base) as b:
        await first_login(b)
        await set_profile(b, language="de")
        page = b.page
        menu = await page.locator("nav.menu").inner_text()
        for label in ("Netzwerk", "Kommunikation", "Komponenten", "Ladepunkte", "Benutzerverwaltung",
                      "Datum/Uhrzeit", "Leistung"):
            assert label in menu, label
        admin = await page.locator("nav.admin").inner_text()
        for label in ("Benutzerprofil", "Daemon neu starten", "System neu starten", "Abmelden"):
            assert label in admin, label
        assert await page.get_by_role("button", name="Speichern").count() == 1
        await page.click("nav.menu a[href='/sessions']")
        await page.wait_for_url("**/sessions")
        assert await page.locator("h1").inner_text() == "Ladevorgänge"
        assert await page.locator("html").get_attribute("lang") == "de"
        assert b.problems() == []


async def test_logout_returns_to_the_login_page_and_back_shows_no_dashboard(tmp_path: Path, chromium):
    async with webui_station(tmp_path) as (_station, base, _ca, _cs), browsing(chromium, base) as b:
        await first_login(b)
        page = b.page
        await page.click("nav.admin a[href='/logout']")
        await page.wait_for_url("**/logout")
        await page.click("form[action='/logout'] button[type=submit]")
        await page.wait_for_url("**/login?bye=1")
        assert await page.locator("form[action='/login']").count() == 1
        for _ in range(2):  # back to the logout page, then to the dashboard: both need a session
            await page.go_back()
            await page.wait_for_load_state()
            assert "/login" in page.url
            assert await page.locator("form[action='/login']").count() == 1
            assert await page.get_by_text("OCPP Server connection").count() == 0


async def test_charts_and_the_ocpp_log_refresh_live(tmp_path: Path, chromium):
    async with webui_station(tmp_path) as (station, base, _ca, cs), browsing(chromium, base) as b:
        await first_login(b)
        await set_profile(b, level="Expert")
        page = b.page
        assert station.store.set("CsMode", "1", Source.LOCAL).ok
        station.world.plug(1)
        station.world.charge(1)
        await page.click("nav.menu a[href='/charts']")
        await page.wait_for_url("**/charts")
        await expect(page.locator(".chart[data-connector='1'] path.series.power")).to_have_count(1)
        await expect(page.locator(".chart[data-connector='1'] [data-now=power]")).to_have_text(re.compile(r"kW$"))

        await page.click("nav.menu a[href='/ocpp/log']")
        await page.wait_for_url("**/ocpp/log")
        await page.evaluate("window.notReloaded = true")
        await cs.call("TE-IT0001", "GetConfiguration", {"key": ["HeartbeatInterval"]})
        rows = page.locator("#ocpp-log tbody tr", has_text="GetConfiguration")
        await expect(rows).to_have_count(2)  # the CALL and its CALLRESULT, newest first
        assert await rows.nth(0).locator("td.direction").inner_text() == "->"
        assert await page.evaluate("window.notReloaded === true")
        assert b.problems() == []
