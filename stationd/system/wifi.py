"""A Wi-Fi WAN: the network to join, its key, and wpa_supplicant's configuration file.

The passphrase is never kept: :func:`psk_from_passphrase` turns it at once into the 256-bit
pre-shared key, as ``wpa_passphrase`` does (PBKDF2-HMAC-SHA1, the SSID as salt, 4096 rounds;
IEEE 802.11i), and only that key (64 hex digits) is kept and written, to a 0600 file. The key
is a secret like the station's others: ``repr``/:meth:`WifiSettings.describe` show
``psk=****``, :meth:`WifiSettings.public` leaves it out, and :class:`PskSecrets` registers it
with the log redaction (:func:`stationd.logs.add_secret_source`).

Checking belongs to :class:`stationd.system.network.WanConfig` (as its IP settings do): this
module only lists the problems, named ``wifi.ssid``, ``wifi.security``, ``wifi.passphrase``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from .. import logs

# security (as the WebUI names it) -> wpa_supplicant's key_mgmt
SECURITIES = {"WPA2-Personal": "WPA-PSK", "Open": "NONE"}
MAX_SSID_BYTES = 32
WPA_SUPPLICANT_DIR = "/etc/wpa_supplicant"  # Debian's wpa_supplicant@.service reads wpa_supplicant-%I.conf here
CTRL_INTERFACE = "/run/wpa_supplicant"
HEADER = "# Written by stationd (WebUI Network > Interfaces, the Wi-Fi WAN). Do not edit: stationd replaces this file.\n"
MASK = "****"
_HEX64 = re.compile(r"[0-9A-Fa-f]{64}\Z")


def is_wifi_interface(name: str) -> bool:
    return isinstance(name, str) and name.startswith("wlan")


def supplicant_file(interface: str) -> str:
    """The device path of the interface's wpa_supplicant configuration."""
    return f"{WPA_SUPPLICANT_DIR}/wpa_supplicant-{interface}.conf"


def supplicant_unit(interface: str) -> str:
    return f"wpa_supplicant@{interface}.service"


@dataclass(frozen=True)
class WifiSettings:
    """The network a ``wlan*`` WAN joins: SSID, security and, for WPA2-Personal, the derived
    PSK (64 lower-case hex digits; never the passphrase)."""

    ssid: str
    security: str = "WPA2-Personal"
    psk: str | None = field(default=None, repr=False)

    @property
    def key_mgmt(self) -> str:
        return SECURITIES.get(self.security, "")

    def problems(self) -> list[str]:
        found = ssid_problems(self.ssid)
        if self.security not in SECURITIES:
            found.append(f"wifi.security: must be one of {', '.join(SECURITIES)} (got {self.security!r})")
        elif self.security == "Open" and self.psk is not None:
            found.append("wifi.passphrase: only with WPA2-Personal")
        elif self.security != "Open" and not (isinstance(self.psk, str) and _HEX64.match(self.psk)):
            found.append("wifi.passphrase: required with WPA2-Personal")
        return found

    def public(self) -> dict[str, str]:
        """What may be shown: the SSID, the security and wpa_supplicant's key_mgmt (no key)."""
        return {"ssid": self.ssid, "security": self.security, "key_mgmt": self.key_mgmt}

    def describe(self) -> str:
        text = f"wifi ssid={_quoted(self.ssid)} security={self.security}"
        return text + (f" psk={MASK}" if self.psk else "")

    def __repr__(self) -> str:
        return f"WifiSettings(ssid={self.ssid!r}, security={self.security!r}, psk={MASK if self.psk else None})"


def ssid_problems(ssid: object) -> list[str]:
    if not isinstance(ssid, str) or not ssid:
        return ["wifi.ssid: required (1 to 32 bytes)"]
    size = len(ssid.encode("utf-8", "surrogatepass"))
    if size > MAX_SSID_BYTES:
        return [f"wifi.ssid: at most {MAX_SSID_BYTES} bytes of UTF-8 (got {size})"]
    if "\x00" in ssid or any(0xD800 <= ord(c) <= 0xDFFF for c in ssid):
        return ["wifi.ssid: must be UTF-8 text without NUL characters"]
    return []


def psk_from_passphrase(passphrase: str, ssid: str) -> tuple[str | None, list[str]]:
    """The 256-bit PSK (hex) of a WPA2 passphrase (8-63 printable ASCII characters) or of a raw
    key (exactly 64 hex digits); (None, problems) otherwise. The problems never quote it."""
    if not isinstance(passphrase, str) or not passphrase:
        return None, ["wifi.passphrase: required with WPA2-Personal (8 to 63 characters)"]
    if len(passphrase) == 64:
        if _HEX64.match(passphrase):
            return passphrase.lower(), []
        return None, ["wifi.passphrase: 64 characters must all be hex digits (a raw key); "
                      "a passphrase has 8 to 63 characters"]
    if not 8 <= len(passphrase) <= 63:
        return None, [f"wifi.passphrase: must be 8 to 63 characters (got {len(passphrase)})"]
    if not all(" " <= c <= "~" for c in passphrase):
        return None, ["wifi.passphrase: only printable ASCII characters (letters, digits, punctuation, space)"]
    return derive_psk(passphrase, ssid), []


def derive_psk(passphrase: str, ssid: str) -> str:
    """What ``wpa_passphrase SSID PASSPHRASE`` prints as ``psk=``."""
    salt = ssid.encode("utf-8", "surrogatepass") if isinstance(ssid, str) else b""
    return hashlib.pbkdf2_hmac("sha1", passphrase.encode("ascii"), salt, 4096, 32).hex()


def _quoted(text: str) -> str:
    return '"' + "".join(c if c.isprintable() and c not in '"\\' else f"\\x{ord(c):02x}" for c in text) + '"'


# ---- wpa_supplicant-<interface>.conf --------------------------------------------------------------


def render_supplicant(settings: WifiSettings) -> str:
    """The interface's wpa_supplicant file: the SSID in hex (no quoting problems), the raw PSK
    (wpa_supplicant never sees the passphrase) or ``key_mgmt=NONE`` for an open network."""
    lines = [HEADER.rstrip("\n"), f"ctrl_interface={CTRL_INTERFACE}", "update_config=0", "",
             "network={", f"\tssid={settings.ssid.encode('utf-8').hex()}", f"\tkey_mgmt={settings.key_mgmt}"]
    if settings.psk:
        lines += ["\tproto=RSN", f"\tpsk={settings.psk}"]
    lines.append("}")
    return "\n".join(lines) + "\n"


def parse_supplicant(text: str) -> WifiSettings:
    """Read back a file :func:`render_supplicant` wrote; ValueError when it says something else
    (the message never quotes a key)."""
    values: dict[str, str] = {}
    inside = False
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line == "network={":
            inside = True
        elif line == "}":
            inside = False
        elif inside:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    try:
        ssid = bytes.fromhex(values.get("ssid", "")).decode("utf-8")
    except ValueError:
        raise ValueError("the ssid is not in the hex form stationd writes") from None
    security = next((name for name, mgmt in SECURITIES.items() if mgmt == values.get("key_mgmt")), None)
    if security is None:
        raise ValueError("key_mgmt is neither WPA-PSK nor NONE")
    psk = values.get("psk")
    settings = WifiSettings(ssid, security, psk.lower() if psk else None)
    if settings.problems():
        raise ValueError("the network block is not one stationd writes (ssid, key_mgmt, a raw 64-digit psk)")
    return settings


# ---- the key as a secret of the log redaction --------------------------------------------------


class PskSecrets:
    """The PSKs an edge has seen, registered with the log redaction the first time there is one
    (so a log line, the OCPP journal or the diagnostics archive never shows it); :meth:`close`
    removes the registration."""

    def __init__(self) -> None:
        self._known: list[str] = []
        self._remove: Callable[[], None] | None = None

    def remember(self, settings: WifiSettings | None) -> None:
        if settings is None or not settings.psk or settings.psk in self._known:
            return
        self._known.append(settings.psk)
        if self._remove is None:
            self._remove = logs.add_secret_source(self.values)

    def values(self) -> list[str]:
        return list(self._known)

    def close(self) -> None:
        if self._remove is not None:
            self._remove()
            self._remove = None
