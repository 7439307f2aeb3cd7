"""Network settings as data: the WAN interface (WebUI Network > Interfaces), the installer's
USB network, their systemd-networkd ``.network`` files, and the NetworkConfig key's JSON.

A :class:`WanConfig` is valid or does not exist: building one checks every field and raises
:class:`NetworkConfigError` listing every problem (``ipv4.gateway: ...``), so a config that
reaches the file writer is complete. A ``wlan*`` WAN carries its Wi-Fi network
(:class:`stationd.system.wifi.WifiSettings`: SSID, security, the derived PSK, never the
passphrase); no other interface may. The USB gadget network is fixed by the product
(installers browse to https://192.168.32.1), see :data:`USB_ADDRESS`.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .wifi import SECURITIES, WifiSettings, is_wifi_interface, psk_from_passphrase

METHODS = ("dhcp", "manual")
MAX_DNS = 3
USB_ADDRESS = ipaddress.IPv4Interface("192.168.32.1/24")  # SPEC §1: the laptop gets an address by DHCP
USB_POOL_OFFSET, USB_POOL_SIZE = 100, 50  # the laptop gets 192.168.32.100-149
USB_LEASE_S = 600
WAN_FILE = "10-stationd-wan.network"  # sorts before distribution defaults (e.g. 80-*, 99-*)
USB_FILE = "10-stationd-usb.network"
HEADER = "# Written by stationd ({what}). Do not edit: stationd replaces this file.\n"
_INTERFACE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,14}\Z")  # Linux IFNAMSIZ - 1

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class NetworkConfigError(ValueError):
    """Network settings that cannot be applied; nothing was changed."""

    def __init__(self, problems: list[str] | tuple[str, ...]):
        self.problems = tuple(problems)
        super().__init__("; ".join(self.problems))


@dataclass(frozen=True)
class IpSettings:
    """One address family of an interface: DHCP (IPv6: router advertisements and DHCPv6) or
    a manual address with prefix length, gateway and DNS servers."""

    method: str = "dhcp"
    address: str | None = None
    prefix: int | None = None
    gateway: str | None = None
    dns: tuple[str, ...] = ()

    @property
    def manual(self) -> bool:
        return self.method == "manual"

    def interface(self) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface:
        return ipaddress.ip_interface(f"{self.address}/{self.prefix}")

    def to_dict(self, version: int) -> dict[str, Any]:
        data: dict[str, Any] = {"method": self.method}
        if self.manual:
            data.update(address=self.address, prefix=self.prefix)
            if version == 4:
                data["netmask"] = str(self.interface().netmask)
            if self.gateway:
                data["gateway"] = self.gateway
        data["dns"] = list(self.dns)
        return data


@dataclass(frozen=True)
class WanConfig:
    """The external interface (WAN/Internet) towards the OCPP backend."""

    interface: str = "eth0"
    ipv4: IpSettings = field(default_factory=IpSettings)
    ipv6: IpSettings = field(default_factory=IpSettings)
    wifi: WifiSettings | None = None  # required for a wlan* interface, refused for any other

    def __post_init__(self) -> None:
        problems = _interface_problems("interface", self.interface)
        for name, version in (("ipv4", 4), ("ipv6", 6)):
            settings, found = _checked(name, version, getattr(self, name))
            problems += found
            object.__setattr__(self, name, settings)
        problems += _wifi_problems(self.interface, self.wifi)
        if problems:
            raise NetworkConfigError(problems)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, stored_wifi: WifiSettings | None = None) -> WanConfig:
        """From the WebUI's JSON: ``{"interface": "eth0", "ipv4": {"method": "manual",
        "address": "192.0.2.10", "prefix": 24 (or "netmask": "255.255.255.0", or
        "address": "192.0.2.10/24"), "gateway": "192.0.2.1", "dns": ["192.0.2.53"]},
        "ipv6": {"method": "dhcp"}}``; a ``wlan*`` interface adds ``"wifi": {"ssid": "...",
        "security": "WPA2-Personal" or "Open", "passphrase": "..."}``. The passphrase becomes
        the PSK at once; left out or empty, ``stored_wifi``'s PSK is kept if the SSID is the same."""
        if not isinstance(data, Mapping):
            raise NetworkConfigError(["the network settings must be a JSON object"])
        known = ("interface", "ipv4", "ipv6", "wifi")
        problems = [f"{key}: unknown field" for key in data if key not in known]
        interface = data.get("interface", "eth0")
        if not isinstance(interface, str):
            problems += _interface_problems("interface", interface)
            interface = "eth0"
        families: dict[str, IpSettings] = {}
        for name, version in (("ipv4", 4), ("ipv6", 6)):
            settings, found = _from_dict(name, version, data.get(name, {}))
            families[name] = settings
            problems += found
        wifi, found = _wifi_from_dict(data.get("wifi"), stored_wifi)
        problems += found
        try:
            config = cls(interface=interface, wifi=wifi, **families)
        except NetworkConfigError as exc:
            said = {problem.partition(":")[0] for problem in found}  # one problem per Wi-Fi field
            problems += [problem for problem in exc.problems if problem.partition(":")[0] not in said]
        if problems:
            raise NetworkConfigError(problems)
        return config

    def to_dict(self) -> dict[str, Any]:
        """The WebUI's JSON (``wifi`` without any key: the PSK is write-only)."""
        data: dict[str, Any] = {"interface": self.interface, "ipv4": self.ipv4.to_dict(4), "ipv6": self.ipv6.to_dict(6)}
        if self.wifi is not None:
            data["wifi"] = {"ssid": self.wifi.ssid, "security": self.wifi.security}
        return data

    def describe(self) -> str:
        """One line for logs and the dry run's record."""
        parts = [self.interface]
        for name, settings in (("ipv4", self.ipv4), ("ipv6", self.ipv6)):
            text = f"{name}=manual {settings.address}/{settings.prefix}" if settings.manual else f"{name}=dhcp"
            if settings.gateway:
                text += f" gateway {settings.gateway}"
            if settings.dns:
                text += f" dns {','.join(settings.dns)}"
            parts.append(text)
        if self.wifi is not None:
            parts.append(self.wifi.describe())  # psk=****
        return " ".join(parts)


# ---- validation ---------------------------------------------------------------------------


def _interface_problems(name: str, value: object) -> list[str]:
    if not isinstance(value, str) or not _INTERFACE_NAME.match(value):
        return [f"{name}: {value!r} is not an interface name (1-15 letters, digits, '.', '_', '-')"]
    return []


def _wifi_problems(interface: str, wifi: object) -> list[str]:
    if wifi is None:
        if is_wifi_interface(interface):
            return [f"wifi: required for the Wi-Fi interface {interface}: give the network's SSID and security"]
        return []
    if not isinstance(wifi, WifiSettings):
        return ["wifi: must be an object"]
    if not is_wifi_interface(interface):
        return [f"wifi: only for a Wi-Fi interface (wlan…), not {interface}"]
    return wifi.problems()


def _wifi_from_dict(data: object, stored: WifiSettings | None) -> tuple[WifiSettings | None, list[str]]:
    """The Wi-Fi settings of the WebUI's JSON, the passphrase turned into the PSK; problems
    are those of the passphrase and of the JSON's shape (WanConfig checks the rest)."""
    if data is None:
        return None, []
    if not isinstance(data, Mapping):
        return None, ["wifi: must be an object"]
    problems = [f"wifi.{key}: unknown field" for key in data if key not in ("ssid", "security", "passphrase")]
    ssid, security = data.get("ssid", ""), data.get("security", "WPA2-Personal")
    passphrase = data.get("passphrase") or ""
    if not isinstance(ssid, str):
        return None, problems + ["wifi.ssid: must be text"]
    psk = None
    if security == "Open":
        if passphrase:
            problems.append("wifi.passphrase: only with WPA2-Personal (leave it empty for an open network)")
    elif security in SECURITIES:
        if passphrase:
            psk, found = psk_from_passphrase(passphrase, ssid)
            problems += found
        elif stored is not None and stored.psk and stored.ssid == ssid:
            psk = stored.psk  # the stored key belongs to this SSID: kept
        elif stored is not None and stored.psk:
            problems.append("wifi.passphrase: required: the SSID changed, and a WPA2 key belongs to its SSID")
        else:
            problems.append("wifi.passphrase: required with WPA2-Personal (8 to 63 characters)")
    return WifiSettings(ssid, security if isinstance(security, str) else repr(security), psk), problems


def _from_dict(name: str, version: int, data: object) -> tuple[IpSettings, list[str]]:
    if not isinstance(data, Mapping):
        return IpSettings(), [f"{name}: must be an object"]
    known = ("method", "address", "prefix", "netmask", "gateway", "dns")
    problems = [f"{name}.{key}: unknown field" for key in data if key not in known]
    address, prefix = data.get("address"), data.get("prefix")
    if isinstance(address, str) and "/" in address:
        address, _, cidr = address.partition("/")
        if prefix is None:
            prefix = cidr
    netmask = data.get("netmask")
    if netmask not in (None, ""):
        if version != 4:
            problems.append(f"{name}.netmask: IPv6 takes a prefix length")
        elif prefix is not None:
            problems.append(f"{name}: give the prefix length or the netmask, not both")
        else:
            try:
                prefix = ipaddress.IPv4Network(f"0.0.0.0/{netmask}").prefixlen
            except ValueError:
                problems.append(f"{name}.netmask: {netmask!r} is not a netmask like 255.255.255.0")
    if isinstance(prefix, str) and prefix.strip().isdigit():
        prefix = int(prefix)
    dns = data.get("dns", ())
    dns = (dns,) if isinstance(dns, str) else dns
    if not isinstance(dns, (list, tuple)):
        problems.append(f"{name}.dns: must be a list of addresses")
        dns = ()
    settings = IpSettings(method=data.get("method", "dhcp"), address=address or None, prefix=prefix,
                          gateway=data.get("gateway") or None, dns=tuple(d for d in dns if d != ""))
    return settings, problems


def _checked(name: str, version: int, settings: IpSettings) -> tuple[IpSettings, list[str]]:
    """The settings with addresses in canonical spelling, and every problem found."""
    problems: list[str] = []
    if settings.method not in METHODS:
        problems.append(f"{name}.method: must be one of {', '.join(METHODS)} (got {settings.method!r})")
    dns, dns_problems = _dns(name, version, settings.dns)
    problems += dns_problems
    if settings.method != "manual":
        for key in ("address", "prefix", "gateway"):
            if getattr(settings, key) not in (None, ""):
                problems.append(f"{name}.{key}: only with method manual")
        return IpSettings(method=settings.method, dns=dns), problems
    address = _address(f"{name}.address", version, settings.address, problems)
    prefix = settings.prefix
    limit = 32 if version == 4 else 128
    if isinstance(prefix, bool) or not isinstance(prefix, int) or not 1 <= prefix <= limit:
        problems.append(f"{name}.prefix: must be a whole number from 1 to {limit} (got {prefix!r})")
        prefix = None
    gateway = None
    if settings.gateway not in (None, ""):
        gateway = _address(f"{name}.gateway", version, settings.gateway, problems, link_local_ok=version == 6)
    if address is not None and prefix is not None:
        problems += _subnet_problems(name, version, address, prefix, gateway)
    return IpSettings("manual", str(address) if address else settings.address, prefix,
                      str(gateway) if gateway else None, dns), problems


def _address(name: str, version: int, value: object, problems: list[str], *,
             link_local_ok: bool = False) -> IpAddress | None:
    if value in (None, ""):
        problems.append(f"{name}: required with method manual")
        return None
    try:
        address = ipaddress.ip_address(value) if isinstance(value, str) else None
    except ValueError:
        address = None
    if address is None or address.version != version:
        problems.append(f"{name}: {value!r} is not an IPv{version} address")
        return None
    kind = _unusable(address, link_local_ok)
    if kind:
        problems.append(f"{name}: {address} is {kind}")
        return None
    return address


def _unusable(address: IpAddress, link_local_ok: bool = False) -> str | None:
    if address.is_unspecified:
        return "the unspecified address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_multicast:
        return "a multicast address"
    if address.is_link_local and not link_local_ok:
        return "a link-local address"
    if isinstance(address, ipaddress.IPv4Address) and address == ipaddress.IPv4Address("255.255.255.255"):
        return "the broadcast address"
    return None


def _subnet_problems(name: str, version: int, address: IpAddress, prefix: int,
                     gateway: IpAddress | None) -> list[str]:
    problems = []
    network = ipaddress.ip_network(f"{address}/{prefix}", strict=False)
    if version == 4 and prefix <= 30 and address in (network.network_address, network.broadcast_address):
        which = "network" if address == network.network_address else "broadcast"
        problems.append(f"{name}.address: {address} is the {which} address of {network}")
    if version == 4 and network.overlaps(USB_ADDRESS.network):
        problems.append(f"{name}.address: {network} overlaps the installer's USB network {USB_ADDRESS.network}")
    if gateway is not None:
        if gateway == address:
            problems.append(f"{name}.gateway: must not be the station's own address")
        elif gateway not in network and not gateway.is_link_local:
            problems.append(f"{name}.gateway: {gateway} is outside {network}")
    return problems


def _dns(name: str, version: int, values: tuple[str, ...]) -> tuple[tuple[str, ...], list[str]]:
    problems: list[str] = []
    if len(values) > MAX_DNS:
        problems.append(f"{name}.dns: at most {MAX_DNS} servers")
    found = []
    for value in values:
        address = _address(f"{name}.dns", version, value, problems)
        if address is not None:
            found.append(str(address))
    return tuple(found), problems


# ---- systemd-networkd files -----------------------------------------------------------------


def render_wan(config: WanConfig) -> str:
    """The WAN interface's ``.network`` file."""
    v4, v6 = config.ipv4, config.ipv6
    dhcp = {(True, True): "yes", (True, False): "ipv4", (False, True): "ipv6", (False, False): "no"}[
        (not v4.manual, not v6.manual)]
    lines = [HEADER.format(what="WebUI Network > Interfaces, the WAN interface").rstrip("\n"),
             "[Match]", f"Name={config.interface}", "", "[Network]", f"DHCP={dhcp}",
             f"IPv6AcceptRA={'no' if v6.manual else 'yes'}"]
    for settings in (v4, v6):
        if settings.manual:
            lines.append(f"Address={settings.address}/{settings.prefix}")
            if settings.gateway:
                lines.append(f"Gateway={settings.gateway}")
    lines += [f"DNS={server}" for settings in (v4, v6) for server in settings.dns]
    return "\n".join(lines) + "\n"


def parse_wan(text: str, wifi_of: Callable[[str], WifiSettings | None] = lambda interface: None) -> WanConfig:
    """Read back a file :func:`render_wan` wrote (NetworkConfigError when it says something else);
    ``wifi_of(interface)``: a ``wlan*`` interface's network (as its wpa_supplicant file says)."""
    section, interface = "", None
    values: dict[str, list[str]] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, _, value = line.partition("=")
        if section == "Match" and key == "Name":
            interface = value
        elif section == "Network":
            values.setdefault(key, []).append(value)
    dhcp = (values.get("DHCP") or ["no"])[-1]
    families: dict[int, dict[str, Any]] = {4: {"method": "dhcp" if dhcp in ("yes", "ipv4") else "manual"},
                                           6: {"method": "dhcp" if dhcp in ("yes", "ipv6") else "manual"}}
    try:
        for value in values.get("Address", []):
            interface_address = ipaddress.ip_interface(value)
            families[interface_address.version].update(address=str(interface_address.ip),
                                                       prefix=interface_address.network.prefixlen)
        for key, field_name in (("Gateway", "gateway"), ("DNS", "dns")):
            for value in values.get(key, []):
                version = ipaddress.ip_address(value).version
                if field_name == "dns":
                    families[version].setdefault("dns", []).append(value)
                else:
                    families[version]["gateway"] = value
    except ValueError as exc:
        raise NetworkConfigError([f"unreadable address in the .network file: {exc}"]) from None
    data: dict[str, Any] = {"interface": interface or "", "ipv4": families[4], "ipv6": families[6]}
    wifi = wifi_of(interface) if is_wifi_interface(interface or "") else None
    if wifi is not None:
        data["wifi"] = {"ssid": wifi.ssid, "security": wifi.security}
    return WanConfig.from_dict(data, stored_wifi=wifi)


def render_usb_gadget(interface: str = "usb0") -> str:
    """The installer's USB network: the station is 192.168.32.1/24 and gives the laptop an
    address by DHCP, but no router, DNS or time server, so the laptop's own Internet access
    and name resolution stay as they were."""
    return "\n".join([
        HEADER.format(what="the installer's USB network").rstrip("\n"),
        "[Match]", f"Name={interface}", "",
        "[Network]", f"Address={USB_ADDRESS}", "DHCPServer=yes",
        "# the address exists before a laptop is plugged in, so the WebUI can listen on it",
        "ConfigureWithoutCarrier=yes", "LinkLocalAddressing=no", "IPv6AcceptRA=no", "",
        "[DHCPServer]", f"PoolOffset={USB_POOL_OFFSET}", f"PoolSize={USB_POOL_SIZE}",
        f"DefaultLeaseTimeSec={USB_LEASE_S}", "EmitRouter=no", "EmitDNS=no", "EmitNTP=no", "EmitTimezone=no",
    ]) + "\n"


# ---- the NetworkConfig key (Eaton seed 003 §4.3.1) ------------------------------------------


def network_config_json(wan: WanConfig, usb_interface: str = "usb0") -> list[dict[str, Any]]:
    """One object per interface in the keys and order of the Eaton example: link, enabled,
    dhcp ("client", "server", or "no" for a manual address), routing, ip, mask, then bridge
    (Ethernet) or mode, ssid, key_mgmt (Wi-Fi: "client", the SSID, "WPA-PSK" or "NONE").
    The psk is left out, as GetConfiguration leaves out the AuthorizationKey's value: it is
    write-only (SPEC §4.3). IPv4 only, as in the example; the WebUI reads
    :meth:`WanConfig.to_dict` for IPv6."""
    entry: dict[str, Any] = {"link": wan.interface, "enabled": True,
                             "dhcp": "no" if wan.ipv4.manual else "client", "routing": "no"}
    if wan.ipv4.manual:
        entry.update(ip=wan.ipv4.address, mask=str(wan.ipv4.interface().netmask))
    if wan.wifi is not None:
        entry.update(mode="client", ssid=wan.wifi.ssid, key_mgmt=wan.wifi.key_mgmt)
    else:
        entry["bridge"] = False
    usb = {"link": usb_interface, "enabled": True, "dhcp": "server", "routing": "no",
           "ip": str(USB_ADDRESS.ip), "mask": str(USB_ADDRESS.netmask), "bridge": False}
    return [entry, usb]
