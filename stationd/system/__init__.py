"""The operating-system edge: what the station asks of the machine it runs on.

``DeviceSystem`` acts on the real device (configuration files written atomically, commands
through one injectable runner); ``DryRunSystem`` (demo, development machines, tests) changes
nothing and records what it would have done. The station config file's ``system_backend``
(device | dry-run) picks one. Both follow :class:`SystemEdge`; docs/system-edge.md describes
every action.

Modules, one job each: ``edge`` (the protocol, the factory), ``device`` and ``dry_run`` (the
two implementations), ``shared`` (rules both use), ``runner`` (running commands), ``files``
(atomic writes), ``options`` (device paths and programs), ``network`` / ``network_status``
(WAN and USB settings, NetworkConfig / NetworkStatus JSON), ``wifi`` (a Wi-Fi WAN: its PSK and
wpa_supplicant file), ``modem`` (mmcli, RSSI, SIM
settings), ``timesync`` (time zone, NTP, time source), ``vendor_access`` (maintenance access
for a limited time), ``watchdog`` (HWatchdog), ``monitor`` (live values for keys and faults).
"""

from __future__ import annotations

from .device import DeviceSystem
from .dry_run import DryRunSystem
from .edge import SystemEdge, system_edge
from .modem import MobileSettings, MobileSettingsError, ModemInfo, SignalReading
from .monitor import SystemMonitor
from .network import IpSettings, NetworkConfigError, WanConfig
from .options import DeviceOptions
from .runner import CommandResult, RecordingRunner, SubprocessRunner
from .timesync import TimeConfigError, TimeSettings, TimeStatus
from .vendor_access import VendorAccessError

__all__ = [
    "CommandResult", "DeviceOptions", "DeviceSystem", "DryRunSystem", "IpSettings", "MobileSettings",
    "MobileSettingsError", "ModemInfo", "NetworkConfigError", "RecordingRunner", "SignalReading",
    "SubprocessRunner", "SystemEdge", "SystemMonitor", "TimeConfigError", "TimeSettings", "TimeStatus",
    "VendorAccessError", "WanConfig", "system_edge",
]
