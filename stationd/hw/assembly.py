"""Builds the station's hardware components from the station config file.

For each connector: a controller driver (serial, CAN, or the simulated controller behind a
pty) and, where a meter is fitted, a meter poller (Modbus RTU or TCP); then the RFID reader.
``sim`` transports use a firmware_sim world (created here, or handed in by ``stationd demo``):
the daemon still talks the real protocols to it, over a pseudo-terminal and Modbus TCP.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path

from ..config.station_file import ConnectorConfig, MeterModel, StationConfig
from ..core.station import ConnectorSpec, StationCore
from ..supervisor import Component
from .controller_driver import ControllerDriver
from .evse_protocol import CanLink, open_serial
from .meters import MeterPoller, MeterReader, connect_client
from .meters.reader import parse_link
from .rfid import RfidReader
from .serial_port import open_serial_streams

log = logging.getLogger("stationd.hw")

METER_POLL_S = 1.0
SIM_METER_MODEL = "SDM630"  # the register map a "sim" meter speaks
RFID_BAUDRATE = 9600


def connector_specs(config: StationConfig) -> list[ConnectorSpec]:
    return [ConnectorSpec(c.id, c.max_current_a, c.phases, str(c.connector_type)) for c in config.hardware.connectors]


def needs_simulator(config: StationConfig) -> bool:
    hardware = config.hardware
    return hardware.rfid.transport == "sim" or any(
        c.controller.transport == "sim" or (c.meter is not None and c.meter.model is MeterModel.SIM)
        for c in hardware.connectors)


def simulator_for(config: StationConfig, state_dir: Path):
    """A firmware_sim world matching the config's connectors (not started)."""
    from firmware_sim.world import SimConnectorSpec, SimWorld  # only where simulated parts are configured

    specs = [SimConnectorSpec(c.id, c.max_current_a, c.phases, str(c.connector_type)) for c in config.hardware.connectors]
    return SimWorld(specs, state_dir)


@dataclass
class Hardware:
    components: list[Component] = field(default_factory=list)
    drivers: dict[int, ControllerDriver] = field(default_factory=dict)
    readers: dict[int, MeterReader] = field(default_factory=dict)
    _can_buses: dict[tuple[str, str], object] = field(default_factory=dict)
    _meter_links: dict[str, tuple[object, asyncio.Lock]] = field(default_factory=dict)  # one client per bus

    def close(self) -> None:
        for bus in self._can_buses.values():
            bus.shutdown()
        self._can_buses.clear()
        for client, _lock in self._meter_links.values():
            client.close()
        self._meter_links.clear()


async def build_hardware(config: StationConfig, core: StationCore, world=None) -> Hardware:
    """Components for every controller, meter and the RFID reader. ``world``: the simulator
    that ``sim`` transports use (must be started)."""
    hardware = Hardware()
    for connector in config.hardware.connectors:
        driver = ControllerDriver(connector.id, _link_opener(connector, world, hardware), core)
        hardware.drivers[connector.id] = driver
        hardware.components.append(Component(f"controller-{connector.id}", driver.run, critical=False))
        if connector.meter is not None:
            poller, reader = await _meter_poller(connector, core, world, hardware)
            hardware.readers[connector.id] = reader
            hardware.components.append(Component(f"meter-{connector.id}", poller.run, critical=False))
    rfid = config.hardware.rfid
    if rfid.transport != "none":
        port = world.rfid_port if rfid.transport == "sim" else rfid.port
        baudrate = rfid.baudrate or RFID_BAUDRATE

        async def open_reader():
            reader, _writer, close = await open_serial_streams(port, baudrate)
            return reader, close

        reader = RfidReader(open_reader, core.card_presented,
                            lambda ok, why: core.station_fault("ReaderFailure", not ok, source="rfid"))
        hardware.components.append(Component("rfid", reader.run, critical=False))
    return hardware


def _link_opener(connector: ConnectorConfig, world, hardware: Hardware):
    controller = connector.controller
    if controller.transport == "sim":
        return lambda: open_serial(world.controller_port(connector.id))
    if controller.transport == "serial":
        return lambda: open_serial(controller.port, controller.baudrate)

    async def open_can():
        import can

        key = (controller.can_interface, controller.can_channel)
        bus = hardware._can_buses.get(key)
        if bus is None:
            bus = can.Bus(interface=controller.can_interface, channel=controller.can_channel)
            hardware._can_buses[key] = bus
        return CanLink(bus, controller.node_id, role="station")

    return open_can


async def _meter_poller(connector: ConnectorConfig, core: StationCore, world,
                        hardware: Hardware) -> tuple[MeterPoller, MeterReader]:
    meter = connector.meter
    assert meter is not None
    if meter.model is MeterModel.SIM:
        host, port = world.meter_endpoint
        link = {"tcp": {"host": host, "port": port}}
        model, device_id = SIM_METER_MODEL, world.meter_device_id(connector.id)
    else:
        link, model, device_id = meter, str(meter.model), meter.unit_id
    key = repr(parse_link(link))
    if key not in hardware._meter_links:
        hardware._meter_links[key] = (await connect_client(link), asyncio.Lock())
    client, lock = hardware._meter_links[key]
    reader = MeterReader(client, model, device_id, bus_lock=lock)
    poller = MeterPoller(
        reader, METER_POLL_S,
        on_sample=lambda sample: core.meter_sample(connector.id, sample),
        on_online_change=lambda online, reason: core.meter_online(connector.id, online, reason),
    )
    return poller, reader
