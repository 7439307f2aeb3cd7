"""``stationd demo`` — the whole station with simulated hardware (DESIGN.md §5.1)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from .. import logs
from ..config.station_file import StationConfigError, parse_bind
from ..demo import DemoOptions, default_data_dir, run_demo
from ..storage import StorageError


def add_commands(commands: argparse._SubParsersAction) -> None:
    demo = commands.add_parser(
        "demo", help="run the whole station with simulated hardware",
        description="Run the station with simulated controllers, vehicles, meters and RFID reader, a control "
                    "API to drive them, and (without --backend) a local OCPP central system. Ctrl-C stops it.",
    )
    demo.add_argument("--backend", metavar="URL",
                      help="central system base URL; the chargebox id is appended (default: a built-in one)")
    demo.add_argument("--chargebox-id", metavar="ID", help="identity presented to the backend "
                      "(default: derived from the serial number)")
    demo.add_argument("--serial-number", metavar="SN", default="DEMO000001",
                      help="station serial number, also the default WebUI password (default: %(default)s)")
    demo.add_argument("--security-profile", type=int, choices=(0, 1, 2), metavar="N",
                      help="OCPP security profile 0, 1 or 2 (default: 0 with the built-in backend, else 2)")
    demo.add_argument("--authorization-key", metavar="KEY", help="Basic-auth password for profiles 1 and 2")
    demo.add_argument("--ca-file", type=Path, metavar="PEM",
                      help="CA bundle that verifies the backend's TLS certificate (profile 2)")
    demo.add_argument("--connectors", type=_connectors, default=2, metavar="N",
                      help="number of connectors, 1-4 (default: %(default)s)")
    demo.add_argument("--data-dir", type=Path, metavar="DIR",
                      help=f"where state lives; reusing it continues a previous run (default: {default_data_dir()})")
    demo.add_argument("--webui", type=_bind, default="127.0.0.1:8443", metavar="HOST:PORT",
                      help="WebUI address, HTTPS (default: %(default)s)")
    demo.add_argument("--sim-api", type=_bind, default="127.0.0.1:8090", metavar="HOST:PORT",
                      help="control API of the simulated hardware (default: %(default)s)")
    demo.add_argument("--modbus", type=_bind, default="127.0.0.1:1502", metavar="HOST:PORT",
                      help="the station's Modbus TCP server (default: %(default)s)")
    demo.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    handler = logs.configure()
    simulator_log = logging.getLogger("firmware_sim")  # the built-in backend logs what it receives
    simulator_log.addHandler(handler)
    simulator_log.setLevel(logging.INFO)
    simulator_log.propagate = False
    if args.chargebox_id is not None and ("{" in args.chargebox_id or "}" in args.chargebox_id):
        print("stationd demo: --chargebox-id must not contain { or }", file=sys.stderr)
        return 2
    options = DemoOptions(
        backend=args.backend, chargebox_id=args.chargebox_id, serial_number=args.serial_number,
        security_profile=args.security_profile, authorization_key=args.authorization_key, ca_file=args.ca_file,
        connectors=args.connectors, data_dir=args.data_dir, webui=args.webui, sim_api=args.sim_api,
        modbus=args.modbus,
    )
    try:
        return asyncio.run(run_demo(options, announce=lambda line: print(line, flush=True)))
    except StationConfigError as problem:
        print(f"stationd demo: invalid option:\n{problem}", file=sys.stderr)
        return 2
    except StorageError as problem:
        print(f"stationd demo: cannot open the station's storage: {problem}", file=sys.stderr)
        return 74
    except OSError as problem:  # e.g. an address already in use
        print(f"stationd demo: {problem}", file=sys.stderr)
        return 1


def _connectors(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 4:
        raise argparse.ArgumentTypeError(f"must be 1 to 4 (got {text!r})")
    return int(text)


def _bind(text: str) -> str:
    try:
        parse_bind(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text
