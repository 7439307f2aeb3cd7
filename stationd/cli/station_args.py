"""``--data-dir DIR`` / ``--config FILE``: which station a technician command acts on.

Shared by ``stationd config`` and ``stationd whitelist`` so both name a station the same way:

* ``--data-dir DIR``: that data directory; it must already be a station's (its
  ``settings.json`` or ``station.db`` exists), so a typo does not create a new station.
* ``--config FILE``: the station config file; its ``data_dir`` and installation values.
* neither: the device's config file (``/etc/stationd/stationd.yaml``), if it exists.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from ..config.installation import installation_values
from ..config.station_file import StationConfigError, load_station_config
from ..config.store import SETTINGS_FILE_NAME, ConfigError

DEFAULT_CONFIG = Path("/etc/stationd/stationd.yaml")
DB_FILE_NAME = "station.db"


class CommandError(Exception):
    """A problem to print on stderr, ending the command with a failure status."""


@dataclass(frozen=True)
class StationTarget:
    """The station a command acts on. ``installation``: the config file's installation values
    (None when named by ``--data-dir``: the store then uses what the daemon recorded)."""

    data_dir: Path
    installation: dict[str, str] | None = None


def station_options() -> argparse.ArgumentParser:
    """A parent parser with the mutually exclusive ``--data-dir`` / ``--config`` options."""
    where = argparse.ArgumentParser(add_help=False)
    group = where.add_mutually_exclusive_group()
    group.add_argument("--data-dir", type=Path, metavar="DIR", help="the station's data directory")
    group.add_argument("--config", type=Path, metavar="FILE",
                       help=f"the station config file (default: {DEFAULT_CONFIG})")
    return where


def resolve_station(args: argparse.Namespace, default_config: Path = DEFAULT_CONFIG) -> StationTarget:
    """The station named by ``args.data_dir`` / ``args.config`` (default: ``default_config``);
    CommandError with a message for the technician if there is none."""
    if args.data_dir is not None:
        if not args.data_dir.is_dir():
            raise CommandError(f"{args.data_dir} is not a directory")
        if not any((args.data_dir / name).exists() for name in (SETTINGS_FILE_NAME, DB_FILE_NAME)):
            raise CommandError(f"{args.data_dir} is not a station's data directory (no {SETTINGS_FILE_NAME} "
                               f"or {DB_FILE_NAME}): start the station once, or name it with --config FILE")
        return StationTarget(args.data_dir)
    path = args.config or default_config
    if args.config is None and not path.exists():
        raise CommandError(f"no station given: use --data-dir DIR or --config FILE ({default_config} does not exist)")
    try:
        config = load_station_config(path, check_files=False)
        return StationTarget(Path(config.data_dir), installation_values(config))
    except (StationConfigError, ConfigError) as problem:
        raise CommandError(f"the station config file is invalid:\n{problem}") from None
