"""The building's meter: what the rest of the building draws, read by the cluster master.

LoadBalancingEnergyMeterEnabled turns it on; LoadBalancingEnergyMeterIP is its Modbus TCP
address (``IP`` or ``IP:port``, IPv6 as ``[addr]:port``; port 502 when none is given) and
LoadBalancingEnergyMeterType its make: ``Janitza`` reads a Janitza UMG 96RM, ``CarloGavazzi`` a
Carlo Gavazzi EM24 (register maps in ``stationd.hw.meters.maps``). The meter is read with the
station's own meter driver (``MeterReader``, ``MeterPoller``) once a second; ``reading`` is the
current per grid phase (L1, L2, L3) of the last read, or None when the last read failed (no
answer, a Modbus exception, implausible values) — the cluster then knows nothing about the
building's load.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import time
from collections.abc import Callable
from typing import Any

from ..hw.meters.maps import get_map
from ..hw.meters.poller import MeterPoller
from ..hw.meters.reader import MeterReader, MeterSample, TcpLink, connect_client

log = logging.getLogger("stationd.load_balancing")

DEFAULT_PORT = 502
POLL_INTERVAL_S = 1.0
METER_MODELS = {"Janitza": "JANITZA_UMG96RM", "CarloGavazzi": "EM24"}  # LoadBalancingEnergyMeterType → map

Reading = tuple[float, float, float]


def parse_address(text: str) -> TcpLink:
    """``IP``, ``IP:port``, ``IPv6`` or ``[IPv6]:port`` as a Modbus TCP link; ValueError if not."""
    text = text.strip()
    host, port = text, str(DEFAULT_PORT)
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"not an address: {text!r}")
            port = rest[1:]
    elif text.count(":") == 1:
        host, port = text.split(":")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"not an IP address: {text!r}") from None
    if not (port.isdigit() and 1 <= int(port) <= 65535):
        raise ValueError(f"port must be 1..65535 (got {port!r})")
    return TcpLink(host=host, port=int(port))


def meter_model(meter_type: str) -> str:
    try:
        return METER_MODELS[meter_type]
    except KeyError:
        raise ValueError(f"unknown meter type {meter_type!r} (one of {', '.join(METER_MODELS)})") from None


class BuildingMeter:
    """Polls the building meter at ``link`` every ``interval`` seconds (``run()``, until cancelled)."""

    def __init__(self, link: TcpLink, model: str, *, device_id: int | None = None, interval: float = POLL_INTERVAL_S,
                 timeout: float = 0.5, clock: Callable[[], float] = time.monotonic):
        self.link, self.model, self.interval, self.timeout = link, model, interval, timeout
        self.device_id = device_id
        self._clock = clock
        self._sample: MeterSample | None = None
        self._read_at: float | None = None
        self._missing_phase_logged = False

    @classmethod
    def from_settings(cls, address: str, meter_type: str, **kwargs: Any) -> BuildingMeter:
        """From LoadBalancingEnergyMeterIP and LoadBalancingEnergyMeterType; ValueError if they do not say."""
        if not address.strip():
            raise ValueError("LoadBalancingEnergyMeterIP is empty")
        return cls(parse_address(address), meter_model(meter_type), **kwargs)

    def __repr__(self) -> str:
        return f"building meter {self.model} at {self.link.host}:{self.link.port}"

    @property
    def reading(self) -> Reading | None:
        """Current per grid phase (A) of the last read; None when it failed or is older than 3 reads."""
        sample = self._sample
        if sample is None or self._read_at is None or self._clock() - self._read_at > 3 * self.interval:
            return None
        if any(amps is None for amps in sample.current_a):
            if not self._missing_phase_logged:
                self._missing_phase_logged = True
                log.warning("%s reports no current on a phase (%s); its reading is not used", self, sample.current_a)
            return None
        l1, l2, l3 = (float(amps) for amps in sample.current_a)  # type: ignore[arg-type]
        return (l1, l2, l3)

    async def run(self) -> None:
        client = await connect_client(self.link, timeout=self.timeout)
        try:
            device_id = self.device_id if self.device_id is not None else get_map(self.model).default_device_id
            reader = MeterReader(client, self.model, device_id, timeout=self.timeout, retries=0)
            poller = MeterPoller(reader, self.interval, self._sampled, self._online, failures_before_offline=2)
            log.info("%s: reading the building's load every %g s", self, self.interval)
            while True:
                started = self._clock()
                if await poller.poll_once() is None:
                    self._sample = None
                await asyncio.sleep(max(0.0, self.interval - (self._clock() - started)))
        finally:
            self._sample = None
            with contextlib.suppress(Exception):
                client.close()

    def _sampled(self, sample: MeterSample) -> None:
        self._sample, self._read_at = sample, self._clock()

    def _online(self, online: bool, reason: str) -> None:
        if online:
            log.info("%s answers", self)
        else:
            log.warning("%s does not answer (%s): the cluster shares as without a meter", self, reason)


__all__ = ["BuildingMeter", "Reading", "meter_model", "parse_address"]
