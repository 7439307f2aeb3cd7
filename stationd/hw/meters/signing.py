"""Signed meter readings (German calibration law, "Eichrecht"): OCMF records from a signing meter.

crypto_exceptions = lazy_module("cryptography.exceptions")
hashes = lazy_module("cryptography.hazmat.primitives.hashes")
serialization = lazy_module("cryptography.hazmat.primitives.serialization")
ec = lazy_module("cryptography.hazmat.primitives.asymmetric.ec")
asymmetric_utils = lazy_module("cryptography.hazmat.primitives.asymmetric.utils")

A signing meter (the Iskra WM3M4C; :attr:`MeterMap.signing` says where its interface lives)
signs the transaction's begin and end readings itself with a key that never leaves it. The
station sets the meter's time, writes the identification as an OCMF payload template, gives the
begin/end command, waits (bounded) for the signature and reads the record back. Before a record
goes out as OCPP ``SignedData`` the station verifies it with the meter's public key: a record
that does not verify raises ``MeterError("signature invalid")`` and is never sent.

OCMF (Open Charge Metering Format, S.A.F.E. e.V.): ``OCMF|{payload}|{signature}``. The
signature is over the exact payload text; the signature section says ``SA`` (algorithm,
default ECDSA-secp256r1-SHA256), ``SE`` (encoding, default hex), ``SM`` (default DER) and
``SD`` (the signature). The station writes ``SA`` and ``SD`` (hex, upper case, minimal DER).

**Public key format.** ``/hw/connectors/<id>/meter/key`` and :meth:`SignedMeter.public_key`
give the key as upper-case hex of its DER ``SubjectPublicKeyInfo`` (``3059301306072A8648CE3D02
0106082A8648CE3D030107034200 04‖X‖Y``, 182 hex digits): the form the S.A.F.E.
Transparenzsoftware and OCPP backends take for OCMF records, and the form the EVerest Iskra
driver builds from the meter's raw X‖Y registers. :func:`load_public_key` also takes PEM, the
raw 64-byte point (hex) and the 65-byte uncompressed point.

Iskra firmware quirk (documented by the EVerest driver): the meter may encode r and s with
superfluous leading zero bytes, which strict DER parsers (and the Transparenzsoftware) refuse;
the station re-encodes the signature minimally before verifying and sending it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from ...lazy_import import lazy_module
from .codec import MeterError
from .maps import FunctionCode, SignatureStatus, SigningRegisters, SigningState
from .reader import MeterReader

crypto_exceptions = lazy_module("cryptography.exceptions")
hashes = lazy_module("cryptography.hazmat.primitives.hashes")
serialization = lazy_module("cryptography.hazmat.primitives.serialization")
ec = lazy_module("cryptography.hazmat.primitives.asymmetric.ec")
asymmetric_utils = lazy_module("cryptography.hazmat.primitives.asymmetric.utils")

__all__ = [
    "BEGIN_CONTEXT", "END_CONTEXT", "KEY_NAME", "SIGNATURE_ALGORITHM", "Gateway", "SignedMeter",
    "SignedReadings", "load_public_key", "normalize_der_signature", "parse_ocmf",
    "public_key_hex", "verify_ocmf",
]

log = logging.getLogger(__name__)

SIGNATURE_ALGORITHM = "ECDSA-secp256r1-SHA256"
BEGIN_CONTEXT = "Transaction.Begin"
END_CONTEXT = "Transaction.End"
END_CODES = frozenset("ELRAP")  # OCMF TX letters that end a transaction
KEY_NAME = "/hw/connectors/{connector}/meter/key"
MAX_WRITE_REGISTERS = 123  # Modbus FC 16 limit
TIME_STATUS_INFORMATIVE = 1
TIME_STATUS_SYNCHRONIZED = 2
_HEX = re.compile(r"^[0-9A-Fa-f]+$")


# --- keys -------------------------------------------------------------------------------------

def public_key_hex(key: ec.EllipticCurvePublicKey) -> str:
    """Upper-case hex of the key's DER SubjectPublicKeyInfo (the ``meter/key`` format)."""
    der = key.public_bytes(serialization.Encoding.DER,
                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return der.hex().upper()


def load_public_key(key: str | bytes | ec.EllipticCurvePublicKey) -> ec.EllipticCurvePublicKey:
    """A secp256r1 public key from hex/bytes of DER SubjectPublicKeyInfo, PEM, the raw 64-byte
    point X‖Y or the 65-byte uncompressed point (0x04‖X‖Y). MeterError("bad public key")."""
    if isinstance(key, ec.EllipticCurvePublicKey):
        loaded = key
    else:
        try:
            if isinstance(key, str):
                text = key.strip()
                if text.startswith("-----BEGIN"):
                    loaded = serialization.load_pem_public_key(text.encode())
                    return _p256(loaded)
                text = "".join(text.split())
                if not text or not _HEX.match(text):
                    raise ValueError("not hex")
                key = bytes.fromhex(text)
            if len(key) == 64:
                key = b"\x04" + key
            if len(key) == 65 and key[0] == 4:
                loaded = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), key)
            else:
                loaded = serialization.load_der_public_key(key)  # type: ignore[assignment]
        except (ValueError, TypeError) as error:
            raise MeterError("bad public key", str(error)) from None
    return _p256(loaded)


def _p256(key: Any) -> ec.EllipticCurvePublicKey:
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise MeterError("bad public key", "not an ECDSA secp256r1 key")
    return key


def normalize_der_signature(signature: bytes) -> bytes:
    """A DER ECDSA signature re-encoded minimally (r and s without superfluous zero bytes).

    Accepts what the Iskra firmware writes (fixed-length r/s with leading zeros); refuses
    anything that is not ``SEQUENCE { INTEGER r, INTEGER s }``: MeterError("bad signature").
    """
    def fail(why: str) -> MeterError:
        return MeterError("bad signature", why)

    data = bytes(signature)
    if len(data) < 8 or data[0] != 0x30:
        raise fail("not a DER sequence")
    length, position = data[1], 2
    if length & 0x80:  # long form (never needed for P-256, but legal)
        size = length & 0x7F
        if size not in (1, 2) or len(data) < 2 + size:
            raise fail("bad sequence length")
        length, position = int.from_bytes(data[2:2 + size], "big"), 2 + size
    if position + length != len(data):
        raise fail("sequence length does not match")
    numbers = []
    for _ in range(2):
        if position + 2 > len(data) or data[position] != 0x02:
            raise fail("expected an INTEGER")
        size = data[position + 1]
        start, position = position + 2, position + 2 + size
        if size == 0 or position > len(data):
            raise fail("bad INTEGER length")
        numbers.append(int.from_bytes(data[start:position], "big", signed=False))
    if position != len(data):
        raise fail("trailing bytes")
    r, s = numbers
    if r == 0 or s == 0:
        raise fail("zero r or s")
    return asymmetric_utils.encode_dss_signature(r, s)


# --- OCMF -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class OcmfRecord:
    payload_text: str  # exactly as signed
    payload: dict[str, Any]  # numbers as Decimal, so RV keeps its digits
    signature: dict[str, Any]


def parse_ocmf(ocmf: str) -> OcmfRecord:
    """Split ``OCMF|payload|signature`` and parse both JSON sections. MeterError("bad record")."""
    if not isinstance(ocmf, str) or not ocmf.startswith("OCMF|"):
        raise MeterError("bad record", "does not start with 'OCMF|'")
    sections = ocmf.split("|")
    if len(sections) != 3:
        raise MeterError("bad record", f"{len(sections)} sections instead of 3")
    _, payload_text, signature_text = sections
    try:
        payload = json.loads(payload_text, parse_float=Decimal)
        signature = json.loads(signature_text)
    except ValueError as error:
        raise MeterError("bad record", f"JSON: {error}") from None
    if not isinstance(payload, dict) or not isinstance(signature, dict):
        raise MeterError("bad record", "sections must be JSON objects")
    if not isinstance(payload.get("RD"), list) or not payload["RD"]:
        raise MeterError("bad record", "no readings (RD)")
    if not isinstance(signature.get("SD"), str):
        raise MeterError("bad record", "no signature data (SD)")
    return OcmfRecord(payload_text, payload, signature)


def verify_ocmf(ocmf: str, public_key: str | bytes | ec.EllipticCurvePublicKey) -> dict[str, Any]:
    """The payload of a verified OCMF record (numbers as Decimal).

    Raises MeterError: "bad record" (not OCMF), "unsupported signature" (SA/SE/SM this station
    cannot check), "bad public key", "signature invalid" (the signature does not match).
    """
    record = parse_ocmf(ocmf)
    key = load_public_key(public_key)
    algorithm = record.signature.get("SA", SIGNATURE_ALGORITHM)
    encoding = record.signature.get("SE", "hex")
    mime = record.signature.get("SM", "application/x-der")
    if algorithm != SIGNATURE_ALGORITHM or mime != "application/x-der":
        raise MeterError("unsupported signature", f"SA {algorithm!r}, SM {mime!r}")
    try:
        if encoding == "hex":
            raw = bytes.fromhex(record.signature["SD"])
        elif encoding == "base64":
            raw = base64.b64decode(record.signature["SD"], validate=True)
        else:
            raise MeterError("unsupported signature", f"SE {encoding!r}")
    except (ValueError, binascii.Error):
        raise MeterError("signature invalid", "SD is not valid signature data") from None
    try:
        key.verify(normalize_der_signature(raw), record.payload_text.encode("utf-8"),
                   ec.ECDSA(hashes.SHA256()))
    except (crypto_exceptions.InvalidSignature, MeterError):
        raise MeterError("signature invalid",
                         "the record does not match its signature and the meter's key") from None
    return record.payload


def _ocmf(payload_text: str, signature: bytes) -> str:
    section = json.dumps({"SA": SIGNATURE_ALGORITHM, "SD": signature.hex().upper()},
                         separators=(",", ":"))
    return f"OCMF|{payload_text}|{section}"


# --- the meter ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Gateway:
    """OCMF general information: the signature-adding system (this station)."""

    identification: str = "stationd"
    serial: str = ""
    version: str = ""


def _clean(text: str) -> str:
    return text.replace("|", " ")  # OCMF sections must not contain "|"


def identification(id_tag: str | None) -> dict[str, Any]:
    """OCMF user assignment fields for an OCPP idTag (IS, IF, IT, ID).

    IL is left out: the Iskra meter's list of accepted template keys has none (see
    ``ISKRA_SIGNING.note``). A 4/7-byte hex UID is an ISO 14443 card, an 8-byte one ISO 15693,
    anything else an idTag of unspecified type.
    """
    if not id_tag:
        return {"IS": False, "IF": [], "IT": "NONE"}
    tag = _clean(id_tag)
    if _HEX.match(tag) and len(tag) in (8, 14):
        kind, flags = "ISO14443", ["RFID_PLAIN"]
    elif _HEX.match(tag) and len(tag) == 16:
        kind, flags = "ISO15693", ["RFID_PLAIN"]
    else:
        kind, flags = "UNDEFINED", []
    return {"IS": True, "IF": flags, "IT": kind, "ID": tag}


def _state(value: int) -> SigningState:
    try:
        return SigningState(value)
    except ValueError:
        raise MeterError("bad reply", f"unknown signing state {value}") from None


def _local_now() -> datetime:
    return datetime.now().astimezone()


class SignedMeter:
    """The signing interface of one meter, over its MeterReader's client, device id and bus lock.

    ``sign_timeout`` bounds one signing (command to record; 3 s by default, inside the OCPP
    layer's 5 s budget for a signed reading); ``time_synchronized()`` says
    whether the station's clock counts as synchronized (meter time status 2) or only as
    informative (1).
    """

    def __init__(self, reader: MeterReader, *, sign_timeout: float = 3.0,
                 poll_interval: float = 0.05, gateway: Gateway | None = None,
                 wall_clock: Callable[[], datetime] = _local_now,
                 time_synchronized: Callable[[], bool] = lambda: True,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        if reader.map.signing is None:
            raise ValueError(f"{reader.map.model} does not sign readings")
        if sign_timeout <= 0 or poll_interval <= 0:
            raise ValueError("sign_timeout and poll_interval must be > 0")
        self.reader = reader
        self.regs: SigningRegisters = reader.map.signing
        self.sign_timeout = sign_timeout
        self.poll_interval = poll_interval
        self.gateway = gateway or Gateway()
        self._wall = wall_clock
        self._synchronized = time_synchronized
        self._monotonic = monotonic
        self._key: ec.EllipticCurvePublicKey | None = None
        self._key_hex: str | None = None
        self._lock = asyncio.Lock()  # one signing sequence at a time on this meter

    def __repr__(self) -> str:
        return f"SignedMeter({self.reader!r})"

    @property
    def cached_public_key(self) -> str | None:
        return self._key_hex

    # --- public key ---------------------------------------------------------------------------
    async def public_key(self) -> str:
        """The meter's public key (hex DER SubjectPublicKeyInfo), read once and cached."""
        if self._key_hex is None:
            words = await self._read(self.regs.public_key, self.regs.public_key_count)
            raw = b"".join(w.to_bytes(2, "big") for w in words)[:64]
            if not any(raw):
                raise MeterError("no public key", "the meter's public key registers are empty")
            key = load_public_key(raw)
            self._key, self._key_hex = key, public_key_hex(key)
        return self._key_hex

    # --- signed readings ------------------------------------------------------------------------
    async def signed_reading(self, context: str, id_tag: str | None = None, *,
                             charge_point: str | None = None) -> str:
        """A verified OCMF record for ``context`` ("Transaction.Begin" / "Transaction.End").

        ``id_tag`` goes into the record's identification; ``charge_point`` ("<box> <connector>")
        as CT "CBIDC" / CI. MeterError: "unsupported context", "no transaction" (an end without
        a begin), "signing failed" (the meter's status names the error), "signing timeout",
        "stale record", "signature invalid", and the reader's own reasons.
        """
        if context == BEGIN_CONTEXT:
            begin = True
        elif context == END_CONTEXT:
            begin = False
        else:
            raise MeterError("unsupported context", f"the meter signs only {BEGIN_CONTEXT} and "
                                                    f"{END_CONTEXT}, not {context!r}")
        async with self._lock:
            await self.public_key()
            state = _state(await self._read_one(self.regs.state))
            metadata = self._metadata(id_tag, charge_point)
            if begin and state is not SigningState.IDLE:
                log.warning("%r: a transaction is still open on the meter (%s); ending it first",
                            self, state.name)
                await self._sign(self.regs.command_end, SigningState.IDLE, metadata)
            elif not begin and state is SigningState.IDLE:
                raise MeterError("no transaction", "the meter has no open transaction to end")
            command = self.regs.command_begin if begin else self.regs.command_end
            expected = SigningState.ACTIVE if begin else SigningState.IDLE
            payload_text, signature = await self._sign(command, expected, metadata)
            ocmf = _ocmf(payload_text, signature)
            payload = verify_ocmf(ocmf, self._key)  # type: ignore[arg-type]  # read above
            last = payload["RD"][-1]
            tx = last.get("TX") if isinstance(last, dict) else None
            if not (tx == "B" if begin else tx in END_CODES):
                raise MeterError("stale record", f"the record's last reading has TX {tx!r}")
            return ocmf

    def _metadata(self, id_tag: str | None, charge_point: str | None) -> bytes:
        # The template as the EVerest driver writes it (every key the meter takes, in order);
        # the meter fills in PG, MV, MM, MS, MF and RD.
        template: dict[str, Any] = {
            "FV": "1.0", "GI": _clean(self.gateway.identification),
            "GS": _clean(self.gateway.serial), "GV": _clean(self.gateway.version),
            "PG": "", "MV": "", "MM": "", "MS": "", "MF": "",
            **identification(id_tag),
            "CT": "CBIDC" if charge_point else "EVSEID", "CI": _clean(charge_point or ""),
            "RD": [],
        }
        data = json.dumps(template, separators=(",", ":"), ensure_ascii=True).encode("ascii")
        if len(data) > 2 * self.regs.metadata_count:
            raise MeterError("metadata too long", f"{len(data)} bytes do not fit the meter")
        return data

    async def _sign(self, command: int, expected: SigningState,
                    metadata: bytes) -> tuple[str, bytes]:
        r = self.regs
        now = self._wall()
        offset = now.utcoffset()
        minutes = int(offset.total_seconds() // 60) if offset is not None else 0
        seconds = int(now.timestamp()) & 0xFFFF_FFFF
        status = TIME_STATUS_SYNCHRONIZED if self._synchronized() else TIME_STATUS_INFORMATIVE
        await self._write(r.time_zone, [minutes & 0xFFFF])
        await self._write(r.time, [seconds >> 16, seconds & 0xFFFF])
        await self._write(r.time_status, [status])
        await self._write(r.algorithm, [0])  # ECDSA-secp256r1-SHA256
        words = [int.from_bytes(metadata[i:i + 2].ljust(2, b"\0"), "big")
                 for i in range(0, len(metadata), 2)]
        for start in range(0, len(words), MAX_WRITE_REGISTERS):
            await self._write(r.metadata + start, words[start:start + MAX_WRITE_REGISTERS])
        await self._write(r.metadata_length, [len(metadata)])
        try:  # never sent twice: a repeated begin would be refused as "invalid state"
            await self._write(r.command, [command], retries=0)
        except MeterError as error:
            if error.reason != "timeout":
                raise
            log.warning("%r: no answer to the signing command; waiting for the result", self)
        await self._wait(expected)
        record_length, signature_length = await self._read(r.record_length, 2)
        if not 0 < record_length <= 2 * r.record_count:
            raise MeterError("bad reply", f"record length {record_length}")
        if not 0 < signature_length <= 2 * r.signature_count:
            raise MeterError("bad reply", f"signature length {signature_length}")
        record = await self._read_bytes(r.record, record_length)
        signature = await self._read_bytes(r.signature, signature_length)
        try:
            payload_text = record.decode("ascii")
        except UnicodeDecodeError:
            raise MeterError("bad record", "the record is not ASCII text") from None
        try:
            signature = normalize_der_signature(signature)
        except MeterError:
            raise MeterError("signature invalid", "the meter's signature is not DER") from None
        return payload_text, signature

    async def _wait(self, expected: SigningState) -> None:
        r = self.regs
        deadline = self._monotonic() + self.sign_timeout
        while True:
            if 0 < r.status - r.state < self.reader.map.max_registers_per_read:
                words = await self._read(r.state, r.status - r.state + 1)  # one request
                state, status = words[0], words[-1]
            else:
                state, status = await self._read_one(r.state), await self._read_one(r.status)
            if status >= 128:
                try:
                    name = SignatureStatus(status).name
                except ValueError:
                    name = "unknown"
                raise MeterError("signing failed", f"meter status {status} ({name})")
            if status == SignatureStatus.OK and state == expected:
                return
            if self._monotonic() >= deadline:
                raise MeterError("signing timeout", f"no signed record within "
                                                    f"{self.sign_timeout:g} s (status {status}, "
                                                    f"state {state})")
            await asyncio.sleep(self.poll_interval)

    # --- Modbus -------------------------------------------------------------------------------
    async def _read(self, address: int, count: int) -> list[int]:
        words: list[int] = []
        step = self.reader.map.max_registers_per_read
        for start in range(address, address + count, step):
            words += await self.reader._request(FunctionCode.READ_HOLDING_REGISTERS, start,
                                                min(step, address + count - start))
        return words

    async def _read_one(self, address: int) -> int:
        return (await self._read(address, 1))[0]

    async def _read_bytes(self, address: int, length: int) -> bytes:
        words = await self._read(address, (length + 1) // 2)
        return b"".join(w.to_bytes(2, "big") for w in words)[:length]

    async def _write(self, address: int, values: list[int], *, retries: int | None = None) -> None:
        await self.reader.write_registers(address, values, retries=retries)


# --- the OCPP layer's source of signed readings ---------------------------------------------------

class SignedReadings:
    """Signed readings per connector for the OCPP layer (its ``SignedMeterSource``).

    Built from ``{connector_id: MeterReader}`` (``Hardware.readers``); only readers whose map
    signs (ISKRA_WM3M4) get a :class:`SignedMeter`. Nothing here raises into the caller:
    failures are logged and give None. ``id_tag_of(connector)`` (optional) supplies the
    identification when the caller gives none; ``charge_box_id()`` (optional) puts
    "<box> <connector>" into the record as the charge point.
    """

    def __init__(self, readers: Mapping[int, MeterReader], *,
                 id_tag_of: Callable[[int], str | None] | None = None,
                 charge_box_id: Callable[[], str | None] | None = None,
                 **meter_options: Any) -> None:
        self.meters: dict[int, SignedMeter] = {
            connector: SignedMeter(reader, **meter_options)
            for connector, reader in readers.items() if reader.map.signing is not None}
        self._id_tag_of = id_tag_of
        self._charge_box_id = charge_box_id
        self._key_tasks: dict[int, asyncio.Task[None]] = {}

    def signs(self, connector_id: int) -> bool:
        return connector_id in self.meters

    async def signed_reading(self, connector_id: int, context: str,
                             id_tag: str | None = None) -> str | None:
        """The verified OCMF record, or None (no signing meter, unsupported context, failure)."""
        meter = self.meters.get(connector_id)
        if meter is None:
            return None
        if context not in (BEGIN_CONTEXT, END_CONTEXT):
            log.debug("connector %d: the meter does not sign %s readings", connector_id, context)
            return None
        if id_tag is None and self._id_tag_of is not None:
            id_tag = self._id_tag_of(connector_id)
        box = self._charge_box_id() if self._charge_box_id is not None else None
        try:
            return await meter.signed_reading(context, id_tag,
                                              charge_point=f"{box} {connector_id}" if box else None)
        except MeterError as error:
            log.error("connector %d: no signed %s reading from %r: %s", connector_id, context,
                      meter, error)
        except Exception:  # a driver bug must not take the transaction down with it
            log.exception("connector %d: signed %s reading failed", connector_id, context)
        return None

    def public_key(self, connector_id: int) -> str | None:
        """The meter's public key (hex DER SubjectPublicKeyInfo), None without a signing meter
        or while it was not read yet (a read is then started in the background)."""
        meter = self.meters.get(connector_id)
        if meter is None:
            return None
        if meter.cached_public_key is None:
            self._fetch_key_soon(connector_id, meter)
        return meter.cached_public_key

    async def load_public_keys(self) -> dict[int, str | None]:
        """Read every signing meter's key now (at start-up); failures are logged."""
        keys: dict[int, str | None] = {}
        for connector, meter in self.meters.items():
            keys[connector] = await self._read_key(connector, meter)
        return keys

    def provide_keys(self, store: Any) -> None:
        """Register the ``/hw/connectors/{connector}/meter/key`` provider ("" without one)."""
        store.provide(KEY_NAME, lambda connector: self.public_key(int(connector)) or "")

    async def _read_key(self, connector: int, meter: SignedMeter) -> str | None:
        try:
            return await meter.public_key()
        except MeterError as error:
            log.warning("connector %d: cannot read the meter's public key: %s", connector, error)
        except Exception:
            log.exception("connector %d: reading the meter's public key failed", connector)
        return None

    def _fetch_key_soon(self, connector: int, meter: SignedMeter) -> None:
        task = self._key_tasks.get(connector)
        if task is not None and not task.done():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop (a tool reading the key): nothing to start

        async def fetch() -> None:
            await self._read_key(connector, meter)

        self._key_tasks[connector] = loop.create_task(fetch())
