"""The WebUI's out-of-service page while the storage refuses the station's start."""

from __future__ import annotations

import asyncio
import socket
import ssl
from types import SimpleNamespace

import aiohttp

from stationd.webui import certificate
from stationd.webui.out_of_service import serve_out_of_service


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def station(tmp_path, port: int):
    return SimpleNamespace(data_dir=tmp_path, webui=SimpleNamespace(address=("127.0.0.1", port), tls_cert=None,
                                                                    tls_key=None))


async def fetch(port: int, ca, method: str, path: str) -> tuple[int, str, dict]:
    context = ssl.create_default_context(cafile=str(ca))
    async with aiohttp.ClientSession() as session:
        for _ in range(200):
            try:
                async with session.request(method, f"https://127.0.0.1:{port}{path}", ssl=context,
                                           data=b"x" * 10 if method == "POST" else None) as response:
                    return response.status, await response.text(), dict(response.headers)
            except aiohttp.ClientConnectorError:
                await asyncio.sleep(0.02)
    raise AssertionError("the out-of-service page never listened")


async def test_every_request_is_answered_503_with_the_reason_escaped(tmp_path):
    cert, key = tmp_path / "webui" / "self-signed.pem", tmp_path / "webui" / "self-signed.key"
    cert.parent.mkdir()
    certificate.make_self_signed(cert, key, "127.0.0.1")
    port = free_port()
    page = asyncio.create_task(serve_out_of_service(station(tmp_path, port), lambda: "/data is <full> & stuck"))
    try:
        status, text, headers = await fetch(port, cert, "GET", "/dashboard")
        assert status == 503
        assert "/data is &lt;full&gt; &amp; stuck" in text and "<full>" not in text
        assert headers["Retry-After"] == "10" and headers["Cache-Control"] == "no-store"
        assert "default-src" in headers["Content-Security-Policy"] and "Set-Cookie" not in headers
        status, _, _ = await fetch(port, cert, "POST", "/settings/ocpp")
        assert status == 503  # nothing can be changed
    finally:
        page.cancel()
        await asyncio.wait({page})
    with socket.socket() as sock:  # the port is free again for the station's own WebUI
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))


async def test_without_a_certificate_there_is_no_page(tmp_path, caplog):
    port = free_port()
    await asyncio.wait_for(serve_out_of_service(station(tmp_path, port), lambda: "full"), 5)
    assert "no out-of-service page" in caplog.text
    assert not (tmp_path / "webui").exists()  # nothing made on a disk that refuses writes
