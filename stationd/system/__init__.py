"""The operating-system edge: what the station asks of the machine it runs on.

``DeviceSystem`` acts on the real device; ``DryRunSystem`` (demo, development machines, tests)
changes nothing and records what it would have done. The station config file's
``system_backend`` (device | dry-run) picks one.
"""

from __future__ import annotations

from .edge import DeviceSystem, DryRunSystem, SystemEdge, system_edge

__all__ = ["DeviceSystem", "DryRunSystem", "SystemEdge", "system_edge"]
