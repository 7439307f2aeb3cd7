"""Standard OCPP 1.6 configuration keys (OCPP 1.6 §9; Eaton table 4; Technagon §2.3)."""

from __future__ import annotations

from ..registry import Access, KeyDef
from ..value_types import Bool, Csl, Int
from .checks import check_phase_rotation

CORE = "OCPP 1.6 Core"
LOCAL_LIST = "OCPP 1.6 Local Auth List Management"
RESERVATION = "OCPP 1.6 Reservation"
SMART = "OCPP 1.6 Smart Charging"

# Measurands the station's meters and controllers can supply (OCPP 1.6 Measurand values).
MEASURANDS = (
    "Energy.Active.Import.Register",
    "Energy.Active.Export.Register",
    "Energy.Active.Import.Interval",
    "Energy.Active.Export.Interval",
    "Power.Active.Import",
    "Power.Active.Export",
    "Power.Offered",
    "Current.Import",
    "Current.Offered",
    "Voltage",
    "Frequency",
    "Temperature",
)
FEATURE_PROFILES = (
    "Core",
    "FirmwareManagement",
    "LocalAuthListManagement",
    "Reservation",
    "RemoteTrigger",
    "SmartCharging",
)
SECONDS_PER_DAY = 86400
RO = Access.R


def _measurands(max_key: str) -> dict:
    return {"type": Csl(members=MEASURANDS, members_label="measurands"), "max_items_key": max_key, "unit": None}


KEYS = (
    # Core profile
    KeyDef("AllowOfflineTxForUnknownId", Bool(), False, family=CORE,
           description="Start a transaction for an unknown idTag while the backend is unreachable"),
    KeyDef("AuthorizationCacheEnabled", Bool(), True, family=CORE,
           description="Remember idTags the backend accepted (authorization cache)"),
    KeyDef("AuthorizeRemoteTxRequests", Bool(), False, RO, family=CORE,
           description="RemoteStartTransaction idTags are authorized like a local card first"),
    KeyDef("BlinkRepeat", Int(0, 100), 3, family=CORE,
           description="How often the station blinks its lights when it signals"),
    KeyDef("ClockAlignedDataInterval", Int(0, SECONDS_PER_DAY), 0, family=CORE, unit="s",
           description="Clock-aligned meter value interval from midnight; 0 = off"),
    KeyDef("ConnectionTimeOut", Int(1, 3600), 120, family=CORE, unit="s",
           description="Time from authorization until the cable must be plugged in"),
    KeyDef("ConnectorPhaseRotation", Csl(item_pattern=r"[0-9]{1,2}\.(RST|RTS|SRT|STR|TRS|TSR|NotApplicable|Unknown)",
                                         item_help="items look like 1.RST (connector.rotation: RST, RTS, SRT, STR, "
                                                   "TRS, TSR, NotApplicable or Unknown)"),
           ("0.RST",), family=CORE, max_items_key="ConnectorPhaseRotationMaxLength", check=check_phase_rotation,
           description="Phase rotation of each connector relative to the grid (0 = station)"),
    KeyDef("ConnectorPhaseRotationMaxLength", Int(), 2, RO, family=CORE,
           derive=lambda ctx: ctx.get("NumberOfConnectors") + 1,
           description="Items ConnectorPhaseRotation may hold (connectors + 1)"),
    KeyDef("GetConfigurationMaxKeys", Int(), 200, RO, family=CORE,
           description="Key names one GetConfiguration may ask for"),
    KeyDef("HeartbeatInterval", Int(0, SECONDS_PER_DAY), 600, family=CORE, unit="s",
           description="Heartbeat after this much inactivity; at least one a day"),
    KeyDef("LightIntensity", Int(0, 100), 66, family=CORE, unit="%",
           description="Brightness of the station's lights"),
    KeyDef("LocalAuthorizeOffline", Bool(), True, family=CORE,
           description="Offline, start at once for idTags in the local list or cache"),
    KeyDef("LocalPreAuthorize", Bool(), False, family=CORE,
           description="Online, start at once for idTags valid in the local list or cache"),
    KeyDef("MaxEnergyOnInvalidId", Int(0, 1_000_000), 0, family=CORE, unit="Wh",
           description="Energy still delivered after the backend refused an offline-started idTag"),
    KeyDef("MeterValuesAlignedData", default=(), family=CORE,
           description="Measurands of clock-aligned MeterValues", **_measurands("MeterValuesAlignedDataMaxLength")),
    KeyDef("MeterValuesAlignedDataMaxLength", Int(), len(MEASURANDS), RO, family=CORE,
           description="Items MeterValuesAlignedData may hold"),
    KeyDef("MeterValuesSampledData", default=("Energy.Active.Import.Register",), family=CORE,
           description="Measurands of periodic MeterValues during a transaction",
           **_measurands("MeterValuesSampledDataMaxLength")),
    KeyDef("MeterValuesSampledDataMaxLength", Int(), len(MEASURANDS), RO, family=CORE,
           description="Items MeterValuesSampledData may hold"),
    KeyDef("MeterValueSampleInterval", Int(0, SECONDS_PER_DAY), 10, family=CORE, unit="s",
           description="Interval of periodic MeterValues during a transaction; 0 = off"),
    KeyDef("MinimumStatusDuration", Int(0, 3600), 0, family=CORE, unit="s",
           description="A status must last this long before it is reported"),
    KeyDef("NumberOfConnectors", Int(1, 4), 1, RO, family=CORE,
           description="Connectors of this station"),
    KeyDef("ResetRetries", Int(0, 10), 3, family=CORE,
           description="Attempts to reset the station before giving up"),
    KeyDef("StopTransactionOnEVSideDisconnect", Bool(), True, family=CORE,
           description="Unplugging on the vehicle side stops the transaction"),
    KeyDef("StopTransactionOnInvalidId", Bool(), True, family=CORE,
           description="Stop a transaction the backend refused in StartTransaction.conf"),
    KeyDef("StopTxnAlignedData", default=(), family=CORE,
           description="Clock-aligned measurands in StopTransaction.transactionData",
           **_measurands("StopTxnAlignedDataMaxLength")),
    KeyDef("StopTxnAlignedDataMaxLength", Int(), 50, RO, family=CORE,
           description="Items StopTxnAlignedData may hold"),
    KeyDef("StopTxnSampledData", default=("Energy.Active.Import.Register",), family=CORE,
           description="Sampled measurands in StopTransaction.transactionData",
           **_measurands("StopTxnSampledDataMaxLength")),
    KeyDef("StopTxnSampledDataMaxLength", Int(), 100, RO, family=CORE,
           description="Items StopTxnSampledData may hold"),
    KeyDef("SupportedFeatureProfiles", Csl(members=FEATURE_PROFILES), FEATURE_PROFILES, RO, family=CORE,
           max_items_key="SupportedFeatureProfilesMaxLength",
           description="OCPP 1.6 feature profiles this station implements"),
    KeyDef("SupportedFeatureProfilesMaxLength", Int(), len(FEATURE_PROFILES), RO, family=CORE,
           description="Items SupportedFeatureProfiles may hold"),
    KeyDef("TransactionMessageAttempts", Int(1, 100), 5, family=CORE,
           description="Send attempts of a transaction message before it is parked (never dropped)"),
    KeyDef("TransactionMessageRetryInterval", Int(1, 3600), 5, family=CORE, unit="s",
           description="Wait between attempts, multiplied by the attempt number"),
    KeyDef("UnlockConnectorOnEVSideDisconnect", Bool(), True, family=CORE,
           description="Unlock the socket when the vehicle side unplugs"),
    KeyDef("WebSocketPingInterval", Int(0, 3600), 60, family=CORE, unit="s",
           description="WebSocket ping interval; a missing pong reconnects; 0 = no pings"),
    # Local Auth List Management profile
    KeyDef("LocalAuthListEnabled", Bool(), True, family=LOCAL_LIST,
           description="Use the local authorization list the backend manages"),
    KeyDef("LocalAuthListMaxLength", Int(), 100_000, RO, family=LOCAL_LIST,
           description="Entries the local authorization list can hold"),
    KeyDef("SendLocalListMaxLength", Int(), 100_000, RO, family=LOCAL_LIST,
           description="Entries one SendLocalList may carry"),
    # Reservation profile
    KeyDef("ReserveConnectorZeroSupported", Bool(), False, RO, family=RESERVATION,
           description="Reservations of connector 0 (any connector) are supported"),
    # Smart Charging profile
    KeyDef("ChargeProfileMaxStackLevel", Int(), 20, RO, family=SMART,
           description="Highest stackLevel of a charging profile"),
    KeyDef("ChargingScheduleAllowedChargingRateUnit", Csl(members=("Current", "Power")), ("Current", "Power"), RO,
           family=SMART, description="Units a charging schedule may use"),
    KeyDef("ChargingScheduleMaxPeriods", Int(), 1440, RO, family=SMART,
           description="Periods one charging schedule may hold"),
    KeyDef("ConnectorSwitch3to1PhaseSupported", Bool(), False, RO, family=SMART,
           description="The station can switch a connector from three phases to one"),
    KeyDef("MaxChargingProfilesInstalled", Int(), 32, RO, family=SMART,
           description="Charging profiles the station can hold"),
)

