"""Station > Connectors and Station > Components over real HTTPS: the live connector data with the
current limit and why, and Flash Firmware — a good image (the new version is reported), a
corrupted one (refused by the bootloader, the old firmware keeps running), refused while a
vehicle charges unless forced."""

from __future__ import annotations

from pathlib import Path

import aiohttp
from test_ocpp_client import until
from webui_helpers import WebClient, logged_in, webui_station

from firmware_sim.controller import make_controller_image
from stationd.hw.flashing import HEADER_SIZE


async def flash(client: WebClient, image: bytes, connector: str = "all", force: bool = False) -> tuple[int, str]:
    form = aiohttp.FormData()
    form.add_field("csrf_token", client.csrf)
    form.add_field("image", image, filename="controller.img", content_type="application/octet-stream")
    form.add_field("connector", connector)
    if force:
        form.add_field("force", "1")
    async with client.http.post(client.base + "/station/components/flash", data=form,
                                headers={"Origin": client.base}) as response:
        return response.status, await response.text()


async def test_connectors_page_and_its_live_data(tmp_path: Path):
    async with webui_station(tmp_path) as (station, base, ca, _cs):
        async with logged_in(base, ca, page="/station/components") as client:
            status, text = await client.get("/station/connectors")
            assert status == 200 and 'data-live="/api/station/connectors"' in text
            assert 'data-field="connectors.1.controller.hardwareId">SIM-EVSE-2<' in text
            async with client.http.get(base + "/api/station/connectors") as response:
                data = await response.json()
            first = data["connectors"][0]
            assert first["controller"]["firmwareVersion"] == "1.0.0" and first["meter"]["model"] == "SDM630"
            assert first["limitReason"] == station.station.core.connectors[1].limit_reason
            assert first["currentLimitA"] == (min(first["limitsA"].values()) if first["limitsA"] else None)
            assert first["perPhase"].startswith("L1: ") or first["perPhase"] == "-"


async def test_flash_a_good_image_then_a_corrupted_one(tmp_path: Path):
    async with webui_station(tmp_path) as (station, base, ca, _cs):
        flasher = station.station.flasher
        async with logged_in(base, ca, page="/station/components") as client:
            status, text = await flash(client, make_controller_image("1.1.0", size=2048), "1")
            assert status == 200 and "Flash Firmware started" in text
            await until(lambda: flasher.last_report is not None and not flasher.busy, 30)
            assert flasher.last_report.ok and flasher.versions()[1] == (1, 1, 0) and flasher.versions()[2] == (1, 0, 0)
            status, text = await client.get("/station/components")
            assert "Last flash: 1.1.0" in text and "1.0.0 → 1.1.0" in text
            async with client.http.get(base + "/api/station/flash") as response:
                state = await response.json()
            assert state["report"]["ok"] and state["versions"]["1"] == "1.1.0" and state["progress"]["percent"] == 100

            blob = bytearray(make_controller_image("1.2.0", size=2048))
            blob[HEADER_SIZE + 100] ^= 0x40
            report_before = flasher.last_report
            status, _ = await flash(client, bytes(blob), "1")
            assert status == 200
            await until(lambda: flasher.last_report is not report_before and not flasher.busy, 30)
            result = flasher.last_report.results[0]
            assert result.outcome == "failed" and "IMAGE_CRC" in result.error
            assert flasher.versions()[1] == (1, 1, 0)

            status, text = await flash(client, b"not an image at all", "1")
            assert status == 409 and "not a controller image" in text


async def test_flash_is_refused_while_a_vehicle_charges_unless_forced(tmp_path: Path):
    async with webui_station(tmp_path) as (station, base, ca, cs):
        flasher, core = station.station.flasher, station.station.core
        async with logged_in(base, ca, page="/station/components") as client:
            station.world.plug(1)
            station.world.present_card("aec78085")
            await cs.wait_for("StartTransaction", timeout=15)
            await until(lambda: core.connectors[1].session is not None, 15)
            status, text = await flash(client, make_controller_image("1.1.0", size=2048), "1")
            assert status == 409 and "a session is in progress" in text
            assert flasher.last_report is None and flasher.versions()[1] == (1, 0, 0)
            status, _ = await flash(client, make_controller_image("1.1.0", size=2048), "1", force=True)
            assert status == 200
            await until(lambda: flasher.last_report is not None and not flasher.busy, 30)
            assert flasher.last_report.ok and flasher.versions()[1] == (1, 1, 0)
            stop = await cs.wait_for("StopTransaction", timeout=15)
            assert stop.payload.get("reason") == "Other"
