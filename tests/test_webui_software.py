"""Software over real HTTPS: the versions, and the Expert firmware upload — a good package is
verified and installed through the dry-run system edge (then the station reboots in place and
reports the new version), a package for another model or a corrupted one is refused with the
reason and nothing is installed."""

from __future__ import annotations

from pathlib import Path

import aiohttp
from test_ocpp_client import until
from webui_helpers import WebClient, logged_in, webui_station

from stationd import __version__
from stationd.firmware.package import build_package


def package(tmp_path: Path, model: str, version: str = "2.0.0") -> bytes:
    payload = tmp_path / "rootfs.img"
    payload.write_bytes(b"system image " * 1000)
    output = tmp_path / f"{model.replace(' ', '_')}-{version}.pkg"
    build_package(model, version, [payload], output)
    return output.read_bytes()


async def upload(client: WebClient, content: bytes, *, json: bool = True) -> tuple[int, str]:
    form = aiohttp.FormData()
    form.add_field("csrf_token", client.csrf)
    form.add_field("package", content, filename="update.pkg", content_type="application/octet-stream")
    headers = {"Origin": client.base, **({"Accept": "application/json"} if json else {})}
    async with client.http.post(client.base + "/software/upload", data=form, headers=headers) as response:
        return response.status, await response.text()


async def test_versions_and_the_upload_only_for_experts(tmp_path: Path):
    async with webui_station(tmp_path) as (station, base, ca, _cs):
        async with WebClient(base, ca) as client:
            await client.login_and_set_password()
            status, text = await client.get("/software")
            assert status == 200 and f"<dd data-field=\"versions.stationClient\">{__version__}</dd>" in text
            assert "Webinterface" in text and 'name="package"' not in text
            assert "<dd data-field=\"controllers.0.firmware\">1.0.0</dd>" in text
            status, _ = await upload(client, b"x")
            assert status == 403
            async with client.http.get(base + "/api/software") as response:
                data = await response.json()
            assert data["install"]["status"] == "Idle" and data["versions"]["firmware"] == __version__


async def test_a_good_package_is_installed_and_the_station_reboots_with_it(tmp_path: Path):
    async with webui_station(tmp_path) as (station, base, ca, cs):
        system = station.station.system
        async with logged_in(base, ca, expert=True) as client:
            status, text = await client.get("/software")
            assert 'name="package"' in text
            model = station.store.get("ModelId")
            status, text = await upload(client, package(tmp_path, model))
            assert status == 200 and "2.0.0" in text, text
            await cs.wait_for("FirmwareStatusNotification", predicate=lambda r: r.payload["status"] == "Installed",
                              timeout=15)
            assert system.installed_version == "2.0.0"
            assert any(action == "install_firmware" for action, _ in system.actions)
            await until(lambda: station.boots == 2 and getattr(station.station, "webui", None) is not None, 15)
            assert station.station.store.get("FirmwareVersion") == "2.0.0"
            assert not list((Path(station.station.config.data_dir) / "uploads").glob("*"))


async def test_a_wrong_model_or_corrupted_package_is_refused(tmp_path: Path):
    async with webui_station(tmp_path) as (station, base, ca, _cs):
        system = station.station.system
        async with logged_in(base, ca, expert=True) as client:
            await client.get("/software")
            status, text = await upload(client, package(tmp_path, "Other Model"))
            assert status == 400 and "Other Model" in text and "refused" in text
            good = bytearray(package(tmp_path, station.store.get("ModelId")))
            good[len(good) // 2] ^= 0x01
            status, text = await upload(client, bytes(good), json=False)
            assert status == 400 and "Package refused" in text and 'id="upload-message"' in text
            assert station.station.ocpp.firmware.pending is None and system.installed_version is None
            assert not list((Path(station.station.config.data_dir) / "uploads").glob("*"))
