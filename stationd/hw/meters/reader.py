"""The station's energy-meter driver: block reads per the planner, decoded into MeterSample.

Every reply from outside is checked before it becomes a sample: a missing reply, a Modbus
exception, a reply of the wrong length, NaN/inf, a "not available" marker on a required value,
a negative or backwards-running energy register and values outside plausible ranges all end in
a :class:`MeterError` with a specific reason, never in a half-filled sample.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pymodbus import FramerType
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException

from .codec import (
    BlockRead,
    MeterError,
    decode_fields,
    decode_identity,
    plan_reads,
    validate_values,
)
from .maps import PHASE_FIELDS, FunctionCode, IdentityRegisters, MeterMap, get_map

__all__ = ["MeterIdentity", "MeterReader", "MeterSample", "RtuLink", "TcpLink", "connect_client"]

log = logging.getLogger(__name__)

Phases = tuple[float | None, float | None, float | None]


@dataclass(frozen=True)
class MeterSample:
    energy_import_wh: float
    energy_export_wh: float | None
    power_w: float
    power_w_phases: Phases
    current_a: Phases
    voltage_v: Phases
    frequency_hz: float | None
    timestamp: datetime


@dataclass(frozen=True)
class MeterIdentity:
    model: str
    serial: str


def _utc_now() -> datetime:
    return datetime.now(UTC)


class MeterReader:
    """Reads one meter (``model`` as in the station config file) at ``device_id``.

    ``timeout`` bounds each request; a request that gets no answer is sent again up to
    ``retries`` times. ``requests_made`` counts every request sent (retries included).
    """

    def __init__(self, client: Any, model: str, device_id: int, *, timeout: float = 1.0,
                 retries: int = 1, energy_tolerance_wh: float = 1.0,
                 now: Callable[[], datetime] = _utc_now, bus_lock: asyncio.Lock | None = None) -> None:
        if not 0 <= device_id <= 247:
            raise ValueError(f"device id {device_id} out of range 0..247")
        if timeout <= 0 or retries < 0:
            raise ValueError("timeout must be > 0 and retries >= 0")
        self.client = client
        self.map: MeterMap = get_map(model)
        self.device_id = device_id
        self.timeout = timeout
        self.retries = retries
        self.energy_tolerance_wh = energy_tolerance_wh
        self.plan: tuple[BlockRead, ...] = plan_reads(self.map)
        self.requests_made = 0
        self._now = now
        self._last_energy: dict[str, float] = {}
        # Meters sharing one client (one RS-485 bus) take turns: one request on the bus at a time.
        self._bus_lock = bus_lock or asyncio.Lock()

    @property
    def model(self) -> str:
        return self.map.model

    def __repr__(self) -> str:
        return f"MeterReader({self.map.model}, device {self.device_id})"

    def reset_energy_reference(self) -> None:
        """Forget the last energy readings (after a meter was replaced on purpose)."""
        self._last_energy.clear()

    async def read(self) -> MeterSample:
        registers: dict[int, int] = {}
        for block in self.plan:
            words = await self._request(block.function_code, block.address, block.count)
            registers.update(zip(range(block.address, block.end), words))
        values = decode_fields(self.map, registers)
        validate_values(values)
        self._check_energy_runs_forward(values)
        sample = MeterSample(
            energy_import_wh=values["energy_import_wh"],  # type: ignore[arg-type]  # required
            energy_export_wh=values.get("energy_export_wh"),
            power_w=values["power_w"],  # type: ignore[arg-type]  # required
            power_w_phases=_phases(values, "power"),
            current_a=_phases(values, "current"),
            voltage_v=_phases(values, "voltage"),
            frequency_hz=values.get("frequency_hz"),
            timestamp=self._now(),
        )
        for name in ("energy_import_wh", "energy_export_wh"):
            if values.get(name) is not None:
                self._last_energy[name] = values[name]  # type: ignore[assignment]
        return sample

    async def read_identity(self) -> MeterIdentity:
        serial = await self._read_text(self.map.serial)
        model = self.map.product
        if self.map.model_register is not None:
            model = await self._read_text(self.map.model_register) or model
        return MeterIdentity(model=model, serial=serial)

    async def _read_text(self, spec: IdentityRegisters) -> str:
        words = await self._request(spec.function_code, spec.address, spec.count)
        return decode_identity(spec, words)

    def _check_energy_runs_forward(self, values: Mapping[str, float | None]) -> None:
        for name, last in self._last_energy.items():
            value = values.get(name)
            if value is not None and value < last - self.energy_tolerance_wh:
                raise MeterError("energy backwards",
                                 f"{name} went from {last:.3f} to {value:.3f} Wh", field=name)

    async def _request(self, function_code: FunctionCode, address: int, count: int) -> list[int]:
        read = (self.client.read_holding_registers
                if function_code == FunctionCode.READ_HOLDING_REGISTERS
                else self.client.read_input_registers)
        what = f"FC {int(function_code)} {address}+{count} from device {self.device_id}"
        reply = await self.exchange(what, lambda: read(address, count=count, device_id=self.device_id))
        words = list(getattr(reply, "registers", []) or [])
        if len(words) != count:
            raise MeterError("wrong register count", f"{what} returned {len(words)} registers")
        return words

    async def write_registers(self, address: int, values: list[int], *, retries: int | None = None) -> None:
        """FC 16 to this meter (signing commands), with the same retries and errors as reads."""
        what = f"FC 16 {address}+{len(values)} to device {self.device_id}"
        await self.exchange(what, lambda: self.client.write_registers(address, values, device_id=self.device_id),
                            retries=retries)

    async def exchange(self, what: str, request: Callable[[], Awaitable[Any]], *, retries: int | None = None) -> Any:
        """One Modbus request on the bus (taking turns with the other meters on it), retried on
        silence; every failure becomes a MeterError with the reason the poller reports."""
        attempts = (self.retries if retries is None else retries) + 1
        for _attempt in range(attempts):
            self.requests_made += 1
            try:
                async with self._bus_lock:
                    reply = await asyncio.wait_for(request(), self.timeout)
            except (TimeoutError, ModbusIOException):
                # ModbusIOException is pymodbus' own "no response received" (its timeout).
                continue
            except ConnectionException as error:
                raise MeterError("connection", f"{what}: {error}") from error
            except (ModbusException, OSError) as error:
                raise MeterError("bad reply", f"{what}: {error}") from error
            if reply.isError():
                code = getattr(reply, "exception_code", None)
                raise MeterError(f"exception {code}", f"{what} answered with exception {code}",
                                 exception_code=code)
            return reply
        raise MeterError("timeout", f"no reply to {what} after {attempts} attempt(s) of {self.timeout:g} s")


def _phases(values: Mapping[str, float | None], kind: str) -> Phases:
    l1, l2, l3 = (values.get(name) for name in PHASE_FIELDS[kind])
    return (l1, l2, l3)


# --- links ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class TcpLink:
    host: str
    port: int = 502


@dataclass(frozen=True)
class RtuLink:
    port: str
    baudrate: int = 9600
    parity: str = "N"
    stopbits: int = 1


def _get(source: Any, name: str) -> Any:
    if isinstance(source, Mapping):
        return source.get(name)
    return getattr(source, name, None)


def parse_link(meter_config: Any) -> TcpLink | RtuLink:
    """The link of a meter from ``{"tcp": {...}}`` / ``{"rtu": {...}}`` or an object with
    ``tcp`` / ``rtu`` attributes (such as the station file's meter section); or a link itself."""
    if isinstance(meter_config, (TcpLink, RtuLink)):
        return meter_config
    tcp, rtu = _get(meter_config, "tcp"), _get(meter_config, "rtu")
    if (tcp is None) == (rtu is None):
        raise ValueError("a meter link needs exactly one of 'tcp' or 'rtu'")
    if tcp is not None:
        host = _get(tcp, "host")
        if not host:
            raise ValueError("tcp link needs a host")
        return TcpLink(host=str(host), port=int(_get(tcp, "port") or 502))
    port = _get(rtu, "port")
    if not port:
        raise ValueError("rtu link needs a port")
    return RtuLink(port=str(port), baudrate=int(_get(rtu, "baudrate") or 9600),
                   parity=str(_get(rtu, "parity") or "N"), stopbits=int(_get(rtu, "stopbits") or 1))


async def connect_client(meter_config: Any, *, timeout: float = 1.0) -> Any:
    """An async pymodbus client for the meter's link, connection attempted.

    The client does no retries of its own (``retries=0``): MeterReader retries. A client that
    could not connect yet is returned all the same; pymodbus reconnects in the background and
    reads fail with reason "connection" until then, so a poller reports the meter offline
    instead of the station failing to start. Must be called inside the running event loop.
    """
    link = parse_link(meter_config)
    client: Any
    if isinstance(link, TcpLink):
        client = AsyncModbusTcpClient(link.host, port=link.port, timeout=timeout, retries=0)
    else:
        client = AsyncModbusSerialClient(link.port, framer=FramerType.RTU, baudrate=link.baudrate,
                                         parity=link.parity, stopbits=link.stopbits,
                                         timeout=timeout, retries=0)
    if not await client.connect():
        log.warning("meter link %s not connected yet; reads fail until it is", link)
    return client
