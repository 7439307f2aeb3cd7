"""``stationd`` — argument parsing and dispatch. Each subcommand lives in its own module."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .. import __version__
from . import config_cmd, demo_cmd, firmware_cmd, run_cmd, whitelist_cmd
from .parser import Parser



def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="stationd", description="EV charging station controller.")
    parser.add_argument("--version", action="version", version=f"stationd {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    commands.required = True
    run_cmd.add_commands(commands)
    config_cmd.add_commands(commands)
    demo_cmd.add_commands(commands)
    whitelist_cmd.add_commands(commands)
    firmware_cmd.add_commands(commands)
    version = commands.add_parser("version", help="print the version", description="Print stationd's version.")
    version.set_defaults(handler=lambda args: print(f"stationd {__version__}") or 0)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `stationd config list | head`
        return 0


if __name__ == "__main__":
    sys.exit(main())
