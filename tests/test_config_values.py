"""Validation of written values: types, ranges, enums, lists, JSON, URLs, secrets, aliases."""

from __future__ import annotations

from pathlib import Path

import pytest

from stationd.config.store import Change, ConfigStatus, ConfigStore
from stationd.config.value_types import Source, verify_password


@pytest.fixture
def store(tmp_path: Path) -> ConfigStore:
    return ConfigStore.open(tmp_path, installation={"NumberOfConnectors": "2", "BoxId": "TE-1000",
                                                    "ModelId": "AC22", "VendorId": "stationd"})


def rejected(store: ConfigStore, name: str, text: str, source: Source = Source.OCPP) -> str:
    before = store.read(name).value
    result = store.set(name, text, source)
    assert result.status is ConfigStatus.REJECTED, f"{name}={text!r} was {result.status}"
    assert result.reason
    assert store.read(name).value == before, "a rejected write must change nothing"
    return result.reason


@pytest.mark.parametrize("text", ["yes", "", "tru", "2", "null"])
def test_booleans_refuse_anything_else(store: ConfigStore, text: str):
    assert "true or false" in rejected(store, "LocalPreAuthorize", text)


@pytest.mark.parametrize("text,shown", [("TRUE", "true"), ("False", "false"), ("1", "true"), ("0", "false")])
def test_booleans_render_as_ocpp_expects(store: ConfigStore, text: str, shown: str):
    assert store.set("LocalPreAuthorize", text).ok
    assert store.read("LocalPreAuthorize").value == shown


@pytest.mark.parametrize("text", ["1.5", "1e3", "ten", "", "1_000", "0x10", "99999999999999999999", "--1"])
def test_integers_must_be_whole_numbers(store: ConfigStore, text: str):
    rejected(store, "HeartbeatInterval", text)


def test_integer_ranges(store: ConfigStore):
    assert "at most 86400" in rejected(store, "HeartbeatInterval", "86401")
    assert "at least 0" in rejected(store, "HeartbeatInterval", "-1")
    assert store.set("HeartbeatInterval", " 240 ").ok  # surrounding blanks are forgiven
    assert store.get("HeartbeatInterval") == 240
    rejected(store, "LogLevelAuth", "4")
    rejected(store, "CsMode", "2")


def test_enumerations_take_their_canonical_spelling(store: ConfigStore):
    assert "one of UNIFORM, OPTIMIZED, SUSPENDABLE" in rejected(store, "LoadBalancingAlgo", "FAST")
    assert store.set("LoadBalancingAlgo", "uniform").ok
    assert store.read("LoadBalancingAlgo").value == "UNIFORM"
    rejected(store, "CurrentLocale", "pl")
    rejected(store, "FactoryReset", "Now")


def test_measurand_lists(store: ConfigStore):
    reason = rejected(store, "MeterValuesSampledData", "Energy.Active.Import.Register,SoC")
    assert '"SoC" is not supported' in reason  # one bad measurand rejects the whole value
    rejected(store, "MeterValuesSampledData", "Voltage,Voltage")
    rejected(store, "MeterValuesSampledData", "Voltage,,Current.Import")
    assert store.set("MeterValuesSampledData", "voltage , current.import").ok
    assert store.read("MeterValuesSampledData").value == "Voltage,Current.Import"
    assert store.set("MeterValuesAlignedData", "").ok  # empty list: nothing clock-aligned
    assert store.get("MeterValuesAlignedData") == ()


def test_list_length_follows_the_companion_max_length_key(store: ConfigStore):
    assert store.get("ConnectorPhaseRotationMaxLength") == 3  # connectors + 1
    assert "at most 3 items" in rejected(store, "ConnectorPhaseRotation", "0.RST,1.RST,2.RTS,3.RST")
    assert "connector 3 does not exist" in rejected(store, "ConnectorPhaseRotation", "0.RST,3.RST")
    assert "listed twice" in rejected(store, "ConnectorPhaseRotation", "1.RST,1.RTS")
    rejected(store, "ConnectorPhaseRotation", "1.XYZ")
    assert store.set("ConnectorPhaseRotation", "0.RST,1.RTS,2.Unknown").ok


def test_json_values(store: ConfigStore):
    assert store.set("GridPhaseConnection", "[2, 3, 1]").ok
    assert store.read("GridPhaseConnection").value == "[2,3,1]"
    assert "phases 1, 2 and 3" in rejected(store, "GridPhaseConnection", "[1,1,2]")
    assert "not valid JSON" in rejected(store, "GridPhaseConnection", "[1,2,")
    rejected(store, "GridPhaseConnection", "[1.0,2,3]")
    rejected(store, "GridPhaseConnection", "[" * 400 + "]" * 400)  # deep nesting: refused, no crash


def test_urls(store: ConfigStore):
    assert "ws:// or wss://" in rejected(store, "Endpoint", "http://backend.example/ocpp")
    assert "must name a host" in rejected(store, "Endpoint", "ws:///ocpp")
    assert "user name or password" in rejected(store, "Endpoint", "wss://user:pw@backend.example/ocpp")
    assert "'?'" in rejected(store, "Endpoint", "ws://backend.example/ocpp?x=1")  # as in the config file
    rejected(store, "Endpoint", "wss://backend.example:99999/ocpp")
    assert store.set("Endpoint", "wss://backend.example/ocpp/{BoxId}").ok


def test_values_over_500_characters_are_refused(store: ConfigStore):
    assert "at most 500 characters" in rejected(store, "BoxName", "x" * 501)
    assert store.set("BoxName", "x" * 64).ok


def test_control_characters_are_refused(store: ConfigStore):
    rejected(store, "BoxName", "car\npark")
    rejected(store, "BoxId", "TE 1000")  # not URL-safe


def test_authorization_key_from_a_backend_is_hex(store: ConfigStore):
    assert "hex digits" in rejected(store, "AuthorizationKey", "correct horse battery staple")
    assert "16 to 20 bytes" in rejected(store, "AuthorizationKey", "00112233")
    assert store.set("AuthorizationKey", "00112233445566778899AABBCCDDEEFF").ok
    assert store.read("AuthorizationKey").value is None
    assert "00112233445566778899aabbccddeeff" in store.secret_values()


def test_authorization_key_typed_by_a_person_is_text(store: ConfigStore):
    assert store.set("AuthorizationKey", "correct horse battery", Source.LOCAL).ok
    secrets = store.secret_values()
    assert "correct horse battery" in secrets
    assert b"correct horse battery".hex() in secrets
    assert "8 to 40" in rejected(store, "AuthorizationKey", "short", Source.LOCAL)


def test_security_profile_rules(tmp_path: Path):
    store = ConfigStore.open(tmp_path, installation={"SecurityProfile": "0"})
    assert "needs an AuthorizationKey" in rejected(store, "SecurityProfile", "1")
    assert store.set("AuthorizationKey", "00112233445566778899aabbccddeeff").ok
    assert store.set("SecurityProfile", "1").ok
    assert "only be raised" in rejected(store, "SecurityProfile", "1")
    assert "only be raised" in rejected(store, "SecurityProfile", "0")
    assert store.set("SecurityProfile", "0", Source.LOCAL).ok  # the installer on site may lower it
    rejected(store, "SecurityProfile", "4")


def test_activation_codes_are_refused_with_the_reason(store: ConfigStore):
    assert "no activation code is needed" in rejected(store, "/Product/ActivationCode", "ABCD-1234")


def test_webui_password_is_stored_as_a_hash(store: ConfigStore, tmp_path: Path):
    assert store.set("/WebUi/password/reset", "new-secret-42", Source.LOCAL).ok
    assert store.read("/WebUi/password/reset").value is None
    stored = (tmp_path / "settings.json").read_text()
    assert "new-secret-42" not in stored
    assert verify_password("new-secret-42", store.get("/WebUi/password/reset"))
    assert not verify_password("new-secret-43", store.get("/WebUi/password/reset"))
    rejected(store, "/WebUi/password/reset", "short", Source.LOCAL)


# ---- aliases: one stored value, several names -----------------------------------------

@pytest.mark.parametrize("writer", ["BoxId", "/ocpp/chargeBoxIdentity", "chargeboxidentity"])
def test_chargebox_identity_aliases(store: ConfigStore, writer: str):
    assert store.set(writer, "TE-2000").ok
    for reader in ("BoxId", "/ocpp/chargeBoxIdentity", "chargeboxidentity", "CHARGEBOXIDENTITY"):
        assert store.read(reader).value == "TE-2000"


def test_endpoint_alias(store: ConfigStore):
    assert store.set("endpoint", "ws://127.0.0.1:9000/ocpp").ok
    assert store.read("Endpoint").value == "ws://127.0.0.1:9000/ocpp"


def test_mains_current_in_ma_and_a(store: ConfigStore):
    assert store.read("GridMaxCurrentPerPhase").value == "16"
    assert store.read("/power/station/mainsMaxCurrent").value == "16000"
    assert store.set("GridMaxCurrentPerPhase", "25").ok
    assert store.get("/power/station/mainsMaxCurrent") == 25000
    assert store.set("/power/station/mainsMaxCurrent", "12600").ok
    assert store.get("GridMaxCurrentPerPhase") == 12  # a limit is rounded down, never up
    assert store.set("/power/station/mainsMaxCurrent", "63000").ok
    assert store.get("GridMaxCurrentPerPhase") == 63
    rejected(store, "GridMaxCurrentPerPhase", "2001")
    rejected(store, "/power/station/mainsMaxCurrent", "-1")


def test_free_charging_aliases(store: ConfigStore):
    assert store.set("/hw/auth/device/Dummy/enabled", "false").ok
    assert store.get("CsMode") == 0
    assert store.set("CsMode", "1").ok
    assert store.read("/hw/auth/device/Dummy/enabled").value == "true"


def test_read_only_aliases(store: ConfigStore):
    assert store.read("ChargingStationModel").value == store.read("ModelId").value == "AC22"
    assert store.read("ChargingStationVendor").value == "stationd"
    assert store.set("ChargingStationModel", "X").status is ConfigStatus.REJECTED


def test_stop_on_reset_aliases(store: ConfigStore):
    assert store.set("/ocpp/stopTransactionsOnReset", "false").ok
    assert store.get("StopTxOnReset") is False


def test_listeners_hear_the_stored_key_whatever_name_was_written(store: ConfigStore):
    heard: list[Change] = []
    store.subscribe(heard.append, names=["GridMaxCurrentPerPhase"])
    store.set("/power/station/mainsMaxCurrent", "20000")
    store.set("HeartbeatInterval", "100")  # not subscribed
    assert [(c.key, c.old, c.new) for c in heard] == [("/power/station/mainsMaxCurrent", 16000, 20000)]
    store.set("/power/station/mainsMaxCurrent", "20000")  # unchanged: no notification
    assert len(heard) == 1


def test_a_failing_listener_does_not_undo_the_change(store: ConfigStore, caplog: pytest.LogCaptureFixture):
    def broken(change: Change) -> None:
        raise RuntimeError("boom")

    store.subscribe(broken)
    assert store.set("HeartbeatInterval", "100").ok
    assert store.get("HeartbeatInterval") == 100
    assert "listener of configuration key HeartbeatInterval failed" in caplog.text


def test_providers_supply_live_read_only_values(store: ConfigStore):
    store.provide("RSSI", lambda: -71)
    store.provide("/hw/connectors/{connector}/data", lambda connector: {"connector": connector})
    assert store.read("RSSI").value == "-71"
    assert store.read("/hw/connectors/2/data").value == '{"connector": 2}'
    with pytest.raises(ValueError):
        store.provide("HeartbeatInterval", lambda: 1)


def test_current_date_time_uses_the_injected_clock(tmp_path: Path):
    from datetime import datetime, timezone

    fixed = datetime(2026, 11, 22, 12, 0, 0, tzinfo=timezone.utc)
    store = ConfigStore.open(tmp_path, clock=lambda: fixed)
    assert store.read("CurrentDateTime").value == "2026-11-22T12:00:00Z"


def test_the_basic_auth_token_is_a_secret_too(store: ConfigStore):
    import base64

    assert store.set("AuthorizationKey", "correct horse battery", Source.LOCAL).ok
    token = base64.b64encode(b"TE-1000:correct horse battery").decode()
    assert token in store.secret_values()
