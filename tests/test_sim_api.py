"""firmware_sim control API (DESIGN.md §5.2) over real HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import aiohttp
import pytest

from firmware_sim.api import ControlApi
from firmware_sim.world import SimConnectorSpec, SimWorld
from stationd.hw.meters import MeterReader, connect_client
from stationd.hw.meters.codec import MeterError

STATE_KEYS = {"id", "cp_state", "pwm_current_a", "contactor", "locked", "energy_wh", "power_w", "faults"}


class FakeClock:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def sim(tmp_path: Path):
    world = SimWorld([SimConnectorSpec(1), SimConnectorSpec(2, connector_type="Type2Cable")], tmp_path,
                     clock=FakeClock())
    await world.start()
    api = ControlApi(world, "127.0.0.1", 0)
    await api.start()
    async with aiohttp.ClientSession(base_url=api.url) as http:
        yield world, api, http
    await api.stop()
    await world.stop()


async def call(http: aiohttp.ClientSession, method: str, path: str, body=None, *, data=None):
    async with http.request(method, path, json=body, data=data) as response:
        assert response.content_type == "application/json", (path, response.content_type)
        return response.status, await response.json()


async def test_state_has_exactly_the_documented_shape(sim) -> None:
    _, _, http = sim
    status, state = await call(http, "GET", "/state")
    assert status == 200
    assert list(state) == ["connectors"]
    assert [c["id"] for c in state["connectors"]] == [1, 2]
    for connector in state["connectors"]:
        assert set(connector) == STATE_KEYS
        assert connector["cp_state"] == "A" and connector["faults"] == []
        assert isinstance(connector["contactor"], bool) and isinstance(connector["locked"], bool)
        assert isinstance(connector["energy_wh"], float) and isinstance(connector["power_w"], float)


async def test_every_route_acts_on_the_world(sim) -> None:
    world, _, http = sim
    status, body = await call(http, "POST", "/connectors/1/plug", {"cable_max_a": 20})
    assert status == 200 and set(body) == STATE_KEYS and body["cp_state"] == "B"
    assert world.controller(1).pp_current_a == 20
    status, body = await call(http, "POST", "/connectors/2/plug", {"cable_max_a": None})
    assert status == 200 and body["cp_state"] == "B"
    status, body = await call(http, "POST", "/connectors/1/charge", {"max_current_a": 10, "phases": 1})
    assert status == 200 and body["cp_state"] == "B"  # C only once the station offers PWM
    assert (world.controller(1).vehicle.max_current_a, world.controller(1).vehicle.phases) == (10.0, 1)
    assert (await call(http, "POST", "/connectors/2/charge"))[0] == 200  # defaults: 16 A, 3 phases
    status, body = await call(http, "POST", "/connectors/1/suspend")
    assert status == 200 and world.controller(1).vehicle.wants_energy is False
    status, body = await call(http, "POST", "/connectors/1/fault", {"code": "GroundFailure", "active": True})
    assert status == 200 and body["faults"] == ["GroundFailure"]
    status, body = await call(http, "POST", "/connectors/1/fault", {"code": "GroundFailure", "active": False})
    assert body["faults"] == ["GroundFailure"]  # latched until the station clears it
    status, body = await call(http, "POST", "/meters/2", {"online": False})
    assert status == 200 and body["faults"] == ["PowerMeterFailure"] and body["id"] == 2
    status, body = await call(http, "POST", "/connectors/2/fault", {"code": "PowerMeterFailure", "active": False})
    assert body["faults"] == []
    status, body = await call(http, "POST", "/connectors/1/unplug")
    assert status == 200 and body["cp_state"] == "A"
    assert (await call(http, "POST", "/connectors/1/plug"))[1]["cp_state"] == "B"  # default 32 A cable
    assert world.controller(1).pp_current_a == 32


async def test_errors_are_json_with_the_right_status(sim) -> None:
    _, _, http = sim
    cases = [
        ("POST", "/connectors/9/plug", None, 404, "9"),
        ("POST", "/connectors/abc/charge", None, 404, "abc"),
        ("GET", "/nothing/here", None, 404, "/nothing/here"),
        ("POST", "/meters/7", {"online": True}, 404, "7"),
        ("POST", "/connectors/1/plug", {"cable_max_a": 17}, 400, "cable_max_a"),
        ("POST", "/connectors/1/plug", {"cable_max_a": "32"}, 400, "cable_max_a"),
        ("POST", "/connectors/1/plug", {"colour": "red"}, 400, "colour"),
        ("POST", "/connectors/1/plug", [32], 400, "object"),
        ("POST", "/connectors/1/charge", None, 400, "plug"),  # no vehicle yet
        ("POST", "/connectors/1/fault", {"code": "WeakSignal"}, 400, "GroundFailure"),
        ("POST", "/connectors/1/fault", {"code": 4}, 400, "code"),
        ("POST", "/connectors/1/fault", {"active": True}, 400, "code"),
        ("POST", "/connectors/1/fault", {"code": "GroundFailure", "active": "yes"}, 400, "active"),
        ("POST", "/meters/1", {}, 400, "online"),
        ("POST", "/meters/1", {"online": 0}, 400, "online"),
        ("POST", "/rfid", {"uid": "12345"}, 400, "uid"),
        ("POST", "/rfid", {}, 400, "uid"),
        ("POST", "/rfid", {"uid": 12345678}, 400, "uid"),
    ]
    for method, path, body, expected, word in cases:
        status, answer = await call(http, method, path, body)
        assert (status, word in answer["error"]) == (expected, True), (path, body, answer)
    status, answer = await call(http, "POST", "/connectors/1/plug", data=b"{not json")
    assert status == 400 and "JSON" in answer["error"]
    status, answer = await call(http, "POST", "/connectors/1/plug", data=b"[" * 100_000)
    assert status in (400, 413) and answer["error"]
    await call(http, "POST", "/connectors/1/plug")
    for body, field in (({"max_current_a": 0}, "max_current_a"), ({"max_current_a": 81}, "max_current_a"),
                        ({"max_current_a": True}, "max_current_a"), ({"phases": 2}, "phases"),
                        ({"phases": "3"}, "phases")):
        status, answer = await call(http, "POST", "/connectors/1/charge", body)
        assert status == 400 and field in answer["error"], (body, answer)
    async with http.get("/connectors/1/plug") as response:
        assert response.status == 405 and "POST" in response.headers["Allow"]
        assert "error" in await response.json()
    async with http.post("/state") as response:
        assert response.status == 405 and "error" in await response.json()


async def test_a_presented_card_appears_on_the_rfid_pty(sim) -> None:
    world, _, http = sim
    fd = os.open(world.rfid_port, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    try:
        status, body = await call(http, "POST", "/rfid", {"uid": "aec78085"})
        assert (status, body) == (200, {"ok": True})
        received = b""
        async with asyncio.timeout(2):
            while not received.endswith(b"\n"):
                try:
                    received += os.read(fd, 64)
                except BlockingIOError:
                    await asyncio.sleep(0.01)
        assert received == b"AEC78085\r\n"
        world.present_card("04A2B3C4D5E6F7")
        await asyncio.sleep(0.05)
        assert os.read(fd, 64) == b"04A2B3C4D5E6F7\r\n"
    finally:
        os.close(fd)


async def test_an_offline_meter_stops_answering(sim) -> None:
    world, _, http = sim
    host, port = world.meter_endpoint
    client = await connect_client({"tcp": {"host": host, "port": port}}, timeout=0.3)
    try:
        readers = {cid: MeterReader(client, "SDM630", world.meter_device_id(cid), timeout=0.3) for cid in (1, 2)}
        assert (await readers[1].read()).energy_import_wh == 0.0
        assert (await call(http, "POST", "/meters/1", {"online": False}))[0] == 200
        with pytest.raises(MeterError):
            await readers[1].read()
        await readers[2].read()  # the other meter on the same server still answers
        assert (await call(http, "POST", "/meters/1", {"online": True}))[0] == 200
        await readers[1].read()
    finally:
        client.close()


def test_the_api_binds_only_to_loopback(tmp_path: Path) -> None:
    world = SimWorld([SimConnectorSpec(1)], tmp_path)
    for host in ("0.0.0.0", "192.168.32.1", "::", "example.org"):
        with pytest.raises(ValueError, match="loopback"):
            ControlApi(world, host, 0)
    ControlApi(world, "::1", 0)
    ControlApi(world, "localhost", 0)
