"""Settings that act on the operating system reach the system edge (dry run records them)."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from stationd.config.store import ConfigStore
from stationd.config.value_types import Source
from stationd.system import system_edge
from stationd.system.settings_bridge import SystemSettings

LOCAL_ACCESS = "/Security/enableLocalVendorAccess"


async def until(predicate, timeout: float = 3.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


async def test_keys_become_system_actions(tmp_path: Path):
    store = ConfigStore.open(tmp_path)
    assert store.set(LOCAL_ACCESS, "true", Source.LOCAL).ok  # left on before a restart
    edge = system_edge("dry-run")
    task = asyncio.create_task(SystemSettings(store, edge, vendor_access_s=0.3).run())
    try:
        names = lambda: [name for name, _ in edge.actions]  # noqa: E731
        await until(lambda: "set_ntp" in names())
        assert store.get(LOCAL_ACCESS) is False  # vendor access never survives a restart
        assert ("set_hardware_watchdog" in names()) and ("set_timezone", "UTC") in edge.actions

        store.set("HWatchdog", "0", Source.OCPP)
        await until(lambda: [a for a in edge.actions if a[0] == "set_hardware_watchdog"][-1][1].startswith("RuntimeWatchdogSec=off"))

        store.set("TimeZone", "Europe/Berlin", Source.LOCAL)
        await until(lambda: ("set_timezone", "Europe/Berlin") in edge.actions)

        store.set(LOCAL_ACCESS, "true", Source.LOCAL)
        await until(lambda: any(name == "vendor_access_on" for name in names()))
        assert store.get(LOCAL_ACCESS) is True
        await until(lambda: store.get(LOCAL_ACCESS) is False)  # the time ran out: off, and the key follows
        assert any(name == "vendor_access_off" for name in names())
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
