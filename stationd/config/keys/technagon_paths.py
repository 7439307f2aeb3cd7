"""Technagon path-style keys (seed 004 §2.3)."""

from __future__ import annotations

from ..registry import Access, Alias, KeyDef
from ..value_types import Bool, Csl, Int, Json, Password, SecretText, Text
from .checks import check_activation_code
from .shapes import ID_TAG

PATHS = "Technagon path"
RO = Access.R

KEYS = (
    KeyDef("/hw/auth/device/Dummy/allowStop", Bool(), False, family=PATHS,
           description="In Plug&Charge mode, the button stops charging"),
    KeyDef("/hw/auth/device/Dummy/id/value", ID_TAG, "FREECHARGING", family=PATHS,
           description="idTag each free (Plug&Charge) session is authorized with"),
    KeyDef("/hw/connectors/{connector}/data", Json(), {}, RO, family=PATHS, computed=True,
           description="Meter data of the connector: voltage and current per phase"),
    KeyDef("/hw/connectors/{connector}/meter/key", Text(), "", RO, family=PATHS, computed=True,
           description="Public key of the connector's signing meter (empty: no signing meter)"),
    KeyDef("/Network/Gateway/Device/Connection/signal", Int(), -999, RO, family=PATHS, computed=True, unit="dBm",
           description="Mobile signal level; -999 when unknown"),
    KeyDef("/power/station/mainsMaxCurrent", Int(0, 2_000_000), 16000, family=PATHS, unit="mA",
           description="Current per phase the station may draw from the grid, shared by its connectors"),
    KeyDef("/Product/ActivationCode", SecretText(max_length=100), None, Access.W, family=PATHS,
           check=check_activation_code, description="Product activation code (not needed: all features are on)"),
    KeyDef("/Product/Features/", Csl(), (), RO, family=PATHS,
           description="Features enabled by activation codes (none needed)"),
    KeyDef("/Safety/Ovp/failed", Bool(), False, RO, family=PATHS, computed=True,
           description="Over-voltage protection failed; replacement recommended"),
    KeyDef("/Security/enableLocalVendorAccess", Bool(), False, family=PATHS,
           description="Vendor access to the local Linux terminal"),
    KeyDef("/Security/enableRemoteVendorAccess", Bool(), False, family=PATHS,
           description="Vendor access over ssh/openvpn"),
    KeyDef("/WebUi/password/reset", Password(), None, Access.W, family=PATHS,
           description="Set the WebUI admin password (write-only; stored as a hash)"),
)

ALIASES = (
    Alias("/hw/auth/device/Dummy/enabled", of="CsMode", family=PATHS, type=Bool(),
          to_alias=lambda cs_mode: cs_mode == 1, from_alias=lambda enabled: 1 if enabled else 0,
          description="Plug&Charge (free charging): true is CsMode 1, false is CsMode 0"),
    Alias("/ocpp/chargeBoxIdentity", of="BoxId", family=PATHS, description="Chargebox identity (same as BoxId)"),
    Alias("/ocpp/stopTransactionsOnReset", of="StopTxOnReset", family=PATHS,
          description="Stop transactions on an OCPP Reset (same as StopTxOnReset)"),
)
