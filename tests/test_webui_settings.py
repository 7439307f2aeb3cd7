"""The WebUI's settings pages over real HTTPS: each page renders, a save changes the very key the
backend reads (GetConfiguration), a bad field changes nothing, secrets are never shown back."""

from __future__ import annotations

import re
from pathlib import Path

from test_ocpp_client import BOX
from webui_helpers import logged_in, webui_station

from stationd.config.keys import REGISTRY
from stationd.config.value_types import Source
from stationd.webui.i18n import GERMAN
from stationd.webui.pages import (
    authentication,
    communication,
    gui,
    security,
    station_settings,
)
from stationd.webui.settings_form import CHOICE_TEXT, EFFECT_TEXT, readable

PAGES = {
    "/network/interfaces": "External interface (WAN)",
    "/network/mobile": "no mobile modem",
    "/communication/ocpp": "Chargebox ID",
    "/communication/modbus": "ModbusServerEnabled",
    "/station/datetime": "TimeZone",
    "/station/power": "may cause damage",
    "/gui": "CurrentLocale",
    "/users/authentication": "User needs to provide",
    "/users/security": "enableLocalVendorAccess",
}


async def backend_value(cs, key: str) -> str | None:
    answer = await cs.call(BOX, "GetConfiguration", {"key": [key]})
    found = {item["key"]: item.get("value") for item in answer.get("configurationKey", [])}
    return found.get(key)


def field_error(text: str, name: str) -> str:
    """The message beside a field (``<p class="field-error" id="f-NAME-error">``)."""
    match = re.search(rf'id="f-{re.escape(name)}-error">([^<]*)<', text)
    return match.group(1) if match else ""


async def test_every_settings_page_renders_with_its_effects_and_without_inline_script(tmp_path: Path):
    async with webui_station(tmp_path) as (_station, base, ca, _cs):
        async with logged_in(base, ca) as client:
            for path, marker in PAGES.items():
                status, text = await client.get(path)
                assert status == 200 and marker in text, (path, status, text[:300])
                assert "<script>" not in text and " style=" not in text and " onclick=" not in text, path
            _, text = await client.get("/station/power")
            assert "applies at once" in text and "LoadBalancingEnabled" not in text  # Expert only
            _, text = await client.get("/users/security")
            assert "consent" in text


async def test_a_valid_save_changes_the_key_the_backend_reads(tmp_path: Path):
    async with webui_station(tmp_path) as (station, base, ca, cs):
        async with logged_in(base, ca) as client:
            await client.get("/communication/ocpp")
            status, text = await client.post("/communication/ocpp", {"HeartbeatInterval": "321",
                                                                      "WebSocketPingInterval": "45"})
            assert status == 200 and "Saved." in text
            assert station.store.get("HeartbeatInterval") == 321
            assert await backend_value(cs, "HeartbeatInterval") == "321"
            assert await backend_value(cs, "WebSocketPingInterval") == "45"

            await client.get("/station/power")
            status, text = await client.post("/station/power", {"/power/station/mainsMaxCurrent": "20000"})
            assert status == 200 and "Saved." in text
            assert await backend_value(cs, "/power/station/mainsMaxCurrent") == "20000"
            assert await backend_value(cs, "GridMaxCurrentPerPhase") == "20"

            await client.get("/communication/modbus")
            await client.post("/communication/modbus", {"ModbusServerEnabled": "true"})
            assert station.store.get("ModbusServerEnabled") is True
            assert await backend_value(cs, "ModbusServerEnabled") == "true"

            await client.get("/gui")
            await client.post("/gui", {"CurrentLocale": "de", "LightIntensity": "40"})
            assert await backend_value(cs, "CurrentLocale") == "de"
            assert station.store.get("LightIntensity") == 40


async def test_a_bad_field_is_marked_and_nothing_of_the_form_is_saved(tmp_path: Path):
    async with webui_station(tmp_path) as (station, base, ca, cs):
        async with logged_in(base, ca) as client:
            await client.get("/station/power")
            status, text = await client.post("/station/power", {"GridVoltage": "240", "MaxCurrentLimit": "500",
                                                                 "GridPhaseConnection": "[1,1,2]"})
            assert status == 400
            assert "at most 80" in field_error(text, "MaxCurrentLimit")
            assert "phases 1, 2 and 3" in field_error(text, "GridPhaseConnection")
            assert 'aria-invalid="true"' in text and "Nothing was saved" in text
            assert 'value="500"' in text  # the installer's input is shown again, to correct it
            assert station.store.get("GridVoltage") == 230  # the valid field of the same form too
            assert station.store.get("MaxCurrentLimit") == 32
            assert await backend_value(cs, "GridVoltage") == "230"

            await client.get("/communication/ocpp")
            before = station.store.get("HeartbeatInterval")
            status, text = await client.post("/communication/ocpp", {"Endpoint": "http://backend.example/ocpp",
                                                                      "HeartbeatInterval": "100"})
            assert status == 400 and "ws://" in field_error(text, "Endpoint")
            assert station.store.get("HeartbeatInterval") == before != 100


async def test_a_secret_is_stored_but_never_shown_and_an_empty_field_keeps_it(tmp_path: Path):
    secret = "Secret-Key-2026"
    async with webui_station(tmp_path) as (station, base, ca, cs):
        async with logged_in(base, ca) as client:
            await client.get("/communication/ocpp")
            status, text = await client.post("/communication/ocpp", {"AuthorizationKey": secret, "CpoName": "ACME"})
            assert status == 200 and "Saved." in text
            assert station.store.get("AuthorizationKey") == secret.encode().hex()
            assert secret not in text and secret.encode().hex() not in text
            assert "leave empty to keep it" in text
            _, text = await client.get("/communication/ocpp")
            assert secret not in text and secret.encode().hex() not in text
            await client.post("/communication/ocpp", {"AuthorizationKey": "", "CpoName": "ACME 2"})
            assert station.store.get("AuthorizationKey") == secret.encode().hex()
            assert station.store.get("CpoName") == "ACME 2"
            assert await backend_value(cs, "AuthorizationKey") is None  # write-only for the backend too
            status, text = await client.post("/communication/ocpp", {"AuthorizationKey": "short"})
            assert status == 400 and "8 to 40" in field_error(text, "AuthorizationKey")
            assert 'value="short"' not in text  # a refused secret is not echoed either


async def test_a_new_authorization_key_and_the_profile_that_needs_it_save_together(tmp_path: Path):
    async with webui_station(tmp_path) as (station, base, ca, _cs):
        async with logged_in(base, ca) as client:
            await client.get("/communication/ocpp")
            status, text = await client.post("/communication/ocpp", {"SecurityProfile": "1"})
            assert status == 400 and "AuthorizationKey" in field_error(text, "SecurityProfile")
            status, text = await client.post("/communication/ocpp", {"AuthorizationKey": "Secret-Key-2026",
                                                                     "SecurityProfile": "1"})
            assert status == 200 and "Saved." in text
            assert station.store.get("SecurityProfile") == 1 and station.store.is_set("AuthorizationKey")


async def test_the_chargebox_id_is_read_only_and_its_template_shown(tmp_path: Path):
    async with webui_station(tmp_path) as (station, base, ca, _cs):
        async with logged_in(base, ca) as client:
            _, text = await client.get("/communication/ocpp")
            assert re.search(r'name="BoxId" type="text" value="TE-IT0001"[^>]*disabled', text)
            assert "TE-{serial}" in text and "OCPP-J 1.6 (JSON via HTTP WebSocket)" in text
            await client.post("/communication/ocpp", {"BoxId": "HACKED"})
            assert station.store.get("BoxId") == "TE-IT0001"


async def test_expert_custom_settings_list_every_key_and_edit_one(tmp_path: Path):
    async with webui_station(tmp_path) as (_station, base, ca, cs):
        async with logged_in(base, ca) as client:
            _, text = await client.get("/communication/ocpp")
            assert "Custom settings" not in text
            status, _ = await client.get("/communication/ocpp/key?name=MinimumStatusDuration")
            assert status == 403
            await client.get("/profile")
            await client.post("/profile", {"level": "Expert", "language": "en"})
            _, text = await client.get("/communication/ocpp")
            assert "Custom settings" in text and "StopTxnSampledData" in text and "NumberOfConnectors" in text
            status, text = await client.get("/communication/ocpp/key?name=MinimumStatusDuration")
            assert status == 200 and 'name="MinimumStatusDuration"' in text
            status, text = await client.post("/communication/ocpp/key", {"key": "MinimumStatusDuration", "MinimumStatusDuration": "7"})
            assert status == 200 and "Saved." in text
            assert await backend_value(cs, "MinimumStatusDuration") == "7"
            status, text = await client.post("/communication/ocpp/key", {"key": "MinimumStatusDuration", "MinimumStatusDuration": "x"})
            assert status == 400 and "whole number" in field_error(text, "MinimumStatusDuration")
            status, _ = await client.get("/communication/ocpp/key?name=NumberOfConnectors")
            assert status == 404  # read-only
            status, _ = await client.get("/communication/ocpp/key?name=/WebUi/password/reset")
            assert status == 404  # only through the password form, which asks for the old one
            _, text = await client.get("/station/power")
            assert "LoadBalancingEnabled" in text and "applies after a reboot" in text
            status, text = await client.post("/station/power", {"LoadBalancingEnergyMeterType": "CarloGavazzi"})
            assert status == 200 and "apply only after a reboot" in text
            assert await backend_value(cs, "LoadBalancingEnergyMeterType") == "CarloGavazzi"


async def test_authentication_mode_sets_its_keys_and_whitelist_source(tmp_path: Path):
    async with webui_station(tmp_path) as (station, base, ca, cs):
        async with logged_in(base, ca) as client:
            await client.get("/users/authentication")
            status, text = await client.post("/users/authentication", {"mode": "none", "WhitelistSource": "Local"})
            assert status == 200 and "Saved." in text
            assert station.store.get("CsMode") == 1 and station.store.get("WhitelistSource") == "Local"
            assert await backend_value(cs, "CsMode") == "1"
            await client.post("/users/authentication", {"mode": "whitelisted", "WhitelistSource": "OCPP"})
            assert station.store.get("CsMode") == 0 and station.store.get("AllowOfflineTxForUnknownId") is False
            _, text = await client.get("/users/authentication")
            assert re.search(r'<option value="whitelisted" selected>', text)
            await client.post("/users/authentication", {"mode": "any", "WhitelistSource": "OCPP"})
            assert await backend_value(cs, "AllowOfflineTxForUnknownId") == "true"
            status, text = await client.post("/users/authentication", {"mode": "bogus", "WhitelistSource": "Local"})
            assert status == 400 and station.store.get("WhitelistSource") == "OCPP"


async def test_date_time_zone_source_and_browser_time_reach_the_system(tmp_path: Path):
    async with webui_station(tmp_path) as (station, base, ca, cs):
        system = station.station.system
        async with logged_in(base, ca) as client:
            _, text = await client.get("/station/datetime")
            assert 'src="/static/settings.js"' in text and "Europe/Berlin" in text
            status, text = await client.post("/station/datetime", {"TimeZone": "Europe/Berlin", "TimeSource": "HeartBeat"})
            assert status == 200 and "Saved." in text
            assert await backend_value(cs, "TimeZone") == "Europe/Berlin"
            assert await backend_value(cs, "TimeSource") == "HeartBeat"
            status, text = await client.post("/station/datetime", {"TimeZone": "Mars/Olympus", "TimeSource": "NTP"})
            assert status == 400 and "unknown time zone" in field_error(text, "TimeZone")
            assert station.store.get("TimeSource") == "HeartBeat"
            status, text = await client.post("/station/datetime/browser", {"time": "2026-03-01T10:20:30.000Z"})
            assert status == 200 and "set from the browser" in text
            assert ("set_time", "2026-03-01T10:20:30+00:00") in system.actions
            assert station.store.get("TimeSource") == "Browser"
            status, text = await client.post("/station/datetime/browser", {"time": "yesterday"})
            assert "no time" in text and system.actions.count(("set_time", "2026-03-01T10:20:30+00:00")) == 1
            status, _ = await client.get("/static/settings.js")
            assert status == 200


async def test_vendor_access_is_switched_on_through_the_system_edge(tmp_path: Path):
    async with webui_station(tmp_path) as (station, base, ca, _cs):
        system = station.station.system
        async with logged_in(base, ca) as client:
            await client.get("/users/security")
            status, text = await client.post("/users/security", {"/Security/enableRemoteVendorAccess": "true"})
            assert status == 200 and "Saved." in text
            assert station.store.get("/Security/enableRemoteVendorAccess") is True
            for _ in range(100):
                if system.vendor_access()["remote"] is not None:
                    break
                await client.get("/users/security")
            assert any(action == "vendor_access_on" and detail.startswith("remote") for action, detail in system.actions)
            _, text = await client.get("/users/security")
            assert "on until" in text


async def test_the_stored_value_is_set_through_the_local_rules(tmp_path: Path):
    """The WebUI writes as an installer (Source.LOCAL): it may lower the security profile, a backend may not."""
    async with webui_station(tmp_path) as (station, base, ca, _cs):
        station.store.set("AuthorizationKey", "Secret-Key-2026", Source.LOCAL)
        station.store.set("SecurityProfile", "1", Source.LOCAL)
        async with logged_in(base, ca) as client:
            await client.get("/communication/ocpp")
            status, _ = await client.post("/communication/ocpp", {"SecurityProfile": "0"})
            assert status == 200 and station.store.get("SecurityProfile") == 0


def test_every_label_and_description_of_the_settings_pages_has_a_german_text():
    groups = [communication.OCPP_SECTIONS, communication.MODBUS_SECTIONS, station_settings.TIME_SECTIONS,
              gui.SECTIONS, security.SECTIONS, [("", station_settings.POWER_KEYS)],
              [("Load Balancing", station_settings.LOAD_BALANCING_KEYS)],
              [("Reader", authentication.EXPERT_KEYS + authentication.SOURCE_KEYS)]]
    missing = []
    for sections in groups:
        for heading, names in sections:
            for name in names:
                entry = REGISTRY.resolve(name)
                missing += [text for text in (heading, readable(entry.name), entry.description)
                            if text and text not in GERMAN]
    missing += [text for text in [*EFFECT_TEXT.values(), *(t for c in CHOICE_TEXT.values() for t in c.values())]
                if text not in GERMAN]
    assert not missing


async def test_a_settings_page_in_german(tmp_path: Path):
    async with webui_station(tmp_path) as (_station, base, ca, _cs):
        async with logged_in(base, ca) as client:
            await client.get("/profile")
            await client.post("/profile", {"level": "Default", "language": "de"})
            _, text = await client.get("/station/power")
            assert "Max. Netzstrom (mA)" in text and "wirkt sofort" in text and "Schäden" in text
