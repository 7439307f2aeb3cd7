"""The ``stationd`` command line, run in this process (plus one real ``stationd --help``)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import DRY_RUN, dry_run_station

from stationd import __version__
from stationd.cli import config_cmd, main
from stationd.cli.main import build_parser
from stationd.config.installation import installation_values
from stationd.config.station_file import load_station_config
from stationd.config.store import Change, ConfigStore
from stationd.config.value_types import Source

SPEC_KEYS = Path(__file__).resolve().parent / "data" / "spec_keys.txt"
FALLBACK_KEYS = ["HeartbeatInterval", "BoxId", "/power/station/mainsMaxCurrent", "GridMaxCurrentPerPhase",
                 "FactoryReset", "AuthCacheLifeTime"]
SECRET = "correct horse battery"
COLUMNS = ("key", "value", "type", "unit", "access", "default", "effect", "notes")


def run(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    """``stationd ARGV`` in this process: (exit status, stdout, stderr)."""
    try:
        status = main([str(a) for a in argv])
    except SystemExit as exit_:  # argparse: --help, usage errors
        status = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture
def station(tmp_path: Path) -> Path:
    """A station config file (examples/dry-run.yaml) whose data lives in tmp_path/data."""
    return dry_run_station(tmp_path)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """The data directory of a station that has run once (its settings file exists)."""
    path = tmp_path / "data"
    ConfigStore.open(path, installation={"NumberOfConnectors": "2", "BoxId": "TE-1"})
    return path


def test_a_directory_that_is_no_station_data_directory_is_refused(tmp_path, capsys):
    empty = tmp_path / "typo"
    empty.mkdir()
    status, out, err = run(["config", "set", "--data-dir", empty, "HeartbeatInterval", "30"], capsys)
    assert status == 1 and out == ""
    assert "not a station's data directory" in err
    assert list(empty.iterdir()) == []  # nothing created there


def settings_bytes(data_dir: Path) -> bytes:
    path = data_dir / "settings.json"
    return path.read_bytes() if path.exists() else b""


# ----------------------------------------------------------------------------- parsing
def every_command(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [prefix]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.extend(every_command(sub, prefix + (name,)))
    return found


COMMANDS = every_command(build_parser())


def test_the_command_tree_has_the_documented_commands():
    for expected in [("run",), ("config",), ("config", "get"), ("config", "set"), ("config", "list"),
                     ("config", "check"), ("config", "reset"), ("demo",), ("whitelist",), ("version",)]:
        assert expected in COMMANDS


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "stationd")
def test_help_works_for_every_command(command, capsys):
    status, out, err = run([*command, "--help"], capsys)
    assert status == 0, err
    assert out.startswith(f"usage: {' '.join(('stationd',) + command)}")
    assert err == ""


@pytest.mark.parametrize("argv", [
    ["bogus"],
    [],
    ["config"],
    ["config", "bogus"],
    ["config", "get"],
    ["config", "set", "HeartbeatInterval"],
    ["config", "list", "--bogus"],
    ["config", "get", "--data-dir", "a", "--config", "b", "HeartbeatInterval"],
    ["run"],
    ["version", "extra"],
], ids=lambda a: " ".join(a) or "nothing")
def test_usage_errors_exit_2_pointing_at_help(argv, capsys):
    status, out, err = run(argv, capsys)
    assert status == 2
    assert "error:" in err
    assert "--help" in err
    assert "Traceback" not in err
    assert out == ""


def test_version(capsys):
    assert run(["version"], capsys) == (0, f"stationd {__version__}\n", "")
    assert run(["--version"], capsys) == (0, f"stationd {__version__}\n", "")


def test_real_process_help():
    proc = subprocess.run([sys.executable, "-m", "stationd", "--help"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: stationd")
    for command in ("run", "config", "demo", "whitelist", "version"):
        assert command in proc.stdout


# ----------------------------------------------------------------------------- config get / set
def test_set_then_get_round_trip(data_dir, capsys):
    assert run(["config", "set", "--data-dir", data_dir, "HeartbeatInterval", "30"], capsys) == (0, "Accepted\n", "")
    assert run(["config", "get", "--data-dir", data_dir, "HeartbeatInterval"], capsys) == (0, "30\n", "")
    assert ConfigStore.open(data_dir).get("HeartbeatInterval") == 30


def test_set_then_get_with_the_config_file(station, capsys):
    assert run(["config", "set", "--config", station, "HeartbeatInterval", "45"], capsys) == (0, "Accepted\n", "")
    status, out, _ = run(["config", "get", "--config", station, "HeartbeatInterval", "BoxId"], capsys)
    assert status == 0
    assert out == "HeartbeatInterval=45\nBoxId=TE-DEV000001\n"
    assert (station.parent / "data" / "settings.json").is_file()


def test_alias_round_trip_converts_units(data_dir, capsys):
    assert run(["config", "set", "--data-dir", data_dir, "GridMaxCurrentPerPhase", "20"], capsys)[0] == 0
    assert run(["config", "get", "--data-dir", data_dir, "/power/station/mainsMaxCurrent"], capsys)[1] == "20000\n"


def test_reset_returns_to_the_default(data_dir, capsys):
    run(["config", "set", "--data-dir", data_dir, "HeartbeatInterval", "30"], capsys)
    assert run(["config", "reset", "--data-dir", data_dir, "HeartbeatInterval"], capsys) == (
        0, "HeartbeatInterval = 600\n", "")
    assert run(["config", "get", "--data-dir", data_dir, "HeartbeatInterval"], capsys)[1] == "600\n"


def test_set_of_a_read_only_key_is_rejected_and_changes_nothing(station, capsys):
    data = station.parent / "data"
    run(["config", "get", "--config", station, "SerialNumber"], capsys)
    before = settings_bytes(data)
    status, out, err = run(["config", "set", "--config", station, "SerialNumber", "XYZ"], capsys)
    assert status == 1
    assert out == ""
    assert err.startswith("Rejected: ") and "read-only" in err
    assert settings_bytes(data) == before
    assert run(["config", "get", "--config", station, "SerialNumber"], capsys)[1] == "DEV000001\n"


def test_set_of_an_invalid_value_is_rejected_and_changes_nothing(data_dir, capsys):
    run(["config", "set", "--data-dir", data_dir, "HeartbeatInterval", "30"], capsys)
    before = settings_bytes(data_dir)
    status, out, err = run(["config", "set", "--data-dir", data_dir, "HeartbeatInterval", "thirty"], capsys)
    assert status == 1 and out == ""
    assert err.startswith("Rejected: HeartbeatInterval")
    assert settings_bytes(data_dir) == before
    assert run(["config", "get", "--data-dir", data_dir, "HeartbeatInterval"], capsys)[1] == "30\n"


def test_set_of_an_unknown_key_is_not_supported(data_dir, capsys):
    status, out, err = run(["config", "set", "--data-dir", data_dir, "Testing", "1"], capsys)
    assert status == 1 and out == ""
    assert err.startswith("NotSupported")
    assert "Testing" in err
    assert b"Testing" not in settings_bytes(data_dir)


def test_get_of_an_unknown_key_fails(data_dir, capsys):
    status, out, err = run(["config", "get", "--data-dir", data_dir, "Testing"], capsys)
    assert status == 1 and out == ""
    assert "unknown configuration key 'Testing'" in err


def test_set_of_a_reboot_key_says_reboot_required(data_dir, capsys):
    status, out, err = run(["config", "set", "--data-dir", data_dir, "RfidType", "2"], capsys)
    assert status == 0
    assert out.startswith("RebootRequired")
    assert run(["config", "get", "--data-dir", data_dir, "RfidType"], capsys)[1] == "2\n"


def test_the_authorization_key_is_never_printed(data_dir, capsys):
    hex_form = SECRET.encode().hex()
    assert run(["config", "get", "--data-dir", data_dir, "AuthorizationKey"], capsys) == (
        0, "(write-only, not set)\n", "")
    status, out, err = run(["config", "set", "--data-dir", data_dir, "AuthorizationKey", SECRET], capsys)
    assert status == 0 and out == "Accepted\n"
    outputs = [out, err]
    for argv in (["config", "get", "AuthorizationKey"], ["config", "list"], ["config", "list", "--json"],
                 ["config", "get", "AuthorizationKey", "SecurityProfile"]):
        status, out, err = run([*argv[:2], "--data-dir", data_dir, *argv[2:]], capsys)
        assert status == 0
        outputs += [out, err]
    assert run(["config", "get", "--data-dir", data_dir, "AuthorizationKey"], capsys)[1] == "(write-only, set)\n"
    for text in outputs:
        assert SECRET not in text and hex_form not in text.lower()
    # a rejected key is not echoed either
    status, out, err = run(["config", "set", "--data-dir", data_dir, "AuthorizationKey", "short"], capsys)
    assert status == 1 and "short" not in err.replace("AuthorizationKey", "")


# ----------------------------------------------------------------------------- config list
def spec_keys() -> list[str]:
    if not SPEC_KEYS.exists():
        return FALLBACK_KEYS
    keys = []
    for line in SPEC_KEYS.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keys.append(line.split()[0])
    return keys


def parse_table(text: str) -> dict[str, dict[str, str]]:
    header, *rows = text.splitlines()
    starts = [header.index(column.upper()) for column in COLUMNS]
    assert starts == sorted(starts), header
    table = {}
    for row in rows:
        cells = [row[a:b].strip() for a, b in zip(starts, starts[1:] + [None])]
        table[cells[0]] = dict(zip(COLUMNS, cells))
    return table


def clipped(text: str) -> str:
    return text if len(text) <= 48 else text[:47] + "…"


def test_list_shows_every_spec_key_with_type_access_default_and_effect(station, capsys):
    status, out, err = run(["config", "list", "--config", station], capsys)  # a station with 2 connectors
    assert status == 0, err
    table = parse_table(out)
    status, out, _ = run(["config", "list", "--config", station, "--json"], capsys)
    rows = {row["key"]: row for row in json.loads(out)}
    # Key names are case-insensitive (the spec's "endpoint" is Endpoint); <id> is each connector.
    listed = {name.lower(): name for name in table}
    wanted = [key.replace("<id>", str(n)) for key in spec_keys()
              for n in ((1, 2) if "<id>" in key else (None,))]
    missing = [key for key in wanted if key.lower() not in listed]
    assert not missing, f"config list lacks {missing}"
    for key in wanted:
        key = listed[key.lower()]
        shown = table[key]
        assert shown["type"], key
        assert shown["access"] in ("R", "RW", "W"), key
        assert shown["effect"] in ("at once", "after reboot", "-"), key
        for column in ("type", "access", "default", "effect", "unit"):
            assert shown[column] == clipped(rows[key][column]), (key, column)
    assert table["HeartbeatInterval"] | {"value": ""} == {
        "key": "HeartbeatInterval", "value": "", "type": "INT", "unit": "s", "access": "RW", "default": "600",
        "effect": "at once", "notes": ""}
    assert table["FactoryReset"]["default"] == "Inactive"
    assert table["GridMaxCurrentPerPhase"]["unit"] == "A"
    assert table["/power/station/mainsMaxCurrent"]["unit"] == "mA"
    assert "alias of /power/station/mainsMaxCurrent" in table["GridMaxCurrentPerPhase"]["notes"]
    assert table["SerialNumber"]["access"] == "R" and table["SerialNumber"]["effect"] == "-"
    assert table["RfidType"]["effect"] == "after reboot"


def test_list_json_rows_have_every_column(station, capsys):
    status, out, err = run(["config", "list", "--config", station, "--json"], capsys)
    assert status == 0, err
    rows = json.loads(out)
    assert len(rows) > 50
    for row in rows:
        for column in ("key", "value", "type", "access", "default", "effect"):
            assert column in row and isinstance(row[column], str), (row, column)
    by_key = {row["key"]: row for row in rows}
    assert len(by_key) == len(rows)  # no key listed twice
    assert by_key["BoxId"]["value"] == "TE-DEV000001"  # the station's installation value
    assert by_key["NumberOfConnectors"]["value"] == "2"
    assert by_key["HeartbeatInterval"]["value"] == "600"


# ----------------------------------------------------------------------------- config check / finding the station
def test_check_accepts_the_example(capsys):
    status, out, err = run(["config", "check", DRY_RUN], capsys)
    assert status == 0, err
    assert out.startswith(f"{DRY_RUN}: OK")
    assert "TE-DEV000001" in out


def test_check_names_file_and_line_of_a_broken_file(station, capsys):
    text = station.read_text()
    station.write_text(text.replace("phases: 3", "phases: 2", 1))
    line = next(n for n, t in enumerate(station.read_text().splitlines(), 1) if "phases: 2" in t)
    status, out, err = run(["config", "check", station], capsys)
    assert status == 1 and out == ""
    assert f"{station}:{line}: hardware.connectors[0].phases" in err
    assert "Traceback" not in err


def test_check_of_a_missing_file(tmp_path, capsys):
    status, _, err = run(["config", "check", tmp_path / "nope.yaml"], capsys)
    assert status == 1
    assert "nope.yaml" in err and "no such file" in err


def test_get_with_a_missing_data_dir_fails_clearly(capsys):
    status, out, err = run(["config", "get", "--data-dir", "/nonexistent", "HeartbeatInterval"], capsys)
    assert status == 1 and out == ""
    assert "/nonexistent is not a directory" in err
    assert "Traceback" not in err
    assert not Path("/nonexistent").exists()


def test_get_with_a_broken_config_file_fails_clearly(station, capsys):
    station.write_text(station.read_text().replace("max_current_a: 32  ", "max_current_a: 100 ", 1))
    status, out, err = run(["config", "get", "--config", station, "HeartbeatInterval"], capsys)
    assert status == 1 and out == ""
    assert "invalid" in err and f"{station}:" in err and "max_current_a" in err


def test_get_without_a_station_says_how_to_name_one(tmp_path, monkeypatch, capsys):
    assert config_cmd.DEFAULT_CONFIG == Path("/etc/stationd/stationd.yaml")
    monkeypatch.setattr(config_cmd, "DEFAULT_CONFIG", tmp_path / "etc" / "stationd.yaml")
    status, out, err = run(["config", "get", "HeartbeatInterval"], capsys)
    assert status == 1 and out == ""
    assert "--data-dir" in err and "--config" in err
    assert "does not exist" in err


@pytest.mark.skipif(Path("/etc/stationd/stationd.yaml").exists(), reason="this machine has a station config")
def test_get_without_a_station_on_this_machine(capsys):
    status, _, err = run(["config", "get", "HeartbeatInterval"], capsys)
    assert status == 1
    assert "use --data-dir DIR or --config FILE" in err


# ----------------------------------------------------------------------------- a running daemon sees the change
def test_a_change_by_the_cli_reaches_the_daemons_store_on_reload(station, capsys):
    config = load_station_config(station)
    daemon_store = ConfigStore.open(config.data_dir, installation=installation_values(config))
    seen: list[Change] = []
    daemon_store.subscribe(seen.append, names=["HeartbeatInterval"])
    assert daemon_store.reload() == []  # nothing changed yet

    assert run(["config", "set", "--config", station, "HeartbeatInterval", "42"], capsys)[0] == 0
    assert run(["config", "set", "--data-dir", config.data_dir, "MeterValueSampleInterval", "15"], capsys)[0] == 0

    assert daemon_store.reload() == ["HeartbeatInterval", "MeterValueSampleInterval"]
    assert daemon_store.get("HeartbeatInterval") == 42
    assert daemon_store.get("MeterValueSampleInterval") == 15
    assert seen == [Change("HeartbeatInterval", 600, 42, Source.LOCAL)]
    assert daemon_store.get("BoxId") == "TE-DEV000001"  # installation values survive the CLI's write
    assert daemon_store.reload() == []
