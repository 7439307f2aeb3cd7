"""OCPP 1.6 SampledValue / MeterValue dicts from a meter sample: pure functions, one table.

``MEASURAND_TABLE`` says, for every measurand the station supports (``MEASURANDS`` of the
configuration), where its value comes from, its unit and whether it is a total or one value
per phase. :func:`sampled_values` walks a measurand list (a configuration key such as
MeterValuesSampledData) through the table.

Decisions
---------
* **Values** are decimal strings with a fixed number of decimals per unit: Wh and W as whole
  numbers (the same rounding as meterStart/meterStop, so a register value in transactionData
  equals the StopTransaction's meterStop), A and V with one decimal, Celsius with one decimal,
  Frequency with two.
* **Phases.** Current.Import and Voltage are per phase only (a sum of phase currents or
  voltages means nothing): ``phase`` L1/L2/L3 for currents, ``L1-N``/``L2-N``/``L3-N`` for
  voltages (the meter measures phase to neutral; OCPP's Phase enum has these values for exactly
  that). Power.Active.Import/Export is the total (no ``phase``) plus, when the meter measures
  them, one value per phase L1/L2/L3. Only the connector's phases are reported (a 1-phase
  connector: L1 only), and a phase the meter does not report (None) is left out.
* **Import/export.** The meter's active power is signed: Power.Active.Import is its positive
  part, Power.Active.Export the magnitude of its negative part.
* **Offered.** Current.Offered is the core's offer (A per phase, no ``phase``). Power.Offered =
  offer x phases x the mean measured voltage of the connector's phases; without a measured
  voltage it is left out (no nominal 230 V is assumed).
* **Interval energy.** Energy.Active.Import.Interval / Export.Interval are given by the caller
  (``interval_energy`` / ``interval_export_energy``: the register difference since the previous
  reading of the same series); without a previous reading they are left out.
* **Units.** Wh, W, A, V, Celsius. Frequency carries **no unit**: OCPP 1.6 has no unit of
  measure for frequency ("the UnitOfMeasure for any SampledValue with measurand Frequency is
  Hertz"); strict 1.6 schemas reject "Hz", and only some copies of the schema know "Hertz".
* **Location** is ``Outlet`` for every electrical value; Temperature is the EVSE controller's
  own temperature, so its location is ``Body``.
* **Nothing is invented.** A measurand whose source is missing (meter offline: no sample; a
  None field; NaN) is left out. A list may thus produce no SampledValue at all; the caller then
  sends no MeterValue (OCPP requires at least one SampledValue).
* **Signed data** (German calibration law): :class:`SignedMeterSource` gives an OCMF string;
  :func:`signed_value` makes the SignedData SampledValue that goes alongside the Raw
  Energy.Active.Import.Register value of Transaction.Begin / Transaction.End.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from .timestamps import ocpp_time

__all__ = [
    "CONTEXTS", "MEASURAND_TABLE", "REGISTER", "Measurand", "SignedMeterSource", "meter_value", "sampled_values",
    "signed_value", "wh",
]

REGISTER = "Energy.Active.Import.Register"
CONTEXTS = frozenset({"Interruption.Begin", "Interruption.End", "Sample.Clock", "Sample.Periodic",
                      "Transaction.Begin", "Transaction.End", "Trigger", "Other"})
PHASES = ("L1", "L2", "L3")
PHASE_TO_NEUTRAL = ("L1-N", "L2-N", "L3-N")
DECIMALS = {"Wh": 0, "W": 0, "A": 1, "V": 1, "Celsius": 1, None: 2}


@runtime_checkable
class SignedMeterSource(Protocol):
    """Signed meter readings (OCMF) of the connectors' calibration-law meters."""

    def signs(self, connector_id: int) -> bool:
        """Whether the connector's meter signs at all."""

    async def signed_reading(self, connector_id: int, context: str) -> str | None:
        """An OCMF string of the meter's reading now (context Transaction.Begin/End), or None."""

    def public_key(self, connector_id: int) -> str | None:
        """The meter's public key (to verify the OCMF signatures), or None."""


@dataclass(frozen=True)
class _Inputs:
    sample: Any
    offered_a: float | None
    phases: int
    temperature_c: float | None
    interval_energy: float | None
    interval_export_energy: float | None

    def field(self, name: str) -> Any:
        return getattr(self.sample, name, None) if self.sample is not None else None

    def per_phase(self, name: str) -> tuple[float | None, ...]:
        values = self.field(name)
        if not values:
            return ()
        return tuple(values)[: max(0, min(self.phases, len(PHASES)))]


@dataclass(frozen=True)
class Measurand:
    """How to read one measurand: ``total`` (no phase) and/or ``per_phase`` values."""

    unit: str | None
    total: Callable[[_Inputs], float | None] | None = None
    per_phase: Callable[[_Inputs], Iterable[float | None]] | None = None
    phase_names: tuple[str, ...] = PHASES
    location: str = "Outlet"


def _import_part(value: float | None) -> float | None:
    return None if value is None else max(0.0, value)


def _export_part(value: float | None) -> float | None:
    return None if value is None else max(0.0, -value)


def _power_offered(inputs: _Inputs) -> float | None:
    if inputs.offered_a is None:
        return None
    volts = [v for v in inputs.per_phase("voltage_v") if _finite(v)]
    if not volts:
        return None
    return inputs.offered_a * inputs.phases * (sum(volts) / len(volts))


MEASURAND_TABLE: dict[str, Measurand] = {
    "Energy.Active.Import.Register": Measurand("Wh", total=lambda i: i.field("energy_import_wh")),
    "Energy.Active.Export.Register": Measurand("Wh", total=lambda i: i.field("energy_export_wh")),
    "Energy.Active.Import.Interval": Measurand("Wh", total=lambda i: i.interval_energy),
    "Energy.Active.Export.Interval": Measurand("Wh", total=lambda i: i.interval_export_energy),
    "Power.Active.Import": Measurand(
        "W", total=lambda i: _import_part(i.field("power_w")),
        per_phase=lambda i: [_import_part(p) for p in i.per_phase("power_w_phases")]),
    "Power.Active.Export": Measurand(
        "W", total=lambda i: _export_part(i.field("power_w")),
        per_phase=lambda i: [_export_part(p) for p in i.per_phase("power_w_phases")]),
    "Power.Offered": Measurand("W", total=_power_offered),
    "Current.Import": Measurand("A", per_phase=lambda i: [None if c is None else abs(c)
                                                          for c in i.per_phase("current_a")]),
    "Current.Offered": Measurand("A", total=lambda i: i.offered_a),
    "Voltage": Measurand("V", per_phase=lambda i: i.per_phase("voltage_v"), phase_names=PHASE_TO_NEUTRAL),
    "Frequency": Measurand(None, total=lambda i: i.field("frequency_hz")),
    "Temperature": Measurand("Celsius", total=lambda i: i.temperature_c, location="Body"),
}


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def format_value(value: float, unit: str | None) -> str:
    text = f"{value:.{DECIMALS.get(unit, 1)}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text  # no "-0"


def wh(value: float) -> int:
    """Energy as the whole Wh of meterStart/meterStop (rounded like the register values)."""
    return int(format_value(value, "Wh"))


def sampled_values(sample: Any, measurands: Iterable[str], context: str, *, offered_a: float | None, phases: int,
                   temperature_c: float | None, interval_energy: float | None = None,
                   interval_export_energy: float | None = None) -> list[dict[str, str]]:
    """The SampledValues of ``measurands`` (in that order; unknown measurands are skipped).

    ``sample`` is a MeterSample (or anything with its fields; None: the meter is offline);
    ``offered_a`` the core's offer (A per phase); ``phases`` the connector's phases;
    ``temperature_c`` the controller's temperature; ``interval_energy`` /
    ``interval_export_energy`` the Wh since the previous reading of the series.
    """
    if context not in CONTEXTS:
        raise ValueError(f"unknown ReadingContext {context!r}")
    inputs = _Inputs(sample, offered_a, phases, temperature_c, interval_energy, interval_export_energy)
    result: list[dict[str, str]] = []
    for name in measurands:
        spec = MEASURAND_TABLE.get(name)
        if spec is None:
            continue
        if spec.total is not None:
            value = spec.total(inputs)
            if _finite(value):
                result.append(_sampled(value, context, name, spec, None))
        if spec.per_phase is not None:
            for phase, value in zip(spec.phase_names, spec.per_phase(inputs)):
                if _finite(value):
                    result.append(_sampled(value, context, name, spec, phase))
    return result


def _sampled(value: float, context: str, measurand: str, spec: Measurand, phase: str | None) -> dict[str, str]:
    item = {"value": format_value(value, spec.unit), "context": context, "format": "Raw", "measurand": measurand}
    if phase is not None:
        item["phase"] = phase
    item["location"] = spec.location
    if spec.unit is not None:
        item["unit"] = spec.unit
    return item


def signed_value(ocmf: str, context: str) -> dict[str, str]:
    """The SignedData SampledValue of a signed register reading (goes next to the Raw one)."""
    return {"value": ocmf, "format": "SignedData", "context": context, "measurand": REGISTER, "unit": "Wh"}


def meter_value(timestamp: datetime, sampled: list[dict[str, str]]) -> dict[str, Any]:
    """An OCPP MeterValue: ``timestamp`` (ISO 8601 UTC with Z) and its SampledValues."""
    return {"timestamp": ocpp_time(timestamp), "sampledValue": list(sampled)}
