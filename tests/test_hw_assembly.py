"""The hardware assembly: what the station config file turns into."""

from __future__ import annotations

from pathlib import Path

from stationd.config.store import ConfigStore
from stationd.config.station_file import parse_station_config
from stationd.core.sessions import SessionStore
from stationd.core.station import StationCore
from stationd.hw.assembly import build_hardware, connector_specs
from stationd.storage import Database


async def test_meters_on_one_rs485_line_share_one_client_and_take_turns(tmp_path: Path):
    config = parse_station_config(
        "identity: {serial_number: HW1}\n"
        "hardware:\n  connectors:\n"
        "    - {id: 1, controller: {transport: serial, port: /nonexistent/ttyS1},"
        " meter: {model: SDM630, unit_id: 1, rtu: {port: /nonexistent/ttyUSB0}}}\n"
        "    - {id: 2, controller: {transport: serial, port: /nonexistent/ttyS2},"
        " meter: {model: SDM630, unit_id: 2, rtu: {port: /nonexistent/ttyUSB0}}}\n"
        f"data_dir: {tmp_path}\n")
    store = ConfigStore.open(tmp_path, installation={"NumberOfConnectors": "2"})
    db = Database.open(tmp_path)
    core = StationCore(store, SessionStore(db), connector_specs(config))
    hardware = await build_hardware(config, core)
    try:
        first, second = hardware.readers[1], hardware.readers[2]
        assert first.client is second.client  # one serial port, opened once
        assert first._bus_lock is second._bus_lock  # one request on the line at a time
        assert (first.device_id, second.device_id) == (1, 2)
        assert {c.name for c in hardware.components} == {"controller-1", "controller-2", "meter-1", "meter-2"}
    finally:
        hardware.close()
        db.close()
