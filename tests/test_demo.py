"""`stationd demo` as a person runs it (scripts/demo.sh, the README's first command), driven
through a complete free-charging session with the firmware_sim control API."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest import REPO
from pymodbus.client import ModbusTcpClient


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Demo:
    def __init__(self, data_dir: Path):
        self.api_port, self.modbus_port = free_port(), free_port()
        self.proc = subprocess.Popen(
            ["bash", str(REPO / "scripts" / "demo.sh"), "--data-dir", str(data_dir),
             "--sim-api", f"127.0.0.1:{self.api_port}", "--modbus", f"127.0.0.1:{self.modbus_port}",
             "--webui", f"127.0.0.1:{free_port()}"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
            env={k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"},
        )
        self.banner = self._read_banner()

    def _read_banner(self) -> list[str]:
        lines = []
        deadline = time.monotonic() + 60  # the first run of demo.sh may install packages
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise AssertionError(f"demo exited early: {self.proc.stderr.read()}")
            lines.append(line.rstrip())
            if line.strip().startswith("data directory"):
                return lines
        raise AssertionError(f"no banner: {lines}")

    def api(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        data = json.dumps(body).encode() if body is not None else (b"" if method == "POST" else None)
        request = urllib.request.Request(f"http://127.0.0.1:{self.api_port}{path}", data=data, method=method)
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def connector(self, connector_id: int) -> dict:
        return self.api("GET", "/state")[1]["connectors"][connector_id - 1]

    def wait_for(self, connector_id: int, condition, timeout: float = 10.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.connector(connector_id)
            if condition(state):
                return state
            time.sleep(0.1)
        raise AssertionError(f"connector {connector_id} never got there: {state}")

    def stop(self) -> tuple[int, str]:
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=15)
        finally:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
        return code, self.proc.stderr.read()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "demo-data"


def test_a_free_charging_session_through_the_control_api(data_dir: Path):
    demo = Demo(data_dir)
    try:
        banner = "\n".join(demo.banner)
        assert "WebUI" in banner and "login admin / DEMO000001" in banner
        assert f"http://127.0.0.1:{demo.api_port}" in banner
        assert "/TE-DEMO000001" in banner and "built-in central system" in banner

        demo.wait_for(1, lambda s: s["cp_state"] == "A" and not s["faults"])
        assert demo.api("POST", "/connectors/1/plug", {"cable_max_a": 32})[0] == 200
        assert demo.api("POST", "/connectors/1/charge", {"max_current_a": 16, "phases": 3})[0] == 200
        charging = demo.wait_for(1, lambda s: s["contactor"] and s["power_w"] > 0)
        assert charging["cp_state"] == "C" and charging["locked"]
        assert charging["pwm_current_a"] == 15.9  # GridMaxPower 11 kW / (3 × 230 V), below the mains 16 A
        assert charging["power_w"] == pytest.approx(15.9 * 230 * 3, rel=0.01)
        first = charging["energy_wh"]
        later = demo.wait_for(1, lambda s: s["energy_wh"] > first + 1.0)
        assert later["energy_wh"] > first

        # the station's Modbus server (Heidelberg map) shows the same session to an energy manager
        client = ModbusTcpClient("127.0.0.1", port=demo.modbus_port)
        assert client.connect()
        deadline = time.monotonic() + 5  # the station samples its meters once a second
        while time.monotonic() < deadline:
            registers = client.read_input_registers(5, count=10, device_id=1).registers
            if registers[1]:
                break
            time.sleep(0.2)
        client.close()
        assert registers[0] in (6, 7)  # charging state C
        assert registers[1:4] == [159, 159, 159]  # current L1-L3 in 0.1 A (15.9 A)
        assert registers[5:8] == [230, 230, 230]  # voltage L1-L3 in V

        assert demo.api("POST", "/connectors/1/unplug")[0] == 200
        done = demo.wait_for(1, lambda s: not s["contactor"] and s["pwm_current_a"] == 0 and not s["locked"])
        assert done["cp_state"] == "A" and done["power_w"] == 0

        assert demo.api("POST", "/connectors/9/plug")[0] == 404
        status, error = demo.api("POST", "/connectors/1/charge", {"max_current_a": "lots"})
        assert status == 400 and "max_current_a" in error["error"]
    finally:
        code, stderr = demo.stop()
    assert code == 0, stderr
    assert "session 1 started for FREECHARGING" in stderr
    assert "session 1 ended (EVDisconnected)" in stderr
    assert "Traceback" not in stderr

    # The meters count on across a restart of the demo on the same data directory.
    again = Demo(data_dir)
    try:
        assert again.connector(1)["energy_wh"] >= later["energy_wh"]
    finally:
        code, stderr = again.stop()
    assert code == 0, stderr


async def test_kill_9_mid_session_closes_the_transaction_with_power_loss(tmp_path: Path):
    """A power cut (SIGKILL of the whole demo) during a session; the demo restarted on the same
    data directory closes that transaction with PowerLoss and its last reading, nothing lost."""
    import asyncio

    from firmware_sim.central_system import CentralSystem

    cs = CentralSystem()
    await cs.start()
    data_dir = tmp_path / "demo-data"

    def start() -> Demo:
        demo = Demo.__new__(Demo)
        demo.api_port, demo.modbus_port = free_port(), free_port()
        demo.proc = subprocess.Popen(
            [str(REPO / ".venv" / "bin" / "stationd"), "demo", "--backend", cs.url, "--data-dir", str(data_dir),
             "--sim-api", f"127.0.0.1:{demo.api_port}", "--modbus", f"127.0.0.1:{demo.modbus_port}",
             "--webui", f"127.0.0.1:{free_port()}", "--security-profile", "0"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        demo.banner = []
        return demo

    first = start()
    try:
        await asyncio.to_thread(first._read_banner)
        await cs.wait_for("BootNotification", timeout=20)
        await cs.call("TE-DEMO000001", "ChangeConfiguration", {"key": "MeterValueSampleInterval", "value": "1"})
        await asyncio.to_thread(first.api, "POST", "/connectors/1/plug", {"cable_max_a": 32})
        await asyncio.to_thread(first.api, "POST", "/connectors/1/charge", {"max_current_a": 16, "phases": 3})
        start_tx = await cs.wait_for("StartTransaction", timeout=15)
        await cs.wait_for("MeterValues", timeout=15)
        await cs.wait_for("MeterValues", timeout=15)
    finally:
        os.killpg(first.proc.pid, signal.SIGKILL)  # the power cut
        first.proc.wait(timeout=10)
    last_reading = max(
        int(r.payload["meterValue"][0]["sampledValue"][0]["value"])
        for r in cs.messages("TE-DEMO000001") if r.action == "MeterValues" and r.message_type_id == 2)

    second = start()
    try:
        await asyncio.to_thread(second._read_banner)
        stop = (await cs.wait_for("StopTransaction", timeout=30)).payload
        assert stop["reason"] == "PowerLoss"
        assert start_tx.payload["connectorId"] == 1 and stop["transactionId"] == 1
        assert stop["meterStop"] >= last_reading  # the reading kept at every sample
        starts = [r for r in cs.messages("TE-DEMO000001") if r.action == "StartTransaction" and r.message_type_id == 2]
        assert len(starts) == 1  # nothing sent twice but (at most) the one in flight
    finally:
        code, stderr = await asyncio.to_thread(second.stop)
        await cs.stop()
    assert code == 0, stderr
