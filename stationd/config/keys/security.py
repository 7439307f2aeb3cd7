"""Keys of the OCPP 1.6 security whitepaper that the station's connection uses."""

from __future__ import annotations

from ..registry import Access, KeyDef
from ..value_types import AuthorizationKey, Bool, Int
from .checks import check_security_profile

SECURITY = "OCPP 1.6 Security"

KEYS = (
    KeyDef("SecurityProfile", Int(0, 2), 2, family=SECURITY, reconnects=True, check=check_security_profile,
           description="0: ws, no credentials; 1: ws + HTTP Basic; 2: wss (TLS, server verified) + HTTP Basic. "
                       "A backend may only raise it"),
    KeyDef("AuthorizationKey", AuthorizationKey(), None, Access.W, family=SECURITY, reconnects=True,
           description="HTTP Basic password (user = chargebox id); hex over OCPP, plain text where typed; "
                       "never read back"),
    KeyDef("CertificateStoreMaxLength", Int(1, 100), 10, Access.R, family=SECURITY,
           description="How many root certificates (InstallCertificate) the station keeps at most"),
    KeyDef("CentralSystemRootCertificateInstalled", Bool(), None, Access.R, family=SECURITY, hidden=True,
           computed=True,
           description="Whether the station has a trust anchor for security profile 2: an installed "
                       "CentralSystemRootCertificate or the config file's ocpp.ca_file"),
)
