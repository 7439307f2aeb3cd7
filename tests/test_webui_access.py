"""WebUI access over real HTTPS: login with the default password leads to the password change,
sessions, CSRF and Origin, lockout, logout, security headers."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from webui_helpers import NEW_PASSWORD, SERIAL, WebClient, webui_station

from stationd.factory_reset import webui_password_matches

PAGES = ["/dashboard", "/profile", "/admin/restart", "/admin/reboot", "/api/status"]


async def test_first_login_forces_a_password_change_then_the_new_password_works(tmp_path: Path):
    async with webui_station(tmp_path) as (station, base, ca, _cs):
        async with WebClient(base, ca) as client:
            status, text = await client.login()
            assert status == 200 and "default password" in text
            status, _ = await client.get("/dashboard")  # nowhere else until the password is changed
            assert status == 200 and 'action="/password"' in _
            status, text = await client.post("/password", {"old": SERIAL, "new": SERIAL, "repeat": SERIAL})
            assert status == 400 and "serial number" in text
            status, text = await client.post("/password", {"old": "wrong", "new": "short", "repeat": "other"})
            assert status == 400 and "old password is wrong" in text and "differ" in text
            await client.post("/password", {"old": SERIAL, "new": NEW_PASSWORD, "repeat": NEW_PASSWORD})
            assert webui_password_matches(station.store, NEW_PASSWORD)
            assert not webui_password_matches(station.store, SERIAL)
            status, text = await client.get("/dashboard")
            assert status == 200 and "OCPP Server connection" in text


async def test_without_a_session_every_route_is_refused(tmp_path: Path):
    async with webui_station(tmp_path) as (_station, base, ca, _cs):
        async with WebClient(base, ca) as client:
            for path in PAGES:
                status, text = await client.get(path, allow_redirects=False)
                assert status in (303, 401), (path, status)
            status, text = await client.get("/dashboard")
            assert status == 200 and 'action="/login"' in text
            status, _ = await client.post("/admin/reboot", {}, csrf=False, allow_redirects=False)
            assert status == 401
            status, _ = await client.get("/static/style.css")
            assert status == 200


async def test_csrf_token_and_origin_are_checked(tmp_path: Path):
    async with webui_station(tmp_path) as (station, base, ca, _cs):
        async with WebClient(base, ca) as client:
            await client.login_and_set_password()
            await client.get("/profile")
            status, _ = await client.post("/profile", {"level": "Expert", "language": "en"}, csrf=False)
            assert status == 403
            status, _ = await client.post("/profile", {"level": "Expert", "language": "en"},
                                          headers={"Origin": "https://evil.example"})
            assert status == 403
            status, text = await client.post("/profile", {"level": "Expert", "language": "de"})
            assert status == 200 and "Experte" in text


async def test_repeated_wrong_passwords_lock_the_client_out(tmp_path: Path):
    async with webui_station(tmp_path) as (_station, base, ca, _cs):
        async with WebClient(base, ca) as client:
            for _ in range(5):
                status, _ = await client.login("wrong-password")
                assert status == 401
            status, text = await client.login()  # even the right password, while locked out
            assert status == 429 and "try again" in text


async def test_logout_ends_the_session_on_the_server(tmp_path: Path):
    async with webui_station(tmp_path) as (_station, base, ca, _cs):
        async with WebClient(base, ca) as client:
            await client.login_and_set_password()
            cookie = next(c for c in client.http.cookie_jar if c.key == "stationd_session")
            assert cookie["secure"] and cookie["httponly"] and cookie["samesite"] == "Strict"
            token = cookie.value
            await client.get("/logout")
            status, text = await client.post("/logout", {})
            assert 'action="/login"' in text
            stolen = WebClient(base, ca)  # the old cookie, replayed
            stolen.http.cookie_jar.update_cookies({"stationd_session": token})
            status, _ = await stolen.get("/api/status", allow_redirects=False)
            assert status == 401
            await stolen.close()


async def test_security_headers_on_pages_and_assets(tmp_path: Path):
    async with webui_station(tmp_path) as (_station, base, ca, _cs):
        async with WebClient(base, ca) as client:
            for path in ("/login", "/static/app.js"):
                async with client.http.get(base + path) as response:
                    headers = response.headers
                    assert "script-src 'self'" in headers["Content-Security-Policy"]
                    assert "unsafe-inline" not in headers["Content-Security-Policy"]
                    assert headers["X-Frame-Options"] == "DENY" and headers["X-Content-Type-Options"] == "nosniff"


async def test_sessions_expire_on_the_running_station_by_waiting(tmp_path: Path):
    """The live daemon's session store with its timeouts shortened to seconds (the real ones are
    30 min idle and 12 h in all): use keeps a session past the idle time, an unused one ends, and
    a session ends at its absolute time however recently it was used."""
    async with webui_station(tmp_path) as (station, base, ca, _cs):
        sessions = station.station.webui.ui.sessions
        async with WebClient(base, ca) as idle, WebClient(base, ca) as busy:
            await idle.login_and_set_password()
            await busy.login(NEW_PASSWORD)
            sessions.idle_timeout_s = 2.0
            used_for = time.monotonic()
            while time.monotonic() - used_for < 2.5:  # longer than the idle time, used all along
                assert (await busy.get("/api/status", allow_redirects=False))[0] == 200
                await asyncio.sleep(0.3)
            assert (await idle.get("/dashboard", allow_redirects=False))[0] == 303  # unused for 2.5 s
            assert (await busy.get("/api/status", allow_redirects=False))[0] == 200

            sessions.idle_timeout_s, sessions.absolute_timeout_s = 60.0, 4.0
            await asyncio.sleep(max(0.0, 4.2 - (time.monotonic() - used_for)))  # the login is older than 4 s
            assert (await busy.get("/api/status", allow_redirects=False))[0] == 401
            status, text = await busy.get("/dashboard")
            assert status == 200 and 'action="/login"' in text
