"""Flash Firmware of the EVSE controllers (stationd.hw.flashing) over real transports.

The rig: the daemon with two connectors, connector 1's controller on a serial line (two ptys
joined back to back) and connector 2's on a virtual CAN bus (two channels joined by a gateway);
both wires can be cut and restored like a pulled cable. The controllers are firmware_sim's
SimController with its bootloader; the flasher is the daemon's (``Station.flasher``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from pathlib import Path

import can
import pytest

from firmware_sim.controller import SimController, make_controller_image
from firmware_sim.pty_bridge import PtyBridge
from firmware_sim.vehicle import Vehicle
from stationd.config.station_file import parse_station_config
from stationd.core.events import SessionEnded
from stationd.daemon import Daemon
from stationd.hw.evse_protocol import BootState, CanLink, open_serial
from stationd.hw.flashing import (
    HEADER_SIZE,
    ControllerImage,
    FlashRefused,
    ImageError,
    build_image,
)
from stationd.sdnotify import SystemdNotifier

SERIAL, CAN = 1, 2  # connector ids by transport
OLD, NEW = (1, 0, 0), (1, 1, 0)


class SerialWire(PtyBridge):
    """A null-modem cable between two ptys that a test can cut (bytes vanish) and restore."""

    cut = False

    def _forward(self, source: int, target: int) -> None:
        if self.cut:
            with contextlib.suppress(OSError):
                os.read(source, 4096)
            return
        super()._forward(source, target)


class CanWire:
    """Two virtual CAN channels joined by a gateway that a test can cut and restore."""

    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:8]
        self.controller_channel, self.station_channel = f"fl-c-{tag}", f"fl-s-{tag}"
        self.cut = False
        self.controller_bus = can.Bus(interface="virtual", channel=self.controller_channel)
        self._near = can.Bus(interface="virtual", channel=self.controller_channel)
        self._far = can.Bus(interface="virtual", channel=self.station_channel)
        self._notifiers = [can.Notifier(self._near, [self._forward_to(self._far)], timeout=0.02),
                           can.Notifier(self._far, [self._forward_to(self._near)], timeout=0.02)]

    def _forward_to(self, bus):
        def forward(message: can.Message) -> None:
            if not self.cut:
                bus.send(message)
        return forward

    def close(self) -> None:
        for notifier in self._notifiers:
            notifier.stop()
        for bus in (self.controller_bus, self._near, self._far):
            bus.shutdown()


class Rig:
    def __init__(self, tmp_path: Path):
        self.tmp_path = tmp_path
        self.serial = SerialWire()
        self.can = CanWire()
        self.controllers = {cid: SimController(hardware_id=f"FLASH-{cid}", firmware_version=OLD, tick_s=0.05)
                            for cid in (SERIAL, CAN)}
        self._tasks: list[asyncio.Task] = []
        self.station = None
        self.events: list[object] = []

    async def start(self) -> Rig:
        await self.serial.start()
        links = {SERIAL: await open_serial(self.serial.path_a),
                 CAN: CanLink(self.can.controller_bus, 1, role="controller")}
        self._links = links
        for cid, controller in self.controllers.items():
            self._tasks.append(asyncio.create_task(controller.run(links[cid])))
        config = parse_station_config(
            "identity: {serial_number: FL0001}\n"
            "hardware:\n  connectors:\n"
            f"    - {{id: 1, controller: {{transport: serial, port: '{self.serial.path_b}'}}}}\n"
            f"    - {{id: 2, controller: {{transport: can, can_interface: virtual, "
            f"can_channel: {self.can.station_channel}, node_id: 1}}}}\n"
            "modbus_server: {enabled: false, bind: '127.0.0.1:0'}\n"
            f"data_dir: {self.tmp_path / 'data'}\n")
        self.daemon = Daemon(config, notifier=SystemdNotifier.from_env({}), handle_signals=False,
                             component_factories=[self._capture])
        self._tasks.append(asyncio.create_task(self.daemon.run()))
        await until(lambda: self.station is not None and all(c.link_up for c in self.core.connectors.values())
                    and all(d.hello is not None for d in self.drivers.values()))
        return self

    def _capture(self, station):
        self.station = station
        station.core.bus.subscribe(self.events.append)
        return []

    @property
    def core(self):
        return self.station.core

    @property
    def drivers(self):
        return self.station.hardware.drivers

    @property
    def flasher(self):
        return self.station.flasher

    def status(self, cid: int) -> str:
        return self.core.status(cid).status.value

    def wire(self, cid: int):
        return self.serial if cid == SERIAL else self.can

    async def charging(self, cid: int) -> None:
        controller = self.controllers[cid]
        if controller.vehicle is None:
            controller.plug(Vehicle(cable_max_a=32, reaction_s=0))
        controller.vehicle.charge(16, 3)
        controller.refresh()
        await until(lambda: self.status(cid) == "Charging" and controller.contactor_closed)

    async def stop(self) -> None:
        self.daemon.request_stop("test over")
        code = await asyncio.wait_for(self._tasks[-1], 15)
        for task in self._tasks[:-1]:
            task.cancel()
        await asyncio.gather(*self._tasks[:-1], return_exceptions=True)
        for link in self._links.values():
            with contextlib.suppress(Exception):
                await link.close()
        self.serial.close()
        self.can.close()
        assert code == 0


async def until(condition, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


@pytest.fixture
async def rig(tmp_path: Path):
    running = await Rig(tmp_path).start()
    try:
        yield running
    finally:
        await running.stop()


# ---- the image file --------------------------------------------------------------------------


def test_the_image_file_carries_version_size_and_crc():
    blob = make_controller_image("2.3.4", size=1000)
    image = ControllerImage.parse(blob)
    assert image.version == (2, 3, 4) and image.size == 1000 and len(blob) == HEADER_SIZE + 1000
    assert blob[:4] == b"SCFW" and image.data.startswith(b"SIM-EVSE application 2.3.4\n")
    assert make_controller_image((2, 3, 4), size=1000) == blob  # the same version, the same file
    assert ControllerImage.parse(build_image((2, 3, 4), image.data)) == image


@pytest.mark.parametrize(("damage", "message"), [
    (lambda b: b[:20], "the header alone is 32"),
    (lambda b: b"ZZZZ" + b[4:], "not a controller image"),
    (lambda b: b[:7] + bytes([b[7] ^ 1]) + b[8:], "header is damaged"),
    (lambda b: b[:-1], "truncated or padded"),
    (lambda b: b + b"\0", "truncated or padded"),
])
def test_a_file_that_is_no_valid_image_is_refused_before_anything_is_sent(damage, message):
    with pytest.raises(ImageError, match=message):
        ControllerImage.parse(damage(make_controller_image(NEW, size=500)))


# ---- flashing over the wires -----------------------------------------------------------------


@pytest.mark.parametrize("cid", [SERIAL, CAN], ids=["serial", "can"])
async def test_a_new_image_is_flashed_and_the_controller_reports_its_version(rig: Rig, cid: int, tmp_path: Path):
    path = tmp_path / "controller-1.1.0.img"
    path.write_bytes(make_controller_image(NEW, size=8 * 1024))
    progress = []
    rig.flasher.subscribe(progress.append)
    report = await rig.flasher.flash(path, cid)
    assert report.ok, report
    assert [(r.connector_id, r.outcome, r.version_before, r.version_after) for r in report.results] == [
        (cid, "updated", OLD, NEW)]
    assert rig.drivers[cid].hello.firmware_version == NEW  # the restarted controller's Hello
    assert rig.controllers[cid].firmware_version == NEW
    other = CAN if cid == SERIAL else SERIAL
    assert rig.controllers[other].firmware_version == OLD
    percents = [p.percent for p in progress]
    assert percents == sorted(percents) and percents[-1] == 100 and progress[-1].state == "done"
    assert {"preparing", "transferring", "verifying", "restarting", "done"} <= {p.state for p in progress}
    assert len([p for p in progress if p.state == "transferring"]) > 10  # a progress bar, not a jump
    assert not rig.flasher.busy and "firmware update" not in rig.core.connectors[cid].limits
    await rig.charging(cid)  # the new firmware charges


async def test_every_controller_at_once_serial_and_can(rig: Rig):
    report = await rig.flasher.flash(make_controller_image(NEW, size=4096))
    assert report.ok
    assert [(r.connector_id, r.version_after) for r in report.results] == [(SERIAL, NEW), (CAN, NEW)]
    assert rig.flasher.versions() == {SERIAL: NEW, CAN: NEW}


async def test_a_corrupted_image_is_refused_by_the_bootloader_and_the_old_firmware_runs(rig: Rig):
    blob = bytearray(make_controller_image(NEW, size=4096))
    blob[HEADER_SIZE + 1000] ^= 0x40  # one flipped bit in the image (the header is intact)
    report = await rig.flasher.flash(bytes(blob), SERIAL)
    assert not report.ok
    result = report.results[0]
    assert result.outcome == "failed" and "IMAGE_CRC" in result.error and "1.0.0 keeps running" in result.error
    assert result.version_after == OLD and rig.drivers[SERIAL].hello.firmware_version == OLD
    assert rig.controllers[SERIAL].firmware_version == OLD
    assert rig.controllers[SERIAL].boot_state is BootState.IDLE
    await rig.charging(SERIAL)  # the old firmware charges as before


async def test_flashing_is_refused_while_a_vehicle_charges(rig: Rig):
    await rig.charging(CAN)
    with pytest.raises(FlashRefused, match="connector 2: a session is in progress \\(Charging\\)"):
        await rig.flasher.flash(make_controller_image(NEW, size=1024), CAN)
    with pytest.raises(FlashRefused, match="connector 2"):
        await rig.flasher.flash(make_controller_image(NEW, size=1024))  # all: connector 2 charges
    assert rig.status(CAN) == "Charging" and rig.controllers[CAN].contactor_closed
    assert rig.controllers[CAN].firmware_version == OLD and rig.controllers[SERIAL].firmware_version == OLD
    assert not rig.flasher.busy


async def test_forced_while_charging_ends_the_session_first_then_flashes(rig: Rig):
    await rig.charging(SERIAL)
    report = await rig.flasher.flash(make_controller_image(NEW, size=4096), SERIAL, force=True)
    assert report.ok and rig.controllers[SERIAL].firmware_version == NEW
    ended = [e.session for e in rig.events if isinstance(e, SessionEnded)]
    assert [(s.connector_id, s.stop_reason) for s in ended] == [(SERIAL, "Other")]
    # the vehicle is still plugged in and asking: after the flash it can charge again with a new session
    assert rig.controllers[SERIAL].vehicle is not None
    assert rig.status(SERIAL) == "Finishing"


@pytest.mark.parametrize("cid", [SERIAL, CAN], ids=["serial", "can"])
async def test_a_link_lost_mid_flash_aborts_and_the_old_firmware_runs(rig: Rig, cid: int):
    wire = rig.wire(cid)
    cut_at = []

    def cut_midway(progress) -> None:
        if progress.state == "transferring" and progress.connector_percent >= 40 and not cut_at:
            cut_at.append(progress.connector_percent)
            wire.cut = True

    rig.flasher.subscribe(cut_midway)
    rig.flasher.reconnect_timeout = 30.0
    flash = asyncio.create_task(rig.flasher.flash(make_controller_image(NEW, size=32 * 1024), cid))
    await until(lambda: bool(cut_at))
    assert rig.controllers[cid].boot_state is BootState.RECEIVING
    await until(lambda: not rig.core.connectors[cid].link_up, timeout=10)  # the station noticed (3 s silence)
    await asyncio.sleep(0.5)
    wire.cut = False  # the cable is back
    report = await asyncio.wait_for(flash, 40)
    result = report.results[0]
    assert result.outcome == "failed" and "link lost" in result.error, result
    assert "1.0.0 keeps running" in result.error and result.version_after == OLD
    controller = rig.controllers[cid]
    assert controller.boot_state is BootState.IDLE and controller.firmware_version == OLD
    await until(lambda: rig.core.connectors[cid].link_up)
    assert rig.drivers[cid].hello.firmware_version == OLD
    await rig.charging(cid)  # not stuck in the update (BUSY): it charges


@pytest.mark.parametrize("reconnects", [False, True], ids=["back-before-the-driver-noticed", "driver-reconnected"])
async def test_a_link_back_after_the_flash_gave_up_still_discards_the_partial_image(rig: Rig, reconnects: bool):
    """The flash request gives up waiting (reconnect_timeout); BootAbort follows when the link is
    back: from the flasher (the same link) or from the driver (at its reconnect)."""
    rig.flasher.reconnect_timeout = 0.5
    unsubscribe = rig.flasher.subscribe(
        lambda p: setattr(rig.serial, "cut", True) if p.connector_percent >= 30 else None)
    report = await rig.flasher.flash(make_controller_image(NEW, size=16 * 1024), SERIAL)
    unsubscribe()
    assert "does not answer" in report.results[0].error
    assert rig.controllers[SERIAL].boot_state is BootState.RECEIVING  # the partial image is still there
    if reconnects:  # the outage outlasts the driver's patience (3 s of silence): it reconnects
        await until(lambda: not rig.core.connectors[SERIAL].link_up)
    rig.serial.cut = False
    await until(lambda: rig.controllers[SERIAL].boot_state is BootState.IDLE, timeout=15)
    await until(lambda: rig.core.connectors[SERIAL].link_up)
    assert rig.controllers[SERIAL].firmware_version == OLD
    await rig.charging(SERIAL)


async def test_a_cancelled_flash_leaves_the_controller_idle_and_charging(rig: Rig):
    flash = asyncio.create_task(rig.flasher.flash(make_controller_image(NEW, size=32 * 1024), CAN))
    await until(lambda: rig.flasher.progress is not None and rig.flasher.progress.connector_percent >= 20)
    flash.cancel()
    with pytest.raises(asyncio.CancelledError):
        await flash
    assert not rig.flasher.busy and "firmware update" not in rig.core.connectors[CAN].limits
    await until(lambda: rig.controllers[CAN].boot_state is BootState.IDLE, timeout=5)
    assert rig.controllers[CAN].firmware_version == OLD
    await rig.charging(CAN)


async def test_one_flash_at_a_time_and_downgrades_only_when_allowed(rig: Rig):
    first = asyncio.create_task(rig.flasher.flash(make_controller_image(NEW, size=16 * 1024), SERIAL))
    await until(lambda: rig.flasher.busy)
    with pytest.raises(FlashRefused, match="already running"):
        await rig.flasher.flash(make_controller_image(NEW, size=1024), CAN)
    assert (await first).ok
    refused = await rig.flasher.flash(make_controller_image(OLD, size=1024), SERIAL)
    assert "DOWNGRADE" in refused.results[0].error and rig.controllers[SERIAL].firmware_version == NEW
    allowed = await rig.flasher.flash(make_controller_image(OLD, size=1024), SERIAL, allow_downgrade=True)
    assert allowed.ok and rig.controllers[SERIAL].firmware_version == OLD
    with pytest.raises(FlashRefused, match="no connector 7"):
        await rig.flasher.flash(make_controller_image(NEW, size=1024), 7)
    with pytest.raises(FlashRefused, match="truncated"):
        await rig.flasher.flash(make_controller_image(NEW, size=1024)[:-3], SERIAL)
