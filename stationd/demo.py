"""``stationd demo``: the whole station on one machine, with simulated hardware.

One process, one event loop: the firmware_sim world (controllers behind pseudo-terminals,
vehicles, Modbus meters, an RFID reader), its control API, a local OCPP central system unless
``--backend`` is given, and the daemon itself, talking the real protocols to all of them. A
Reset or "Restart Daemon" restarts the daemon inside the running demo; Ctrl-C or SIGTERM ends it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from dataclasses import dataclass
from pathlib import Path

import yaml

from .config.station_file import StationConfig, parse_bind, parse_station_config
from .daemon import Daemon

log = logging.getLogger("stationd.demo")

DEMO_SERIAL = "DEMO000001"
DEMO_CHARGEBOX_TEMPLATE = "TE-{serial}"
CENTRAL_SYSTEM_RECORDS = 10_000
SIGNALS = (signal.SIGTERM, signal.SIGINT)  # the built-in backend keeps this many messages for inspection


@dataclass(frozen=True)
class DemoOptions:
    backend: str | None = None
    chargebox_id: str | None = None
    serial_number: str = DEMO_SERIAL
    security_profile: int | None = None
    authorization_key: str | None = None
    ca_file: Path | None = None
    connectors: int = 2
    data_dir: Path | None = None
    webui: str = "127.0.0.1:8443"
    sim_api: str = "127.0.0.1:8090"
    modbus: str = "127.0.0.1:1502"


def default_data_dir() -> Path:
    state_home = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(state_home) / "stationd" / "demo"


def demo_config(options: DemoOptions, backend_url: str) -> StationConfig:
    """The station config file the demo runs with (validated like any config file)."""
    profile = options.security_profile
    if profile is None:
        profile = 0 if options.backend is None else 2
    document = {
        "identity": {
            "serial_number": options.serial_number,
            "chargebox_id_template": options.chargebox_id or DEMO_CHARGEBOX_TEMPLATE,
        },
        "ocpp": {"endpoint": backend_url, "security_profile": profile},
        "hardware": {
            "connectors": [
                {"id": i, "controller": {"transport": "sim"}, "meter": {"model": "sim"}}
                for i in range(1, options.connectors + 1)
            ],
            "rfid": {"transport": "sim"},
            "modem": "sim",
        },
        "webui": {"bind": options.webui},
        "modbus_server": {"enabled": True, "bind": options.modbus},
        "data_dir": str(options.data_dir or default_data_dir()),
        "system_backend": "dry-run",
    }
    if options.authorization_key:
        document["ocpp"]["authorization_key"] = options.authorization_key
    if options.ca_file:
        document["ocpp"]["ca_file"] = str(options.ca_file)
    return parse_station_config(yaml.safe_dump(document, sort_keys=False), source="stationd demo options")


async def run_demo(options: DemoOptions, *, announce=print) -> int:
    from firmware_sim.api import ControlApi
    from firmware_sim.central_system import CentralSystem
    from stationd.hw.assembly import simulator_for

    stop = _StopOnSignal()  # from the first moment on, Ctrl-C / SIGTERM end the demo cleanly
    central_system = None
    backend_url = options.backend
    if backend_url is None:
        central_system = CentralSystem(max_records=CENTRAL_SYSTEM_RECORDS)
        await central_system.start()
        backend_url = central_system.url
    config = demo_config(options, backend_url)
    world = simulator_for(config, Path(config.data_dir) / "sim")
    await world.start()
    api_host, api_port = parse_bind(options.sim_api)
    api = ControlApi(world, api_host, api_port)
    try:
        await api.start()
        _announce(announce, config, f"http://{api_host}:{api.port}", backend_url, central_system is not None)
        while not stop.reason:
            stop.daemon = Daemon(config, world=world, handle_signals=False)
            code = await stop.daemon.run()
            if not stop.daemon.restart_requested:
                return code
            log.info("restarting the station (%s)", stop.daemon.restart_requested)
        return 0
    finally:
        stop.remove()
        await api.stop()
        await world.stop()
        if central_system is not None:
            await central_system.stop()


class _StopOnSignal:
    """SIGTERM/SIGINT handling for the whole demo: remembered, and passed to the running daemon."""

    def __init__(self) -> None:
        self.reason: str | None = None
        self.daemon: Daemon | None = None
        self._loop = asyncio.get_running_loop()
        for signum in SIGNALS:
            self._loop.add_signal_handler(signum, self._received, signum.name)

    def _received(self, name: str) -> None:
        self.reason = name
        if self.daemon is not None:
            self.daemon.request_stop(name)

    def remove(self) -> None:
        for signum in SIGNALS:
            self._loop.remove_signal_handler(signum)


def _announce(announce, config: StationConfig, api_url: str, backend_url: str, built_in: bool) -> None:
    host, port = config.webui.address
    backend = f"{backend_url}/{config.identity.chargebox_id}"
    if built_in:
        backend += "  (built-in central system: accepts everything)"
    announce("stationd demo: the station runs with simulated hardware. Ctrl-C stops it.")
    announce(f"  WebUI            https://{host}:{port}  (login admin / {config.identity.serial_number},"
             " a self-signed certificate)")
    announce(f"  control API      {api_url}  (GET /state; POST /connectors/1/plug …)")
    announce(f"  OCPP backend     {backend}")
    announce(f"  Modbus TCP       {config.modbus_server.bind}")
    announce(f"  data directory   {config.data_dir}")
