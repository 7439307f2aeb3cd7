"""System edge plumbing: the subprocess runner, secret masking, the recorder, atomic writes."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from stationd.system.files import PRIVATE, atomic_write
from stationd.system.runner import CommandResult, RecordingRunner, Secret, SubprocessRunner, mask, shown


async def test_subprocess_runner_reports_exit_status_and_output():
    run = SubprocessRunner()
    result = await run(["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert result == CommandResult(3, "out\n", "err\n")
    assert not result.ok and result.error_text() == "err"
    assert (await run(["true"])).ok


async def test_a_missing_program_is_127_and_a_slow_one_124(tmp_path: Path):
    run = SubprocessRunner()
    missing = await run([str(tmp_path / "no-such-program")])
    assert missing.returncode == 127 and "cannot run" in missing.stderr
    slow = await run(["sleep", "5"], timeout=0.2)
    assert slow.returncode == 124 and "did not finish within 0.2 s" in slow.stderr


def test_secrets_are_masked_where_shown():
    argv = ["mmcli", "-i", "/SIM/0", Secret("--pin=4711", ["4711"])]
    assert shown(argv) == "mmcli -i /SIM/0 '--pin=****'"
    assert argv[3] == "--pin=4711"  # the command itself gets the PIN
    assert mask("PIN 4711 refused", ["4711", ""]) == "PIN **** refused"


async def test_recording_runner_answers_by_longest_prefix():
    runner = RecordingRunner()
    runner.answer("mmcli", stdout="any")
    runner.answer("mmcli", "-J", "-L", stdout="list")
    assert (await runner(["mmcli", "-J", "-L"])).stdout == "list"
    assert (await runner(["mmcli", "-m", "0"])).stdout == "any"
    assert (await runner(["ip", "-j", "addr"])) == CommandResult(0)
    assert runner.lines == ["mmcli -J -L", "mmcli -m 0", "ip -j addr"]


def test_atomic_write(tmp_path: Path):
    path = tmp_path / "new" / "dir" / "file.conf"
    old_umask = os.umask(0o077)
    try:
        assert atomic_write(path, "one\n") is True
    finally:
        os.umask(old_umask)
    assert path.read_text() == "one\n" and stat.S_IMODE(path.stat().st_mode) == 0o644  # whatever the umask
    assert atomic_write(path, "one\n") is False  # unchanged: not written again
    assert atomic_write(path, "two\n", PRIVATE) is True
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert os.listdir(path.parent) == ["file.conf"]


def test_atomic_write_failure_leaves_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = tmp_path / "file.conf"
    path.write_text("old\n")

    def broken_replace(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError):
        atomic_write(path, "new\n")
    assert path.read_text() == "old\n" and os.listdir(tmp_path) == ["file.conf"]
