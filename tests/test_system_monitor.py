"""System monitor: the live keys (NetworkConfig, NetworkStatus, RSSI, the Technagon signal path
key) served from a real ConfigStore, and WeakSignal with its hysteresis."""

from __future__ import annotations

import json

import pytest

from stationd.config.store import ConfigStore
from stationd.system import DryRunSystem, ModemInfo, SystemMonitor
from stationd.system.monitor import fit, prioritized

MODEM = ModemInfo(path="/org/freedesktop/ModemManager1/Modem/0", manufacturer="Simulated")


async def test_keys_read_the_live_values():
    edge = DryRunSystem(modem=MODEM, signal_dbm=-83)
    monitor = SystemMonitor(edge)
    store = ConfigStore()
    monitor.provide_keys(store)
    assert store.read("RSSI").value == "-999"  # nothing read yet
    await monitor.refresh()
    assert store.read("RSSI").value == "-83"
    assert store.read("/Network/Gateway/Device/Connection/signal").value == "-83"
    assert json.loads(store.read("NetworkStatus").value) == await edge.network_status()
    config = store.read("NetworkConfig").value
    assert config.startswith('[{"link": "eth0", "enabled": true, "dhcp": "client"')
    assert json.loads(config) == edge.network_config()
    assert store.read("NetworkConfig").readonly


@pytest.mark.parametrize(("readings", "flags"), [
    ([-90, -96, -93, -92, -100, -80], [False, True, True, False, True, False]),  # raised < -95, cleared >= -92
    ([-110, None], [True, False]),  # the modem gone: no WeakSignal
])
async def test_weak_signal_with_hysteresis(readings, flags):
    changes: list[bool] = []
    edge = DryRunSystem(modem=MODEM)
    monitor = SystemMonitor(edge, on_weak_signal=changes.append)
    seen = []
    for dbm in readings:
        edge.signal_dbm = dbm
        await monitor.refresh()
        seen.append(monitor.weak_signal)
    assert seen == flags
    assert changes == [flag for previous, flag in zip([False, *flags], flags) if flag != previous]


async def test_no_modem_no_weak_signal():
    monitor = SystemMonitor(DryRunSystem(signal_dbm=-120))
    await monitor.refresh()
    assert monitor.rssi == -999 and monitor.weak_signal is False


async def test_a_failing_reading_keeps_the_monitor_running():
    class Broken(DryRunSystem):
        async def network_status(self):
            raise RuntimeError("netlink gone")

    monitor = SystemMonitor(Broken(modem=MODEM, signal_dbm=-70))
    await monitor.refresh()
    assert monitor.network_status == [] and monitor.rssi == -70


async def test_run_refreshes_every_interval():
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 3:
            raise StopAsyncIteration

    monitor = SystemMonitor(DryRunSystem(), interval_s=42, sleep=sleep)
    with pytest.raises(StopAsyncIteration):
        await monitor.run()
    assert sleeps == [42, 42, 42]


def test_status_fits_a_get_configuration_value():
    config = [{"link": "eth0"}, {"link": "usb0"}]
    status = [{"link": f"veth{i}", "state": "up", "mac": "02:00:00:00:00:00", "bridge": True, "enabled": True}
              for i in range(10)] + [{"link": "usb0", "state": "up"}, {"link": "eth0", "state": "up"}]
    kept = fit(prioritized(status, config))
    assert [e["link"] for e in kept[:2]] == ["eth0", "usb0"]  # the station's own interfaces first
    assert len(json.dumps(kept, separators=(", ", ": "))) <= 500 and len(kept) < len(status)
