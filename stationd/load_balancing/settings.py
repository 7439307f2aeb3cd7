"""What the LoadBalancing* keys say, read live: the cluster's limits, the master's address.

``LoadBalancingMasterURI`` is the master's URL with ``{BoxId}`` standing for the BoxId of the
member that connects (default ``wss://eatongm:8443/{BoxId}``); a URI without the placeholder
gets the BoxId appended as its last path segment. The master listens on the URI's port (80 for
``ws://``, 443 for ``wss://`` when none is given), on the URI's host when that is an IP address,
else on every interface (the host name is how the slaves find the master, not an address of it).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit

from ..config.store import ConfigStore
from ..power.cluster import ClusterLimits

SOURCE = "load balancing"  # the core's name of the limit this package sets
PLACEHOLDER = "{BoxId}"
ROTATE_AFTER_S = 15 * 60.0

# A change of any of these makes the service start its role again (master ↔ slave, other
# address, other meter); the limits are read at every round instead.
ROLE_KEYS = ("LoadBalancingEnabled", "LoadBalancingMode", "LoadBalancingMasterURI",
             "LoadBalancingEnergyMeterEnabled", "LoadBalancingEnergyMeterIP", "LoadBalancingEnergyMeterType",
             "BoxId")


def member_url(uri: str, box_id: str) -> str:
    """The URL a member with ``box_id`` connects to."""
    if PLACEHOLDER in uri:
        return uri.replace(PLACEHOLDER, quote(box_id, safe=""))
    return uri.rstrip("/") + "/" + quote(box_id, safe="")


@dataclass(frozen=True)
class ListenAddress:
    host: str | None  # None: every interface
    port: int
    tls: bool

    def __str__(self) -> str:
        host = self.host or "*"
        return f"{'wss' if self.tls else 'ws'}://{host}:{self.port}"


def listen_address(uri: str) -> ListenAddress:
    """Where the master listens for LoadBalancingMasterURI ``uri``; ValueError if it has no host."""
    parts = urlsplit(uri.replace(PLACEHOLDER, "x"))
    scheme = parts.scheme.lower()
    if scheme not in ("ws", "wss") or not parts.hostname:
        raise ValueError("LoadBalancingMasterURI must be a ws:// or wss:// URL with a host")
    port = parts.port or (443 if scheme == "wss" else 80)
    try:
        host: str | None = str(ipaddress.ip_address(parts.hostname))
    except ValueError:
        host = None
    return ListenAddress(host, port, scheme == "wss")


def box_id_of(path: str) -> str:
    """The BoxId a slave connected with: the last segment of the request path."""
    return unquote(urlsplit(path).path.rsplit("/", 1)[-1])


def cluster_limits(store: ConfigStore, building_a: tuple[float, float, float] | None,
                   meter_enabled: bool) -> ClusterLimits:
    """The cluster's ``ClusterLimits`` from the keys as they are now."""
    balance = float(store.get("LoadBalancingPhaseBalBound")) if store.get("LoadBalancingPhaseBalTrigger") else None
    return ClusterLimits(
        algorithm=str(store.get("LoadBalancingAlgo")),
        max_cluster_a=float(store.get("LoadBalancingMaxCluster")),
        max_building_a=float(store.get("LoadBalancingMaxBuilding")),
        building_a=building_a if meter_enabled else None,
        meter_enabled=meter_enabled,
        min_cluster_a=float(store.get("LoadBalancingMinCluster")),
        phase_balance_a=balance,
        rotate_after_s=ROTATE_AFTER_S,
    )
