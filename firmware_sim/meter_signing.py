"""The signing module of a simulated Iskra WM3M4C: OCMF records signed with a real ECDSA key.

The register interface is the one in :data:`stationd.hw.meters.maps.ISKRA_SIGNING` (holding
registers; see the map for which parts are verified). What the simulated meter does:

* **Key pair.** An ECDSA secp256r1 key is generated on first start and kept in
  ``<state_dir>/meter-<name>-signing-key.pem`` (PKCS#8 PEM, mode 0600); a restarted meter signs
  with the same key, as a real meter (whose key never leaves it) does. The public key is served
  as the raw point X‖Y (64 bytes) in ``public_key_count`` registers.
* **Time.** The station writes the UTC time (uint32 seconds), the zone offset (int16 minutes)
  and the time status (1 informative, 2 synchronized). After a power failure (a restart of the
  simulated meter) the time status is 0 again, and the meter refuses to sign until the station
  sets the time (status 128 "invalid date/time").
* **Metadata.** The station writes an OCMF payload template as JSON into the metadata area and
  its length in bytes. Keys the station may give: FV GI GS GV IS IL IF IT ID TT CT CI; the meter
  fills in PG MV MM MS MF RD itself. Anything else, a ``|`` anywhere or JSON that does not parse
  ends in status 252 (invalid message format); an over-long template in 253.
* **Commands.** ``command_begin`` (0x4200, "B") in state IDLE takes the begin reading and
  makes the state ACTIVE; ``command_end`` (0x7200) in an ACTIVE state takes the end reading and
  makes the state IDLE. The status register shows IN_PROGRESS for ``sign_delay_s`` and then OK;
  the record (ASCII) and its signature (DER) are then readable with their lengths in bytes. The
  begin record carries the begin reading; the end record carries begin and end reading (one
  OCMF data set over the whole transaction, as the EVerest driver describes the meter).
* **Readings.** TX "B"/"E"; RV = the import counter in kWh with exactly the counter's
  resolution (the digits the energy registers show, e.g. ``12.345`` for a counter in Wh);
  RI "1-b:1.8.0", RU "kWh", RT "AC", ST "G"; TM = meter time ``2024-05-01T12:00:00,000+0200``
  and the OCMF time status: "S" (time status 2), "I" (1), "U" (0), and "R" for an end reading
  whose begin reading was informative while the meter counted the duration itself. A
  transaction that went through a power failure ends with EF "t" (duration not usable).
* **Pagination.** PG "T<n>", one counter over all records, kept in
  ``<state_dir>/meter-<name>-signing.json`` together with an open transaction, so a meter that
  restarts during a transaction comes back ACTIVE_AFTER_POWER_FAILURE and can still end it.

Test hooks: ``hang`` (signing never finishes), ``tamper`` (alters the record text after it was
signed, as a corrupted transfer would) and ``sign_delay_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pymodbus.constants import ExcCodes

from stationd.hw.meters.codec import decode_raw, encode_fields
from stationd.hw.meters.maps import (
    MeterMap,
    SignatureStatus,
    SigningRegisters,
    SigningState,
)

__all__ = ["SimMeterSigning"]

log = logging.getLogger(__name__)

OBIS_IMPORT_TOTAL = "1-b:1.8.0"
STATION_KEYS = ("FV", "GI", "GS", "GV", "IS", "IL", "IF", "IT", "ID", "TT", "CT", "CI")
METER_KEYS = ("PG", "MV", "MM", "MS", "MF", "RD")
PAYLOAD_ORDER = ("FV", "GI", "GS", "GV", "PG", "MV", "MM", "MS", "MF",
                 "IS", "IL", "IF", "IT", "ID", "TT", "CT", "CI", "RD")
TIME_FLAGS = {0: "U", 1: "I", 2: "S"}


class _Number(str):
    """A JSON number kept exactly as written (OCMF: RV must keep its decimal places)."""


def _dump(value: Any) -> str:
    """Compact JSON in the given key order, with :class:`_Number` written verbatim."""
    if isinstance(value, _Number):
        return str(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(str(k))}:{_dump(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_dump(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=True)


def _words(data: bytes, count: int) -> list[int]:
    data = data.ljust(2 * count, b"\0")
    return [int.from_bytes(data[i:i + 2], "big") for i in range(0, 2 * count, 2)]


class _BadMetadata(Exception):
    def __init__(self, status: SignatureStatus, detail: str) -> None:
        super().__init__(detail)
        self.status = status


class SimMeterSigning:
    """The OCMF signing module of one simulated meter (see the module docstring)."""

    def __init__(self, meter_map: MeterMap, *, serial: str, energy_wh: Callable[[], float],
                 key_path: Path | None = None, state_path: Path | None = None,
                 wall_clock: Callable[[], float] = time.time, sign_delay_s: float = 0.02,
                 firmware: str = "1.0") -> None:
        if meter_map.signing is None:
            raise ValueError(f"{meter_map.model} has no signing registers")
        self.map = meter_map
        self.regs: SigningRegisters = meter_map.signing
        self.serial = serial
        self.vendor, _, self.model = meter_map.product.partition(" ")
        self.firmware = firmware
        self._energy_wh = energy_wh
        self.wall_clock = wall_clock
        self.sign_delay_s = sign_delay_s
        self.hang = False
        self.tamper: Callable[[bytes], bytes] | None = None
        self.key_path = key_path
        self.state_path = state_path
        self._key = self._load_or_create_key()
        self.state = SigningState.IDLE
        self.status = SignatureStatus.IDLE
        self.time_status = 0
        self._time_offset = 0.0
        self._scratch: dict[int, int] = {}  # registers the station writes (time, metadata, ...)
        self._last_command = 0
        self._record = b""
        self._signature = b""
        self._pagination = 0
        self._begin: dict[str, Any] | None = None  # the open transaction's begin reading
        self._power_failure = False
        self._pending: asyncio.TimerHandle | None = None
        self._load_state()
        self.records_signed = 0

    # --- key --------------------------------------------------------------------------------
    @property
    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self._key.public_key()

    @property
    def public_key_der(self) -> bytes:
        """SubjectPublicKeyInfo, DER: what transparency software takes (as hex)."""
        return self.public_key.public_bytes(serialization.Encoding.DER,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)

    def _point(self) -> bytes:
        raw = self.public_key.public_bytes(serialization.Encoding.X962,
                                           serialization.PublicFormat.UncompressedPoint)
        return raw[1:]  # X‖Y without the 0x04 "uncompressed" prefix, as the meter serves it

    def _load_or_create_key(self) -> ec.EllipticCurvePrivateKey:
        path = self.key_path
        if path is not None and path.exists():
            try:
                key = serialization.load_pem_private_key(path.read_bytes(), password=None)
                if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
                    raise ValueError("not a secp256r1 key")
                if path.stat().st_mode & 0o077:
                    os.chmod(path, 0o600)
                return key
            except (OSError, ValueError, TypeError) as error:
                backup = path.with_suffix(".pem.corrupt")
                log.error("sim meter signing: unreadable key %s (%s); kept as %s, new key made",
                          path, error, backup)
                with contextlib.suppress(OSError):
                    os.replace(path, backup)
        key = ec.generate_private_key(ec.SECP256R1())
        if path is not None:
            pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
            _write_atomically(path, pem)  # mkstemp files are 0600
        return key

    # --- registers --------------------------------------------------------------------------
    def _writable(self, address: int) -> bool:
        r = self.regs
        if address == r.command or r.metadata <= address < r.metadata + r.metadata_count:
            return True
        return (r.time_zone <= address <= r.time_status
                and address not in (r.record_length, r.signature_length))

    def meter_time(self) -> float:
        return self.wall_clock() + self._time_offset

    def registers(self) -> dict[int, int]:
        """Address → value of every holding register of the signing interface."""
        r = self.regs
        start, count = r.span
        served = dict.fromkeys(range(start, start + count), 0)
        served.update(self._scratch)
        seconds = int(self.meter_time()) & 0xFFFF_FFFF
        served.update({
            r.state: int(self.state), r.command: self._last_command, r.status: int(self.status),
            r.time: seconds >> 16, r.time + 1: seconds & 0xFFFF, r.time_status: self.time_status,
            r.record_length: len(self._record), r.signature_length: len(self._signature),
        })
        for base, count_, data in ((r.record, r.record_count, self._record),
                                   (r.public_key, r.public_key_count, self._point()),
                                   (r.signature, r.signature_count, self._signature)):
            served.update(zip(range(base, base + count_), _words(data, count_)))
        return served

    def write(self, address: int, values: Sequence[int]) -> ExcCodes | None:
        """A station's write of ``values`` from ``address`` (None = done, else the exception)."""
        r = self.regs
        addresses = range(address, address + len(values))
        if not all(self._writable(a) for a in addresses):
            return ExcCodes.ILLEGAL_ADDRESS
        if r.command in addresses and self.status is SignatureStatus.IN_PROGRESS:
            return ExcCodes.DEVICE_BUSY
        command = None
        for a, value in zip(addresses, values):
            value = int(value) & 0xFFFF
            if a == r.command:
                command = value
            elif a == r.time_status:
                self.time_status = value
            else:
                self._scratch[a] = value
        if r.time + 1 in addresses:  # the low word completes a time setting
            written = (self._scratch.get(r.time, 0) << 16) | self._scratch.get(r.time + 1, 0)
            self._time_offset = written - self.wall_clock()
        if command is not None:
            self._last_command = command
            self._command(command)
        return None

    # --- commands ---------------------------------------------------------------------------
    def _command(self, command: int) -> None:
        r = self.regs
        if command == r.command_begin:
            kind = "B"
            allowed = self.state is SigningState.IDLE
        elif command == r.command_end:
            kind = "E"
            allowed = self.state is not SigningState.IDLE
        else:
            self.status = SignatureStatus.INVALID_COMMAND
            return
        if not allowed:
            self.status = SignatureStatus.INVALID_STATE
            return
        if self.time_status == 0:
            self.status = SignatureStatus.INVALID_DATE_TIME
            return
        try:
            metadata = self._metadata()
        except _BadMetadata as error:
            log.warning("sim meter %s: metadata refused: %s", self.serial, error)
            self.status = error.status
            return
        reading = self._reading(kind)
        if kind == "B":
            readings = [reading]
            self._begin = reading
            self._power_failure = False
            self.state = SigningState.ACTIVE
        else:
            readings = [self._begin, reading] if self._begin is not None else [reading]
            self._begin = None
            self.state = SigningState.IDLE
        self._pagination += 1
        payload = self._payload(metadata, readings)
        self._save_state()
        self.status = SignatureStatus.IN_PROGRESS
        if self.hang:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is None or self.sign_delay_s <= 0:
            self._finish(payload)
        else:
            self._pending = loop.call_later(self.sign_delay_s, self._finish, payload)

    def _finish(self, payload: bytes) -> None:
        self._pending = None
        if len(payload) > 2 * self.regs.record_count:
            self.status = SignatureStatus.INVALID_MESSAGE_SIZE
            return
        signature = self._key.sign(payload, ec.ECDSA(hashes.SHA256()))
        if self.tamper is not None:
            payload = self.tamper(payload)
        self._record, self._signature = payload, signature
        self.records_signed += 1
        self.status = SignatureStatus.OK

    def _metadata(self) -> dict[str, Any]:
        r = self.regs
        length = self._scratch.get(r.metadata_length, 0)
        if length > 2 * r.metadata_count:
            raise _BadMetadata(SignatureStatus.INVALID_MESSAGE_SIZE, f"length {length}")
        if length == 0:
            return {}
        words = [self._scratch.get(a, 0) for a in range(r.metadata, r.metadata + (length + 1) // 2)]
        data = b"".join(w.to_bytes(2, "big") for w in words)[:length]
        try:
            text = data.decode("ascii")
            metadata = json.loads(text)
        except (UnicodeDecodeError, ValueError) as error:
            raise _BadMetadata(SignatureStatus.INVALID_MESSAGE_FORMAT, str(error)) from None
        if "|" in text or not isinstance(metadata, dict):
            raise _BadMetadata(SignatureStatus.INVALID_MESSAGE_FORMAT, "not an OCMF template")
        unknown = set(metadata) - set(STATION_KEYS) - set(METER_KEYS)
        if unknown:
            raise _BadMetadata(SignatureStatus.INVALID_MESSAGE_FORMAT, f"keys {sorted(unknown)}")
        for key, value in metadata.items():
            if key == "IS":
                ok = isinstance(value, bool)
            elif key == "IF":
                ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
            elif key == "RD":
                ok = isinstance(value, list)
            else:
                ok = isinstance(value, str)
            if not ok:
                raise _BadMetadata(SignatureStatus.INVALID_MESSAGE_FORMAT, f"{key}: {value!r}")
        return {key: value for key, value in metadata.items() if key in STATION_KEYS}

    def _payload(self, metadata: dict[str, Any], readings: list[dict[str, Any]]) -> bytes:
        own = {"PG": f"T{self._pagination}", "MV": self.vendor, "MM": self.model,
               "MS": self.serial, "MF": self.firmware, "RD": readings}
        body: dict[str, Any] = {"FV": metadata.get("FV", "1.0")}
        for key in PAYLOAD_ORDER:
            if key in own:
                body[key] = own[key]
            elif key in metadata:
                body[key] = metadata[key]
        # OCMF: the user assignment group (IS, IT mandatory) is there whenever a transaction is.
        body.setdefault("IS", False)
        body.setdefault("IT", "NONE")
        return _dump(_reorder(body)).encode("ascii")

    def _reading(self, kind: str) -> dict[str, Any]:
        flag = TIME_FLAGS.get(self.time_status, "U")
        error_flags = ""
        if kind == "E":
            begin_flag = (self._begin or {}).get("TM", " U")[-1]
            if begin_flag == "I" and flag == "I" and not self._power_failure:
                flag = "R"  # relative time accounting from an informative start
            if self._power_failure:
                error_flags = "t"
        return {"TM": f"{self._time_text()} {flag}", "TX": kind, "RV": self._energy_kwh(),
                "RI": OBIS_IMPORT_TOTAL, "RU": "kWh", "RT": "AC", "EF": error_flags, "ST": "G"}

    def _time_text(self) -> str:
        minutes = self._scratch.get(self.regs.time_zone, 0)
        minutes = minutes - 0x10000 if minutes & 0x8000 else minutes
        zone = timezone(timedelta(minutes=minutes))
        moment = datetime.fromtimestamp(self.meter_time(), zone)
        sign = "-" if minutes < 0 else "+"
        hours, rest = divmod(abs(minutes), 60)
        return (f"{moment:%Y-%m-%dT%H:%M:%S},{moment.microsecond // 1000:03d}"
                f"{sign}{hours:02d}{rest:02d}")

    def _energy_kwh(self) -> _Number:
        """The import counter exactly as the energy registers show it, in kWh."""
        field = self.map.field("energy_import_wh")
        registers = encode_fields(self.map, {"energy_import_wh": self._energy_wh()})
        counter = decode_raw(field.dtype, [registers[field.address + i] for i in range(2)],
                             self.map.word_order)
        exponent = 0
        if field.exponent_field is not None:
            exponent_field = self.map.field(field.exponent_field)
            exponent = int(decode_raw(exponent_field.dtype, [registers[exponent_field.address]],
                                      self.map.word_order))
        wh = Decimal(int(counter)).scaleb(exponent) * Decimal(str(field.scale))
        decimals = max(0, 3 - exponent)
        return _Number(f"{wh / 1000:.{decimals}f}")

    # --- persistence ------------------------------------------------------------------------
    def _load_state(self) -> None:
        path = self.state_path
        if path is None or not path.exists():
            return
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
            pagination = int(state.get("pagination", 0))
            begin = state.get("begin")
            if begin is not None:
                begin = dict(begin)
                begin["RV"] = _Number(str(Decimal(str(begin["RV"]))))
        except (OSError, ValueError, TypeError, KeyError, ArithmeticError) as error:
            backup = path.with_suffix(".json.corrupt")
            log.error("sim meter signing: unreadable state %s (%s); kept as %s", path, error, backup)
            with contextlib.suppress(OSError):
                os.replace(path, backup)
            return
        self._pagination = pagination
        if begin is not None:  # the meter lost power during a transaction
            self._begin = begin
            self._power_failure = True
            self.state = SigningState.ACTIVE_AFTER_POWER_FAILURE

    def _save_state(self) -> None:
        if self.state_path is None:
            return
        begin = None
        if self._begin is not None:
            begin = {key: str(value) for key, value in self._begin.items()}
        state = {"pagination": self._pagination, "begin": begin}
        _write_atomically(self.state_path, json.dumps(state).encode())

    def close(self) -> None:
        """Drop a signing still in progress (the meter goes away)."""
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None


def _reorder(body: dict[str, Any]) -> dict[str, Any]:
    return {key: body[key] for key in PAYLOAD_ORDER if key in body}


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
