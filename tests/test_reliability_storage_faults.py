"""The storage_faults reliability category, short run: a full disk under a running station, a full
and a read-only disk at a start after a power cut (real, a tmpfs in a user + mount namespace) and
corrupt databases before a start."""

from __future__ import annotations

import os

import pytest

from reliability.storage_faults import CORRUPTIONS, namespaces_work, run, try_corrupt_database

pytestmark = pytest.mark.slow


def test_the_short_run_keeps_the_station_safe_and_running():
    why = namespaces_work()
    if why is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must try the full disk: {why}")
        pytest.skip(why)
    tally = run(long=False)
    assert tally.failures == []
    assert tally.tried == 3 + len(CORRUPTIONS) and tally.passed


def test_a_garbage_header_is_moved_aside_and_the_station_starts_once(tmp_path):
    directory = tmp_path / "station"
    directory.mkdir()
    assert "moved aside, started once" in try_corrupt_database(directory, "header")
    moved = list((directory / "data").glob("station.db.corrupt-*"))
    assert len(moved) == 1 and (directory / "data" / "station.db").exists()
