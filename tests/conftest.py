"""Shared test helpers."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DRY_RUN = REPO / "examples" / "dry-run.yaml"


def dry_run_station(directory: Path, *, replace: tuple[str, str] | None = None) -> Path:
    """examples/dry-run.yaml as ``directory/station.yaml``: data in ``directory/data``, the
    Modbus server on a free port (tests run side by side), optionally one more text edit."""
    text = DRY_RUN.read_text()
    for old, new in (('data_dir: "../data/dry-run"', 'data_dir: "data"'),
                     ('bind: "127.0.0.1:1502"', 'bind: "127.0.0.1:0"'), *([replace] if replace else [])):
        assert old in text, f"{old!r} is not in {DRY_RUN.name}"
        text = text.replace(old, new, 1)
    path = directory / "station.yaml"
    path.write_text(text)
    return path


@pytest.fixture
async def http_files():
    """An HTTP server on 127.0.0.1 that serves files and takes uploads (tests/file_servers.py)."""
    from file_servers import HttpFiles

    server = HttpFiles()
    await server.start()
    yield server
    await server.stop()


# ---- a station on a central system on 127.0.0.1 (test_ocpp_client's Station and config_for) ----

@pytest.fixture
async def cs():
    """A central system on 127.0.0.1 that accepts everything."""
    from firmware_sim.central_system import CentralSystem

    central = CentralSystem(heartbeat_interval=300)
    await central.start()
    yield central
    await central.stop()


@pytest.fixture
async def world(tmp_path: Path):
    """The simulated hardware of two connectors."""
    from firmware_sim.world import SimConnectorSpec, SimWorld

    sim = SimWorld([SimConnectorSpec(1), SimConnectorSpec(2)], tmp_path / "sim", vehicle_reaction_s=0)
    await sim.start()
    yield sim
    await sim.stop()


@pytest.fixture
async def station(tmp_path: Path, cs, world):
    """The daemon in this event loop, booted and with every connector's status sent."""
    from test_ocpp_client import Station, config_for

    running = Station(config_for(tmp_path / "data", cs.url), world)
    await cs.wait_for("BootNotification", timeout=15)
    await cs.wait_for("StatusNotification", predicate=lambda r: r.payload["connectorId"] == 2, timeout=15)
    yield running
    await running.stop()
