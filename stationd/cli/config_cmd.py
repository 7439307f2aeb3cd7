"""``stationd config`` — read, change, list and check the station's configuration."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..config.installation import installation_values
from ..config.reference import render_markdown
from ..config.station_file import StationConfigError, load_station_config
from ..config.store import ConfigError, ConfigStatus, ConfigStore, Reading
from ..config.value_types import Source
from . import station_args
from .parser import Parser
from .station_args import CommandError

DEFAULT_CONFIG = station_args.DEFAULT_CONFIG
EXIT_FAILED = 1


def add_commands(commands: argparse._SubParsersAction) -> None:
    config = commands.add_parser(
        "config", help="read and change configuration keys; check a config file",
        description="Read and change the station's configuration keys (OCPP, vendor and path keys). "
                    "Works while the daemon runs: it picks up a change within a second.",
    )
    actions = config.add_subparsers(dest="action", metavar="ACTION", parser_class=Parser)
    actions.required = True
    where = station_args.station_options()

    get = actions.add_parser("get", parents=[where], help="print the value of keys",
                             description="Print a key's value (several keys: KEY=VALUE lines).")
    get.add_argument("keys", nargs="+", metavar="KEY")
    get.set_defaults(handler=_guarded(cmd_get))

    set_ = actions.add_parser("set", parents=[where], help="change a key",
                              description="Change a key, validated as a ChangeConfiguration would be. "
                                          "Prints Accepted or RebootRequired; a rejected value changes nothing.")
    set_.add_argument("key", metavar="KEY")
    set_.add_argument("value", metavar="VALUE")
    set_.set_defaults(handler=_guarded(cmd_set))

    reset = actions.add_parser("reset", parents=[where], help="return a key to its configured or default value",
                               description="Forget a changed value: the key returns to the config file's value "
                                           "or its default.")
    reset.add_argument("key", metavar="KEY")
    reset.set_defaults(handler=_guarded(cmd_reset))

    list_ = actions.add_parser("list", parents=[where], help="list every key",
                               description="List every key with value, type, unit, access, default and when "
                                           "a change takes effect.")
    list_.add_argument("--json", action="store_true", help="print JSON instead of a table")
    list_.set_defaults(handler=_guarded(cmd_list))

    reference = actions.add_parser("reference", help="print the key reference (Markdown)",
                                   description="Print the reference of every key as Markdown "
                                               "(docs/config-keys.md is this output).")
    reference.set_defaults(handler=lambda args: print(render_markdown(), end="") or 0)

    check = actions.add_parser("check", help="validate a station config file",
                               description="Validate a station config file; errors name the file, line and field.")
    check.add_argument("file", type=Path, metavar="FILE")
    check.set_defaults(handler=_guarded(cmd_check))


def _guarded(command):
    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except CommandError as problem:
            print(f"stationd config {args.action}: {problem}", file=sys.stderr)
            return EXIT_FAILED
    return run


def open_store(args: argparse.Namespace) -> ConfigStore:
    """The store of the station named by --data-dir or --config (default: the device's file)."""
    target = station_args.resolve_station(args, DEFAULT_CONFIG)
    if target.installation is None:
        return ConfigStore.open(target.data_dir)
    try:
        return ConfigStore.open(target.data_dir, installation=target.installation)
    except ConfigError as problem:
        raise CommandError(f"the station config file is invalid:\n{problem}") from None


def cmd_get(args: argparse.Namespace) -> int:
    store = open_store(args)
    status = 0
    for name in args.keys:
        reading = store.read(name)
        if reading is None:
            print(f"stationd config get: unknown configuration key {name!r}", file=sys.stderr)
            status = EXIT_FAILED
            continue
        value = _shown_value(store, reading)
        print(value if len(args.keys) == 1 else f"{reading.name}={value}")
    return status


def cmd_set(args: argparse.Namespace) -> int:
    result = open_store(args).set(args.key, args.value, Source.LOCAL)
    if result.status is ConfigStatus.ACCEPTED:
        print("Accepted")
        return 0
    if result.status is ConfigStatus.REBOOT_REQUIRED:
        print(f"RebootRequired: {result.reason}")
        return 0
    print(f"{result.status.value}: {result.reason}", file=sys.stderr)
    return EXIT_FAILED


def cmd_reset(args: argparse.Namespace) -> int:
    store = open_store(args)
    result = store.reset(args.key)
    if not result.ok:
        raise CommandError(result.reason)
    print(f"{args.key} = {_shown_value(store, store.read(args.key))}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    store = open_store(args)
    rows = [_row(store, reading) for reading in store.readings(include_hidden=True)]
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    columns = ("key", "value", "type", "unit", "access", "default", "effect", "notes")
    table = [[_clip(str(row[c])) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in table)) for i, c in enumerate(columns)]
    print("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths)).rstrip())
    for line in table:
        print("  ".join(v.ljust(w) for v, w in zip(line, widths)).rstrip())
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    try:
        config = load_station_config(args.file)
        ConfigStore(None, installation=installation_values(config))
    except (StationConfigError, ConfigError) as problem:
        print(problem, file=sys.stderr)
        return EXIT_FAILED
    print(f"{args.file}: OK (chargebox {config.identity.chargebox_id}, {len(config.hardware.connectors)} connectors, "
          f"data in {config.data_dir})")
    return 0


def _row(store: ConfigStore, reading: Reading) -> dict[str, str]:
    entry = reading.entry
    notes = []
    if entry.alias is not None:
        notes.append(f"alias of {entry.alias.of}")
    if entry.key.hidden:
        notes.append("hidden")
    if entry.key.reconnects:
        notes.append("reconnects")
    if entry.key.name in store.pending_reboot:
        notes.append("reboot pending")
    default = entry.default
    if entry.key.derive is not None or entry.key.computed:
        shown_default = "(computed)"
    elif default is None or entry.key.secret:
        shown_default = ""
    else:
        shown_default = entry.type.render(default)
    return {
        "key": reading.name,
        "value": _shown_value(store, reading),
        "type": entry.type.name,
        "unit": entry.unit or "",
        "access": entry.key.access.value,
        "default": shown_default,
        "effect": "-" if reading.readonly else entry.key.effect.value,
        "notes": ", ".join(notes),
    }


def _shown_value(store: ConfigStore, reading: Reading) -> str:
    if reading.value is not None:
        return reading.value
    if reading.entry.key.secret or reading.entry.key.access.value == "W":
        return "(write-only, set)" if store.is_set(reading.name) else "(write-only, not set)"
    return ""


def _clip(text: str, width: int = 48) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
