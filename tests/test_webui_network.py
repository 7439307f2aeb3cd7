"""WebUI Network > Interfaces / Mobile and the Security page's certificate upload, over real HTTPS:
settings reach the (dry-run) system edge, bad input is refused beside its field, secrets stay
write-only, an uploaded certificate is served to new connections."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import json
import re
import ssl
from pathlib import Path

import aiohttp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from test_ocpp_client import BOX
from webui_helpers import WebClient, logged_in, webui_station

from stationd.system.dry_run import simulated_modem
from stationd.system.wifi import derive_psk


def field_error(text: str, name: str) -> str:
    match = re.search(rf'id="f-{re.escape(name)}-error">([^<]*)<', text)
    return match.group(1) if match else ""


MANUAL = {"ipv4_method": "manual", "ipv4_address": "192.0.2.10", "ipv4_netmask": "255.255.255.0",
          "ipv4_gateway": "192.0.2.1", "ipv4_dns": "192.0.2.53", "ipv6_method": "dhcp", "ipv6_address": "",
          "ipv6_prefix": "", "ipv6_gateway": "", "ipv6_dns": ""}


async def test_wan_manual_config_reaches_the_system_edge_and_bad_addresses_are_refused(tmp_path: Path):
    async with webui_station(tmp_path) as (station, base, ca, _cs):
        system = station.station.system
        async with logged_in(base, ca) as client:
            status, text = await client.get("/network/interfaces")
            assert status == 200 and "Auto (DHCP)" in text and "usb0" in text  # the NetworkStatus table
            status, text = await client.post("/network/interfaces", MANUAL)
            assert status == 200 and "Saved." in text
            assert ("set_wan_config", "eth0 ipv4=manual 192.0.2.10/24 gateway 192.0.2.1 dns 192.0.2.53 ipv6=dhcp") \
                in system.actions
            assert 'value="192.0.2.10"' in text and 'value="255.255.255.0"' in text
            count = len(system.actions)
            bad = {**MANUAL, "ipv4_address": "192.0.2.300", "ipv4_gateway": "198.51.100.1",
                   "ipv6_method": "manual", "ipv6_address": "2001:db8::5", "ipv6_prefix": "200"}
            status, text = await client.post("/network/interfaces", bad)
            assert status == 400 and "Nothing was saved" in text
            assert "not an IPv4 address" in field_error(text, "ipv4_address")
            assert "1 to 128" in field_error(text, "ipv6_prefix")
            assert 'value="192.0.2.300"' in text  # shown again to be corrected
            assert len(system.actions) == count and system.wan_config().ipv4.address == "192.0.2.10"
            status, text = await client.post("/network/interfaces", {**MANUAL, "ipv4_address": "192.168.32.7"})
            assert status == 400 and "USB network" in field_error(text, "ipv4_address")
            status, text = await client.post("/network/interfaces", {"ipv4_method": "dhcp", "ipv6_method": "dhcp",
                                                                     "ipv4_address": "192.0.2.99"})
            assert status == 200 and system.actions[-1] == ("set_wan_config", "eth0 ipv4=dhcp ipv6=dhcp")


WIFI_PASSPHRASE = "Depot-Wifi-Secret-77"
WIFI = {**MANUAL, "ipv4_method": "dhcp", "ipv4_dns": "", "interface": "wlan0", "wifi_ssid": "Depot",
        "wifi_security": "WPA2-Personal", "wifi_passphrase": WIFI_PASSPHRASE}


async def network_config(cs) -> list[dict]:
    await cs.wait_connected(BOX, 15)
    answer = await cs.call(BOX, "GetConfiguration", {"key": ["NetworkConfig"]})
    return json.loads(answer["configurationKey"][0]["value"])


async def test_a_wifi_wan_is_saved_and_its_passphrase_is_never_shown(tmp_path: Path):
    async with webui_station(tmp_path) as (station, base, ca, cs):
        system = station.station.system
        async with logged_in(base, ca) as client:
            status, text = await client.get("/network/interfaces")
            assert status == 200 and 'id="f-interface" name="interface" type="text" value="eth0"' in text
            assert 'name="wifi_passphrase" type="password" autocomplete="new-password"' in text
            status, text = await client.post("/network/interfaces", WIFI)
            assert status == 200 and "Saved." in text, text[:500]
            psk = derive_psk(WIFI_PASSPHRASE, "Depot")
            assert system.wan_config().wifi.psk == psk and system.wan_config().interface == "wlan0"
            assert ("set_wan_config", 'wlan0 ipv4=dhcp ipv6=dhcp wifi ssid="Depot" security=WPA2-Personal psk=****') \
                in system.actions
            assert WIFI_PASSPHRASE not in text and psk not in text
            assert 'value="Depot"' in text and "leave empty to keep the stored passphrase" in text
            assert re.search(r'name="wifi_passphrase"[^>]* value=""', text)
            entry = (await network_config(cs))[0]
            assert entry == {"link": "wlan0", "enabled": True, "dhcp": "client", "routing": "no", "mode": "client",
                             "ssid": "Depot", "key_mgmt": "WPA-PSK"}  # the psk left out, as the AuthorizationKey's value
            answer = repr(await cs.call(BOX, "GetConfiguration", {}))
            assert WIFI_PASSPHRASE not in answer and psk not in answer

            status, text = await client.post("/network/interfaces", {**WIFI, "wifi_passphrase": "",
                                                                     "ipv6_method": "manual",
                                                                     "ipv6_address": "2001:db8::5", "ipv6_prefix": "64"})
            assert status == 200 and "Saved." in text
            assert system.wan_config().wifi.psk == psk and system.wan_config().ipv6.address == "2001:db8::5"

            count = len(system.actions)
            status, text = await client.post("/network/interfaces", {**WIFI, "wifi_ssid": "Other", "wifi_passphrase": ""})
            assert status == 400 and "the SSID changed" in field_error(text, "wifi_passphrase")
            assert 'value="Other"' in text  # shown again to be corrected, the passphrase never
            status, text = await client.post("/network/interfaces", {**WIFI, "wifi_passphrase": "Short-7"})
            assert status == 400 and "8 to 63 characters (got 7)" in field_error(text, "wifi_passphrase")
            assert "Short-7" not in text
            status, text = await client.post("/network/interfaces", {**WIFI, "wifi_ssid": "S" * 33})
            assert status == 400 and "at most 32 bytes" in field_error(text, "wifi_ssid")
            assert WIFI_PASSPHRASE not in text and len(system.actions) == count
            assert system.wan_config().wifi.ssid == "Depot"

            status, text = await client.post("/network/interfaces", {**WIFI, "interface": "eth0"})  # JavaScript off
            assert status == 200 and system.actions[-1] == ("set_wan_config", "eth0 ipv4=dhcp ipv6=dhcp")
            assert system.wan_config().wifi is None and "bridge" in (await network_config(cs))[0]
            assert all(WIFI_PASSPHRASE not in detail and psk not in detail for _, detail in system.actions)


async def test_mobile_page_without_a_modem_says_so(tmp_path: Path):
    async with webui_station(tmp_path) as (_station, base, ca, _cs):
        async with logged_in(base, ca) as client:
            status, text = await client.get("/network/mobile")
            assert status == 200 and "no mobile modem" in text and 'action="/network/mobile"' not in text
            status, _ = await client.post("/network/mobile", {"provider": "(custom)", "apn": "x", "auth": "none"})
            assert status == 409


async def test_mobile_settings_reach_the_edge_and_pin_and_password_stay_write_only(tmp_path: Path):
    async with webui_station(tmp_path) as (station, base, ca, _cs):
        system = station.station.system
        system.modem, system.signal_dbm = simulated_modem(), -71
        async with logged_in(base, ca) as client:
            status, text = await client.get("/network/mobile")
            assert status == 200 and "LTE Cat 4" in text and "8900101000000000001" in text and "-71 dBm" in text
            assert 'name="service_mode"' in text and '<option value="automatic" selected>' in text
            form = {"provider": "(custom)", "service_mode": "4g", "apn": "internet.example", "pin": "4711", "auth": "chap",
                    "username": "user1", "password": "Sim-Pass-99"}
            status, text = await client.post("/network/mobile", form)
            assert status == 200 and "Saved." in text
            assert system.mobile_settings().service_mode == "4g" and '<option value="4g" selected>' in text
            assert system.mobile_settings().pin == "4711" and system.mobile_settings().password == "Sim-Pass-99"
            assert "4711" not in text and "Sim-Pass-99" not in text and "leave empty to keep it" in text
            await client.post("/network/mobile", {**form, "pin": "", "password": "", "apn": "other.example"})
            assert system.mobile_settings().apn == "other.example" and system.mobile_settings().pin == "4711"
            assert system.mobile_settings().password == "Sim-Pass-99"
            assert all("Sim-Pass-99" not in detail and "4711" not in detail for _, detail in system.actions)
            status, text = await client.post("/network/mobile", {**form, "pin": "12", "apn": "bad apn!"})
            assert status == 400 and "4 to 8 digits" in field_error(text, "pin") and field_error(text, "apn")
            status, text = await client.post("/network/mobile", {**form, "service_mode": "5g"})
            assert status == 400 and "automatic, 4g, 3g, 2g" in field_error(text, "service_mode")
            assert system.mobile_settings().apn == "other.example"
            status, text = await client.post("/network/mobile", {**form, "provider": "1NCE", "password": ""})
            assert status == 200 and system.mobile_settings().apn == "iot.1nce.net"


def make_pair(name: str) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


async def peer_certificate(base: str) -> x509.Certificate:
    host, port = base.removeprefix("https://").split(":")
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # only to look at what is served
    _, writer = await asyncio.open_connection(host, int(port), ssl=context)
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    finally:
        writer.close()
    return x509.load_der_x509_certificate(der)


async def upload(client: WebClient, cert: bytes, key: bytes, *, token: str | None = None,
                 header: bool = False) -> tuple[int, str]:
    """The upload form as a browser posts it: the CSRF field first (or, as a script would, the header)."""
    form = aiohttp.FormData()
    headers = {"Origin": client.base}
    if header:
        headers["X-CSRF-Token"] = client.csrf
    else:
        form.add_field("csrf_token", client.csrf if token is None else token)
    form.add_field("certificate", cert, filename="cert.pem", content_type="application/x-pem-file")
    form.add_field("key", key, filename="key.pem", content_type="application/x-pem-file")
    async with client.http.post(client.base + "/users/security/certificate", data=form,
                                headers=headers) as response:
        return response.status, await response.text()


async def test_an_uploaded_certificate_is_served_to_new_connections_and_bad_ones_are_refused(tmp_path: Path):
    async with webui_station(tmp_path) as (_station, base, ca, _cs):
        async with logged_in(base, ca) as client:
            status, text = await client.get("/users/security")
            assert status == 200 and "stationd WebUI" in text and "self-signed" in text
            cert, key = make_pair("installer.example")
            _, other_key = make_pair("other")
            status, text = await upload(client, cert, other_key)
            assert status == 400 and "does not belong" in text
            status, text = await upload(client, b"garbage", key)
            assert status == 400 and "not a PEM certificate" in text
            status, text = await upload(client, cert + b"#" * (65 * 1024), key)
            assert status == 400 and "larger than 64 KiB" in text
            status, _ = await upload(client, cert, key, token="wrong")
            assert status == 403
            served = await peer_certificate(base)
            assert served.subject.rfc4514_string() == "CN=stationd WebUI,O=stationd"
            status, text = await upload(client, cert, key)
            assert status == 200 and "Certificate installed" in text and "installer.example" in text
            served = await peer_certificate(base)
            assert served == x509.load_pem_x509_certificate(cert)
            second, second_key = make_pair("second.example")
            status, text = await upload(client, second, second_key, header=True)  # the token as a header
            assert status == 200 and "second.example" in text
            assert await peer_certificate(base) == x509.load_pem_x509_certificate(second)


async def test_the_first_self_signed_certificate_is_made_by_a_child_process(tmp_path: Path):
    from stationd.webui import certificate

    to_make = certificate.self_signed_to_make(tmp_path, None, None)
    assert to_make == (tmp_path / "webui" / "self-signed.pem", tmp_path / "webui" / "self-signed.key")
    assert await certificate.make_self_signed_in_child(*to_make, "127.0.0.1") is True
    assert certificate.self_signed_to_make(tmp_path, None, None) is None  # made: nothing left to make
    certificate.server_context(*to_make)  # the pair belongs together
    cert = x509.load_pem_x509_certificate(to_make[0].read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("127.0.0.1") in names.get_values_for_type(x509.IPAddress)
    assert oct(to_make[1].stat().st_mode & 0o777) == "0o600"
    (tmp_path / "a-file").write_text("")  # a directory cannot be made under it: the child fails
    assert await certificate.make_self_signed_in_child(tmp_path / "a-file" / "c.pem", tmp_path / "k.key",
                                                       "127.0.0.1") is False
