"""The NetworkStatus key (Eaton seed 003 §4.3.1) from ``ip -j addr show`` output.

One object per network interface, in the example's keys and order: link, state, ipv4, mask,
mac, bridge, enabled (and rx-quality/rx-level/rx-noise for wlan* interfaces). ``state`` is
"connected" (carrier and an IPv4 address), "up" (carrier, no IPv4 address) or "down";
``enabled`` is the interface's administrative state (flag UP). ``ipv4``/``mask`` are left out
without an address, ``mac`` without a hardware address (a raw-IP modem interface), ``bridge``
(true when the interface is enslaved to a bridge) on Ethernet-type interfaces only.
Loopback, CAN and tunnel-type links (sit, gre, ...) are not network connections of the
station and are left out.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any

LISTED_LINK_TYPES = ("ether", "none")  # Ethernet, USB gadget, Wi-Fi; raw-IP modems and tun devices
WIRELESS_PREFIX = "wl"


class StatusOutputError(ValueError):
    """Output that is not what ``ip -j addr show`` prints."""


def parse_ip_addr(output: str) -> list[dict[str, Any]]:
    try:
        links = json.loads(output or "[]")
    except ValueError as exc:
        raise StatusOutputError(f"ip -j addr: not JSON ({exc})") from None
    if not isinstance(links, list):
        raise StatusOutputError("ip -j addr: expected a JSON list")
    return [entry for link in links if isinstance(link, dict) and (entry := _entry(link)) is not None]


def _entry(link: dict[str, Any]) -> dict[str, Any] | None:
    name, link_type = link.get("ifname"), link.get("link_type")
    if not isinstance(name, str) or link_type not in LISTED_LINK_TYPES:
        return None
    flags = set(link.get("flags") or ())
    enabled, carrier = "UP" in flags, "LOWER_UP" in flags
    ipv4 = next((a for a in link.get("addr_info") or () if isinstance(a, dict) and a.get("family") == "inet"
                 and a.get("scope") != "host" and isinstance(a.get("local"), str)), None)
    state = "down"
    if enabled and carrier:
        state = "connected" if ipv4 else "up"
    entry: dict[str, Any] = {"link": name, "state": state}
    if ipv4:
        entry["ipv4"] = ipv4["local"]
        entry["mask"] = str(ipaddress.IPv4Network(f"0.0.0.0/{int(ipv4.get('prefixlen', 32))}").netmask)
    mac = link.get("address")
    if link_type == "ether" and isinstance(mac, str) and mac:
        entry["mac"] = mac.upper()
    wireless = name.startswith(WIRELESS_PREFIX)
    if link_type == "ether" and not wireless:
        entry["bridge"] = "master" in link
    entry["enabled"] = enabled
    if wireless:  # the example's wlan fields; this station reads no radio statistics
        entry.update({"rx-quality": 0, "rx-level": 0, "rx-noise": 0})
    return entry
