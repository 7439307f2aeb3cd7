"""Keys Technagon stations list besides the OCPP standard ones (seed 004 §2.3)."""

from __future__ import annotations

from ..registry import Access, Effect, KeyDef
from ..value_types import Bool, Csl, SecretText, Text, TimeZone

TECHNAGON = "Technagon"

KEYS = (
    KeyDef("CurrentDateTime", Text(), None, Access.R, family=TECHNAGON,
           derive=lambda ctx: ctx.now().isoformat(timespec="seconds").replace("+00:00", "Z"),
           description="The station's clock (UTC, ISO 8601)"),
    KeyDef("SupportedFileTransferProtocols", Csl(members=("FTP", "FTPS", "HTTP", "HTTPS")),
           ("FTP", "FTPS", "HTTP", "HTTPS"), Access.R, family=TECHNAGON,
           description="Protocols of UpdateFirmware and GetDiagnostics locations"),
    KeyDef("ChargingProfileStackPerConnector", Bool(), True, family=TECHNAGON,
           description="TxProfile stack levels are counted per connector"),
    KeyDef("StopTxOnReset", Bool(), True, family=TECHNAGON,
           description="A Reset stops running transactions first (true for OCPP 1.6 compliance)"),
    KeyDef("TimeSource", Text(choices=("NTP", "HeartBeat", "Browser")), "NTP", family=TECHNAGON,
           description="Where the clock is set from: NTP, the backend's Heartbeat answers, or the installer's "
                       "browser (once, WebUI Station > Date/Time; NTP off)"),
    KeyDef("TimeZone", TimeZone(), "UTC", family=TECHNAGON,
           description="Local time zone of the station (display and clock-aligned data)"),
    KeyDef("PreAuthorize", Text(choices=("", "giro-e")), "", family=TECHNAGON,
           description="Pre-authorization method: giro-e, or empty for none"),
    KeyDef("GiroEStaticToken", SecretText(max_length=100), None, Access.W, family=TECHNAGON,
           description="Static token for giro-e pre-authorization (never read back)"),
    KeyDef("AuthIdLegicPrime", Text(max_length=100), "", family=TECHNAGON, effect=Effect.REBOOT,
           description="Pattern the reader applies to Legic Prime card ids"),
    KeyDef("AuthIdLegicAdvant", Text(max_length=100), "", family=TECHNAGON, effect=Effect.REBOOT,
           description="Pattern the reader applies to Legic Advant card ids"),
)
