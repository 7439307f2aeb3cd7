"""Network > Interfaces and Network > Mobile (SPEC §9), through the system edge.

Interfaces: the WAN interface (its name: ``eth0``, ``wlan0``, ...), its IPv4 and IPv6, each
Auto (DHCP) or Manual (address, netmask / prefix length, gateway, primary DNS), and for a
``wlan*`` interface the Wi-Fi network (SSID, security, passphrase), checked as a whole by
:class:`stationd.system.network.WanConfig` (every problem beside its field; nothing applied
unless all is well) and applied at once by ``system.set_wan_config``; the interfaces' state
(NetworkStatus) below. The passphrase is write-only: the station keeps only the key derived
from it, the field is never filled in again, and left empty it keeps the stored key while the
SSID stays the same. The Wi-Fi fields are hidden by a script for other interfaces; without it
they show, and the server ignores them for a non-Wi-Fi interface.

Mobile: the modem and its SIM read-only (manufacturer, model, IMEI, operator, signal, ICCID,
IMSI), and the SIM settings: a provider preset or (custom), service mode (which radio access
the modem may use), APN, PIN, authentication method,
username, password (``system.set_mobile_settings``). PIN and password are write-only: an
empty field keeps the stored one. Without a modem the page says so.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from aiohttp import web

from ...system.modem import AUTH_METHODS, SERVICE_MODES, MobileSettings, MobileSettingsError
from ...system.network import NetworkConfigError, WanConfig
from ...system.wifi import SECURITIES, WifiSettings, is_wifi_interface
from ..guard import SESSION_KEY, UI_KEY
from ..i18n import translator
from ..templating import flash, render

log = logging.getLogger("stationd.webui")

routes = web.RouteTableDef()

FAMILIES = (("ipv4", "IPv4", "netmask"), ("ipv6", "IPv6", "prefix"))
CUSTOM = "(custom)"
# Provider presets: APN and authentication of common data SIMs (none needs a username or password).
PROVIDERS = {
    "1NCE": {"apn": "iot.1nce.net", "auth": "none", "username": ""},
    "Vodafone (DE)": {"apn": "web.vodafone.de", "auth": "none", "username": ""},
    "O2 (DE)": {"apn": "internet", "auth": "none", "username": ""},
}
SECRET_FIELDS = ("pin", "password")
SERVICE_MODE_LABELS = {"automatic": "Automatic", "4g": "4G only", "3g": "3G only", "2g": "2G only"}


# ---- Interfaces -------------------------------------------------------------------------------


def wan_form(config: WanConfig) -> dict[str, str]:
    """The form's field values of a WAN config (``interface``, ``ipv4_address``, ``ipv6_prefix``,
    ``wifi_ssid``, ...); never the passphrase, which is not filled in again."""
    values = {"interface": config.interface}
    for family, _, size in FAMILIES:
        data = config.to_dict()[family]
        values[f"{family}_method"] = data["method"]
        values[f"{family}_address"] = str(data.get("address") or "")
        values[f"{family}_{size}"] = str(data.get(size) or "")
        values[f"{family}_gateway"] = str(data.get("gateway") or "")
        values[f"{family}_dns"] = (data.get("dns") or [""])[0]
    values["wifi_ssid"] = config.wifi.ssid if config.wifi else ""
    values["wifi_security"] = config.wifi.security if config.wifi else "WPA2-Personal"
    return values


def wan_from_form(form: Mapping, passphrase: str = "", stored_wifi: WifiSettings | None = None) -> WanConfig:
    """A WanConfig from the posted fields (the Wi-Fi ones only for a ``wlan*`` interface; an
    empty passphrase keeps ``stored_wifi``'s key for the same SSID); NetworkConfigError lists
    every problem."""
    interface = str(form.get("interface", "")).strip()
    data: dict = {"interface": interface}
    for family, _, size in FAMILIES:
        method = str(form.get(f"{family}_method", "dhcp"))
        settings: dict = {"method": method}
        dns = str(form.get(f"{family}_dns", "")).strip()
        settings["dns"] = [dns] if dns else []
        if method == "manual":
            for name in ("address", size, "gateway"):
                text = str(form.get(f"{family}_{name}", "")).strip()
                if text:
                    settings[name] = text
        data[family] = settings
    if is_wifi_interface(interface):
        data["wifi"] = {"ssid": str(form.get("wifi_ssid", "")), "passphrase": passphrase,
                        "security": str(form.get("wifi_security", "WPA2-Personal"))}
    return WanConfig.from_dict(data, stored_wifi=stored_wifi)


def field_errors(problems, fields: Mapping[str, str]) -> dict[str, str]:
    """``ipv4.gateway: ...`` -> {"ipv4_gateway": "..."}; a problem naming no field goes under ""."""
    errors: dict[str, str] = {}
    for problem in problems:
        where, _, message = problem.partition(": ")
        name = where.replace(".", "_")
        if name.endswith("_prefix") and name.startswith("ipv4"):
            name = "ipv4_netmask"
        if name not in fields:
            name, message = next((f for f in fields if f.startswith(where + "_")), ""), problem
        errors[name] = f"{errors[name]}; {message}" if name in errors else message
    return errors


async def _interfaces(request: web.Request, values: dict[str, str] | None = None,
                      errors: dict[str, str] | None = None, http_status: int = 200) -> web.Response:
    system = request.app[UI_KEY].station.system
    config = system.wan_config()
    return render(request, "network_interfaces.html", http_status=http_status, interface=config.interface,
                  values=values or wan_form(config), errors=errors or {}, families=FAMILIES,
                  securities=SECURITIES, psk_stored=bool(config.wifi and config.wifi.psk),
                  status=await system.network_status())


@routes.get("/network/interfaces")
async def interfaces_page(request: web.Request) -> web.Response:
    return await _interfaces(request)


@routes.post("/network/interfaces")
async def interfaces_save(request: web.Request) -> web.Response:
    system = request.app[UI_KEY].station.system
    t = translator(request[SESSION_KEY].language)
    form = await request.post()
    current = system.wan_config()
    values = {name: str(form.get(name, ""))[:100] for name in wan_form(WanConfig())}
    values["interface"] = values["interface"].strip() or current.interface
    passphrase = str(form.get("wifi_passphrase", ""))[:1000]  # never shown again, not even after an error
    fields = {**values, "wifi_passphrase": ""}  # where problems go
    try:
        config = wan_from_form(values, passphrase, current.wifi)
        applied = await system.set_wan_config(config)
    except NetworkConfigError as problem:
        return await _interfaces(request, values, field_errors(problem.problems, fields), 400)
    if not applied:
        return await _interfaces(request, values, {"": t("The network settings could not be applied.")}, 500)
    log.info("WebUI: WAN settings %s", config.describe())  # psk=****
    flash(request, t("Saved."))
    raise web.HTTPSeeOther("/network/interfaces")


# ---- Mobile -----------------------------------------------------------------------------------


def _provider_of(settings: MobileSettings) -> str:
    for name, preset in PROVIDERS.items():
        if preset["apn"] == settings.apn and preset["auth"] == settings.auth:
            return name
    return CUSTOM


async def _mobile(request: web.Request, values: dict[str, str] | None = None, errors: dict[str, str] | None = None,
                  http_status: int = 200) -> web.Response:
    system = request.app[UI_KEY].station.system
    modem = await system.modem_info()
    signal = await system.modem_signal() if modem is not None else None
    stored = system.mobile_settings()
    if values is None:
        values = {"provider": _provider_of(stored), "service_mode": stored.service_mode, "apn": stored.apn, "auth": stored.auth,
                  "username": stored.username}
    return render(request, "network_mobile.html", http_status=http_status, modem=modem, signal=signal,
                  values=values, errors=errors or {}, providers=[CUSTOM, *PROVIDERS], auth_methods=AUTH_METHODS,
                  service_modes=[(mode, SERVICE_MODE_LABELS[mode]) for mode in SERVICE_MODES],
                  pin_set=bool(stored.pin), password_set=bool(stored.password))


@routes.get("/network/mobile")
async def mobile_page(request: web.Request) -> web.Response:
    return await _mobile(request)


@routes.post("/network/mobile")
async def mobile_save(request: web.Request) -> web.Response:
    system = request.app[UI_KEY].station.system
    t = translator(request[SESSION_KEY].language)
    if await system.modem_info() is None:
        raise web.HTTPConflict(text="this station has no mobile modem")
    form = await request.post()
    values = {name: str(form.get(name, ""))[:200] for name in ("provider", "service_mode", "apn", "auth", "username")}
    errors: dict[str, str] = {}
    if values["provider"] != CUSTOM:
        preset = PROVIDERS.get(values["provider"])
        if preset is None:
            errors["provider"] = t("choose a provider from the list")
        else:
            values.update(preset)
    secrets = {name: str(form.get(name, "")) or None for name in SECRET_FIELDS}  # empty: keep the stored one
    if values["auth"] == "none" and not secrets["password"]:
        secrets["password"] = ""  # no authentication: a stored password is dropped
    applied = False
    if not errors:
        try:  # the edge checks again with the stored secrets merged in
            settings = MobileSettings(apn=values["apn"], auth=values["auth"], username=values["username"],
                                      service_mode=values["service_mode"], **secrets)
            applied = await system.set_mobile_settings(settings)
        except MobileSettingsError as problem:
            errors = {p.partition(": ")[0]: p.partition(": ")[2] for p in problem.problems}
    if errors:
        return await _mobile(request, values, errors, 400)
    if not applied:
        return await _mobile(request, values, {"": t("The mobile settings could not be applied.")}, 500)
    flash(request, t("Saved."))
    raise web.HTTPSeeOther("/network/mobile")
