"""``stationd run`` — the daemon, as systemd starts it."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from .. import logs
from ..config.station_file import StationConfigError, load_station_config
from ..config.store import ConfigError
from ..daemon import Daemon
from ..storage import StorageError

# sysexits.h EX_CONFIG: the unit file's RestartPreventExitStatus=78 stops restarts that
# cannot help (the config file must be fixed first).
EXIT_CONFIG = 78
EXIT_STORAGE = 74  # EX_IOERR
# EX_TEMPFAIL: the daemon stopped to start again (OCPP Reset, "Restart Daemon", an installed
# update in the dry run): the unit's RestartForceExitStatus=75 has systemd start it again.
EXIT_RESTART = 75

log = logging.getLogger("stationd.daemon")


def add_commands(commands: argparse._SubParsersAction) -> None:
    run = commands.add_parser(
        "run", help="run the station daemon",
        description="Run the station daemon in the foreground (systemd: Type=notify). "
                    "SIGTERM or SIGINT stops it gracefully.",
    )
    run.add_argument("--config", required=True, type=Path, metavar="FILE", help="station config file (YAML)")
    run.set_defaults(handler=run_daemon)


def run_daemon(args: argparse.Namespace) -> int:
    logs.configure()
    try:
        config = load_station_config(args.config)
    except StationConfigError as problem:
        print(f"stationd run: the station config file is invalid:\n{problem}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        daemon = Daemon(config)
        exit_code = asyncio.run(daemon.run())
        if exit_code == 0 and daemon.restart_requested:
            log.info("exiting with status %d so that systemd starts the station again (%s)", EXIT_RESTART,
                     daemon.restart_requested)
            return EXIT_RESTART
        return exit_code
    except ConfigError as problem:
        log.critical("the station config file %s gives invalid values: %s", args.config, problem)
        return EXIT_CONFIG
    except StorageError as problem:
        log.critical("cannot open the station's storage: %s", problem)
        return EXIT_STORAGE
