"""System edge implementations (see the package docstring)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Protocol

log = logging.getLogger("stationd.system")

TIMEDATECTL_TIMEOUT_S = 10


class SystemEdge(Protocol):
    async def set_time(self, moment: datetime) -> bool:
        """Set the system clock; True when it was set."""


@dataclass
class DryRunSystem:
    """Changes nothing; remembers every action (the demo and the tests read ``actions``)."""

    actions: list[tuple[str, str]] = field(default_factory=list)

    async def set_time(self, moment: datetime) -> bool:
        text = moment.astimezone(timezone.utc).isoformat(timespec="seconds")
        self.actions.append(("set_time", text))
        log.info("dry run: would set the system clock to %s", text)
        return True


class DeviceSystem:
    """The real device: the clock through systemd-timedated (``timedatectl``), which the
    service may use although its unit forbids setting the clock itself (ProtectClock)."""

    async def set_time(self, moment: datetime) -> bool:
        local = moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")
        try:
            process = await asyncio.create_subprocess_exec(
                "timedatectl", "set-time", local,
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
            async with asyncio.timeout(TIMEDATECTL_TIMEOUT_S):
                _, error = await process.communicate()
        except (OSError, TimeoutError) as exc:
            log.error("cannot set the system clock: %s", exc)
            return False
        if process.returncode != 0:
            log.error("timedatectl set-time failed: %s", error.decode(errors="replace").strip())
            return False
        log.info("system clock set to %s", local)
        return True


def system_edge(backend: str) -> SystemEdge:
    return DeviceSystem() if backend == "device" else DryRunSystem()
