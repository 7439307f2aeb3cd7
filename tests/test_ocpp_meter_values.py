"""SampledValues from meter samples: every measurand, phases, units, contexts, gaps, signed data."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from stationd.config.keys.ocpp_standard import MEASURANDS
from stationd.hw.meters.reader import MeterSample
from stationd.ocpp_client.meter_values import (
    MEASURAND_TABLE,
    SignedMeterSource,
    meter_value,
    sampled_values,
    signed_value,
    wh,
)

T = datetime(2026, 11, 22, 12, 0, 5, tzinfo=UTC)
SAMPLE = MeterSample(
    energy_import_wh=12345.6, energy_export_wh=7.4, power_w=11040.4, power_w_phases=(3680.0, 3690.2, 3670.6),
    current_a=(16.04, 15.96, 16.0), voltage_v=(230.04, 231.0, 229.5), frequency_hz=50.012, timestamp=T)


def values(sample=SAMPLE, measurands=MEASURANDS, context="Sample.Periodic", **kwargs):
    options = {"offered_a": 16.0, "phases": 3, "temperature_c": 41.25, **kwargs}
    return sampled_values(sample, tuple(measurands), context, **options)


def by(items, measurand):
    return {item.get("phase"): item for item in items if item["measurand"] == measurand}


def schema_check(meter_values: list[dict]) -> None:
    """The payload passes the OCPP 1.6 MeterValues schema of the `ocpp` package."""
    jsonschema = pytest.importorskip("jsonschema")
    ocpp = pytest.importorskip("ocpp")
    schema = json.loads((Path(ocpp.__file__).parent / "v16" / "schemas" / "MeterValues.json").read_text())
    jsonschema.validate({"connectorId": 1, "transactionId": 42, "meterValue": meter_values}, schema)


def test_every_measurand_with_its_unit_phase_and_location():
    items = values(interval_energy=250.4, interval_export_energy=0.0)
    assert by(items, "Energy.Active.Import.Register") == {None: {
        "value": "12346", "context": "Sample.Periodic", "format": "Raw",
        "measurand": "Energy.Active.Import.Register", "location": "Outlet", "unit": "Wh"}}
    assert by(items, "Energy.Active.Export.Register")[None]["value"] == "7"
    assert by(items, "Energy.Active.Import.Interval")[None]["value"] == "250"
    assert by(items, "Energy.Active.Export.Interval")[None]["value"] == "0"
    power = by(items, "Power.Active.Import")
    assert {p: v["value"] for p, v in power.items()} == {None: "11040", "L1": "3680", "L2": "3690", "L3": "3671"}
    assert {v["unit"] for v in power.values()} == {"W"}
    assert {p: v["value"] for p, v in by(items, "Power.Active.Export").items()} == {
        None: "0", "L1": "0", "L2": "0", "L3": "0"}
    current = by(items, "Current.Import")
    assert {p: (v["value"], v["unit"]) for p, v in current.items()} == {
        "L1": ("16.0", "A"), "L2": ("16.0", "A"), "L3": ("16.0", "A")}  # per phase only, no total
    voltage = by(items, "Voltage")
    assert {p: (v["value"], v["unit"]) for p, v in voltage.items()} == {
        "L1-N": ("230.0", "V"), "L2-N": ("231.0", "V"), "L3-N": ("229.5", "V")}
    assert by(items, "Current.Offered") == {None: {
        "value": "16.0", "context": "Sample.Periodic", "format": "Raw", "measurand": "Current.Offered",
        "location": "Outlet", "unit": "A"}}
    mean_voltage = (230.04 + 231.0 + 229.5) / 3
    assert by(items, "Power.Offered")[None]["value"] == f"{16.0 * 3 * mean_voltage:.0f}" == "11049"
    frequency = by(items, "Frequency")[None]
    assert frequency["value"] == "50.01" and "unit" not in frequency  # OCPP 1.6 has no unit for Hz
    assert by(items, "Temperature")[None] == {
        "value": "41.2", "context": "Sample.Periodic", "format": "Raw", "measurand": "Temperature",
        "location": "Body", "unit": "Celsius"}
    assert [i["measurand"] for i in items if "phase" not in i] == [
        m for m in MEASURANDS if m not in ("Current.Import", "Voltage")]  # in the key's order
    schema_check([meter_value(T, items)])


def test_the_table_covers_every_measurand_the_station_supports():
    assert set(MEASURAND_TABLE) == set(MEASURANDS)


@pytest.mark.parametrize("context", ["Sample.Periodic", "Sample.Clock", "Transaction.Begin", "Transaction.End",
                                     "Trigger"])
def test_the_context_is_carried_by_every_value(context):
    items = values(context=context)
    assert items and {i["context"] for i in items} == {context}
    assert {i["format"] for i in items} == {"Raw"}


def test_an_unknown_context_is_a_bug():
    with pytest.raises(ValueError):
        values(context="Sample.Whenever")


def test_exported_power_is_the_negative_part():
    sample = MeterSample(100.0, 50.0, -2300.0, (-2300.0, None, None), (10.0, None, None), (230.0, None, None),
                         None, T)
    items = values(sample, ["Power.Active.Import", "Power.Active.Export"], phases=1)
    assert {(i["measurand"], i.get("phase")): i["value"] for i in items} == {
        ("Power.Active.Import", None): "0", ("Power.Active.Import", "L1"): "0",
        ("Power.Active.Export", None): "2300", ("Power.Active.Export", "L1"): "2300"}


def test_missing_values_are_left_out_never_invented():
    sample = MeterSample(500.0, None, 3680.0, (None, None, None), (16.0, None, None), (230.0, None, None), None, T)
    items = values(sample, offered_a=None, temperature_c=None)
    measured = {(i["measurand"], i.get("phase")) for i in items}
    assert measured == {("Energy.Active.Import.Register", None), ("Power.Active.Import", None),
                        ("Power.Active.Export", None), ("Current.Import", "L1"), ("Voltage", "L1-N")}
    # a meter that is offline: no sample at all; only what the core knows remains
    items = values(None)
    assert {i["measurand"] for i in items} == {"Current.Offered", "Temperature"}
    assert values(None, ["Energy.Active.Import.Register", "Voltage", "Power.Offered"]) == []
    # NaN is not a reading
    nan = MeterSample(float("nan"), None, 0.0, (None,) * 3, (None,) * 3, (None,) * 3, None, T)
    assert values(nan, ["Energy.Active.Import.Register"]) == []


def test_interval_energy_only_with_a_previous_reading():
    assert values(measurands=["Energy.Active.Import.Interval"]) == []
    items = values(measurands=["Energy.Active.Import.Interval"], interval_energy=1234.4)
    assert items == [{"value": "1234", "context": "Sample.Periodic", "format": "Raw",
                      "measurand": "Energy.Active.Import.Interval", "location": "Outlet", "unit": "Wh"}]


def test_a_single_phase_connector_reports_its_phase_only():
    items = values(measurands=["Current.Import", "Voltage", "Power.Active.Import", "Power.Offered"], phases=1,
                   offered_a=10.0)
    assert [(i["measurand"], i.get("phase")) for i in items] == [
        ("Current.Import", "L1"), ("Voltage", "L1-N"), ("Power.Active.Import", None), ("Power.Active.Import", "L1"),
        ("Power.Offered", None)]
    assert by(items, "Power.Offered")[None]["value"] == "2300"  # 10 A x 1 phase x 230.04 V


def test_offered_values_come_from_the_core():
    items = values(measurands=["Current.Offered", "Power.Offered"], offered_a=0.0)
    assert [i["value"] for i in items] == ["0.0", "0"]
    items = values(measurands=["Current.Offered", "Power.Offered"], offered_a=13.2)
    assert [i["value"] for i in items] == ["13.2", f"{13.2 * 3 * (230.04 + 231.0 + 229.5) / 3:.0f}"]


def test_register_values_round_like_meter_start_and_stop():
    assert wh(1000.5) == 1000 and wh(1001.5) == 1002 and wh(999.6) == 1000 and wh(-0.2) == 0
    sample = MeterSample(1001.5, None, 0.0, (None,) * 3, (None,) * 3, (None,) * 3, None, T)
    assert values(sample, ["Energy.Active.Import.Register"])[0]["value"] == str(wh(1001.5))


def test_meter_value_is_stamped_in_utc_with_z():
    from datetime import timedelta, timezone
    berlin = datetime(2026, 11, 22, 13, 0, 5, tzinfo=timezone(timedelta(hours=1)))
    assert meter_value(berlin, [{"value": "1"}]) == {"timestamp": "2026-11-22T12:00:05Z",
                                                     "sampledValue": [{"value": "1"}]}


class FakeSigned:
    def __init__(self) -> None:
        self.asked: list[tuple[int, str]] = []

    def signs(self, connector_id: int) -> bool:
        return True

    async def signed_reading(self, connector_id: int, context: str) -> str | None:
        self.asked.append((connector_id, context))
        return f"OCMF|{{\"RD\":[{{\"RV\":12.346,\"ST\":\"G\"}}],\"CTX\":\"{context}\"}}|{{\"SD\":\"3045\"}}"

    def public_key(self, connector_id: int) -> str | None:
        return "3059301306072a8648ce3d0201"


async def test_signed_data_goes_next_to_the_raw_register_value():
    source = FakeSigned()
    assert isinstance(source, SignedMeterSource)
    ocmf = await source.signed_reading(1, "Transaction.End")
    items = values(measurands=["Energy.Active.Import.Register"], context="Transaction.End")
    items.append(signed_value(ocmf, "Transaction.End"))
    assert items[1] == {"value": ocmf, "format": "SignedData", "context": "Transaction.End",
                        "measurand": "Energy.Active.Import.Register", "unit": "Wh"}
    schema_check([meter_value(T, items)])
