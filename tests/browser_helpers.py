"""A real browser for the WebUI tests: Debian's chromium driven by playwright (never a browser
that playwright downloads).

``chromium`` (a pytest fixture: import ``chromium_fixture``) is the browser's path; without ``/usr/bin/chromium`` the test
is skipped locally but fails in CI (``CI=true``), so CI cannot silently skip the browser tests.
:func:`browsing` opens a fresh profile (a new browser, one context) and records what must not
happen on any page: console errors (a CSP violation is one), uncaught page errors, and any
request to another host than the station's WebUI.
"""

from __future__ import annotations

import os
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
TIMEOUT_MS = 15_000


@pytest.fixture(name="chromium")
def chromium_fixture() -> Path:
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is missing (apt-get install chromium); the browser tests need it"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return CHROMIUM


@dataclass
class Browsing:
    page: object  # playwright.async_api.Page
    base: str
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    foreign_requests: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        """What went wrong so far (and forget it: the next check starts clean)."""
        found = ([f"console: {m}" for m in self.console_errors] + [f"page error: {m}" for m in self.page_errors]
                 + [f"request to another host: {u}" for u in self.foreign_requests])
        self.console_errors.clear(), self.page_errors.clear(), self.foreign_requests.clear()
        return found


@asynccontextmanager
async def browsing(chromium: Path, base: str):
    """A page of a fresh browser that accepts the station's self-signed certificate (TLS itself
    is tested elsewhere) and records console errors, page errors and foreign requests."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(chromium), args=ARGS)
        try:
            context = await browser.new_context(ignore_https_errors=True, locale="en-US")
            context.set_default_timeout(TIMEOUT_MS)
            page = await context.new_page()
            seen = Browsing(page, base)
            page.on("console", lambda message: seen.console_errors.append(f"{page.url}: {message.text}")
                    if message.type == "error" else None)
            page.on("pageerror", lambda error: seen.page_errors.append(f"{page.url}: {error}"))
            context.on("request", lambda request: None if request.url.startswith(base + "/")
                       else seen.foreign_requests.append(request.url))
            yield seen
        finally:
            await browser.close()
