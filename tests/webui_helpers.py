"""A station with its WebUI for the WebUI tests: the daemon in this event loop (test_ocpp_client's
Station), a central system on 127.0.0.1, and an HTTPS client that trusts the station's own
self-signed certificate (not "verify nothing")."""

from __future__ import annotations

import asyncio
import re
import ssl
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
from test_ocpp_client import Station, config_for, until

from firmware_sim.central_system import CentralSystem
from firmware_sim.world import SimConnectorSpec, SimWorld

SERIAL = "IT0001"
NEW_PASSWORD = "Install-2026-secure"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


class WebClient:
    """HTTPS to the station's WebUI with a cookie jar, like one browser."""

    def __init__(self, base: str, ca_file: Path):
        self.base = base
        context = ssl.create_default_context(cafile=str(ca_file))
        self.http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context),
                                          cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.csrf = ""

    async def close(self) -> None:
        await self.http.close()

    async def __aenter__(self) -> WebClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def get(self, path: str, **kwargs) -> tuple[int, str]:
        async with self.http.get(self.base + path, allow_redirects=kwargs.pop("allow_redirects", True),
                                 **kwargs) as response:
            text = await response.text()
            found = CSRF.search(text)
            if found:
                self.csrf = found.group(1)
            return response.status, text

    async def post(self, path: str, data: dict, *, csrf: bool = True, headers: dict | None = None,
                   allow_redirects: bool = True) -> tuple[int, str]:
        body = {**data, **({"csrf_token": self.csrf} if csrf else {})}
        async with self.http.post(self.base + path, data=body, headers={"Origin": self.base, **(headers or {})},
                                  allow_redirects=allow_redirects) as response:
            text = await response.text()
            found = CSRF.search(text)
            if found:
                self.csrf = found.group(1)
            return response.status, text

    async def login(self, password: str = SERIAL) -> tuple[int, str]:
        return await self.post("/login", {"user": "admin", "password": password, "next": "/dashboard"}, csrf=False)

    async def login_and_set_password(self, password: str = NEW_PASSWORD) -> None:
        status, text = await self.login()
        assert status == 200 and 'action="/password"' in text, text[:500]
        status, text = await self.post("/password", {"old": SERIAL, "new": password, "repeat": password})
        assert status == 200 and "Dashboard" in text, text[:500]


@asynccontextmanager
async def webui_station(tmp_path: Path, connectors: int = 2):
    """(station, base URL, CA file) of a running station whose WebUI listens on 127.0.0.1."""
    async with CentralSystem() as cs:
        world = SimWorld([SimConnectorSpec(i) for i in range(1, connectors + 1)], tmp_path / "sim",
                         vehicle_reaction_s=0)
        await world.start()
        station = Station(config_for(tmp_path / "data", cs.url, connectors=connectors), world)
        try:
            await until(lambda: getattr(getattr(station, "station", None), "webui", None) is not None
                        and station.station.webui.port is not None, 15)
            ui = station.station.webui
            yield station, f"https://127.0.0.1:{ui.port}", ui.ui.tls_cert, cs
        finally:
            await station.stop()
            await world.stop()


async def settle() -> None:
    await asyncio.sleep(0)


@asynccontextmanager
async def logged_in(base: str, ca: Path, *, expert: bool = False, page: str | None = None):
    """A WebClient past the first login and its password change (Expert level when ``expert``;
    ``page`` visited last, so its CSRF token is the client's), closed on leaving."""
    async with WebClient(base, ca) as client:
        await client.login_and_set_password()
        if expert:
            await client.get("/profile")
            await client.post("/profile", {"level": "Expert", "language": "en"})
        if page is not None:
            await client.get(page)
        yield client
