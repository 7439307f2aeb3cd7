"""Checks for systemd/stationd.service: systemd-analyze verify/security plus content checks.

systemd-analyze comes from Debian's ``systemd`` package (``scripts/setup.sh --test``).
These tests fail, never skip, when it is missing.

What ``systemd-analyze verify`` (systemd 252, Debian 12, in a container) prints:
- nothing at all for a correct unit, exit code 0;
- ``<path>/stationd.service:<line>: Unknown key ...`` style warnings for syntax problems,
  *with exit code 0* -- so the output has to be checked, not just the exit code;
- ``stationd.service: Command <ExecStart binary> is not executable ...`` with exit code 1
  when the ExecStart binary does not exist -- hence the copy with a real binary below;
- nothing about the missing ``stationd`` user (User=/Group= are not resolved offline).
Verify also loads the units ours depends on (network-online.target, multi-user.target)
from the host. Messages about those are the host's business, not the unit's: only lines
that mention ``stationd.service`` fail the test; other lines are passed on as a pytest
warning so they stay visible. test_verify_reports_* prove that this filter does catch
real mistakes.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import warnings
from collections import defaultdict
from pathlib import Path

import pytest

UNIT_NAME = "stationd.service"
UNIT_SRC = Path(__file__).resolve().parents[1] / "systemd" / UNIT_NAME
DEVICE_BINARY = "/opt/stationd/bin/stationd"
EXEC_START = f"{DEVICE_BINARY} run --config /etc/stationd/stationd.yaml"

# Exposure levels systemd-analyze security prints, best first (src/analyze/analyze-security.c).
LEVELS = ["PERFECT", "SAFE", "OK", "MEDIUM", "EXPOSED", "UNSAFE", "DANGEROUS"]
MAX_SCORE = 5.0
OVERALL_RE = re.compile(
    r"Overall exposure level for (?P<unit>\S+): (?P<score>\d+(?:\.\d+)?) (?P<level>[A-Z]+)"
)


def systemd_analyze() -> str:
    found = shutil.which("systemd-analyze") or next(
        (p for p in ("/usr/bin/systemd-analyze", "/bin/systemd-analyze") if os.access(p, os.X_OK)),
        None,
    )
    if found is None:
        pytest.fail(
            "systemd-analyze is not installed, so the systemd unit cannot be verified. "
            "Run `scripts/setup.sh --test` (installs Debian's `systemd` package).",
            pytrace=False,
        )
    return found


def run_analyze(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    # Plain, untranslated, uncoloured output at the default log level, so that
    # parsing and filtering do not depend on the caller's environment.
    env.update(SYSTEMD_COLORS="0", SYSTEMD_PAGER="cat", SYSTEMD_LOG_LEVEL="info", LC_ALL="C")
    return subprocess.run(
        [systemd_analyze(), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def executable_for_exec_start(tmp_path: Path) -> str:
    """A path to an existing executable to put into ExecStart.

    systemd-analyze verify fails (exit code 1) when the ExecStart binary does not exist,
    and /opt/stationd/bin/stationd only exists on the device. Prefer the venv's real
    `stationd` console script; fall back to a stub when it is not installed.
    """
    candidates = [Path(sys.executable).parent / "stationd"]
    if which := shutil.which("stationd"):
        candidates.append(Path(which))
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK) and " " not in str(candidate):
            return str(candidate)
    stub = tmp_path / "stationd-stub"
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    return str(stub)


def make_copy(tmp_path: Path, transform=lambda text: text) -> Path:
    """Write the unit, with a locally existing ExecStart binary, to tmp_path/stationd.service."""
    text = UNIT_SRC.read_text()
    assert f"\nExecStart={DEVICE_BINARY} " in text, "ExecStart must use the device binary path"
    text = text.replace(f"ExecStart={DEVICE_BINARY} ", f"ExecStart={executable_for_exec_start(tmp_path)} ")
    unit_dir = tmp_path / "units"
    unit_dir.mkdir(exist_ok=True)
    copy = unit_dir / UNIT_NAME
    copy.write_text(transform(text))
    return copy


def verify(copy: Path) -> tuple[int, list[str], list[str], str]:
    """Run verify; return (exit code, lines about our unit, other lines, full output)."""
    result = run_analyze("verify", "--no-pager", str(copy), cwd=copy.parent)
    output = result.stdout + result.stderr
    lines = [line for line in output.splitlines() if line.strip()]
    ours = [line for line in lines if UNIT_NAME in line]
    others = [line for line in lines if UNIT_NAME not in line]
    return result.returncode, ours, others, output


@pytest.fixture
def unit_copy(tmp_path: Path) -> Path:
    return make_copy(tmp_path)


def test_systemd_analyze_verify_is_clean(unit_copy: Path) -> None:
    code, ours, others, output = verify(unit_copy)
    assert code == 0 and not ours, f"systemd-analyze verify (exit {code}):\n{output}"
    if others:
        warnings.warn(
            "systemd-analyze verify printed lines about other units (ignored):\n"
            + "\n".join(others),
            stacklevel=1,
        )


def test_verify_reports_unknown_keys(tmp_path: Path) -> None:
    # Negative control: a typo is only a warning (exit code 0) but must be caught.
    copy = make_copy(tmp_path, lambda t: t.replace("\nWatchdogSec=", "\nWatchdogSecs="))
    code, ours, _, output = verify(copy)
    assert any("WatchdogSecs" in line for line in ours), output


def test_verify_reports_missing_executable(tmp_path: Path) -> None:
    # Negative control: why the copy's ExecStart must point at an existing binary.
    copy = make_copy(tmp_path)
    copy.write_text(UNIT_SRC.read_text().replace(DEVICE_BINARY, str(tmp_path / "missing")))
    code, ours, _, output = verify(copy)
    assert code != 0 and ours, output


def test_systemd_analyze_security_exposure(unit_copy: Path) -> None:
    result = run_analyze("security", "--offline=yes", "--no-pager", str(unit_copy), cwd=unit_copy.parent)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"systemd-analyze security failed:\n{output}"
    assert not [line for line in result.stderr.splitlines() if UNIT_NAME in line], output
    match = OVERALL_RE.search(output)
    assert match, f"no 'Overall exposure level' line in:\n{output}"
    assert match["unit"] == UNIT_NAME
    score, level = float(match["score"]), match["level"]
    assert level in LEVELS, f"unknown exposure level {level!r}:\n{output}"
    assert LEVELS.index(level) <= LEVELS.index("MEDIUM"), f"exposure {score} {level}:\n{output}"
    assert score <= MAX_SCORE, f"exposure {score} {level} > {MAX_SCORE}:\n{output}"


# --- content checks -------------------------------------------------------------------


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """Section -> key -> all values in order (keys may repeat, e.g. DeviceAllow=)."""
    sections: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    section = None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        assert not line.endswith("\\"), f"line {number}: keep settings on one line"
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        assert section is not None and "=" in line, f"line {number}: unexpected {raw!r}"
        key, _, value = line.partition("=")
        sections[section][key.strip()].append(value.strip())
    return sections


@pytest.fixture(scope="module")
def unit() -> dict[str, dict[str, list[str]]]:
    return parse_unit(UNIT_SRC.read_text())


def one(unit, section: str, key: str) -> str:
    values = unit[section].get(key, [])
    assert len(values) == 1, f"[{section}] {key}= expected once, found {values}"
    return values[0]


def words(unit, section: str, key: str) -> set[str]:
    return {w for value in unit[section].get(key, []) for w in value.split()}


def test_sections(unit) -> None:
    assert set(unit) == {"Unit", "Service", "Install"}


def test_ordering_and_start_limit(unit) -> None:
    assert "network-online.target" in words(unit, "Unit", "Wants")
    assert "network-online.target" in words(unit, "Unit", "After")
    # StartLimit* belong in [Unit]; in [Service] systemd ignores them with a warning.
    assert int(one(unit, "Unit", "StartLimitIntervalSec")) > 0
    assert int(one(unit, "Unit", "StartLimitBurst")) > 0
    assert "StartLimitIntervalSec" not in unit["Service"]
    assert one(unit, "Install", "WantedBy") == "multi-user.target"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("Type", "notify"),
        ("NotifyAccess", "main"),
        ("ExecStart", EXEC_START),
        ("WatchdogSec", "30"),
        ("Restart", "on-failure"),
        ("RestartSec", "5"),
        ("TimeoutStopSec", "20"),
        ("User", "stationd"),
        ("Group", "stationd"),
        ("SupplementaryGroups", "dialout"),
        ("StateDirectory", "stationd"),
        ("ConfigurationDirectory", "stationd"),
        ("LogsDirectory", "stationd"),
        ("RuntimeDirectory", "stationd"),
        ("ProtectSystem", "strict"),
        ("NoNewPrivileges", "yes"),
        ("PrivateTmp", "yes"),
        ("ProtectHome", "yes"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectKernelModules", "yes"),
        ("ProtectKernelLogs", "yes"),
        ("ProtectControlGroups", "yes"),
        ("RestrictSUIDSGID", "yes"),
        ("LockPersonality", "yes"),
        ("RestrictRealtime", "yes"),
        ("RestrictNamespaces", "yes"),
        ("SystemCallArchitectures", "native"),
        ("CapabilityBoundingSet", "CAP_NET_BIND_SERVICE"),
        ("AmbientCapabilities", "CAP_NET_BIND_SERVICE"),
        ("DevicePolicy", "closed"),
    ],
)
def test_service_setting(unit, key: str, value: str) -> None:
    assert one(unit, "Service", key) == value


def test_environment(unit) -> None:
    assert "PYTHONUNBUFFERED=1" in words(unit, "Service", "Environment")


def test_shutdown_timeout_exceeds_graceful_shutdown(unit) -> None:
    # The daemon finishes a graceful shutdown within 10 s of SIGTERM.
    assert int(one(unit, "Service", "TimeoutStopSec")) > 10


def test_serial_devices_allowed(unit) -> None:
    allowed = unit["Service"]["DeviceAllow"]
    for device in ("char-ttyS rw", "char-ttyUSB rw", "char-ttyACM rw"):
        assert device in allowed


def test_address_families_allow_socketcan(unit) -> None:
    families = words(unit, "Service", "RestrictAddressFamilies")
    assert {"AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK", "AF_CAN"} <= families
    assert not any(f.startswith("~") for f in families), "must be an allow list"


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("PrivateNetwork", "CAN (socketcan) and the host's network interfaces are needed"),
        ("MemoryDenyWriteExecute", "breaks libffi callbacks"),
        ("ReadWritePaths", "State/Logs/RuntimeDirectory are writable already; justify additions"),
        ("DynamicUser", "the service runs as the static stationd user"),
    ],
)
def test_setting_absent(unit, key: str, reason: str) -> None:
    assert key not in unit["Service"], f"{key}= must not be set: {reason}"


def test_exit_statuses_agree_with_the_daemon(unit) -> None:
    from stationd.cli.run_cmd import EXIT_CONFIG, EXIT_RESTART

    service = unit["Service"]
    assert service["RestartPreventExitStatus"] == [str(EXIT_CONFIG)]  # a bad config file: no restart loop
    assert service["RestartForceExitStatus"] == [str(EXIT_RESTART)]  # Reset / Restart Daemon: started again
