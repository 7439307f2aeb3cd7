"""Date and time as data (WebUI Station > Date/Time): time zone, where the clock is set from,
NTP servers; the systemd-timesyncd drop-in; ``timedatectl show`` output.

Time sources (the vendor guide's three): ``NTP`` (systemd-timesyncd keeps the clock),
``HeartBeat`` (NTP off; the OCPP client sets the clock from the backend's Heartbeat and
BootNotification answers, see ocpp_client), ``Browser`` (NTP off; the browser's time sets
the clock once, when the installer saves the page).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..config.value_types import InvalidValue, TimeZone

TIME_SOURCES = ("NTP", "HeartBeat", "Browser")
MAX_NTP_SERVERS = 5
TIMESYNCD_DROPIN_HEADER = "# Written by stationd (WebUI Station > Date/Time). Do not edit: stationd replaces it.\n"
_HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)\Z")
_TIMEZONE = TimeZone()


class TimeConfigError(ValueError):
    """Time settings that cannot be applied; nothing was changed."""


def check_timezone(name: str) -> str:
    try:
        return _TIMEZONE.parse(name) if isinstance(name, str) else _TIMEZONE.parse("")
    except InvalidValue as exc:
        raise TimeConfigError(f"timezone: {exc}") from None


def check_ntp_servers(servers: Iterable[str]) -> tuple[str, ...]:
    servers = tuple(servers)
    if len(servers) > MAX_NTP_SERVERS:
        raise TimeConfigError(f"ntp_servers: at most {MAX_NTP_SERVERS} servers")
    for server in servers:
        if not _is_host(server):
            raise TimeConfigError(f"ntp_servers: {server!r} is not a host name or IP address")
    return servers


def _is_host(text: object) -> bool:
    if not isinstance(text, str) or not text or len(text) > 253:
        return False
    if ":" in text:  # an IPv6 address
        return bool(re.fullmatch(r"[0-9A-Fa-f:.]+", text))
    return all(_HOST_LABEL.match(label) for label in text.rstrip(".").split("."))


@dataclass(frozen=True)
class TimeSettings:
    timezone: str = "UTC"
    source: str = "NTP"
    ntp_servers: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "timezone", check_timezone(self.timezone))
        if self.source not in TIME_SOURCES:
            raise TimeConfigError(f"source: must be one of {', '.join(TIME_SOURCES)} (got {self.source!r})")
        object.__setattr__(self, "ntp_servers", check_ntp_servers(self.ntp_servers))


@dataclass(frozen=True)
class TimeStatus:
    """What ``timedatectl show`` says."""

    timezone: str | None = None
    ntp: bool | None = None  # NTP switched on
    synchronized: bool | None = None  # the clock is in sync with an NTP server

    def to_dict(self) -> dict[str, object]:
        return {"timezone": self.timezone, "ntp": self.ntp, "synchronized": self.synchronized}


def parse_timedatectl_show(output: str) -> TimeStatus:
    values = dict(line.partition("=")[::2] for line in output.splitlines() if "=" in line)

    def flag(name: str) -> bool | None:
        return {"yes": True, "no": False}.get(values.get(name, ""))

    return TimeStatus(values.get("Timezone") or None, flag("NTP"), flag("NTPSynchronized"))


def render_timesyncd_dropin(servers: Sequence[str]) -> str:
    """``timesyncd.conf.d/stationd.conf``. Without servers of our own the distribution's
    FallbackNTP= list applies (and servers networkd learns by DHCP)."""
    if not servers:
        return TIMESYNCD_DROPIN_HEADER + "[Time]\n# no servers chosen: FallbackNTP= of the distribution applies\n"
    return TIMESYNCD_DROPIN_HEADER + "[Time]\nNTP=" + " ".join(servers) + "\n"


def parse_timesyncd_dropin(text: str | None) -> tuple[str, ...]:
    for line in (text or "").splitlines():
        if line.startswith("NTP="):
            return tuple(line[4:].split())
    return ()
