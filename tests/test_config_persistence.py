"""Changed settings survive restarts, power cuts and damaged files; the CLI and daemon share them."""

from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from stationd.config.store import Change, ConfigStatus, ConfigStore
from stationd.config.value_types import Source

INSTALLATION = {"NumberOfConnectors": "2", "BoxId": "TE-1000", "Endpoint": "ws://127.0.0.1:9000/ocpp"}


def open_store(data_dir: Path, **overrides: str) -> ConfigStore:
    return ConfigStore.open(data_dir, installation={**INSTALLATION, **overrides})


def test_changes_survive_a_restart(tmp_path: Path):
    store = open_store(tmp_path)
    assert store.set("HeartbeatInterval", "240").ok
    assert store.set("GridMaxCurrentPerPhase", "32").ok
    assert store.set("RfidType", "2").status is ConfigStatus.REBOOT_REQUIRED
    assert store.set("AuthorizationKey", "00112233445566778899aabbccddeeff").ok
    again = open_store(tmp_path)
    assert again.get("HeartbeatInterval") == 240
    assert again.get("/power/station/mainsMaxCurrent") == 32000
    assert again.get("RfidType") == 2
    assert again.is_set("AuthorizationKey")


def test_settings_file_is_private_and_checksummed(tmp_path: Path):
    open_store(tmp_path).set("HeartbeatInterval", "240")
    path = tmp_path / "settings.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    document = json.loads(path.read_text())
    assert document["values"]["HeartbeatInterval"] == "240"
    assert len(document["sha256"]) == 64
    assert (tmp_path / "settings.json.bak").read_bytes() == path.read_bytes()


def test_a_rejected_write_leaves_the_file_untouched(tmp_path: Path):
    store = open_store(tmp_path)
    store.set("HeartbeatInterval", "240")
    before = (tmp_path / "settings.json").read_bytes()
    assert store.set("HeartbeatInterval", "-5").status is ConfigStatus.REJECTED
    assert store.set("NumberOfConnectors", "3").status is ConfigStatus.REJECTED
    assert (tmp_path / "settings.json").read_bytes() == before


def damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "garbage":
        path.write_bytes(os.urandom(300))
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "edited":  # valid JSON, but not what the station wrote
        path.write_text(path.read_text().replace('"240"', '"999"'))


@pytest.mark.parametrize("how", ["truncated", "garbage", "empty", "edited"])
def test_a_damaged_settings_file_falls_back_to_the_last_good_copy(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, how: str
):
    open_store(tmp_path).set("HeartbeatInterval", "240")
    damage(tmp_path / "settings.json", how)
    with caplog.at_level(logging.ERROR, logger="stationd.config"):
        store = open_store(tmp_path)
    assert store.get("HeartbeatInterval") == 240
    assert "settings.json is unusable" in caplog.text
    assert "using the last good copy settings.json.bak" in caplog.text
    assert (tmp_path / "settings.json.corrupt").exists()
    # The repaired file is whole again: a second start needs no recovery.
    caplog.clear()
    assert open_store(tmp_path).get("HeartbeatInterval") == 240
    assert "unusable" not in caplog.text


def test_both_copies_damaged_starts_from_defaults_and_says_so(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    open_store(tmp_path).set("HeartbeatInterval", "240")
    damage(tmp_path / "settings.json", "garbage")
    damage(tmp_path / "settings.json.bak", "truncated")
    with caplog.at_level(logging.ERROR, logger="stationd.config"):
        store = open_store(tmp_path)
    assert store.get("HeartbeatInterval") == 600
    assert "starting from the default configuration" in caplog.text
    assert store.set("HeartbeatInterval", "300").ok  # and it can be written again


def test_a_missing_main_file_uses_the_good_copy(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    open_store(tmp_path).set("HeartbeatInterval", "240")
    (tmp_path / "settings.json").unlink()  # e.g. deleted by hand
    with caplog.at_level(logging.ERROR, logger="stationd.config"):
        assert open_store(tmp_path).get("HeartbeatInterval") == 240
    assert "last good copy" in caplog.text


def test_a_leftover_temporary_file_is_ignored(tmp_path: Path):
    open_store(tmp_path).set("HeartbeatInterval", "240")
    (tmp_path / "settings.json.tmp").write_text('{"format": 1, "values": {"HeartbeatInterval": "5"')
    assert open_store(tmp_path).get("HeartbeatInterval") == 240


def test_invalid_stored_values_are_dropped_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    from stationd.config.settings_file import Settings, SettingsFile

    SettingsFile(tmp_path / "settings.json").save(
        Settings(values={"HeartbeatInterval": "abc", "NoSuchKey": "1", "NumberOfConnectors": "9", "LightIntensity": "50"})
    )
    store = open_store(tmp_path)
    assert store.get("HeartbeatInterval") == 600
    assert store.get("NumberOfConnectors") == 2
    assert store.get("LightIntensity") == 50
    assert "ignoring invalid value of HeartbeatInterval" in caplog.text
    assert "ignoring unknown or read-only key NoSuchKey" in caplog.text


def test_installation_values_replace_defaults(tmp_path: Path):
    store = open_store(tmp_path)
    assert store.get("BoxId") == "TE-1000"
    assert store.get("NumberOfConnectors") == 2
    assert store.read("/hw/connectors/2/data") is not None


def test_a_changed_config_file_value_wins_over_an_older_change(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    store = open_store(tmp_path)
    assert store.set("Endpoint", "ws://127.0.0.1:9100/other").ok  # e.g. by the backend
    # Restarted with the same config file: the backend's change stays.
    assert open_store(tmp_path).get("Endpoint") == "ws://127.0.0.1:9100/other"
    # The installer edits the config file: the new file value wins.
    with caplog.at_level(logging.INFO, logger="stationd.config"):
        edited = open_store(tmp_path, Endpoint="ws://127.0.0.1:9200/fixed")
    assert edited.get("Endpoint") == "ws://127.0.0.1:9200/fixed"
    assert "the station config file changed it" in caplog.text
    assert open_store(tmp_path, Endpoint="ws://127.0.0.1:9200/fixed").get("Endpoint") == "ws://127.0.0.1:9200/fixed"


def test_tools_without_the_config_file_see_the_daemons_installation_values(tmp_path: Path):
    open_store(tmp_path, AuthorizationKey="correct horse battery", SecurityProfile="1")
    tool = ConfigStore.open(tmp_path)  # e.g. `stationd config list --data-dir`
    assert tool.get("BoxId") == "TE-1000"
    assert tool.get("NumberOfConnectors") == 2
    assert tool.is_set("AuthorizationKey")
    assert tool.read("AuthorizationKey").value is None
    settings = (tmp_path / "settings.json").read_text()
    assert "correct horse battery" not in settings and b"correct horse battery".hex() not in settings


def test_reload_picks_up_another_writer_and_notifies(tmp_path: Path):
    daemon = open_store(tmp_path)
    heard: list[Change] = []
    daemon.subscribe(heard.append)
    assert daemon.reload() == []
    cli = ConfigStore.open(tmp_path)
    assert cli.set("HeartbeatInterval", "120", Source.LOCAL).ok
    assert daemon.reload() == ["HeartbeatInterval"]
    assert daemon.get("HeartbeatInterval") == 120
    assert [(c.key, c.old, c.new, c.source) for c in heard] == [("HeartbeatInterval", 600, 120, Source.LOCAL)]
    assert daemon.reload() == []


def test_writes_from_another_process_are_not_lost(tmp_path: Path):
    """The daemon and a CLI write different keys at the same time; every write survives."""
    daemon = open_store(tmp_path)
    script = (
        "import sys; from stationd.config.store import ConfigStore\n"
        "s = ConfigStore.open(sys.argv[1])\n"
        "for i in range(40): assert s.set('LightIntensity', str(i + 1)).ok\n"
    )
    child = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)])
    for i in range(40):
        assert daemon.set("HeartbeatInterval", str(100 + i)).ok
    assert child.wait(timeout=60) == 0
    final = ConfigStore.open(tmp_path)
    assert final.get("HeartbeatInterval") == 139
    assert final.get("LightIntensity") == 40


def test_a_value_killed_mid_write_is_either_old_or_new(tmp_path: Path):
    """SIGKILL during a stream of writes never leaves an unreadable settings file."""
    open_store(tmp_path)
    script = (
        "import sys; from stationd.config.store import ConfigStore\n"
        "s = ConfigStore.open(sys.argv[1]); print('go', flush=True)\n"
        "i = 0\n"
        "while True:\n"
        "    i += 1; s.set('HeartbeatInterval', str(i % 80000))\n"
    )
    child = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE)
    assert child.stdout.readline() == b"go\n"
    import time

    time.sleep(0.3)
    child.kill()
    child.wait(timeout=10)
    store = ConfigStore.open(tmp_path)
    assert isinstance(store.get("HeartbeatInterval"), int)
    assert not (tmp_path / "settings.json.corrupt").exists()
