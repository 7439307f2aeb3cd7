"""The mobile modem as data: ModemManager's ``mmcli -J`` output, the signal level, SIM settings.

mmcli's JSON nests its dotted field names (``modem.generic.signal-quality.value`` is
``{"modem": {"generic": {"signal-quality": {"value": "75"}}}}``) and writes ``--`` for an
unknown value; every value is a string.

Signal: the RSSI in dBm comes from ``mmcli --signal-get`` (LTE, then UMTS, GSM, CDMA); when
the modem gives no extended signal values, from the generic signal quality percentage,
which ModemManager derives from the 3GPP CSQ scale (0-31 = -113..-51 dBm), so
``rssi = -113 + quality * 62 / 100``. The station reports WeakSignal (SPEC §7, connector 0)
while the RSSI is below :data:`WEAK_SIGNAL_DBM` (-95 dBm: below it LTE/UMTS links drop and
retry often) and clears it again at :data:`WEAK_SIGNAL_CLEAR_DBM` (-92 dBm) or better, so a
level around the threshold does not toggle the status.

SIM settings: the PIN and the password never appear in ``repr``, logs or dry-run records;
:meth:`MobileSettings.describe` and :meth:`MobileSettings.public` show them as ``****``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from .runner import MASK

UNKNOWN = "--"
RSSI_UNKNOWN = -999  # the RSSI key's value when there is no reading (Eaton table 6)
WEAK_SIGNAL_DBM = -95
WEAK_SIGNAL_CLEAR_DBM = -92
SIGNAL_REFRESH_S = 30  # mmcli --signal-setup: how often the modem refreshes the extended values
SIGNAL_TECHNOLOGIES = ("lte", "umts", "gsm", "cdma1x", "evdo")  # with an "rssi" value, best first
AUTH_METHODS = ("none", "pap", "chap", "mschapv2")  # ModemManager allowed-auth names
# The vendor guide's "Service Mode": which radio access the modem may use, as the value of
# ``mmcli --set-allowed-modes`` (ModemManager's SetAllowedModes; "any" lets the modem choose).
SERVICE_MODES = {"automatic": "any", "4g": "4g", "3g": "3g", "2g": "2g"}
_APN = re.compile(r"[A-Za-z0-9._-]{0,100}\Z")
_PIN = re.compile(r"[0-9]{4,8}\Z")
_FORBIDDEN_IN_CREDENTIALS = set(",'\"")  # mmcli's key=value,key=value list


class ModemOutputError(ValueError):
    """Output that is not what mmcli -J prints."""


class MobileSettingsError(ValueError):
    """SIM settings that cannot be applied; nothing was changed."""

    def __init__(self, problems: list[str]):
        self.problems = tuple(problems)
        super().__init__("; ".join(self.problems))


@dataclass(frozen=True)
class ModemInfo:
    """What the WebUI's Mobile page and BootNotification (iccid, imsi) show of the modem."""

    path: str
    manufacturer: str | None = None
    model: str | None = None
    revision: str | None = None
    imei: str | None = None
    state: str | None = None
    operator: str | None = None
    access_technologies: tuple[str, ...] = ()
    signal_quality: int | None = None  # percent
    unlock_required: str | None = None  # e.g. "sim-pin"; None when unlocked
    unlock_retries: Mapping[str, int] = field(default_factory=dict)  # e.g. {"sim-pin": 3}
    sim_path: str | None = None
    iccid: str | None = None
    imsi: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"manufacturer": self.manufacturer, "model": self.model, "revision": self.revision,
                "imei": self.imei, "state": self.state, "operator": self.operator,
                "access_technologies": list(self.access_technologies), "signal_quality": self.signal_quality,
                "unlock_required": self.unlock_required, "iccid": self.iccid, "imsi": self.imsi}


@dataclass(frozen=True)
class SignalReading:
    rssi_dbm: int | None = None  # None: no modem or no value
    source: str = "none"  # lte, umts, gsm, cdma1x, evdo, quality (from the percentage), none

    @property
    def rssi_key(self) -> int:
        """The value of the RSSI key and of /Network/Gateway/Device/Connection/signal."""
        return RSSI_UNKNOWN if self.rssi_dbm is None else self.rssi_dbm

    def weak(self, threshold: int = WEAK_SIGNAL_DBM) -> bool:
        return self.rssi_dbm is not None and self.rssi_dbm < threshold


# ---- parsing mmcli -J ------------------------------------------------------------------------


def _json(output: str, what: str) -> dict[str, Any]:
    try:
        data = json.loads(output)
    except ValueError as exc:
        raise ModemOutputError(f"mmcli {what}: not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ModemOutputError(f"mmcli {what}: expected a JSON object")
    return data


def _value(data: Any, *path: str) -> str | None:
    for key in path:
        data = data.get(key) if isinstance(data, dict) else None
    if isinstance(data, str) and data.strip() and data.strip() != UNKNOWN:
        return data.strip()
    return None


def _list(data: Any, *path: str) -> list[str]:
    for key in path:
        data = data.get(key) if isinstance(data, dict) else None
    if isinstance(data, str):
        data = [data]
    return [v for v in data or () if isinstance(v, str) and v.strip() and v != UNKNOWN]


def parse_modem_list(output: str) -> list[str]:
    """``mmcli -J -L``: the D-Bus paths of the modems."""
    return _list(_json(output, "-L"), "modem-list")


def parse_modem(output: str) -> ModemInfo:
    """``mmcli -J -m PATH`` (without the SIM's identity; see :func:`parse_sim`)."""
    modem = _json(output, "-m").get("modem")
    if not isinstance(modem, dict):
        raise ModemOutputError('mmcli -m: no "modem" object')
    generic = modem.get("generic") or {}
    quality = _value(generic, "signal-quality", "value")
    retries = {}
    for item in _list(generic, "unlock-retries"):  # "sim-pin (3)"
        match = re.fullmatch(r"\s*([\w-]+)\s*\((\d+)\)\s*", item)
        if match:
            retries[match[1]] = int(match[2])
    return ModemInfo(
        path=_value(modem, "dbus-path") or "",
        manufacturer=_value(generic, "manufacturer"), model=_value(generic, "model"),
        revision=_value(generic, "revision"),
        imei=_value(modem, "3gpp", "imei") or _value(generic, "equipment-identifier"),
        state=_value(generic, "state"), operator=_value(modem, "3gpp", "operator-name"),
        access_technologies=tuple(_list(generic, "access-technologies")),
        signal_quality=int(quality) if quality and quality.isdigit() else None,
        unlock_required=_value(generic, "unlock-required"),
        unlock_retries=retries, sim_path=_value(generic, "sim"))


def parse_sim(output: str) -> tuple[str | None, str | None]:
    """``mmcli -J -i PATH``: (iccid, imsi)."""
    sim = _json(output, "-i").get("sim")
    return _value(sim, "properties", "iccid"), _value(sim, "properties", "imsi")


def parse_signal(output: str) -> tuple[SignalReading, bool]:
    """``mmcli -J -m PATH --signal-get``: the reading, and whether extended signal
    retrieval is switched on (a refresh rate above 0)."""
    signal = _json(output, "--signal-get").get("modem", {}).get("signal") or {}
    rate = _value(signal, "refresh", "rate")
    polling = bool(rate and rate.isdigit() and int(rate) > 0)
    for technology in SIGNAL_TECHNOLOGIES:
        value = _value(signal, technology, "rssi")
        try:
            return SignalReading(round(float(value)), technology), polling
        except (TypeError, ValueError):
            continue
    return SignalReading(), polling


def rssi_from_quality(percent: int | None) -> SignalReading:
    if percent is None:
        return SignalReading()
    return SignalReading(round(-113 + max(0, min(percent, 100)) * 62 / 100), "quality")


# ---- SIM settings ------------------------------------------------------------------------------


@dataclass(frozen=True)
class MobileSettings:
    """WebUI Network > Mobile: service mode, APN, SIM PIN, authentication method, username, password.

    ``pin``/``password`` None means "not given" (:meth:`with_secrets_from` keeps the stored
    one); "" clears it.
    """

    apn: str = ""
    pin: str | None = field(default=None, repr=False)
    auth: str = "none"
    username: str = ""
    password: str | None = field(default=None, repr=False)
    service_mode: str = "automatic"

    def __post_init__(self) -> None:
        problems = []
        if self.service_mode not in SERVICE_MODES:
            problems.append(f"service_mode: must be one of {', '.join(SERVICE_MODES)}")
        if not isinstance(self.apn, str) or not _APN.match(self.apn):
            problems.append("apn: up to 100 letters, digits, '.', '_' or '-'")
        if self.pin not in (None, "") and not (isinstance(self.pin, str) and _PIN.match(self.pin)):
            problems.append("pin: 4 to 8 digits")
        if self.auth not in AUTH_METHODS:
            problems.append(f"auth: must be one of {', '.join(AUTH_METHODS)}")
        for name in ("username", "password"):
            value = getattr(self, name)
            if value in (None, ""):
                continue
            if not isinstance(value, str) or len(value) > 64 or not value.isprintable() \
                    or _FORBIDDEN_IN_CREDENTIALS & set(value):
                problems.append(f"{name}: up to 64 printable characters without , ' or \"")
            elif self.auth == "none":
                problems.append(f"{name}: needs an authentication method (pap, chap or mschapv2)")
        if problems:
            raise MobileSettingsError(problems)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MobileSettings:
        if not isinstance(data, Mapping):
            raise MobileSettingsError(["the mobile settings must be a JSON object"])
        known = ("apn", "pin", "auth", "username", "password", "service_mode")
        unknown = [f"{key}: unknown field" for key in data if key not in known]
        if unknown:
            raise MobileSettingsError(unknown)
        return cls(**{key: data[key] for key in known if key in data})

    def with_secrets_from(self, stored: MobileSettings) -> MobileSettings:
        """These settings, with the stored PIN/password where none was given."""
        return replace(self, pin=stored.pin if self.pin is None else self.pin,
                       password=stored.password if self.password is None else self.password)

    def public(self) -> dict[str, Any]:
        """For the WebUI: secrets shown as ``****`` when set, "" when not."""
        return {"service_mode": self.service_mode, "apn": self.apn, "pin": MASK if self.pin else "",
                "auth": self.auth, "username": self.username, "password": MASK if self.password else ""}

    def describe(self) -> str:
        """One line for logs and the dry run's record (secrets masked)."""
        public = self.public()
        return " ".join(f"{key}={public[key]}" for key in ("service_mode", "apn", "auth", "username", "password", "pin"))

    def connect_argument(self) -> str:
        """The value of ``mmcli --simple-connect=`` (contains the password)."""
        parts = [f"apn={self.apn}"] if self.apn else []
        if self.auth != "none":
            parts.append(f"allowed-auth={self.auth}")
            if self.username:
                parts.append(f"user={self.username}")
            if self.password:
                parts.append(f"password={self.password}")
        return ",".join(parts)

    def stored(self) -> dict[str, Any]:
        """Everything, secrets included: for the daemon's own 0600 file only."""
        return {"service_mode": self.service_mode, "apn": self.apn, "pin": self.pin or "", "auth": self.auth,
                "username": self.username, "password": self.password or ""}

    def allowed_modes_argument(self) -> str:
        """The value of ``mmcli --set-allowed-modes=``."""
        return SERVICE_MODES[self.service_mode]
