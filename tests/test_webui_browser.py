"""The WebUI in a real browser (Debian's chromium via playwright, see browser_helpers): the first
login and forced password change, every menu page without a console error, CSP violation or
request to another host, live connector values, the German labels, logout, and the progress
bars of the firmware upload and of flashing the controllers.

The menu walk also saves a full-page screenshot of every page it reaches (and of the login and
password-change pages, and a few pages in German) for review: one PNG per URL, named after its
path (``/station/components`` -> ``station-components.png``, German ``station-components.de.png``),
into ``build/screenshots/`` at the repository root or the directory ``$STATIOND_SCREENSHOTS``,
overwritten each run."""

from __future__ import annotations

import os
import re
import struct
import time
from pathlib import Path
from urllib.parse import urlsplit

from browser_helpers import Browsing, browsing, chromium_fixture  # noqa: F401 - the fixture "chromium"
from playwright.async_api import expect
from test_ocpp_client import until
from test_webui_software import package
from webui_helpers import NEW_PASSWORD, SERIAL, webui_station

from firmware_sim.controller import DEFAULT_SLOT_SIZE, make_controller_image
from stationd.config.value_types import Source
from stationd.webui.navigation import MENU

SCREENSHOTS_ENV = "STATIOND_SCREENSHOTS"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def screenshot_dir() -> Path:
    """Where the screenshots go: $STATIOND_SCREENSHOTS, else build/screenshots of the repository."""
    return Path(os.environ.get(SCREENSHOTS_ENV) or Path(__file__).resolve().parents[1] / "build" / "screenshots")


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) of a PNG; AssertionError for anything else."""
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR", f"not a PNG: {data[:16]!r}"
    return struct.unpack(">II", data[16:24])


class Screenshots:
    """Full-page screenshots of the pages a test visits, one file per URL path (see the module docstring)."""

    def __init__(self) -> None:
        self.directory = screenshot_dir()
        self.directory.mkdir(parents=True, exist_ok=True)
        self.started = time.time()
        self.taken: dict[str, tuple[int, int]] = {}  # file name -> (window width, page height) when taken

    async def take(self, page, suffix: str = "") -> None:
        name = (urlsplit(page.url).path.strip("/").replace("/", "-") or "index") + suffix + ".png"
        assert name not in self.taken, f"{name} twice"
        await page.wait_for_load_state("networkidle")
        height = await page.evaluate("document.documentElement.scrollHeight")
        data = await page.screenshot(full_page=True, animations="disabled", caret="hide")
        path = self.directory / name
        partial = path.with_name(f".{name}.{os.getpid()}.part")  # never a half-written PNG for a reviewer
        partial.write_bytes(data)
        os.replace(partial, path)
        self.taken[name] = (page.viewport_size["width"], height)

    def check(self, *expected: str) -> None:
        """Every expected file (and every taken one) was written by this run and is a full-page PNG
        of a page no wider than the window (nothing to scroll sideways)."""
        assert set(expected) <= set(self.taken), f"no screenshot of {sorted(set(expected) - set(self.taken))}"
        too_wide = []
        for name, (window, height) in self.taken.items():
            path = self.directory / name
            assert path.is_file() and path.stat().st_size > 0, f"{path} missing or empty"
            assert path.stat().st_mtime >= self.started - 2, f"{path} was not written by this run"
            width, png_height = png_size(path.read_bytes())
            assert png_height >= height, f"{name}: {width}x{png_height}, the page is {height} high"
            if width != window:
                too_wide.append(f"{name}: {width} px wide in a {window} px window")
        assert not too_wide, "pages wider than the window:\n" + "\n".join(too_wide)


async def first_login(b: Browsing, shots: Screenshots | None = None) -> None:
    """Login with the serial number, the forced password change, and the dashboard (with
    ``shots``: screenshots of the login and the password-change page)."""
    page = b.page
    await page.goto(b.base + "/")
    assert "/login" in page.url
    if shots:
        await shots.take(page)
    await page.fill("input[name=user]", "admin")
    await page.fill("input[name=password]", SERIAL)
    await page.click("button[type=submit]")
    await page.wait_for_url("**/password")
    assert await page.locator("nav.menu").count() == 0  # nowhere else to go yet
    if shots:
        await shots.take(page)
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


GERMAN_SHOTS = ("/dashboard", "/communication/ocpp", "/station/components", "/users/list")


async def test_the_menu_reaches_every_page_cleanly_and_saves_its_screenshot(tmp_path: Path, chromium):
    async with webui_station(tmp_path) as (_station, base, _ca, _cs), browsing(chromium, base) as b:
        shots = Screenshots()
        await first_login(b, shots)
        await set_profile(b, level="Expert")  # the Diagnostics pages are in the Expert menu only
        await shots.take(b.page)  # the profile page (the admin menu's), after its Save
        page, failed = b.page, {}
        assert b.problems() == []
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
                else:
                    await shots.take(page)
        assert not failed, "pages with problems:\n" + "\n".join(f"  {url}: {p}" for url, p in failed.items())

        await set_profile(b, language="de")
        for url in GERMAN_SHOTS:
            await page.click(f"nav.menu a[href='{url}']")
            await page.wait_for_url(base + url)
            assert await page.locator("html").get_attribute("lang") == "de"
            await shots.take(page, ".de")
        assert b.problems() == []
        shots.check("login.png", "password.png", "profile.png",
                    *(entry.url.strip("/").replace("/", "-") + ".png" for section in MENU for entry in section.pages),
                    *(url.strip("/").replace("/", "-") + ".de.png" for url in GERMAN_SHOTS))


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


async def test_the_firmware_upload_shows_its_progress_and_the_verdict(tmp_path: Path, chromium):
    async with webui_station(tmp_path) as (station, base, _ca, cs), browsing(chromium, base) as b:
        await first_login(b)
        await set_profile(b, level="Expert")  # the upload form is Expert only
        page = b.page
        wrong = tmp_path / "other.pkg"
        wrong.write_bytes(package(tmp_path, "Other Model"))
        good = tmp_path / "good.pkg"
        good.write_bytes(package(tmp_path, station.store.get("ModelId")))
        await page.click("nav.menu a[href='/software']")
        await page.wait_for_url("**/software")
        await page.evaluate("window.notReloaded = true")
        status = page.locator("#upload-status")

        await page.set_input_files("#package-upload input[type=file]", str(wrong))
        await page.click("#package-upload button[type=submit]")
        await expect(status).to_have_class(re.compile(r"\bbad\b"))
        assert "Other Model" in await status.inner_text()
        assert [p for p in b.problems() if "status of 400" not in p] == []  # the refusal is the 400 itself
        assert await page.locator("#upload-progress").evaluate("bar => bar.value") == 100  # all of it was sent
        assert await page.locator("#package-upload button[type=submit]").is_enabled()

        await page.evaluate("document.getElementById('upload-progress').value = 0")
        await page.set_input_files("#package-upload input[type=file]", str(good))
        await page.click("#package-upload button[type=submit]")
        await expect(status).to_have_class(re.compile(r"\bok\b"))
        assert "2.0.0" in await status.inner_text()
        assert await page.locator("#upload-progress").evaluate("bar => bar.value") == 100
        assert await page.evaluate("window.notReloaded === true")  # sent by the script, not a form post
        await cs.wait_for("FirmwareStatusNotification", predicate=lambda r: r.payload["status"] == "Installed",
                          timeout=15)
        # the station reboots in place with the new firmware: let it finish before the test ends
        await until(lambda: station.boots == 2 and getattr(station.station, "webui", None) is not None, 15)
        assert station.station.store.get("FirmwareVersion") == "2.0.0"
        assert b.problems() == []


async def test_flashing_the_controllers_shows_live_progress_then_the_outcome(tmp_path: Path, chromium):
    async with webui_station(tmp_path) as (station, base, _ca, _cs), browsing(chromium, base) as b:
        await first_login(b)
        page = b.page
        image = tmp_path / "controller.img"
        image.write_bytes(make_controller_image("1.1.0", size=DEFAULT_SLOT_SIZE))  # the biggest: a few seconds
        # Every value the bar shows after a live update (read once the page's own listener set it),
        # kept across the form post and the reload that shows the outcome.
        await page.add_init_script("""document.addEventListener("stationd:live", () => setTimeout(() => {
            const bar = document.querySelector("#flash-state progress");
            const seen = JSON.parse(sessionStorage.getItem("flashBar") || "[]");
            seen.push(bar.value);
            sessionStorage.setItem("flashBar", JSON.stringify(seen));
        }))""")
        await page.click("nav.menu a[href='/station/components']")
        await page.wait_for_url("**/station/components")
        page.once("dialog", lambda dialog: dialog.accept())  # "Flash the EVSE controller firmware now?"
        await page.set_input_files("form[action='/station/components/flash'] input[type=file]", str(image))
        await page.select_option("form[action='/station/components/flash'] select[name=connector]", "1")
        await page.click("form[action='/station/components/flash'] button[type=submit]")
        await expect(page.locator("#flash-state h3")).to_contain_text("1.1.0", timeout=60_000)
        assert "1.0.0 → 1.1.0" in await page.locator("#flash-results").inner_text()
        seen = await page.evaluate("JSON.parse(sessionStorage.getItem('flashBar') || '[]')")
        assert any(0 < value < 100 for value in seen), f"the bar never showed progress between 0 and 100: {seen}"
        during = [value for value in seen if value > 0]
        assert during == sorted(during), f"the bar went backwards while flashing: {seen}"
        assert station.station.flasher.versions()[1] == (1, 1, 0)
        assert b.problems() == []
