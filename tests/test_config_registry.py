"""The key registry against the spec: every key there, with the access and behaviour it requires."""

from __future__ import annotations

from pathlib import Path

import pytest

from stationd.config.keys import REGISTRY
from stationd.config.registry import Access, Effect
from stationd.config.store import ConfigStatus, ConfigStore
from stationd.config.value_types import Source

SPEC_KEYS = Path(__file__).parent / "data" / "spec_keys.txt"
HIDDEN = {"FactoryReset", "NetworkConfig", "NetworkStatus", "RSSI"}  # SPEC.md §4.3


def spec_key_names() -> list[str]:
    lines = SPEC_KEYS.read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def expand(name: str, connectors: int = 2) -> list[str]:
    if "<id>" not in name:
        return [name]
    return [name.replace("<id>", str(c)) for c in range(1, connectors + 1)]


@pytest.fixture
def store(tmp_path: Path) -> ConfigStore:
    return ConfigStore.open(tmp_path, installation={"NumberOfConnectors": "2", "BoxId": "TE-1000"})


def test_spec_list_is_complete_enough_to_mean_something():
    names = spec_key_names()
    assert len(names) >= 125
    assert "HeartbeatInterval" in names and "/power/station/mainsMaxCurrent" in names


@pytest.mark.parametrize("name", spec_key_names())
def test_every_spec_key_is_known(store: ConfigStore, name: str):
    for concrete in expand(name):
        reading = store.read(concrete)
        assert reading is not None, f"{concrete} is not in the registry"
        assert reading.name == concrete


def test_full_listing_has_every_visible_spec_key_and_no_hidden_one(store: ConfigStore):
    listed = {r.name.lower() for r in store.readings()}
    for name in spec_key_names():
        for concrete in expand(name):
            if name in HIDDEN:
                assert concrete.lower() not in listed, f"{concrete} must not be in a full listing"
            else:
                assert concrete.lower() in listed, f"{concrete} missing from a full listing"
    with_hidden = {r.name for r in store.readings(include_hidden=True)}
    assert HIDDEN <= with_hidden


def test_per_connector_keys_follow_the_number_of_connectors(tmp_path: Path):
    four = ConfigStore.open(tmp_path, installation={"NumberOfConnectors": "4"})
    names = {r.name for r in four.readings()}
    assert {f"/hw/connectors/{c}/data" for c in range(1, 5)} <= names
    assert "/hw/connectors/5/data" not in names
    assert four.read("/hw/connectors/4/meter/key") is not None
    assert four.read("/hw/connectors/0/data") is None


def test_names_are_case_insensitive(store: ConfigStore):
    assert store.read("heartbeatinterval").value == "600"
    assert store.read("ENDPOINT") is not None
    assert store.set("heartbeatINTERVAL", "300").status is ConfigStatus.ACCEPTED
    assert store.get("HeartbeatInterval") == 300


# Read-only keys of SPEC.md §4.1 and §4.2 (access column "R"), written here from the spec.
SPEC_READ_ONLY = [
    "AuthorizeRemoteTxRequests", "ConnectorPhaseRotationMaxLength", "GetConfigurationMaxKeys",
    "MeterValuesAlignedDataMaxLength", "MeterValuesSampledDataMaxLength", "NumberOfConnectors",
    "StopTxnAlignedDataMaxLength", "StopTxnSampledDataMaxLength", "SupportedFeatureProfiles",
    "SupportedFeatureProfilesMaxLength", "LocalAuthListMaxLength", "SendLocalListMaxLength",
    "ReserveConnectorZeroSupported", "ChargeProfileMaxStackLevel", "ChargingScheduleAllowedChargingRateUnit",
    "ChargingScheduleMaxPeriods", "ConnectorSwitch3to1PhaseSupported", "MaxChargingProfilesInstalled",
    "EnergyMeterType", "EVSES", "SerialNumber", "VendorId", "Version", "LocalListVersion", "ModelId",
    "WebServiceCors", "WebServicePort", "CurrentDateTime", "SupportedFileTransferProtocols", "FirmwareVersion",
    "NetworkConfig", "NetworkStatus", "RSSI", "/hw/connectors/1/data", "/hw/connectors/1/meter/key",
    "/Network/Gateway/Device/Connection/signal", "/Product/Features/", "/Safety/Ovp/failed",
]


@pytest.mark.parametrize("name", SPEC_READ_ONLY)
def test_read_only_keys_refuse_every_writer(store: ConfigStore, name: str):
    before = store.read(name)
    assert before.readonly
    for source in (Source.OCPP, Source.LOCAL):
        result = store.set(name, "1", source)
        assert result.status is ConfigStatus.REJECTED
        assert "read-only" in result.reason
    assert store.read(name).value == before.value


WRITE_ONLY = ["AuthorizationKey", "/Product/ActivationCode", "/WebUi/password/reset", "GiroEStaticToken"]


@pytest.mark.parametrize("name", WRITE_ONLY)
def test_write_only_keys_are_never_read_back(store: ConfigStore, name: str):
    reading = store.read(name)
    assert reading.value is None and not reading.readonly


# DESIGN.md §5.3: these apply at once (ChangeConfiguration answers Accepted).
IMMEDIATE = {
    "CsMode": "0", "HeartbeatInterval": "300", "MeterValueSampleInterval": "30",
    "ClockAlignedDataInterval": "900", "MeterValuesSampledData": "Energy.Active.Import.Register,Voltage",
    "MeterValuesAlignedData": "Energy.Active.Import.Register", "StopTxnSampledData": "Current.Import",
    "StopTxnAlignedData": "Energy.Active.Import.Register", "RetryBackoffRandomRange": "3",
    "RetryBackoffWaitMinimum": "5", "RetryRepeatTimes": "4", "LocalAuthorizeOffline": "false",
    "LocalPreAuthorize": "true", "AllowOfflineTxForUnknownId": "true", "LocalAuthListEnabled": "false",
    "AuthorizationCacheEnabled": "false", "StopTransactionOnEVSideDisconnect": "false", "ConnectionTimeOut": "60",
    "TransactionMessageAttempts": "3", "TransactionMessageRetryInterval": "10", "EnabledDataTransfer": "PlugType",
}


@pytest.mark.parametrize("name,value", sorted(IMMEDIATE.items()))
def test_settings_that_apply_at_once_answer_accepted(store: ConfigStore, name: str, value: str):
    result = store.set(name, value)
    assert result.status is ConfigStatus.ACCEPTED, result.reason
    assert store.read(name).value == value


def test_defaults_tools_rely_on(store: ConfigStore):
    assert store.get("CsMode") == 1
    assert store.get("AllowOfflineTxForUnknownId") is False
    assert store.get("LocalAuthListEnabled") is True
    assert store.get("LocalAuthorizeOffline") is True
    # Eaton table 5 defaults
    assert store.read("RetryBackoffRandomRange").value == "6"
    assert store.read("RetryRepeatTimes").value == "9"
    assert store.read("RetryBackoffWaitMinimum").value == "10"
    assert store.read("GridPhaseConnection").value == "[1,2,3]"
    assert store.read("AuthCacheLifeTime").value == "2592000"
    assert store.read("SupportedFeatureProfiles").value == (
        "Core,FirmwareManagement,LocalAuthListManagement,Reservation,RemoteTrigger,SmartCharging")


REBOOT_KEYS = {"RfidType": "2", "HWatchdog": "0", "LoadBalancingMode": "Master",
               "LoadBalancingEnergyMeterType": "CarloGavazzi", "LoadBalancingEnergyMeterIP": "127.0.0.1:502"}


@pytest.mark.parametrize("name,value", sorted(REBOOT_KEYS.items()))
def test_reboot_keys_answer_reboot_required_and_store_the_value(store: ConfigStore, name: str, value: str):
    assert REGISTRY.key(name).effect is Effect.REBOOT
    result = store.set(name, value)
    assert result.status is ConfigStatus.REBOOT_REQUIRED
    assert store.read(name).value == value
    assert name in store.pending_reboot
    # Writing the same value again changes nothing and needs no reboot.
    assert store.set(name, value).status is ConfigStatus.ACCEPTED


# DESIGN.md §5.3: only these may make the station reconnect.
RECONNECTING = {"SecurityProfile", "AuthorizationKey", "BoxId", "Endpoint", "FactoryReset", "LoadBalancingMasterURI"}


def test_only_the_documented_keys_reconnect():
    assert {k.name for k in REGISTRY.keys if k.reconnects} == RECONNECTING
    for alias in ("/ocpp/chargeBoxIdentity", "chargeboxidentity", "endpoint"):
        assert REGISTRY.resolve(alias).key.reconnects


def test_every_key_is_documented():
    for key in REGISTRY.keys:
        assert key.description, f"{key.name} has no description"
        assert key.family, f"{key.name} has no family"
    for alias in REGISTRY.aliases:
        assert alias.description and alias.family


def test_unknown_key_is_not_supported(store: ConfigStore):
    result = store.set("Testing", "1")  # the compliance test's key (TC_040_1)
    assert result.status is ConfigStatus.NOT_SUPPORTED
    assert store.read("Testing") is None
    with pytest.raises(KeyError):
        store.get("Testing")


def test_access_column(store: ConfigStore):
    assert REGISTRY.key("HeartbeatInterval").access is Access.RW
    assert REGISTRY.key("NumberOfConnectors").access is Access.R
    assert REGISTRY.key("AuthorizationKey").access is Access.W


def test_keys_set_together_see_each_others_new_values(store: ConfigStore):
    """A form saving a new AuthorizationKey with the SecurityProfile that needs it: one change."""
    store.set("SecurityProfile", "0", Source.LOCAL)
    assert not store.set("SecurityProfile", "1", Source.LOCAL).ok  # alone: the key is missing
    results = store.set_together({"AuthorizationKey": "0123456789abcdef0123456789abcdef",
                                  "SecurityProfile": "1"}, Source.LOCAL)
    assert all(result.ok for result in results.values()), results
    assert store.get("SecurityProfile") == 1 and store.is_set("AuthorizationKey")


def test_keys_set_together_are_all_or_none(store: ConfigStore):
    before = store.get("HeartbeatInterval")
    refused = store.set_together({"HeartbeatInterval": "120", "SecurityProfile": "7"}, Source.LOCAL)
    assert set(refused) == {"SecurityProfile"} and not refused["SecurityProfile"].ok
    assert store.get("HeartbeatInterval") == before
    assert store.check_together({"HeartbeatInterval": "120"}) == {}
