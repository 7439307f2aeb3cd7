"""CPU and memory of the daemon as systemd runs it, with 4 connectors idle and then charging.

Two processes, as on a development machine standing in for the device:

1. ``python -m firmware_sim --connectors 4`` — controllers on pty pairs, the meters (SDM630)
   on one Modbus TCP server, the RFID reader on a pty, the control API on a free port;
2. ``python -m stationd run --config station.yaml`` — a station file with every controller
   ``transport: serial`` on the printed pty paths, meters ``model: SDM630`` over
   ``tcp: 127.0.0.1:<printed port>`` with unit ids 1..4 (polled every second by the daemon),
   the RFID reader on the printed pty, and its Modbus TCP server enabled on a free port.
   Before it starts, ``stationd config set GridMaxCurrentPerPhase 64`` and ``GridMaxPower 0``
   give the mains room for 4 × 16 A (with the default 16 A shared by 4 sessions, 4 A each,
   nobody could charge; with the default 11 kW power cap only two sessions could).

After a warm-up the daemon's utime + stime (/proc/<pid>/stat, every thread) is read before and
after an idle window (no vehicles); then a vehicle is plugged in and charges (16 A, 3 phases)
at every connector through the control API, and once every contactor is closed and every
meter shows power, the same is done for the charging window; VmRSS (/proc/<pid>/status) is
read at its end. Nothing talks to the daemon inside a window. Before the idle window and after
the charging window the daemon's own Modbus server is read (Heidelberg map, input registers 10
and 14), which proves that meter samples reach the core; a daemon that does not do its work
fails the benchmark instead of producing a flattering number.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from pymodbus.client import ModbusTcpClient

from stationd.hw.assembly import METER_POLL_S

from .common import (
    LOOPBACK,
    Child,
    cpu_percent,
    cpu_sample,
    free_port,
    read_lines,
    rss_bytes,
    sim_api,
    summarize_problems,
)
from .figures import Figure
from .mode import Mode

__all__ = ["run"]

CONNECTORS = 4
SETTLE_S = 3.0  # after every vehicle charges: the vehicles' reaction time, a few meter samples
MAINS_A = 64  # GridMaxCurrentPerPhase: 16 A for each of 4 sessions
VEHICLE_A = 16
START_TIMEOUT_S = 30.0
POWER_REGISTER, VOLTAGE_REGISTER = 14, 10  # Heidelberg map, input registers


def run(mode: Mode) -> list[Figure]:
    window = mode.pick(full=60.0, quick=10.0, smoke=1.0)  # each CPU window, s
    warmup = mode.pick(full=5.0, quick=2.0, smoke=2.0)  # after "ready": controller Hello, first samples, imports
    with tempfile.TemporaryDirectory(prefix="bench-daemon-") as tmp:
        return _measure(Path(tmp), window, warmup)


def _measure(tmp: Path, window: float, warmup: float) -> list[Figure]:
    sim_port, modbus_port = free_port(), free_port()
    sim_log, daemon_log = tmp / "firmware_sim.log", tmp / "stationd.log"
    with open(sim_log, "wb") as sim_err, Child(
            [sys.executable, "-m", "firmware_sim", "--connectors", str(CONNECTORS), "--state-dir", str(tmp / "sim"),
             "--sim-api", f"{LOOPBACK}:{sim_port}", "--log-level", "WARNING"],
            name="firmware_sim", stdout=subprocess.PIPE, stderr=sim_err) as sim:
        assert sim.proc.stdout is not None
        lines = read_lines(sim.proc.stdout, CONNECTORS + 2, START_TIMEOUT_S, sim)
        controllers, meter_endpoint, rfid = lines[:CONNECTORS], lines[CONNECTORS], lines[CONNECTORS + 1]
        meter_host, _, meter_port = meter_endpoint.rpartition(":")
        config = tmp / "station.yaml"
        config.write_text(_station_yaml(controllers, meter_host, int(meter_port), rfid, modbus_port, tmp / "data"))
        (tmp / "data").mkdir()
        _stationd("config", "set", "GridMaxCurrentPerPhase", str(MAINS_A), "--config", str(config))
        # No power cap either: the default 11 kW (16 A on 3 phases) would let only 2 of 4 sessions charge.
        _stationd("config", "set", "GridMaxPower", "0", "--config", str(config))

        with open(daemon_log, "wb") as daemon_err, Child(
                [sys.executable, "-m", "stationd", "run", "--config", str(config)],
                name="stationd run", stderr=daemon_err) as daemon:
            try:
                _wait_for(lambda: "stationd ready" in _text(daemon_log), START_TIMEOUT_S, daemon,
                          "the daemon never logged 'stationd ready'")
                time.sleep(warmup)
                _check_meters_reach_core(modbus_port, VOLTAGE_REGISTER, "voltage L1 (V)")
                time.sleep(1.0)  # the check's own requests are over before the window starts

                idle = _cpu_over(daemon, window)

                for cid in range(1, CONNECTORS + 1):
                    sim_api(sim_port, "POST", f"/connectors/{cid}/plug", {"cable_max_a": 32})
                    sim_api(sim_port, "POST", f"/connectors/{cid}/charge", {"max_current_a": VEHICLE_A, "phases": 3})
                _wait_for(lambda: all(c["contactor"] and c["power_w"] > 0
                                      for c in sim_api(sim_port, "GET", "/state")["connectors"]),
                          START_TIMEOUT_S, daemon, "not every connector started charging",
                          lambda: sim_api(sim_port, "GET", "/state"))
                time.sleep(SETTLE_S)

                charging = _cpu_over(daemon, window)
                rss = rss_bytes(daemon.pid)
                daemon.check_alive()
                state = sim_api(sim_port, "GET", "/state")["connectors"]
                if not all(c["contactor"] and c["power_w"] > 0 for c in state):
                    raise RuntimeError(f"a connector stopped charging during the window: {state}")
                _check_meters_reach_core(modbus_port, POWER_REGISTER, "power (W)")
            except Exception:
                print(f"bench: daemon log (last lines):\n{_tail(daemon_log)}", file=sys.stderr)
                raise
            exit_code = daemon.stop()
        if exit_code != 0:
            print(f"bench: warning: stationd exited with status {exit_code} on SIGTERM:\n{_tail(daemon_log)}",
                  file=sys.stderr)
        problems = [line.split(" ", 1)[-1] for line in _text(daemon_log).splitlines()
                    if any(f" {level} " in line for level in ("WARNING", "ERROR", "CRITICAL"))]
        if problems:
            print(summarize_problems(problems, "stationd run"), file=sys.stderr)

    setup = (f"{CONNECTORS} connectors over ptys, SDM630 meters over Modbus TCP polled every {METER_POLL_S:g} s, "
             f"Modbus server on; utime+stime over {window:g} s, % of one core")
    return [
        Figure("charging_cpu_percent", round(charging, 2), "%", "< 5",
               f"{CONNECTORS} vehicles charging at {VEHICLE_A} A; {setup}"),
        Figure("idle_cpu_percent", round(idle, 2), "%", "< 1", f"no vehicles; {setup}"),
        Figure("rss_mb_4_connectors", round(rss / 1e6, 1), "MB", "< 80",
               "VmRSS at the end of the charging window (1 MB = 10^6 bytes)"),
    ]


def _station_yaml(controllers: list[str], meter_host: str, meter_port: int, rfid: str, modbus_port: int,
                  data_dir: Path) -> str:
    rows = "".join(
        f"    - id: {cid}\n"
        f"      max_current_a: 32\n"
        f"      controller: {{transport: serial, port: '{port}'}}\n"
        f"      meter: {{model: SDM630, unit_id: {cid}, tcp: {{host: '{meter_host}', port: {meter_port}}}}}\n"
        for cid, port in enumerate(controllers, start=1))
    return (f"# written by python -m bench (bench/daemon_cpu.py)\n"
            f"identity: {{serial_number: BENCH0004}}\n"
            f"ocpp: {{endpoint: '', security_profile: 0}}\n"
            f"hardware:\n  connectors:\n{rows}"
            f"  rfid: {{transport: serial, port: '{rfid}'}}\n"
            f"webui: {{bind: '{LOOPBACK}:{free_port()}'}}\n"
            f"modbus_server: {{enabled: true, bind: '{LOOPBACK}:{modbus_port}', unit_id: 1}}\n"
            f"data_dir: '{data_dir}'\n"
            f"system_backend: dry-run\n"
            f"log_level: info\n")


def _stationd(*args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "stationd", *args], capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"stationd {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")


def _cpu_over(child: Child, window: float) -> float:
    child.check_alive()
    before = cpu_sample(child.pid)
    time.sleep(window)
    after = cpu_sample(child.pid)
    child.check_alive()
    return cpu_percent(before, after)


def _check_meters_reach_core(port: int, register: int, what: str) -> None:
    """Every connector's device on the daemon's Modbus server shows a meter value above 0."""
    client = ModbusTcpClient(LOOPBACK, port=port, timeout=2, retries=1)
    try:
        if not client.connect():
            raise RuntimeError(f"the daemon's Modbus server on {LOOPBACK}:{port} does not answer")
        values = []
        for device_id in range(1, CONNECTORS + 1):
            reply = client.read_input_registers(register, count=1, device_id=device_id)
            if reply.isError():
                raise RuntimeError(f"the daemon's Modbus server answered {reply} for device {device_id}")
            values.append(reply.registers[0])
    finally:
        client.close()
    if not all(value > 0 for value in values):
        raise RuntimeError(f"meter samples do not reach the core: {what} per connector = {values}")


def _wait_for(condition: Callable[[], bool], timeout: float, child: Child, what: str,
              show: Callable[[], object] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        child.check_alive()
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} within {timeout:g} s" + (f": {show()}" if show else ""))
        time.sleep(0.1)


def _text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


def _tail(path: Path, lines: int = 15) -> str:
    return "\n".join(_text(path).splitlines()[-lines:])
