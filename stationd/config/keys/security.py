"""Keys of the OCPP 1.6 security whitepaper that the station's connection uses."""

from __future__ import annotations

from ..registry import Access, KeyDef
from ..value_types import AuthorizationKey, Int
from .checks import check_security_profile

SECURITY = "OCPP 1.6 Security"

KEYS = (
    KeyDef("SecurityProfile", Int(0, 2), 2, family=SECURITY, reconnects=True, check=check_security_profile,
           description="0: ws, no credentials; 1: ws + HTTP Basic; 2: wss (TLS, server verified) + HTTP Basic. "
                       "A backend may only raise it"),
    KeyDef("AuthorizationKey", AuthorizationKey(), None, Access.W, family=SECURITY, reconnects=True,
           description="HTTP Basic password (user = chargebox id); hex over OCPP, plain text where typed; "
                       "never read back"),
)
