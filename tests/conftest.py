"""Shared test helpers."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DRY_RUN = REPO / "examples" / "dry-run.yaml"


def dry_run_station(directory: Path, *, replace: tuple[str, str] | None = None) -> Path:
    """examples/dry-run.yaml as ``directory/station.yaml``: data in ``directory/data``, the
    Modbus server on a free port (tests run side by side), optionally one more text edit."""
    text = DRY_RUN.read_text()
    for old, new in (('data_dir: "../data/dry-run"', 'data_dir: "data"'),
                     ('bind: "127.0.0.1:1502"', 'bind: "127.0.0.1:0"'), *([replace] if replace else [])):
        assert old in text, f"{old!r} is not in {DRY_RUN.name}"
        text = text.replace(old, new, 1)
    path = directory / "station.yaml"
    path.write_text(text)
    return path


@pytest.fixture
async def http_files():
    """An HTTP server on 127.0.0.1 that serves files and takes uploads (tests/file_servers.py)."""
    from file_servers import HttpFiles

    server = HttpFiles()
    await server.start()
    yield server
    await server.stop()
