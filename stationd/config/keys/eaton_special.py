"""Eaton "special" keys (seed 003 table 6): actions and live reports, hidden from full listings."""

from __future__ import annotations

from ..registry import Access, KeyDef
from ..value_types import Int, Json, Text
from .shapes import network_shape

SPECIAL = "Eaton special"

KEYS = (
    KeyDef("FactoryReset", Text(choices=("Active", "Active-now", "Inactive")), "Inactive", family=SPECIAL,
           hidden=True, reconnects=True,
           description="Active: reset to factory settings at the next reboot; Active-now: at once; "
                       "Inactive: cancel a pending reset. Reads Active while a reset is pending"),
    KeyDef("NetworkConfig", Json(shape=network_shape, shape_help="JSON array, one object per interface"), [],
           Access.R, family=SPECIAL, hidden=True, computed=True,
           description="Configuration of each network interface (link, enabled, dhcp, routing, ip, mask, bridge; "
                       "a Wi-Fi WAN: mode, ssid, key_mgmt; its psk is write-only and never shown)"),
    KeyDef("NetworkStatus", Json(shape=network_shape, shape_help="JSON array, one object per interface"), [],
           Access.R, family=SPECIAL, hidden=True, computed=True,
           description="State of each network interface (link, state, ipv4, mask, mac, ...)"),
    KeyDef("RSSI", Int(), -999, Access.R, family=SPECIAL, hidden=True, computed=True, unit="dBm",
           description="Wireless signal level; -999 when unknown"),
)
