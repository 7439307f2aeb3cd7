"""The checked-in docs say what the code does."""

from __future__ import annotations

from pathlib import Path

from stationd.config.reference import render_markdown

ROOT = Path(__file__).parent.parent


def test_config_key_reference_is_current():
    checked_in = (ROOT / "docs" / "config-keys.md").read_text()
    assert checked_in == render_markdown(), (
        "docs/config-keys.md is stale: run `stationd config reference > docs/config-keys.md`"
    )


def test_config_key_reference_lists_every_spec_key():
    text = (ROOT / "docs" / "config-keys.md").read_text().lower()
    for line in (ROOT / "tests" / "data" / "spec_keys.txt").read_text().splitlines():
        name = line.strip()
        if name and not name.startswith("#") and name != "endpoint":  # case-insensitive: Endpoint
            assert f"`{name.replace('<id>', '&lt;id&gt;').lower()}`" in text, name


def test_readme_names_the_two_commands_and_ci_runs_the_test_one():
    readme = (ROOT / "README.md").read_text()
    assert "scripts/demo.sh" in readme and "scripts/test.sh" in readme
    ci = (ROOT / ".ci" / "run").read_text()
    commands = [line for line in ci.splitlines() if line.strip() and not line.startswith(("#", "set ", "cd "))]
    assert commands == ["exec bash scripts/test.sh"]
