"""Simulated Modbus energy meters serving the station's own register maps.

A :class:`SimMeter` holds one meter's live state — voltages, the load the simulated vehicle
draws, energy integrated from power over an injected monotonic clock — and encodes it with
``stationd.hw.meters.codec`` into exactly the registers the real model would show. Its energy
registers live in ``<state_dir>/meter-<name>.json`` (saved atomically whenever they moved by at
least ``persist_step_wh`` and on :meth:`SimMeter.stop`), so a restarted demo continues counting
like a real meter and never starts again at 0.

:func:`serve_tcp` and :func:`serve_rtu` host any number of meters by device id on one pymodbus
server (``SimDevice`` + an action callback that fills in live values on every read). A meter
with ``online = False`` does not answer at all, so the station's requests time out. A request
for an unknown device id gets exception 4 over TCP (what a gateway answers) and silence over
RTU (nobody on the bus has that address).

A model whose map has signing registers (ISKRA_WM3M4) also carries the OCMF signing module of
:mod:`firmware_sim.meter_signing` as ``meter.signing``: its holding registers are served and
are the only registers a station may write.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pymodbus import FramerType
from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType as SimType
from pymodbus.simulator import SimData, SimDevice

from firmware_sim.meter_signing import SimMeterSigning
from stationd.hw.meters.codec import (
    encode_fields,
    encode_identity,
    plan_reads,
    register_count,
)
from stationd.hw.meters.maps import (
    PHASE_FIELDS,
    FunctionCode,
    IdentityRegisters,
    MeterMap,
    get_map,
)

__all__ = ["SimMeter", "SimMeterServer", "serve_rtu", "serve_tcp"]

log = logging.getLogger(__name__)

Triple = tuple[float, float, float]


def _triple(values: float | Sequence[float], what: str) -> Triple:
    if isinstance(values, (int, float)):
        values = (float(values),) * 3
    items = [float(v) for v in values]
    if not 1 <= len(items) <= 3:
        raise ValueError(f"{what}: give 1 to 3 phases, got {len(items)}")
    items += [0.0] * (3 - len(items))
    if not all(math.isfinite(v) and v >= 0 for v in items):
        raise ValueError(f"{what}: values must be finite and >= 0")
    return (items[0], items[1], items[2])


class SimMeter:
    """One simulated meter of a model from the station config file ("SDM630", "EM24", ...)."""

    def __init__(self, model: str, *, state_dir: str | os.PathLike[str] | None = None,
                 name: str | None = None, serial: str = "20240001", voltage_v: float = 230.0,
                 frequency_hz: float = 50.0, initial_energy_wh: float = 0.0,
                 clock: Callable[[], float] = time.monotonic, persist_step_wh: float = 1.0) -> None:
        self.map: MeterMap = get_map(model)
        self.serial = serial
        self.name = name or f"{self.map.model}-{serial}"
        self.online = True
        self.frequency_hz = float(frequency_hz)
        self.persist_step_wh = persist_step_wh
        self._voltage_v = _triple(voltage_v, "voltage")
        self._current_a: Triple = (0.0, 0.0, 0.0)
        self._power_factor = 1.0
        self._clock = clock
        self._last_time = clock()
        self._energy_import_wh = float(initial_energy_wh)
        self._energy_export_wh = 0.0
        self._overrides: dict[str, list[int]] = {}
        self.state_path = (Path(state_dir) / f"meter-{self.name}.json") if state_dir else None
        self._load()
        self._saved = (self._energy_import_wh, self._energy_export_wh)
        for spec in (self.map.serial, self.map.model_register):
            if spec is not None:
                encode_identity(spec, self._identity_text(spec))  # fail early if it cannot fit
        self.signing: SimMeterSigning | None = None
        if self.map.signing is not None:
            state = Path(state_dir) if state_dir else None
            self.signing = SimMeterSigning(
                self.map, serial=serial, energy_wh=lambda: self.energy_import_wh,
                key_path=state / f"meter-{self.name}-signing-key.pem" if state else None,
                state_path=state / f"meter-{self.name}-signing.json" if state else None)

    # --- what the simulated vehicle and grid do ------------------------------------------
    def set_load(self, current_a_per_phase: float | Sequence[float], *,
                 voltage_v: float | Sequence[float] | None = None,
                 power_factor: float = 1.0) -> None:
        """The vehicle now draws these currents (A per phase; one value = all phases).

        Currents are magnitudes (a simulated vehicle only draws); ``power_factor`` 0..1.
        """
        if not 0.0 <= power_factor <= 1.0:
            raise ValueError("power factor must be within 0..1")
        self.update()
        self._current_a = _triple(current_a_per_phase, "current")
        if voltage_v is not None:
            self._voltage_v = _triple(voltage_v, "voltage")
        self._power_factor = power_factor

    @property
    def voltage_v(self) -> Triple:
        return self._voltage_v

    @property
    def current_a(self) -> Triple:
        return self._current_a

    @property
    def power_w_phases(self) -> Triple:
        v, i, pf = self._voltage_v, self._current_a, self._power_factor
        return (v[0] * i[0] * pf, v[1] * i[1] * pf, v[2] * i[2] * pf)

    @property
    def power_w(self) -> float:
        return sum(self.power_w_phases)

    @property
    def energy_import_wh(self) -> float:
        self.update()
        return self._energy_import_wh

    @property
    def energy_export_wh(self) -> float:
        self.update()
        return self._energy_export_wh

    def update(self) -> None:
        """Integrate energy up to now (power held constant since the last update)."""
        now = self._clock()
        elapsed = now - self._last_time
        self._last_time = now
        if elapsed > 0:
            energy = self.power_w * elapsed / 3600.0
            if energy >= 0:
                self._energy_import_wh += energy
            else:
                self._energy_export_wh -= energy
        saved_import, saved_export = self._saved
        if (abs(self._energy_import_wh - saved_import) >= self.persist_step_wh
                or abs(self._energy_export_wh - saved_export) >= self.persist_step_wh):
            self.save()

    # --- registers -------------------------------------------------------------------------
    def values(self) -> dict[str, float]:
        """The meter's state in SI units, keyed by the map's field names."""
        self.update()
        values = {
            "energy_import_wh": self._energy_import_wh,
            "energy_export_wh": self._energy_export_wh,
            "power_w": self.power_w,
            "frequency_hz": self.frequency_hz,
        }
        for kind, triple in (("power", self.power_w_phases), ("current", self._current_a),
                             ("voltage", self._voltage_v)):
            values.update(zip(PHASE_FIELDS[kind], triple))
        return {name: value for name, value in values.items() if self.map.has(name)}

    def set_raw_override(self, field_name: str, registers: Sequence[int] | None) -> None:
        """Serve these raw registers for a field instead of the live value (None = stop).

        For tests of what the station does with garbage: NaN, "not available", ...
        """
        map_field = self.map.field(field_name)
        if registers is None:
            self._overrides.pop(field_name, None)
            return
        words = [int(r) & 0xFFFF for r in registers]
        if len(words) != register_count(map_field.dtype):
            raise ValueError(f"{field_name} takes {register_count(map_field.dtype)} registers")
        self._overrides[field_name] = words

    def registers(self, function_code: int) -> dict[int, int]:
        """Address → register value for everything this meter serves under a function code."""
        served: dict[int, int] = {}
        if function_code == self.map.function_code:
            served.update(encode_fields(self.map, self.values()))
            for name, words in self._overrides.items():
                address = self.map.field(name).address
                served.update(zip(range(address, address + len(words)), words))
        for spec in (self.map.serial, self.map.model_register):
            if spec is not None and spec.function_code == function_code:
                words = encode_identity(spec, self._identity_text(spec))
                served.update(zip(range(spec.address, spec.address + spec.count), words))
        if self.signing is not None and function_code == FunctionCode.READ_HOLDING_REGISTERS:
            served.update(self.signing.registers())
        return served

    def writable_ranges(self) -> dict[int, list[tuple[int, int]]]:
        """Function code → (start, count) ranges holding registers a station may write."""
        if self.signing is None:
            return {}
        return {int(FunctionCode.READ_HOLDING_REGISTERS): [self.signing.regs.span]}

    def write(self, function_code: int, address: int, values: Sequence[int]) -> ExcCodes | None:
        """A station writes holding registers (FC 6/16); None = accepted."""
        if self.signing is None or function_code not in (6, 16):
            return ExcCodes.ILLEGAL_ADDRESS
        return self.signing.write(address, values)

    def served_ranges(self) -> dict[int, list[tuple[int, int]]]:
        """Function code → (start, count) ranges a server must answer for this meter."""
        ranges: dict[int, list[tuple[int, int]]] = {}
        for block in plan_reads(self.map):
            ranges.setdefault(int(block.function_code), []).append((block.address, block.count))
        for spec in (self.map.serial, self.map.model_register):
            if spec is not None:
                ranges.setdefault(int(spec.function_code), []).append((spec.address, spec.count))
        for fc, spans in self.writable_ranges().items():
            ranges.setdefault(fc, []).extend(spans)
        return {fc: _merge(spans) for fc, spans in ranges.items()}

    def _identity_text(self, spec: IdentityRegisters) -> str:
        if spec is self.map.model_register:
            return self.map.product.split()[-1]
        return self.serial

    # --- persistence -----------------------------------------------------------------------
    def _load(self) -> None:
        if self.state_path is None or not self.state_path.exists():
            return
        try:
            state = json.loads(self.state_path.read_text(encoding="utf-8"))
            energy_import = float(state["energy_import_wh"])
            energy_export = float(state.get("energy_export_wh", 0.0))
            if not (math.isfinite(energy_import) and math.isfinite(energy_export)
                    and energy_import >= 0 and energy_export >= 0):
                raise ValueError("energy values must be finite and >= 0")
        except (OSError, ValueError, KeyError, TypeError) as error:
            backup = self.state_path.with_suffix(".json.corrupt")
            log.error("sim meter %s: unreadable state %s (%s); kept as %s", self.name,
                      self.state_path, error, backup)
            with contextlib.suppress(OSError):
                os.replace(self.state_path, backup)
            return
        self._energy_import_wh = energy_import
        self._energy_export_wh = energy_export

    def save(self) -> None:
        """Write the energy registers to the state file (atomically). A disk that refuses the
        write is logged; the registers go on counting in memory, as a real meter's would."""
        self._saved = (self._energy_import_wh, self._energy_export_wh)
        if self.state_path is None:
            return
        state = {
            "model": self.map.model,
            "serial": self.serial,
            "energy_import_wh": self._energy_import_wh,
            "energy_export_wh": self._energy_export_wh,
        }
        temp = None
        try:
            self.state_path.parent.mkdir(parents=True, exist_ok=True)
            fd, temp = tempfile.mkstemp(prefix=self.state_path.name, suffix=".tmp",
                                        dir=self.state_path.parent)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(state, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, self.state_path)
        except OSError as error:
            if temp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(temp)
            log.error("sim meter %s: cannot save its state to %s (%s)", self.name, self.state_path,
                      error.strerror or error)

    def stop(self) -> None:
        """Integrate up to now and save (call on shutdown)."""
        self.update()
        self.save()
        if self.signing is not None:
            self.signing.close()

    def __repr__(self) -> str:
        return f"SimMeter({self.map.model}, {self.name!r}, online={self.online})"


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[list[int]] = []
    for start, count in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], start + count)
        else:
            merged.append([start, start + count])
    return [(start, end - start) for start, end in merged]


# --- servers -------------------------------------------------------------------------------

_NO_BITS = [SimData(0, values=[False] * 16, datatype=SimType.BITS)]


def _register_blocks(spans: list[tuple[int, int]],
                     writable: Sequence[tuple[int, int]] = ()) -> list[SimData]:
    if not spans:
        return [SimData(0, datatype=SimType.INVALID)]

    def readonly(start: int, count: int) -> bool:
        return not any(w < start + count and start < w + n for w, n in writable)

    return [SimData(start, count=count, values=0, datatype=SimType.REGISTERS,
                    readonly=readonly(start, count))
            for start, count in spans]


def _device(device_id: int, meter: SimMeter) -> SimDevice:
    ranges = meter.served_ranges()
    writable = meter.writable_ranges()
    holding = _register_blocks(ranges.get(int(FunctionCode.READ_HOLDING_REGISTERS), []),
                               writable.get(int(FunctionCode.READ_HOLDING_REGISTERS), []))
    inputs = _register_blocks(ranges.get(int(FunctionCode.READ_INPUT_REGISTERS), []))

    async def action(function_code: int, start_address: int, address: int, count: int,
                     registers: list[int], set_values: Any) -> ExcCodes | None:
        if set_values is not None:  # only a signing module's registers are writable
            return meter.write(function_code, address, list(set_values))
        live = meter.registers(function_code)
        for offset in range(address, address + count):
            registers[offset - start_address] = live.get(offset, 0)
        return None

    return SimDevice(id=device_id, simdata=(list(_NO_BITS), list(_NO_BITS), holding, inputs),
                     action=action)


def _unknown_device() -> SimDevice:
    """Device id 0 catches every id no meter has: it answers exception 4 (device failure)."""
    everything = [SimData(0, count=0x10000, values=0, datatype=SimType.REGISTERS)]

    async def refuse(*_args: Any) -> ExcCodes:
        return ExcCodes.DEVICE_FAILURE

    return SimDevice(id=0, simdata=(list(_NO_BITS), list(_NO_BITS), list(everything),
                                    list(everything)), action=refuse)


def _context(meters: Mapping[int, SimMeter]) -> list[SimDevice]:
    if not meters:
        raise ValueError("give at least one meter")
    for device_id in meters:
        if not 1 <= device_id <= 247:
            raise ValueError(f"device id {device_id} out of range 1..247")
    return [_device(device_id, meter) for device_id, meter in meters.items()] + [_unknown_device()]


def _silencer(meters: Mapping[int, SimMeter], *, rtu: bool) -> Callable[[bool, bytes], bytes]:
    """Drops replies of offline meters (and, on RTU, replies for ids nobody has)."""

    def trace_packet(sending: bool, data: bytes) -> bytes:
        if not sending or not data:
            return data
        position = 0 if rtu else 6  # RTU: address byte; TCP: MBAP unit identifier
        if len(data) <= position:
            return data
        meter = meters.get(data[position])
        if meter is None:
            return b"" if rtu else data
        return data if meter.online else b""

    return trace_packet


@dataclass
class SimMeterServer:
    """A running simulated-meter server; ``port`` for TCP, ``path`` for RTU."""

    server: Any
    meters: Mapping[int, SimMeter]
    host: str | None = None
    port: int | None = None
    path: str | None = None
    _ticker: asyncio.Task[None] | None = field(default=None, repr=False)

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        await self.server.shutdown()
        for meter in self.meters.values():
            meter.stop()


async def _tick(meters: Mapping[int, SimMeter], interval: float) -> None:
    # Energy keeps integrating (and reaching the state file) while nobody reads the meters.
    while True:
        await asyncio.sleep(interval)
        for meter in meters.values():
            try:
                meter.update()
            except OSError:
                log.exception("sim meter %s: cannot save state", meter.name)


async def serve_tcp(meters: Mapping[int, SimMeter], host: str = "127.0.0.1", port: int = 0, *,
                    tick_interval: float = 1.0) -> SimMeterServer:
    """Serve ``meters`` (device id → meter) over Modbus TCP; ``port=0`` picks a free port."""
    meters = dict(meters)
    server = ModbusTcpServer(_context(meters), address=(host, port),
                             trace_packet=_silencer(meters, rtu=False))
    await server.serve_forever(background=True)
    bound = server.transport.sockets[0].getsockname()[1]
    handle = SimMeterServer(server=server, meters=meters, host=host, port=bound)
    handle._ticker = asyncio.create_task(_tick(meters, tick_interval))
    log.info("sim meters %s on modbus tcp %s:%d", sorted(meters), host, bound)
    return handle


async def serve_rtu(meters: Mapping[int, SimMeter], port_path: str, *, baudrate: int = 9600,
                    parity: str = "N", stopbits: int = 1,
                    tick_interval: float = 1.0) -> SimMeterServer:
    """Serve ``meters`` over Modbus RTU on a serial port (a pty path in tests)."""
    meters = dict(meters)
    server = ModbusSerialServer(_context(meters), framer=FramerType.RTU, port=port_path,
                                baudrate=baudrate, parity=parity, stopbits=stopbits,
                                trace_packet=_silencer(meters, rtu=True))
    await server.serve_forever(background=True)
    handle = SimMeterServer(server=server, meters=meters, path=port_path)
    handle._ticker = asyncio.create_task(_tick(meters, tick_interval))
    log.info("sim meters %s on modbus rtu %s", sorted(meters), port_path)
    return handle
