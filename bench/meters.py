"""Modbus requests per meter sample, for every meter model the station supports.

One pymodbus TCP server on 127.0.0.1 (``firmware_sim.meters.serve_tcp``) hosts one
``SimMeter`` per model in ``METER_MAPS`` (device ids 1, 2, …); the station's own
``MeterReader`` reads each of them ``samples`` times through one client, and
``requests_made`` (which counts every request sent, retries included) divided by the samples
is the figure. The demo's meter (SDM630) is goal-checked; the other models are shown as
informational lines.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from firmware_sim.meters import SimMeter, serve_tcp
from stationd.hw.assembly import SIM_METER_MODEL
from stationd.hw.meters import METER_MAPS, MeterError, MeterReader, connect_client

from .common import LOOPBACK
from .figures import Figure
from .mode import Mode

__all__ = ["run"]

GOAL = "<= 1"
TIME_LIMIT_S = 60.0  # the whole benchmark, whatever happens


def run(mode: Mode) -> list[Figure]:
    samples = mode.pick(full=100, quick=20, smoke=3)
    return asyncio.run(asyncio.wait_for(_measure(samples), TIME_LIMIT_S))


async def _measure(samples: int) -> list[Figure]:
    models = sorted(METER_MAPS)
    with tempfile.TemporaryDirectory(prefix="bench-meters-") as state_dir:
        meters = {device_id: SimMeter(model, state_dir=Path(state_dir), name=model, serial=str(20240000 + device_id))
                  for device_id, model in enumerate(models, start=1)}
        for meter in meters.values():
            meter.set_load((16.0, 16.0, 16.0))  # a charging vehicle: every value is non-zero
        server = await serve_tcp(meters, LOOPBACK, 0)
        client = None
        try:
            client = await connect_client({"tcp": {"host": LOOPBACK, "port": server.port}})
            figures = []
            for device_id, model in enumerate(models, start=1):
                per_sample, failed = await _requests_per_sample(MeterReader(client, model, device_id), samples)
                note = f"{samples} samples over Modbus TCP, requests_made / samples"
                if failed:
                    note += f"; {failed} reads FAILED"
                if model == SIM_METER_MODEL:
                    figures.insert(0, Figure("modbus_requests_per_meter_sample", per_sample, "requests", GOAL,
                                             f"{model} (the demo's meter): {note}"))
                figures.append(Figure(f"modbus_requests_per_sample_{model}", per_sample, "requests", None, note))
            return figures
        finally:
            if client is not None:
                client.close()
            await server.stop()


async def _requests_per_sample(reader: MeterReader, samples: int) -> tuple[float, int]:
    failed = 0
    before = reader.requests_made
    for _ in range(samples):
        try:
            await reader.read()
        except MeterError:
            failed += 1
    return (reader.requests_made - before) / samples, failed
