"""Keys of the OCPP 1.6 security whitepaper that the station's connection uses."""

from __future__ import annotations

from ..registry import Access, KeyDef
from ..value_types import AuthorizationKey, Bool, Int, Text
from .checks import check_security_profile

SECURITY = "OCPP 1.6 Security"

KEYS = (
    KeyDef("SecurityProfile", Int(0, 3), 2, family=SECURITY, reconnects=True, check=check_security_profile,
           description="0: ws, no credentials; 1: ws + HTTP Basic; 2: wss (TLS, server verified) + HTTP Basic; "
                       "3: wss with the charge point certificate as TLS client certificate, no HTTP Basic. "
                       "A backend may only raise it"),
    KeyDef("AuthorizationKey", AuthorizationKey(), None, Access.W, family=SECURITY, reconnects=True,
           description="HTTP Basic password (user = chargebox id); hex over OCPP, plain text where typed; "
                       "never read back"),
    KeyDef("CpoName", Text(max_length=64), "", family=SECURITY,
           description="The charge point operator's name: the O (organizationName) of the station's "
                       "certificate signing requests (SignCertificate); empty: no O"),
    KeyDef("CertificateSignedMaxChainSize", Int(1, 10000), 10000, Access.R, family=SECURITY, unit="characters",
           description="The longest certificateChain a CertificateSigned may carry"),
    KeyDef("CertificateStoreMaxLength", Int(1, 100), 10, Access.R, family=SECURITY,
           description="How many root certificates (InstallCertificate) the station keeps at most"),
    KeyDef("AdditionalRootCertificateCheck", Bool(), False, Access.R, family=SECURITY,
           description="Always false: several CentralSystemRootCertificates may be installed side by side. "
                       "The whitepaper's true mode (one root plus a fallback, a new root signed by the old "
                       "one) is not supported"),
    KeyDef("CentralSystemRootCertificateInstalled", Bool(), None, Access.R, family=SECURITY, hidden=True,
           computed=True,
           description="Whether the station has a trust anchor for security profiles 2 and 3: an installed "
                       "CentralSystemRootCertificate or the config file's ocpp.ca_file"),
    KeyDef("ChargePointCertificateInstalled", Bool(), None, Access.R, family=SECURITY, hidden=True,
           computed=True,
           description="Whether the station has a charge point certificate (CertificateSigned) that is "
                       "valid now, with its private key: what security profile 3 connects with"),
)
