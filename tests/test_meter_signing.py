"""Signed meter readings (OCMF) from the simulated Iskra WM3M4C over Modbus TCP on 127.0.0.1.

The station side (stationd.hw.meters.signing) against the simulated signing module
(firmware_sim.meter_signing): public key, begin/end records verified with ``cryptography``
directly, identification, tampering, key persistence, non-signing meters and timeouts.
Register layout: stationd.hw.meters.maps.ISKRA_SIGNING (addresses from EVerest's RsIskraMeter
driver; sizes and some meanings unverified, see the map's note).
"""

from __future__ import annotations

import json
import logging
import os
import stat
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from firmware_sim.meters import SimMeter, SimMeterServer, serve_tcp
from stationd.config.store import ConfigStore
from stationd.hw.meters import MeterError, MeterReader, connect_client, get_map
from stationd.hw.meters.maps import SignatureStatus, SigningState
from stationd.hw.meters.signing import (
    KEY_NAME,
    SignedMeter,
    SignedReadings,
    identification,
    load_public_key,
    normalize_der_signature,
    parse_ocmf,
    public_key_hex,
    verify_ocmf,
)

ISKRA = "ISKRA_WM3M4"
TAG = "04A1B2C3D4E5F6"  # a 7-byte ISO 14443 UID
WALL = 1_714_557_600.0  # 2024-05-01T10:00:00Z
STATION_TIME = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone(timedelta(hours=2)))  # same instant
REGS = get_map(ISKRA).signing
assert REGS is not None


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Rig:
    meter: SimMeter
    server: SimMeterServer
    readers: dict[int, MeterReader]
    clock: FakeClock
    clients: list

    @property
    def iskra(self) -> MeterReader:
        return self.readers[1]

    async def close(self) -> None:
        for client in self.clients:
            client.close()
        await self.server.stop()


async def start_rig(state_dir: Path | None, *, energy_wh: float = 12_345.0,
                    with_sdm: bool = False) -> Rig:
    clock = FakeClock()
    meter = SimMeter(ISKRA, state_dir=state_dir, name="c1", serial="79000123", clock=clock,
                     initial_energy_wh=energy_wh)
    assert meter.signing is not None
    meter.signing.wall_clock = lambda: WALL
    meter.signing.sign_delay_s = 0.01
    meters = {33: meter}
    if with_sdm:
        meters[1] = SimMeter("SDM630", clock=clock)
    server = await serve_tcp(meters, tick_interval=60)
    client = await connect_client({"tcp": {"host": "127.0.0.1", "port": server.port}},
                                  timeout=0.5)
    readers = {1: MeterReader(client, ISKRA, 33, timeout=0.5)}
    if with_sdm:
        readers[2] = MeterReader(client, "SDM630", 1, timeout=0.5)
    return Rig(meter, server, readers, clock, [client])


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    rig = await start_rig(tmp_path, with_sdm=True)
    try:
        yield rig
    finally:
        await rig.close()


def signed_meter(rig: Rig, **options) -> SignedMeter:
    options.setdefault("wall_clock", lambda: STATION_TIME)
    options.setdefault("sign_timeout", 2.0)
    options.setdefault("poll_interval", 0.01)
    return SignedMeter(rig.iskra, **options)


def check_with_cryptography(ocmf: str, key: ec.EllipticCurvePublicKey) -> dict:
    """Independent of verify_ocmf: split, hex-decode SD, verify the exact payload text."""
    header, payload_text, signature_text = ocmf.split("|")
    assert header == "OCMF"
    signature = json.loads(signature_text)
    assert signature["SA"] == "ECDSA-secp256r1-SHA256"
    key.verify(bytes.fromhex(signature["SD"]), payload_text.encode(), ec.ECDSA(hashes.SHA256()))
    return json.loads(payload_text, parse_float=Decimal)


# --- public key -------------------------------------------------------------------------------

async def test_public_key_read_over_modbus_matches_the_meters_key(rig: Rig) -> None:
    station = signed_meter(rig)
    key = await station.public_key()
    sim_key = rig.meter.signing.public_key
    assert key == public_key_hex(sim_key) == rig.meter.signing.public_key_der.hex().upper()
    assert key.startswith("3059301306072A8648CE3D020106082A8648CE3D03010703420004")
    assert len(key) == 182
    # the hex SPKI loads back, and so do PEM and the raw point the registers carry
    assert load_public_key(key).public_numbers() == sim_key.public_numbers()
    pem = sim_key.public_bytes(serialization.Encoding.PEM,
                               serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    assert public_key_hex(load_public_key(pem)) == key
    assert public_key_hex(load_public_key(key[-128:])) == key
    with pytest.raises(MeterError, match="bad public key"):
        load_public_key("not a key")
    # cached: a second call costs no request
    made = rig.iskra.requests_made
    assert await station.public_key() == key
    assert rig.iskra.requests_made == made


# --- begin / end ------------------------------------------------------------------------------

async def test_begin_and_end_records_verify_and_carry_energy_context_and_identification(
        rig: Rig) -> None:
    station = signed_meter(rig)
    sim_key = rig.meter.signing.public_key

    begin = await station.signed_reading("Transaction.Begin", TAG, charge_point="TE-1000 1")
    payload = check_with_cryptography(begin, sim_key)
    assert payload == verify_ocmf(begin, await station.public_key())
    assert rig.meter.signing.state is SigningState.ACTIVE
    (reading,) = payload["RD"]
    assert reading["TX"] == "B"
    assert reading["RV"] == Decimal("12.345") and '"RV":12.345,' in begin  # kWh, Wh resolution
    assert (reading["RU"], reading["RI"], reading["ST"]) == ("kWh", "1-b:1.8.0", "G")
    assert reading["TM"] == "2024-05-01T12:00:00,000+0200 S"  # station's time, synchronized
    assert (payload["IS"], payload["IT"], payload["ID"], payload["IF"]) == (
        True, "ISO14443", TAG, ["RFID_PLAIN"])
    assert (payload["CT"], payload["CI"]) == ("CBIDC", "TE-1000 1")
    assert (payload["MV"], payload["MM"], payload["MS"]) == ("Iskra", "WM3M4C", "79000123")
    assert payload["PG"] == "T1"

    rig.meter.set_load((16, 16, 16))  # 11040 W for one hour
    rig.clock.advance(3600)
    rig.meter.set_load(0)
    end = await station.signed_reading("Transaction.End", TAG)
    payload = check_with_cryptography(end, sim_key)
    first, last = payload["RD"]  # one data set over the whole transaction
    assert (first["TX"], first["RV"]) == ("B", Decimal("12.345"))
    assert (last["TX"], last["RV"]) == ("E", Decimal("23.385"))
    assert payload["PG"] == "T2" and payload["ID"] == TAG
    assert rig.meter.signing.state is SigningState.IDLE
    # the signed value is what the energy registers show
    sample = await rig.iskra.read()
    assert Decimal(str(sample.energy_import_wh)) == last["RV"] * 1000


async def test_informative_time_gives_I_then_relative_R(rig: Rig) -> None:
    station = signed_meter(rig, time_synchronized=lambda: False)
    begin = verify_ocmf(await station.signed_reading("Transaction.Begin", None),
                        await station.public_key())
    assert begin["RD"][0]["TM"].endswith(" I")
    assert (begin["IS"], begin["IT"]) == (False, "NONE") and "ID" not in begin
    end = verify_ocmf(await station.signed_reading("Transaction.End", None),
                      await station.public_key())
    assert end["RD"][-1]["TM"].endswith(" R")


async def test_end_without_begin_and_unsupported_contexts(rig: Rig) -> None:
    station = signed_meter(rig)
    with pytest.raises(MeterError) as error:
        await station.signed_reading("Transaction.End", TAG)
    assert error.value.reason == "no transaction"
    with pytest.raises(MeterError) as error:
        await station.signed_reading("Sample.Periodic", TAG)
    assert error.value.reason == "unsupported context"
    readings = SignedReadings(rig.readers, sign_timeout=2.0, poll_interval=0.01)
    assert await readings.signed_reading(1, "Sample.Clock") is None


async def test_begin_while_the_meter_still_has_an_open_transaction_ends_it_first(
        rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    station = signed_meter(rig)
    await station.signed_reading("Transaction.Begin", TAG)
    with caplog.at_level(logging.WARNING):
        again = verify_ocmf(await station.signed_reading("Transaction.Begin", TAG),
                            await station.public_key())
    assert "still open" in caplog.text
    assert again["PG"] == "T3" and again["RD"][0]["TX"] == "B"  # T2 closed the stuck one


# --- tampering --------------------------------------------------------------------------------

async def test_tampered_record_is_refused_and_never_returned(
        rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    # the meter's record is altered after signing (a corrupted transfer / manipulation)
    rig.meter.signing.tamper = lambda payload: payload.replace(b'"RV":12.345', b'"RV":92.345')
    station = signed_meter(rig)
    with pytest.raises(MeterError) as error:
        await station.signed_reading("Transaction.Begin", TAG)
    assert error.value.reason == "signature invalid"

    readings = SignedReadings(rig.readers, sign_timeout=2.0, poll_interval=0.01)
    with caplog.at_level(logging.ERROR):
        assert await readings.signed_reading(1, "Transaction.End", TAG) is None
    assert "signature invalid" in caplog.text

    # editing a good record's text, or checking it with another key, fails as well
    rig.meter.signing.tamper = None
    good = await station.signed_reading("Transaction.Begin", TAG)
    key = await station.public_key()
    verify_ocmf(good, key)
    for edited in (good.replace('"TX":"B"', '"TX":"E"'), good.replace(TAG, "04A1B2C3D4E5F7"),
                   good.replace('"SD":"30', '"SD":"31')):
        assert edited != good
        with pytest.raises(MeterError):
            verify_ocmf(edited, key)
        with pytest.raises((InvalidSignature, ValueError)):
            check_with_cryptography(edited, rig.meter.signing.public_key)
    other = public_key_hex(ec.generate_private_key(ec.SECP256R1()).public_key())
    with pytest.raises(MeterError, match="signature invalid"):
        verify_ocmf(good, other)
    with pytest.raises(MeterError, match="bad record"):
        verify_ocmf("OCMF|{}", key)


def test_non_minimal_der_from_the_iskra_firmware_is_normalized() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    payload = '{"FV":"1.0","PG":"T1","MS":"1","IS":false,"IT":"NONE","RD":[{"TX":"B","RV":1.000}]}'
    der = key.sign(payload.encode(), ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    # what the firmware does: r and s in fixed-length fields with superfluous leading zeros
    # (34 bytes here, so the encoding is never the minimal one, whatever r and s are)
    body = b"\x02\x22" + r.to_bytes(34, "big") + b"\x02\x22" + s.to_bytes(34, "big")
    quirky = b"\x30" + bytes([len(body)]) + body
    assert quirky != der
    assert normalize_der_signature(quirky) == der
    ocmf = f'OCMF|{payload}|{{"SD":"{quirky.hex().upper()}"}}'  # SA/SE/SM defaults
    assert verify_ocmf(ocmf, public_key_hex(key.public_key()))["RD"][0]["RV"] == Decimal("1.000")
    assert parse_ocmf(ocmf).payload_text == payload
    with pytest.raises(MeterError):
        normalize_der_signature(b"\x30\x03\x02\x01\x01")


def test_identification_fields() -> None:
    assert identification(None) == {"IS": False, "IF": [], "IT": "NONE"}
    assert identification("DEADBEEF")["IT"] == "ISO14443"
    assert identification("E004010012345678")["IT"] == "ISO15693"
    assert identification("user|42") == {"IS": True, "IF": [], "IT": "UNDEFINED", "ID": "user 42"}


# --- persistence ------------------------------------------------------------------------------

async def test_key_and_open_transaction_survive_a_restart(tmp_path: Path) -> None:
    first = await start_rig(tmp_path)
    try:
        station = signed_meter(first)
        key = await station.public_key()
        await station.signed_reading("Transaction.Begin", TAG)
    finally:
        await first.close()
    key_file = tmp_path / "meter-c1-signing-key.pem"
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    assert b"BEGIN PRIVATE KEY" in key_file.read_bytes()

    second = await start_rig(tmp_path, energy_wh=0.0)  # energy comes from the state file
    try:
        signing = second.meter.signing
        assert signing.state is SigningState.ACTIVE_AFTER_POWER_FAILURE
        assert signing.time_status == 0  # the meter lost its time with the power
        station = signed_meter(second)
        assert await station.public_key() == key
        end = verify_ocmf(await station.signed_reading("Transaction.End", TAG), key)
        begin_reading, end_reading = end["RD"]
        assert begin_reading["RV"] == Decimal("12.345") and end_reading["TX"] == "E"
        assert end_reading["EF"] == "t"  # the duration is not usable after a power failure
        assert end["PG"] == "T2"  # pagination went on
    finally:
        await second.close()


# --- the OCPP layer's source ------------------------------------------------------------------

async def test_signed_readings_and_key_provider_for_signing_and_plain_meters(rig: Rig) -> None:
    readings = SignedReadings(rig.readers, id_tag_of=lambda connector: TAG,
                              charge_box_id=lambda: "TE-1000",
                              wall_clock=lambda: STATION_TIME, sign_timeout=2.0,
                              poll_interval=0.01)
    store = ConfigStore(installation={"NumberOfConnectors": "2"})
    readings.provide_keys(store)
    assert readings.signs(1) and not readings.signs(2)

    # connector 2 has an SDM630: no signing, no key
    assert await readings.signed_reading(2, "Transaction.Begin") is None
    assert readings.public_key(2) is None
    assert store.get("/hw/connectors/2/meter/key") == ""
    assert KEY_NAME == "/hw/connectors/{connector}/meter/key"

    await readings.load_public_keys()
    key = public_key_hex(rig.meter.signing.public_key)
    assert readings.public_key(1) == key
    assert store.get("/hw/connectors/1/meter/key") == key
    assert store.read("/hw/connectors/1/meter/key").value == key

    ocmf = await readings.signed_reading(1, "Transaction.Begin")
    payload = check_with_cryptography(ocmf, rig.meter.signing.public_key)
    assert (payload["ID"], payload["CI"]) == (TAG, "TE-1000 1")
    ocmf = await readings.signed_reading(1, "Transaction.End")
    assert [r["TX"] for r in verify_ocmf(ocmf, key)["RD"]] == ["B", "E"]


async def test_key_provider_reads_the_key_in_the_background(rig: Rig) -> None:
    readings = SignedReadings(rig.readers)
    assert readings.public_key(1) is None  # not read yet: a read starts
    await readings._key_tasks[1]
    assert readings.public_key(1) == public_key_hex(rig.meter.signing.public_key)


async def test_signing_timeout_gives_none_and_a_log_line(
        rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    rig.meter.signing.hang = True  # the meter never finishes the signature
    readings = SignedReadings(rig.readers, sign_timeout=0.3, poll_interval=0.02)
    with caplog.at_level(logging.ERROR, logger="stationd.hw.meters.signing"):
        assert await readings.signed_reading(1, "Transaction.Begin", TAG) is None
    assert "signing timeout" in caplog.text
    assert rig.meter.signing.status is SignatureStatus.IN_PROGRESS


async def test_meter_offline_gives_none(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    rig.meter.online = False
    rig.iskra.timeout, rig.iskra.retries = 0.1, 0
    readings = SignedReadings(rig.readers, sign_timeout=0.3)
    with caplog.at_level(logging.WARNING):
        assert await readings.signed_reading(1, "Transaction.Begin", TAG) is None
        assert await readings.load_public_keys() == {1: None}
    assert "timeout" in caplog.text


# --- the simulated meter's register interface ------------------------------------------------

async def test_sim_refuses_bad_writes_and_bad_metadata(rig: Rig) -> None:
    client = rig.clients[0]
    reply = await client.write_registers(REGS.state, [1], device_id=33)
    assert reply.isError() and reply.exception_code == 2  # the state is the meter's
    reply = await client.write_registers(REGS.record, [0x4142], device_id=33)
    assert reply.isError() and reply.exception_code == 2
    reply = await client.write_registers(0x5000, [1], device_id=1)  # SDM630: nothing writable
    assert reply.isError()

    signing = rig.meter.signing
    assert signing.write(REGS.command, [REGS.command_begin]) is None
    assert signing.status is SignatureStatus.INVALID_DATE_TIME  # time never set
    signing.write(REGS.time_status, [2])
    template = b'{"FV":"1.0","XX":"?"}'
    words = [int.from_bytes(template[i:i + 2].ljust(2, b"\0"), "big")
             for i in range(0, len(template), 2)]
    signing.write(REGS.metadata, words)
    signing.write(REGS.metadata_length, [len(template)])
    signing.write(REGS.command, [REGS.command_begin])
    assert signing.status is SignatureStatus.INVALID_MESSAGE_FORMAT
    signing.write(REGS.command, [0x1234])
    assert signing.status is SignatureStatus.INVALID_COMMAND
    assert signing.state is SigningState.IDLE
