"""Eaton Green Motion vendor keys (seed 003 table 5: general, local list, power, connection)."""

from __future__ import annotations

from ..registry import Access, Alias, Effect, KeyDef
from ..value_types import Bool, Csl, Int, Json, Text, Url
from .checks import grid_phase_connection_shape
from .shapes import CHARGEBOX_ID_HELP, CHARGEBOX_ID_PATTERN, ID_TAG, evses_shape

EATON = "Eaton"
RO = Access.R
REBOOT = Effect.REBOOT

# DataTransfer message ids (seed 003 table 7). AC stations send ChargeStopError,
# MachineMismatch, PlugType, RemoteShutOff and StopSource; the DC ids are accepted and never sent.
DATA_TRANSFER_IDS = (
    "ChargeError", "ChargeLogs", "ChargePhase", "ChargeStopError", "ConvDerating", "ConvFault",
    "ConvFwVersion", "ConvMeasures", "ConvStatus", "EVSEStatus", "MachineMismatch", "MeasFlagTemp0",
    "MeasFlagTemp1", "MeasFlagTemp2", "PlugType", "RemoteShutOff", "StopSource",
)

KEYS = (
    KeyDef("BoxId", Text(min_length=1, max_length=48, pattern=CHARGEBOX_ID_PATTERN, pattern_help=CHARGEBOX_ID_HELP),
           None, family=EATON, reconnects=True,
           description="Chargebox identity: the last path segment of the backend URL"),
    KeyDef("BoxName", Text(max_length=64), "", family=EATON, description="Station name"),
    KeyDef("CsMode", Int(0, 1), 1, family=EATON,
           description="0 = Authenticated (a card or the backend authorizes), 1 = Free (Plug&Start)"),
    KeyDef("CurrentLocale", Text(choices=("en", "fr", "it", "de")), "en", family=EATON,
           description="Language of the station's display"),
    KeyDef("EnabledDataTransfer", Csl(members=DATA_TRANSFER_IDS, members_label="DataTransfer ids"),
           DATA_TRANSFER_IDS, family=EATON,
           description="DataTransfer message ids the station sends; empty disables all"),
    KeyDef("EnergyMeterType", Text(choices=("None", "MID")), "None", RO, family=EATON,
           description="None, or MID = Iskra WM3M4 (MID certified)"),
    KeyDef("EnergyMeterEVReady", Bool(), False, family=EATON, description="EV-Ready status"),
    KeyDef("Endpoint", Url(), "", family=EATON, reconnects=True,
           description="Backend URL; the chargebox id is appended, or replaces {BoxId} where the URL has it"),
    KeyDef("EVSES", Json(shape=evses_shape, shape_help="JSON array of {id, type, maxPower}"),
           [{"id": 1, "type": "Mode 3 Type 2 socket", "maxPower": 22080}], RO, family=EATON,
           description="Installed connectors: id, type, max power (W)"),
    KeyDef("HWatchdog", Int(0, 1), 1, family=EATON, effect=REBOOT, description="Hardware watchdog 0/1"),
    KeyDef("LogLevelAppService", Int(0, 2), 0, family=EATON,
           description="Station log level: 0 Warning, 1 Info, 2 Debug"),
    KeyDef("LogLevelAuth", Int(0, 3), 0, family=EATON,
           description="Authorization logging: 0 None, 1 Receive frame, 2 Msg data, 3 Command description"),
    KeyDef("LogLevelCan", Int(0, 3), 0, family=EATON, description="CAN logging, levels as LogLevelAuth"),
    KeyDef("MasterSerial", ID_TAG, "11111111", family=EATON,
           description="RFID card that lets local users be added at the station itself"),
    KeyDef("SerialNumber", Text(max_length=25), "THXXMXXXXX", RO, family=EATON, description="Station serial number"),
    KeyDef("VendorId", Text(max_length=20), "GreenMotion", RO, family=EATON,
           description="chargePointVendor of BootNotification"),
    KeyDef("Version", Text(choices=("ocpp1.6",)), "ocpp1.6", RO, family=EATON, description="OCPP version in use"),
    KeyDef("LocalListVersion", Int(), 0, RO, family=EATON, computed=True,
           description="Version of the local authorization list"),
    KeyDef("GridMaxPower", Int(0, 1000), 11, family=EATON, unit="kW", description="Grid-side maximum power the station may draw; 0 = no power limit"),
    KeyDef("GridPhaseConnection", Json(shape=grid_phase_connection_shape, shape_help="JSON array, e.g. [1,2,3]"),
           [1, 2, 3], family=EATON, description="Order in which the station's L1, L2, L3 meet the grid phases"),
    KeyDef("GridVoltage", Int(100, 480), 230, family=EATON, unit="V", description="Grid voltage (phase to neutral)"),
    KeyDef("MaxCurrentLimit", Int(6, 80), 32, family=EATON, unit="A", description="Station current limit per phase"),
    KeyDef("MaxPowerLimit", Int(0, 1000), 22, family=EATON, unit="kW", description="Station power limit"),
    KeyDef("MaxVoltageLimit", Int(100, 500), 253, family=EATON, unit="V", description="Highest input voltage accepted"),
    KeyDef("ModelId", Text(max_length=20), None, RO, family=EATON,
           description="Model name (chargePointModel of BootNotification)"),
    KeyDef("ProtocolMode", Text(choices=("ocpp",)), "ocpp", family=EATON, effect=REBOOT,
           description="Backend protocol"),
    KeyDef("RetryBackoffRandomRange", Int(0, 3600), 6, family=EATON, unit="s",
           description="Random part of the reconnect wait"),
    KeyDef("RetryRepeatTimes", Int(0, 1000), 9, family=EATON,
           description="Reconnects with random waits before fixed waits"),
    KeyDef("RetryBackoffWaitMinimum", Int(0, 3600), 10, family=EATON, unit="s",
           description="Minimum reconnect wait"),
    KeyDef("RfidType", Int(0, 4), 4, family=EATON, effect=REBOOT,
           description="0 no RFID, 1 NA, 2 Legic/SmartTechnology, 3 NoRFID (SmartOne), 4 IdTronic"),
    KeyDef("ServerMode", Text(choices=("Online", "Offline")), "Offline", family=EATON,
           description="Online: connect to the backend; Offline: run stand-alone"),
    KeyDef("TamperDetectionEnabled", Bool(), False, family=EATON,
           description="An open door or cover stops and prevents every charging session"),
    KeyDef("WebServiceCors", Text(), "", RO, family=EATON,
           description="Origins allowed to call the local web service (none: same origin only)"),
    KeyDef("WebServicePort", Int(1, 65535), 443, RO, family=EATON, description="Port of the local web service"),
)

ALIASES = (
    Alias("GridMaxCurrentPerPhase", of="/power/station/mainsMaxCurrent", family=EATON, unit="A",
          type=Int(0, 2000), to_alias=lambda milliamps: milliamps // 1000, from_alias=lambda amps: amps * 1000,
          description="Grid-side maximum current per phase (the mains limit in A, rounded down)"),
)
