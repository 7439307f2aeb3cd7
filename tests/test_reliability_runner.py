"""The reliability runner's own rules: a category passes only when every try survived and
nothing was lost; the counts file has one entry per category; a broken category does not hide
the others' counts (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import reliability.__main__ as runner
from reliability.tally import MAX_FAILURES, Tally


def test_a_tally_passes_only_with_every_try_survived_and_nothing_lost():
    tally = Tally("x", "cases")
    assert not tally.passed  # nothing tried proves nothing
    tally.ok()
    tally.ok("with a note")
    assert tally.passed and (tally.tried, tally.survived) == (2, 2) and tally.notes == ["with a note"]
    tally.lost = 1
    assert not tally.passed
    tally.lost = 0
    tally.failed("case 3: the daemon died")
    assert not tally.passed and tally.failures == ["case 3: the daemon died"] and tally.tried == 3
    for index in range(MAX_FAILURES + 10):
        tally.failed(f"case {index}")
    assert len(tally.failures) == MAX_FAILURES and tally.tried == 3 + MAX_FAILURES + 10


def test_a_revoked_try_no_longer_counts_as_survived():
    tally = Tally("x", "kill -9")
    tally.ok()
    tally.ok()
    tally.revoke("final check: a StopTransaction is missing")
    assert (tally.tried, tally.survived) == (2, 1) and not tally.passed
    assert tally.failures == ["final check: a StopTransaction is missing"]


def test_every_category_module_is_named_once():
    names = [c.name for c in runner.CATEGORIES]
    assert len(names) == len(set(names)) and all(c.module == f"reliability.{c.name}" for c in runner.CATEGORIES)


def test_a_broken_category_exits_2_and_the_others_are_written(tmp_path: Path, monkeypatch):
    good, bad = Tally("good", "cases"), None

    class Fake:
        def __init__(self, name, tally):
            self.name, self.what, self.tally = name, name, tally

        def run(self, long):
            if self.tally is None:
                raise RuntimeError("cannot start")
            self.tally.ok()
            return self.tally

    monkeypatch.setattr(runner, "CATEGORIES", [Fake("good", good), Fake("bad", bad)])
    results = tmp_path / "results.json"
    assert runner.main(["--results", str(results)]) == 2
    data = json.loads(results.read_text())
    assert data["run"] == "short" and set(data["categories"]) == {"good"}
    assert data["categories"]["good"]["passed"] is True and data["categories"]["good"]["tried"] == 1
