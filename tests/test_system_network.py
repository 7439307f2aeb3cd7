"""System edge, network: the .network files and command lines the device produces, the
NetworkConfig / NetworkStatus JSON shapes (Eaton seed 003 §4.3.1), validation, the dry run."""

from __future__ import annotations

import io
import json
import logging
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from stationd import logs
from stationd.config.keys.shapes import network_shape
from stationd.config.value_types import Json
from stationd.system import DeviceOptions, DeviceSystem, DryRunSystem, NetworkConfigError, RecordingRunner, WanConfig
from stationd.system.network import parse_wan, render_wan
from stationd.system.network_status import parse_ip_addr

NETWORK_DIR = "etc/systemd/network"
WAN_FILE = f"{NETWORK_DIR}/10-stationd-wan.network"
USB_FILE = f"{NETWORK_DIR}/10-stationd-usb.network"

# The examples of seed 003 §4.3.1, as printed there.
EATON_NETWORK_CONFIG = json.loads(
    '[{"link": "eth1", "enabled": true, "dhcp": "server", "routing": "no", "ip": "192.168.51.2", '
    '"mask": "255.255.255.0", "bridge": false}, {"link": "eth2", "enabled": true, "dhcp": "client", '
    '"routing": "no", "bridge": false}]')
EATON_NETWORK_STATUS = json.loads(
    '[{"link": "eth1", "state": "connected", "ipv4": "192.168.51.2", "mask": "255.255.255.0", '
    '"mac": "B8:27:EB:AA:62:31", "bridge": false, "enabled": true}, {"link": "eth2", "state": "up", '
    '"mac": "C6:B6:C3:67:6A:E4", "bridge": false, "enabled": true}, {"link": "wlan0", "state": "connected", '
    '"ipv4": "192.168.53.1", "mask": "255.255.255.0", "mac": "00:06:67:08:21:AA", "enabled": true, '
    '"rx-quality": 0, "rx-level": 0, "rx-noise": 0}]')

# `ip -j addr show` on a station: loopback, CAN, the WAN with a lease, the USB gadget, a raw-IP
# modem without carrier, a Wi-Fi chip that is down, a port enslaved to a bridge.
IP_ADDR = (
    '[{"ifindex":1,"ifname":"lo","flags":["LOOPBACK","UP","LOWER_UP"],"mtu":65536,"qdisc":"noqueue",'
    '"operstate":"UNKNOWN","group":"default","txqlen":1000,"link_type":"loopback","address":"00:00:00:00:00:00",'
    '"broadcast":"00:00:00:00:00:00","addr_info":[{"family":"inet","local":"127.0.0.1","prefixlen":8,'
    '"scope":"host","label":"lo","valid_life_time":4294967295,"preferred_life_time":4294967295}]},'
    '{"ifindex":2,"ifname":"can0","flags":["NOARP","UP","LOWER_UP","ECHO"],"mtu":16,"qdisc":"pfifo_fast",'
    '"operstate":"UP","group":"default","txqlen":10,"link_type":"can","addr_info":[]},'
    '{"ifindex":3,"ifname":"eth0","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],"mtu":1500,'
    '"qdisc":"mq","operstate":"UP","group":"default","txqlen":1000,"link_type":"ether",'
    '"address":"b8:27:eb:aa:62:31","broadcast":"ff:ff:ff:ff:ff:ff","addr_info":[{"family":"inet",'
    '"local":"198.51.100.23","prefixlen":24,"broadcast":"198.51.100.255","scope":"global","dynamic":true,'
    '"label":"eth0","valid_life_time":86000,"preferred_life_time":86000},{"family":"inet6",'
    '"local":"fe80::ba27:ebff:feaa:6231","prefixlen":64,"scope":"link","valid_life_time":4294967295,'
    '"preferred_life_time":4294967295}]},'
    '{"ifindex":4,"ifname":"usb0","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],"mtu":1500,'
    '"qdisc":"pfifo_fast","operstate":"UP","group":"default","txqlen":1000,"link_type":"ether",'
    '"address":"c6:b6:c3:67:6a:e4","broadcast":"ff:ff:ff:ff:ff:ff","addr_info":[{"family":"inet",'
    '"local":"192.168.32.1","prefixlen":24,"broadcast":"192.168.32.255","scope":"global","label":"usb0",'
    '"valid_life_time":4294967295,"preferred_life_time":4294967295}]},'
    '{"ifindex":5,"ifname":"wwan0","flags":["POINTOPOINT","NOARP","UP"],"mtu":1500,"qdisc":"fq_codel",'
    '"operstate":"DOWN","group":"default","txqlen":1000,"link_type":"none","addr_info":[]},'
    '{"ifindex":6,"ifname":"wlan0","flags":["BROADCAST","MULTICAST"],"mtu":1500,"qdisc":"noop",'
    '"operstate":"DOWN","group":"default","txqlen":1000,"link_type":"ether","address":"00:06:67:08:21:aa",'
    '"broadcast":"ff:ff:ff:ff:ff:ff","addr_info":[]},'
    '{"ifindex":7,"ifname":"eth1","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],"mtu":1500,'
    '"qdisc":"mq","master":"br0","operstate":"UP","group":"default","txqlen":1000,"link_type":"ether",'
    '"address":"b8:27:eb:aa:62:32","broadcast":"ff:ff:ff:ff:ff:ff","addr_info":[]}]')


@pytest.fixture
def runner() -> RecordingRunner:
    return RecordingRunner()


@pytest.fixture
def device(tmp_path: Path, runner: RecordingRunner) -> DeviceSystem:
    return DeviceSystem(DeviceOptions(root=tmp_path), runner=runner)


MANUAL = {"interface": "eth0",
          "ipv4": {"method": "manual", "address": "192.0.2.10", "netmask": "255.255.255.0",
                   "gateway": "192.0.2.1", "dns": ["192.0.2.53", "198.51.100.53"]},
          "ipv6": {"method": "manual", "address": "2001:DB8::10", "prefix": 64, "gateway": "fe80::1",
                   "dns": ["2001:db8::53"]}}

MANUAL_FILE = """\
# Written by stationd (WebUI Network > Interfaces, the WAN interface). Do not edit: stationd replaces this file.
[Match]
Name=eth0

[Network]
DHCP=no
IPv6AcceptRA=no
Address=192.0.2.10/24
Gateway=192.0.2.1
Address=2001:db8::10/64
Gateway=fe80::1
DNS=192.0.2.53
DNS=198.51.100.53
DNS=2001:db8::53
"""


# ---- WAN: files and command lines --------------------------------------------------------------


async def test_dhcp_writes_the_wan_file_then_reloads_networkd(device: DeviceSystem, runner, tmp_path: Path):
    assert await device.set_wan_config(WanConfig()) is True
    path = tmp_path / WAN_FILE
    assert path.read_text() == (
        "# Written by stationd (WebUI Network > Interfaces, the WAN interface). Do not edit: stationd replaces"
        " this file.\n[Match]\nName=eth0\n\n[Network]\nDHCP=yes\nIPv6AcceptRA=yes\n")
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # systemd-networkd reads it as its own user
    assert runner.lines == ["networkctl reload"]
    assert [p.name for p in path.parent.iterdir()] == ["10-stationd-wan.network"]  # no temporary file left


async def test_manual_ipv4_and_ipv6(device: DeviceSystem, runner, tmp_path: Path):
    config = WanConfig.from_dict(MANUAL)
    assert await device.set_wan_config(config)
    assert (tmp_path / WAN_FILE).read_text() == MANUAL_FILE
    assert runner.lines == ["networkctl reload"]
    assert device.wan_config() == config  # read back from the file
    assert config.to_dict()["ipv4"] == {"method": "manual", "address": "192.0.2.10", "prefix": 24,
                                        "netmask": "255.255.255.0", "gateway": "192.0.2.1",
                                        "dns": ["192.0.2.53", "198.51.100.53"]}
    assert config.ipv6.address == "2001:db8::10"  # canonical spelling


@pytest.mark.parametrize(("ipv4", "ipv6", "dhcp"), [("dhcp", "manual", "ipv4"), ("manual", "dhcp", "ipv6")])
async def test_one_family_manual(device: DeviceSystem, tmp_path: Path, ipv4: str, ipv6: str, dhcp: str):
    data = {"ipv4": MANUAL["ipv4"] if ipv4 == "manual" else {"method": "dhcp"},
            "ipv6": MANUAL["ipv6"] if ipv6 == "manual" else {"method": "dhcp"}}
    assert await device.set_wan_config(WanConfig.from_dict(data))
    text = (tmp_path / WAN_FILE).read_text()
    assert f"DHCP={dhcp}\n" in text
    assert ("IPv6AcceptRA=no" if ipv6 == "manual" else "IPv6AcceptRA=yes") in text
    assert parse_wan(text) == WanConfig.from_dict(data)


async def test_the_same_settings_again_change_nothing(device: DeviceSystem, runner):
    await device.set_wan_config(WanConfig.from_dict(MANUAL))
    runner.calls.clear()
    assert await device.set_wan_config(WanConfig.from_dict(MANUAL))
    assert runner.calls == []


async def test_a_failing_reload_is_reported(device: DeviceSystem, runner):
    runner.answer("networkctl", "reload", returncode=1, stderr="Failed to reload network settings: Access denied")
    assert await device.set_wan_config(WanConfig()) is False


async def test_an_unwritable_directory_runs_no_command(tmp_path: Path, runner):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "systemd").write_text("not a directory")
    device = DeviceSystem(DeviceOptions(root=tmp_path), runner=runner)
    assert await device.set_wan_config(WanConfig()) is False
    assert runner.calls == []


async def test_no_file_yet_means_dhcp_on_the_configured_interface(tmp_path: Path, runner):
    device = DeviceSystem(DeviceOptions(root=tmp_path, wan_interface="end0"), runner=runner)
    assert device.wan_config() == WanConfig(interface="end0")
    (tmp_path / NETWORK_DIR).mkdir(parents=True)
    (tmp_path / WAN_FILE).write_text("[Match]\nName=end0\n[Network]\nDHCP=no\n")  # hand-edited, no address
    assert device.wan_config() == WanConfig(interface="end0")


# ---- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(("data", "message"), [
    ({"ipv4": {"method": "static"}}, "ipv4.method: must be one of dhcp, manual"),
    ({"ipv4": {"method": "manual", "prefix": 24}}, "ipv4.address: required with method manual"),
    ({"ipv4": {"method": "manual", "address": "192.0.2.10"}}, "ipv4.prefix: must be a whole number from 1 to 32"),
    ({"ipv4": {"method": "manual", "address": "192.0.2.300", "prefix": 24}}, "ipv4.address: '192.0.2.300' is not"),
    ({"ipv4": {"method": "manual", "address": "2001:db8::1", "prefix": 24}}, "is not an IPv4 address"),
    ({"ipv4": {"method": "manual", "address": "192.0.2.10", "netmask": "255.0.255.0"}}, "ipv4.netmask:"),
    ({"ipv4": {"method": "manual", "address": "192.0.2.0", "prefix": 24}}, "is the network address of 192.0.2.0/24"),
    ({"ipv4": {"method": "manual", "address": "192.0.2.255/24"}}, "is the broadcast address"),
    ({"ipv4": {"method": "manual", "address": "127.0.0.2/8"}}, "is a loopback address"),
    ({"ipv4": {"method": "manual", "address": "169.254.3.4/16"}}, "is a link-local address"),
    ({"ipv4": {"method": "manual", "address": "192.0.2.10/24", "gateway": "198.51.100.1"}},
     "ipv4.gateway: 198.51.100.1 is outside 192.0.2.0/24"),
    ({"ipv4": {"method": "manual", "address": "192.0.2.10/24", "gateway": "192.0.2.10"}},
     "ipv4.gateway: must not be the station's own address"),
    ({"ipv4": {"method": "manual", "address": "192.168.32.20/24"}}, "overlaps the installer's USB network"),
    ({"ipv4": {"method": "manual", "address": "192.0.2.10/24", "dns": ["2001:db8::53"]}}, "ipv4.dns: "),
    ({"ipv4": {"method": "manual", "address": "192.0.2.10/24", "dns": ["192.0.2.1"] * 4}}, "at most 3 servers"),
    ({"ipv4": {"method": "dhcp", "address": "192.0.2.10"}}, "ipv4.address: only with method manual"),
    ({"ipv6": {"method": "manual", "address": "2001:db8::10", "prefix": 129}}, "from 1 to 128"),
    ({"ipv6": {"method": "manual", "address": "2001:db8::10/64", "netmask": "255.255.255.0"}}, "IPv6 takes a prefix"),
    ({"ipv6": {"method": "manual", "address": "2001:db8::10/64", "gateway": "2001:db9::1"}}, "is outside"),
    ({"interface": "eth 0"}, "interface: 'eth 0' is not an interface name"),
    ({"interface": 7}, "interface: 7 is not an interface name"),
    ({"interfaces": "eth0"}, "interfaces: unknown field"),
    ({"ipv4": {"method": "dhcp", "mask": "x"}}, "ipv4.mask: unknown field"),
])
async def test_invalid_settings_are_refused_before_anything_changes(device: DeviceSystem, runner, tmp_path: Path,
                                                                    data: dict, message: str):
    with pytest.raises(NetworkConfigError) as raised:
        await device.set_wan_config(WanConfig.from_dict(data))
    assert message in str(raised.value)
    assert runner.calls == [] and not (tmp_path / "etc").exists()


def test_every_problem_is_listed_at_once():
    with pytest.raises(NetworkConfigError) as raised:
        WanConfig.from_dict({"ipv4": {"method": "manual", "address": "192.0.2.10", "prefix": 24,
                                      "gateway": "203.0.113.1", "dns": ["nope"]},
                             "ipv6": {"method": "auto"}})
    assert len(raised.value.problems) == 3
    assert {p.split(":")[0] for p in raised.value.problems} == {"ipv4.gateway", "ipv4.dns", "ipv6.method"}


@pytest.mark.parametrize("system", ["device", "dry-run"])
async def test_the_usb_interface_is_not_a_wan(device: DeviceSystem, runner, system: str):
    edge = device if system == "device" else DryRunSystem()
    with pytest.raises(NetworkConfigError, match="usb0 is the installer's USB network"):
        await edge.set_wan_config(WanConfig(interface="usb0"))
    assert runner.calls == []


# ---- the installer's USB network --------------------------------------------------------------


async def test_usb_gadget_network_file(device: DeviceSystem, runner, tmp_path: Path):
    assert await device.configure_usb_gadget()
    text = (tmp_path / USB_FILE).read_text()
    assert "[Match]\nName=usb0\n" in text
    network, server = text.split("[Network]\n")[1].split("[DHCPServer]\n")
    assert "Address=192.168.32.1/24\n" in network and "DHCPServer=yes\n" in network
    assert "ConfigureWithoutCarrier=yes\n" in network
    for line in ("PoolOffset=100", "PoolSize=50", "EmitRouter=no", "EmitDNS=no"):  # the laptop keeps its own routes
        assert f"{line}\n" in server
    assert runner.lines == ["networkctl reload"]
    runner.calls.clear()
    assert await device.configure_usb_gadget() and runner.calls == []  # unchanged: no reload


# ---- NetworkConfig / NetworkStatus JSON -------------------------------------------------------


def _key_orders(entries: list[dict]) -> list[list[str]]:
    return [list(entry) for entry in entries]


async def test_network_config_json_matches_the_eaton_example(device: DeviceSystem):
    dhcp = device.network_config()
    assert dhcp == [
        {"link": "eth0", "enabled": True, "dhcp": "client", "routing": "no", "bridge": False},
        {"link": "usb0", "enabled": True, "dhcp": "server", "routing": "no", "ip": "192.168.32.1",
         "mask": "255.255.255.0", "bridge": False},
    ]
    # the WAN as a DHCP client has the keys of Eaton's eth2, the USB network those of eth1
    assert _key_orders(dhcp) == _key_orders([EATON_NETWORK_CONFIG[1], EATON_NETWORK_CONFIG[0]])
    await device.set_wan_config(WanConfig.from_dict(MANUAL))
    manual = device.network_config()[0]
    assert manual == {"link": "eth0", "enabled": True, "dhcp": "no", "routing": "no", "ip": "192.0.2.10",
                      "mask": "255.255.255.0", "bridge": False}
    assert list(manual) == list(EATON_NETWORK_CONFIG[0])
    rendered = Json(shape=network_shape).render(device.network_config())
    assert rendered.startswith('[{"link": "eth0", "enabled": true, "dhcp": "no", "routing": "no", "ip": ')
    network_shape(json.loads(rendered))


async def test_network_status_from_ip_addr(device: DeviceSystem, runner):
    runner.answer("ip", "-j", "addr", "show", stdout=IP_ADDR)
    status = await device.network_status()
    assert runner.lines == ["ip -j addr show"]
    assert status == [
        {"link": "eth0", "state": "connected", "ipv4": "198.51.100.23", "mask": "255.255.255.0",
         "mac": "B8:27:EB:AA:62:31", "bridge": False, "enabled": True},
        {"link": "usb0", "state": "connected", "ipv4": "192.168.32.1", "mask": "255.255.255.0",
         "mac": "C6:B6:C3:67:6A:E4", "bridge": False, "enabled": True},
        {"link": "wwan0", "state": "down", "enabled": True},
        {"link": "wlan0", "state": "down", "mac": "00:06:67:08:21:AA", "enabled": False,
         "rx-quality": 0, "rx-level": 0, "rx-noise": 0},
        {"link": "eth1", "state": "up", "mac": "B8:27:EB:AA:62:32", "bridge": True, "enabled": True},
    ]
    # key order exactly as in the Eaton example (eth1 connected, eth2 up, wlan0)
    assert list(status[0]) == list(EATON_NETWORK_STATUS[0])
    assert list(status[4]) == list(EATON_NETWORK_STATUS[1])
    assert list(status[3]) == [k for k in EATON_NETWORK_STATUS[2] if k not in ("ipv4", "mask")]


@pytest.mark.parametrize("answer", [{"returncode": 1, "stderr": "Cannot open netlink socket"}, {"stdout": "{nope"}])
async def test_network_status_unknown_is_an_empty_list(device: DeviceSystem, runner, answer: dict):
    runner.answer("ip", "-j", "addr", "show", **answer)
    assert await device.network_status() == []


def test_parse_ip_addr_ignores_what_is_not_a_link():
    assert parse_ip_addr('[{"ifname": 3}, "x", {"ifname": "eth0", "link_type": "ether"}]') == [
        {"link": "eth0", "state": "down", "bridge": False, "enabled": False}]


def test_rendered_file_reads_back_for_every_method():
    for data in (MANUAL, {}, {"ipv4": {"method": "dhcp", "dns": ["192.0.2.53"]}}):
        config = WanConfig.from_dict(data)
        assert parse_wan(render_wan(config)) == config


# ---- the dry run ------------------------------------------------------------------------------


async def test_dry_run_records_and_remembers():
    dry = DryRunSystem()
    config = WanConfig.from_dict(MANUAL)
    assert await dry.set_wan_config(config)
    assert await dry.configure_usb_gadget()
    assert dry.actions == [
        ("set_wan_config", "eth0 ipv4=manual 192.0.2.10/24 gateway 192.0.2.1 dns 192.0.2.53,198.51.100.53 "
                           "ipv6=manual 2001:db8::10/64 gateway fe80::1 dns 2001:db8::53"),
        ("configure_usb_gadget", "usb0 192.168.32.1/24 with a DHCP server"),
    ]
    assert dry.wan_config() == config
    assert dry.network_config()[0]["ip"] == "192.0.2.10"
    status = await dry.network_status()
    assert [list(e) for e in status] == [list(EATON_NETWORK_STATUS[0])] * 2
    assert status[0]["ipv4"] == "192.0.2.10"


# ---- a Wi-Fi WAN -------------------------------------------------------------------------------

IEEE_PSK = "f42c6fc52df0ebef9ebb4b90b38a5f902e83fe1b135a70e23aed762e9710a12e"  # IEEE 802.11i: "password", "IEEE"
PASSPHRASE = "Depot-Wifi-Secret-77"
WIFI = {"interface": "wlan0", "ipv4": {"method": "dhcp"},
        "wifi": {"ssid": "Depot Ünit", "security": "WPA2-Personal", "passphrase": PASSPHRASE}}
SUPPLICANT_FILE = "etc/wpa_supplicant/wpa_supplicant-wlan0.conf"


def test_the_psk_is_the_one_wpa_passphrase_derives():
    from stationd.system.wifi import derive_psk

    assert derive_psk("password", "IEEE") == IEEE_PSK
    config = WanConfig.from_dict({"interface": "wlan0", "wifi": {"ssid": "IEEE", "passphrase": "password"}})
    assert config.wifi.psk == IEEE_PSK and config.wifi.key_mgmt == "WPA-PSK"
    raw = WanConfig.from_dict({"interface": "wlan0", "wifi": {"ssid": "IEEE", "passphrase": IEEE_PSK.upper()}})
    assert raw.wifi.psk == IEEE_PSK  # 64 hex digits are the key itself


@pytest.mark.parametrize(("data", "message"), [
    ({"interface": "wlan0", "wifi": {"ssid": "Depot", "passphrase": "1234567"}},
     "wifi.passphrase: must be 8 to 63 characters (got 7)"),
    ({"interface": "wlan0", "wifi": {"ssid": "Depot", "passphrase": "x" * 64}},
     "wifi.passphrase: 64 characters must all be hex digits"),
    ({"interface": "wlan0", "wifi": {"ssid": "Depot", "passphrase": "a" * 65}},
     "wifi.passphrase: must be 8 to 63 characters (got 65)"),
    ({"interface": "wlan0", "wifi": {"ssid": "Depot", "passphrase": "pässwörter"}},
     "wifi.passphrase: only printable ASCII"),
    ({"interface": "wlan0", "wifi": {"ssid": "Depot"}}, "wifi.passphrase: required with WPA2-Personal"),
    ({"interface": "wlan0", "wifi": {"ssid": "x" * 33, "passphrase": "password"}},
     "wifi.ssid: at most 32 bytes of UTF-8 (got 33)"),
    ({"interface": "wlan0", "wifi": {"ssid": "ü" * 17, "passphrase": "password"}}, "(got 34)"),  # bytes, not letters
    ({"interface": "wlan0", "wifi": {"ssid": "", "security": "Open"}}, "wifi.ssid: required"),
    ({"interface": "wlan0", "wifi": {"ssid": "Depot", "security": "WEP"}}, "wifi.security: must be one of"),
    ({"interface": "wlan0", "wifi": {"ssid": "Depot", "security": "Open", "passphrase": "password"}},
     "wifi.passphrase: only with WPA2-Personal"),
    ({"interface": "wlan0", "wifi": {"ssid": "Depot", "passphrase": "password", "psk": "x"}},
     "wifi.psk: unknown field"),
    ({"interface": "wlan0"}, "wifi: required for the Wi-Fi interface wlan0"),
    ({"interface": "eth0", "wifi": {"ssid": "Depot", "passphrase": "password"}},
     "wifi: only for a Wi-Fi interface (wlan…), not eth0"),
])
async def test_invalid_wifi_settings_are_refused_before_anything_changes(device: DeviceSystem, runner,
                                                                         tmp_path: Path, data: dict, message: str):
    with pytest.raises(NetworkConfigError) as raised:
        await device.set_wan_config(WanConfig.from_dict(data))
    assert message in str(raised.value)
    passphrase = data.get("wifi", {}).get("passphrase")
    assert not passphrase or passphrase not in str(raised.value)  # never quoted back
    assert runner.calls == [] and not (tmp_path / "etc").exists()


def test_each_wifi_field_has_its_own_problem():
    with pytest.raises(NetworkConfigError) as raised:
        WanConfig.from_dict({"interface": "wlan0", "ipv4": {"method": "auto"},
                             "wifi": {"ssid": "x" * 40, "passphrase": "short"}})
    assert sorted(p.split(":")[0] for p in raised.value.problems) == ["ipv4.method", "wifi.passphrase", "wifi.ssid"]


def test_neither_the_passphrase_nor_the_psk_is_shown():
    config = WanConfig.from_dict(WIFI)
    psk = config.wifi.psk
    assert len(psk) == 64 and psk not in (PASSPHRASE, PASSPHRASE.lower())
    assert config.describe() == 'wlan0 ipv4=dhcp ipv6=dhcp wifi ssid="Depot Ünit" security=WPA2-Personal psk=****'
    for text in (repr(config), str(config), config.describe(), json.dumps(config.to_dict()),
                 json.dumps(config.wifi.public())):
        assert PASSPHRASE not in text and psk not in text
    assert "psk=****" in repr(config)
    assert config.to_dict()["wifi"] == {"ssid": "Depot Ünit", "security": "WPA2-Personal"}


def test_an_empty_passphrase_keeps_the_stored_key_only_for_the_same_ssid():
    stored = WanConfig.from_dict(WIFI).wifi
    same = WanConfig.from_dict({**WIFI, "wifi": {"ssid": "Depot Ünit", "passphrase": ""}}, stored_wifi=stored)
    assert same.wifi == stored
    with pytest.raises(NetworkConfigError, match="wifi.passphrase: required: the SSID changed"):
        WanConfig.from_dict({**WIFI, "wifi": {"ssid": "Other", "passphrase": ""}}, stored_wifi=stored)
    changed = WanConfig.from_dict({**WIFI, "wifi": {"ssid": "Depot Ünit", "passphrase": "another-one"}},
                                  stored_wifi=stored)
    assert changed.wifi.psk != stored.psk


async def test_a_wifi_wan_writes_wpa_supplicants_file_and_starts_it(device: DeviceSystem, runner, tmp_path: Path):
    config = WanConfig.from_dict(WIFI)
    assert await device.set_wan_config(config) is True
    path = tmp_path / SUPPLICANT_FILE
    assert path.read_text() == (
        "# Written by stationd (WebUI Network > Interfaces, the Wi-Fi WAN). Do not edit: stationd replaces this file.\n"
        "ctrl_interface=/run/wpa_supplicant\nupdate_config=0\n\nnetwork={\n"
        f"\tssid={'Depot Ünit'.encode().hex()}\n\tkey_mgmt=WPA-PSK\n\tproto=RSN\n\tpsk={config.wifi.psk}\n}}\n")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # the key: the daemon's user only
    assert "Name=wlan0\n" in (tmp_path / WAN_FILE).read_text()
    assert runner.lines == ["networkctl reload", "systemctl try-restart wpa_supplicant@wlan0.service",
                            "systemctl enable --now wpa_supplicant@wlan0.service"]
    assert device.wan_config() == config  # read back: SSID, security and the kept key
    assert PASSPHRASE.encode() not in b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
    runner.calls.clear()
    assert await device.set_wan_config(WanConfig.from_dict(WIFI)) and runner.calls == []  # unchanged
    entry = device.network_config()[0]
    assert entry == {"link": "wlan0", "enabled": True, "dhcp": "client", "routing": "no", "mode": "client",
                     "ssid": "Depot Ünit", "key_mgmt": "WPA-PSK"}  # no psk: write-only, like the AuthorizationKey
    network_shape(json.loads(Json(shape=network_shape).render(device.network_config())))


async def test_an_open_network_and_leaving_wifi(device: DeviceSystem, runner, tmp_path: Path):
    await device.set_wan_config(WanConfig.from_dict(WIFI))
    runner.calls.clear()
    open_network = WanConfig.from_dict({"interface": "wlan0", "wifi": {"ssid": "Guest", "security": "Open"}})
    assert await device.set_wan_config(open_network)
    text = (tmp_path / SUPPLICANT_FILE).read_text()
    assert f"\tssid={b'Guest'.hex()}\n\tkey_mgmt=NONE\n}}\n" in text and "psk" not in text
    assert runner.lines == ["systemctl try-restart wpa_supplicant@wlan0.service",  # the .network file is the same
                            "systemctl enable --now wpa_supplicant@wlan0.service"]
    assert device.wan_config() == open_network
    assert device.network_config()[0]["key_mgmt"] == "NONE"
    runner.calls.clear()
    assert await device.set_wan_config(WanConfig())
    assert runner.lines == ["networkctl reload", "systemctl disable --now wpa_supplicant@wlan0.service"]
    assert not (tmp_path / SUPPLICANT_FILE).exists() and device.wan_config() == WanConfig()


async def test_an_unwritable_supplicant_directory_writes_and_runs_nothing(tmp_path: Path, runner):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "wpa_supplicant").write_text("not a directory")
    device = DeviceSystem(DeviceOptions(root=tmp_path), runner=runner)
    assert await device.set_wan_config(WanConfig.from_dict(WIFI)) is False
    assert runner.calls == [] and not (tmp_path / NETWORK_DIR).exists()


async def test_a_failing_supplicant_start_is_reported(device: DeviceSystem, runner):
    runner.answer("systemctl", "enable", returncode=1, stderr="Unit wpa_supplicant@wlan0.service not found.")
    assert await device.set_wan_config(WanConfig.from_dict(WIFI)) is False


async def test_a_wifi_wan_without_its_supplicant_file_reads_as_dhcp(device: DeviceSystem, tmp_path: Path):
    await device.set_wan_config(WanConfig.from_dict(WIFI))
    (tmp_path / SUPPLICANT_FILE).write_text("network={\n\tssid=\"quoted\"\n\tpsk=\"plain\"\n}\n")  # hand-edited
    assert device.wan_config() == WanConfig()


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    """The station's log handler (with its secret redaction) writing here; restored afterwards."""
    root = logging.getLogger(logs.ROOT)
    handlers, propagate, level = list(root.handlers), root.propagate, root.level
    stream = io.StringIO()
    logs.configure(stream, journal=False)
    yield stream
    root.handlers[:] = handlers
    root.propagate, root.level = propagate, level


@pytest.mark.parametrize("system", ["device", "dry-run"])
async def test_the_psk_never_reaches_a_log_line(tmp_path: Path, runner, log_stream: io.StringIO, system: str):
    stream = log_stream
    edge = DeviceSystem(DeviceOptions(root=tmp_path), runner=runner) if system == "device" else DryRunSystem()
    config = WanConfig.from_dict({**WIFI, "wifi": {"ssid": f"Log test {system}", "passphrase": PASSPHRASE}})
    try:
        assert await edge.set_wan_config(config)
        logging.getLogger("stationd.test").warning("a careless line: %s", config.wifi.psk.upper())
        text = stream.getvalue()
        assert "psk=****" in text and "a careless line: ***" in text
        assert config.wifi.psk not in text.lower() and PASSPHRASE not in text
    finally:
        edge.close()
    logging.getLogger("stationd.test").warning("after close: %s", config.wifi.psk)
    assert config.wifi.psk in stream.getvalue()  # close() removed the registration


async def test_dry_run_records_the_wifi_settings_masked():
    dry = DryRunSystem()
    config = WanConfig.from_dict(WIFI)
    assert await dry.set_wan_config(config)
    assert dry.actions == [("set_wan_config",
                            'wlan0 ipv4=dhcp ipv6=dhcp wifi ssid="Depot Ünit" security=WPA2-Personal psk=****')]
    assert dry.wan_config() == config and dry.wan_config().wifi.psk == config.wifi.psk
    assert dry.network_config()[0] == {"link": "wlan0", "enabled": True, "dhcp": "client", "routing": "no",
                                       "mode": "client", "ssid": "Depot Ünit", "key_mgmt": "WPA-PSK"}
    status = (await dry.network_status())[0]
    assert list(status) == [k for k in EATON_NETWORK_STATUS[2] if k not in ("ipv4", "mask")]
    dry.close()
