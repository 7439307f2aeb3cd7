"""``stationd whitelist``: run in this process via ``stationd.cli.main``, plus one real process."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import dry_run_station

from stationd.auth import Whitelist
from stationd.cli import config_cmd, main, station_args
from stationd.config.store import ConfigStore
from stationd.storage import Database

CSV_DIR = Path(__file__).resolve().parent / "data" / "csv"
VENDOR_EXAMPLE = CSV_DIR / "golden_vendor_example.csv"
HEADER = "UID,GID,Expiry,Authorization\n"


def run(argv: list, capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    """``stationd ARGV`` in this process: (exit status, stdout, stderr)."""
    try:
        status = main([str(a) for a in argv])
    except SystemExit as exit_:  # argparse: --help, usage errors
        status = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """The data directory of a station that has run once."""
    path = tmp_path / "data"
    ConfigStore.open(path, installation={"NumberOfConnectors": "1", "BoxId": "TE-1"})
    Database.open(path).close()
    return path


def wl_of(data_dir: Path) -> Whitelist:
    return Whitelist(Database.open(data_dir))


def uids(data_dir: Path, include_deleted: bool = False) -> list[str]:
    wl = wl_of(data_dir)
    try:
        return [e.uid for e in wl.entries(include_deleted=include_deleted)]
    finally:
        wl.db.close()


# ----------------------------------------------------------------------------- import / export
def test_import_prints_processed_counting_the_header(data_dir, capsys):
    status, out, err = run(["whitelist", "import", "--data-dir", data_dir, VENDOR_EXAMPLE], capsys)
    assert (status, err) == (0, "")
    assert out.splitlines()[0] == "Processed: 6"
    assert "5 added" in out and "5 entries" in out
    assert uids(data_dir) == ["aec78085", "ae36959e", "0488dd2a561d80", "4b13b318", "d2006c8e"]


def test_import_with_errors_lists_them_changes_nothing_and_fails(data_dir, tmp_path, capsys):
    run(["whitelist", "import", "--data-dir", data_dir, VENDOR_EXAMPLE], capsys)
    bad = tmp_path / "bad.csv"
    bad.write_text(HEADER + "aec78085,,,blocked\nc0ffee00,,2020-01-01,accepted\nAEC78085,,,accepted\n")
    for extra in ([], ["--replace"]):
        status, out, err = run(["whitelist", "import", *extra, "--data-dir", data_dir, bad], capsys)
        assert status == 1
        assert out == "Processed: 4\n"
        lines = err.splitlines()
        assert lines[0].startswith(f"{bad}:3: bad expiry: the expiry '2020-01-01' has no time")
        assert lines[1] == f"{bad}:4: duplicate UID aec78085: already on line 2"
        assert "nothing was imported" in lines[-1]
    assert uids(data_dir) == ["aec78085", "ae36959e", "0488dd2a561d80", "4b13b318", "d2006c8e"]
    assert not wl_of(data_dir).get("aec78085").blocked


def test_import_replace_deletes_the_rest_restorably(data_dir, tmp_path, capsys):
    run(["whitelist", "import", "--data-dir", data_dir, VENDOR_EXAMPLE], capsys)
    new = tmp_path / "new.csv"
    new.write_text(HEADER + "d2006c8e,,,blocked\nc0ffee00,,,accepted\n")
    status, out, _ = run(["whitelist", "import", "--replace", "--data-dir", data_dir, new], capsys)
    assert status == 0 and out.startswith("Processed: 3\n")
    assert "1 added, 1 changed, 0 unchanged, 4 deleted" in out
    assert uids(data_dir) == ["d2006c8e", "c0ffee00"]
    assert run(["whitelist", "restore", "--data-dir", data_dir, "AEC78085"], capsys)[0] == 0
    assert uids(data_dir) == ["aec78085", "d2006c8e", "c0ffee00"]


def test_import_of_a_file_that_is_no_csv(data_dir, capsys):
    status, out, err = run(["whitelist", "import", "--data-dir", data_dir, CSV_DIR / "semicolon.csv"], capsys)
    assert status == 1
    assert "semicolon.csv:1: this looks like a semicolon-separated export; save as CSV with commas" in err
    status, _, err = run(["whitelist", "import", "--data-dir", data_dir, CSV_DIR / "nonexistent.csv"], capsys)
    assert status == 1 and "cannot read" in err and "Traceback" not in err


def test_export_to_a_file_and_to_stdout_round_trips(data_dir, tmp_path, capsys):
    run(["whitelist", "import", "--data-dir", data_dir, CSV_DIR / "golden_export.csv"], capsys)
    target = tmp_path / "user-export.csv"
    status, out, err = run(["whitelist", "export", "--data-dir", data_dir, target], capsys)
    assert (status, err) == (0, "") and out == f"Exported 11 entries to {target}\n"
    assert target.read_bytes() == (CSV_DIR / "golden_export.csv").read_bytes()
    status, out, _ = run(["whitelist", "export", "--data-dir", data_dir, "-"], capsys)
    assert status == 0 and out.encode() == target.read_bytes()
    assert not list(tmp_path.glob(".user-export.csv.*"))  # no temporary file left behind
    status, _, err = run(["whitelist", "export", "--data-dir", data_dir, tmp_path / "no" / "such" / "dir.csv"],
                         capsys)
    assert status == 1 and "cannot write" in err


# ----------------------------------------------------------------------------- editing
def test_add_block_accept_delete_restore_and_list(data_dir, capsys):
    d = ["--data-dir", data_dir]
    assert run(["whitelist", "add", *d, "AE:C7:80:85"], capsys) == (0, "Added aec78085 (accepted)\n", "")
    status, out, _ = run(["whitelist", "add", *d, "4B13B318", "--gid", "aec78085",
                          "--expiry", "2030-01-01T13:00:00+01:00", "--blocked"], capsys)
    assert (status, out) == (0, "Added 4b13b318 (blocked, GID aec78085, expires 2030-01-01T12:00:00 UTC)\n")
    assert run(["whitelist", "add", *d, "aec78085", "--blocked"], capsys)[1] == "Updated aec78085 (blocked)\n"
    assert run(["whitelist", "accept", *d, "aec78085"], capsys)[1] == "Accepted aec78085 (accepted)\n"
    assert run(["whitelist", "block", *d, "aec78085"], capsys)[1] == "Blocked aec78085 (blocked)\n"
    status, out, _ = run(["whitelist", "delete", *d, "4b13b318"], capsys)
    assert status == 0 and out.startswith("Deleted 4b13b318") and "restorable" in out
    status, out, _ = run(["whitelist", "list", *d], capsys)
    assert [line.split() for line in out.splitlines()] == [
        ["#", "UID", "GID", "EXPIRY", "AUTHORIZATION"], ["1", "aec78085", "blocked"]]
    status, out, _ = run(["whitelist", "list", "--all", *d], capsys)
    assert out.splitlines()[2].split() == ["2", "4b13b318", "aec78085", "2030-01-01T12:00:00", "blocked", "deleted"]
    assert run(["whitelist", "restore", *d, "4b13b318"], capsys)[1].startswith("Restored 4b13b318")
    assert uids(data_dir) == ["aec78085", "4b13b318"]


@pytest.mark.parametrize("argv, fragment", [
    (["block", "c0ffee00"], "UID c0ffee00 is not in the whitelist"),
    (["accept", "c0ffee00"], "not in the whitelist"),
    (["delete", "c0ffee00"], "not in the whitelist"),
    (["restore", "aec78085"], "is not deleted"),
    (["add", "0123456789abcdef01234"], "at most 20"),
    (["add", "aec78085", "--expiry", "2030-01-01"], "has no time"),
    (["add", "aec78085", "--gid", "müller"], "non-ASCII"),
])
def test_bad_input_and_unknown_uids_fail_clearly(data_dir, capsys, argv, fragment):
    run(["whitelist", "add", "--data-dir", data_dir, "aec78085"], capsys)
    status, out, err = run(["whitelist", argv[0], "--data-dir", data_dir, *argv[1:]], capsys)
    assert status == 1 and out == ""
    assert err.startswith(f"stationd whitelist {argv[0]}: ") and fragment in err
    assert "Traceback" not in err


# ----------------------------------------------------------------------------- naming the station
def test_the_config_file_names_the_station(tmp_path, capsys):
    station = dry_run_station(tmp_path)
    status, out, err = run(["whitelist", "import", "--config", station, VENDOR_EXAMPLE], capsys)
    assert status == 0, err
    assert uids(tmp_path / "data")[0] == "aec78085"
    status, out, _ = run(["whitelist", "list", "--config", station], capsys)
    assert "0488dd2a561d80" in out


def test_a_directory_that_is_no_station_is_refused(tmp_path, capsys):
    empty = tmp_path / "typo"
    empty.mkdir()
    status, out, err = run(["whitelist", "list", "--data-dir", empty], capsys)
    assert status == 1 and out == "" and "not a station's data directory" in err
    assert list(empty.iterdir()) == []


def test_without_a_station_says_how_to_name_one(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(station_args, "DEFAULT_CONFIG", tmp_path / "etc" / "stationd.yaml")
    status, out, err = run(["whitelist", "list"], capsys)
    assert status == 1 and out == ""
    assert "--data-dir" in err and "--config" in err and "does not exist" in err


def test_config_and_whitelist_share_the_station_options():
    assert config_cmd.CommandError is station_args.CommandError
    assert config_cmd.DEFAULT_CONFIG == station_args.DEFAULT_CONFIG == Path("/etc/stationd/stationd.yaml")


@pytest.mark.parametrize("action", ["import", "export", "list", "add", "block", "accept", "delete", "restore"])
def test_help_of_every_action(action, capsys):
    status, out, err = run(["whitelist", action, "--help"], capsys)
    assert status == 0 and err == ""
    assert out.startswith(f"usage: stationd whitelist {action}")
    assert "--data-dir" in out and "--config" in out


@pytest.mark.parametrize("argv", [
    ["whitelist"], ["whitelist", "bogus"], ["whitelist", "add"], ["whitelist", "import"],
    ["whitelist", "list", "--data-dir", "a", "--config", "b"], ["whitelist", "block", "a", "b"],
])
def test_usage_errors_exit_2(argv, capsys):
    status, out, err = run(argv, capsys)
    assert status == 2 and out == "" and "--help" in err


# ----------------------------------------------------------------------------- a real process
def test_a_cli_process_changes_what_a_running_reader_sees(data_dir):
    """The daemon's side: a Whitelist polling refresh_if_changed(); the CLI as its own process."""
    reader = wl_of(data_dir)
    assert reader.lookup("c0ffee00") is None
    counter = reader.change_counter()
    proc = subprocess.run([sys.executable, "-m", "stationd", "whitelist", "add", "--data-dir", str(data_dir),
                           "C0:FF:EE:00", "--blocked"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "Added c0ffee00 (blocked)\n"
    deadline = time.monotonic() + 5
    while not reader.refresh_if_changed() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert reader.change_counter() > counter
    assert reader.lookup("c0ffee00").blocked
    reader.db.close()


def test_list_says_when_an_accepted_card_has_expired(data_dir, capsys):
    assert run(["whitelist", "add", "aec78085", "--expiry", "2020-01-01T12:00:00", "--data-dir", str(data_dir)],
               capsys)[0] == 0
    assert run(["whitelist", "add", "4b13b318", "--data-dir", str(data_dir)], capsys)[0] == 0
    status, out, _ = run(["whitelist", "list", "--data-dir", str(data_dir)], capsys)
    assert status == 0
    rows = {line.split()[1]: line for line in out.splitlines()[1:]}
    assert "accepted (expired)" in rows["aec78085"]
    assert "expired" not in rows["4b13b318"]
