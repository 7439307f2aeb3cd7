"""``stationd whitelist`` — import, export and edit the local RFID whitelist (SPEC.md §6).

Works while the daemon runs: every change is one SQLite transaction that bumps the list's
change counter, and the daemon picks it up within a second (``Whitelist.watch``).
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import tempfile
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from ..auth.csv_io import EXPORT_FILENAME, import_csv, iter_csv, max_file_bytes
from ..auth.uid import InvalidUid
from ..auth.whitelist import (
    ACCEPTED,
    BLOCKED,
    Entry,
    InvalidEntry,
    Whitelist,
    WhitelistError,
    format_expiry,
)
from ..storage import Database, StorageError
from . import station_args
from .parser import Parser
from .station_args import CommandError

EXIT_FAILED = 1

Command = Callable[[argparse.Namespace, Whitelist], int]


def add_commands(commands: argparse._SubParsersAction) -> None:
    whitelist = commands.add_parser(
        "whitelist", help="import, export and edit the local RFID whitelist",
        description="Import, export and edit the station's local RFID whitelist (the CSV format of the "
                    "WebUI's Users page: UID,GID,Expiry,Authorization). Works while the daemon runs: "
                    "it picks up a change within a second.",
    )
    actions = whitelist.add_subparsers(dest="action", metavar="ACTION", parser_class=Parser)
    actions.required = True
    where = station_args.station_options()

    import_ = actions.add_parser(
        "import", parents=[where], help="import a CSV file (merge, or --replace)",
        description="Import a whitelist CSV file: entries are added or updated (Import (Update)); with "
                    "--replace the list becomes the file's entries (Import (Replace); entries missing from the "
                    "file are deleted and stay restorable until the daemon restarts). Prints 'Processed: N' "
                    "(N counts the header line). A file with any error changes nothing: each problem is "
                    "printed as FILE:LINE: message and the command fails.")
    import_.add_argument("--replace", action="store_true", help="replace the list instead of merging into it")
    import_.add_argument("file", metavar="FILE", help="the CSV file ('-': standard input)")
    import_.set_defaults(handler=_guarded(cmd_import))

    export = actions.add_parser(
        "export", parents=[where], help="write the list as CSV",
        description=f"Write the whitelist as CSV (what the WebUI downloads as {EXPORT_FILENAME}); "
                    "an export imports back unchanged.")
    export.add_argument("file", metavar="FILE", help="where to write ('-': standard output)")
    export.set_defaults(handler=_guarded(cmd_export))

    list_ = actions.add_parser("list", parents=[where], help="show the entries",
                               description="Show the entries in list order.")
    list_.add_argument("--all", action="store_true",
                       help="include deleted entries (restorable until the daemon restarts)")
    list_.set_defaults(handler=_guarded(cmd_list))

    add = actions.add_parser("add", parents=[where], help="add or update an entry",
                             description="Add a card, or update it if it is in the list (a deleted entry comes "
                                         "back). UIDs are case-insensitive; AE:C7:80:85 is aec78085.")
    add.add_argument("uid", metavar="UID")
    add.add_argument("--gid", metavar="GID", help="group (parent idTag)")
    add.add_argument("--expiry", metavar="DATE", help="expiry, e.g. 2030-12-31T23:59:59 (UTC unless a zone is given)")
    add.add_argument("--blocked", action="store_true", help="add the card as blocked")
    add.set_defaults(handler=_guarded(cmd_add))

    for name, help_text, description in (
        ("block", "block an entry", "Block a card: it stays in the list and is refused."),
        ("accept", "accept an entry again", "Accept a blocked card again."),
        ("delete", "delete an entry", "Delete a card; it stays restorable until the daemon restarts."),
        ("restore", "restore a deleted entry", "Bring back a deleted card (until the daemon restarts)."),
    ):
        sub = actions.add_parser(name, parents=[where], help=help_text, description=description)
        sub.add_argument("uid", metavar="UID")
        sub.set_defaults(handler=_guarded(cmd_edit))


def _guarded(command: Command) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            target = station_args.resolve_station(args, station_args.DEFAULT_CONFIG)
            try:
                db = Database.open(target.data_dir)
            except StorageError as problem:
                raise CommandError(str(problem)) from None
            with db:
                return command(args, Whitelist(db))
        except CommandError as problem:
            print(f"stationd whitelist {args.action}: {problem}", file=sys.stderr)
            return EXIT_FAILED
        except (InvalidUid, InvalidEntry, WhitelistError) as problem:
            print(f"stationd whitelist {args.action}: {problem}", file=sys.stderr)
            return EXIT_FAILED
        except sqlite3.Error as problem:  # e.g. the database stayed locked longer than the busy timeout
            print(f"stationd whitelist {args.action}: the station database failed: {problem}; nothing was changed",
                  file=sys.stderr)
            return EXIT_FAILED
    return run


# ----------------------------------------------------------------------------- import / export
def _read_input(name: str, limit: int) -> bytes:
    if name == "-":
        data = sys.stdin.buffer.read(limit + 1)
    else:
        try:
            with open(name, "rb") as handle:
                data = handle.read(limit + 1)
        except OSError as exc:
            raise CommandError(f"cannot read {name}: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise CommandError(f"{name} is too large: a whitelist file of at most {limit:,} bytes is expected")
    return data


def cmd_import(args: argparse.Namespace, whitelist: Whitelist) -> int:
    data = _read_input(args.file, max_file_bytes(whitelist.capacity))
    result = import_csv(whitelist, data, replace=args.replace)
    print(f"Processed: {result.processed}")
    name = "<stdin>" if args.file == "-" else args.file
    if not result.ok:
        for error in result.errors:
            where = name if error.line is None else f"{name}:{error.line}"
            print(f"{where}: {error.message}", file=sys.stderr)
        print(f"stationd whitelist import: {name} has problems; nothing was imported", file=sys.stderr)
        return EXIT_FAILED
    summary = result.summary
    assert summary is not None
    parts = [f"{summary.added:,} added", f"{summary.changed:,} changed", f"{summary.unchanged:,} unchanged"]
    if args.replace:
        parts.append(f"{summary.removed:,} deleted (restorable until the daemon restarts)")
    print(", ".join(parts) + f"; the whitelist has {whitelist.count():,} entries")
    return 0


def cmd_export(args: argparse.Namespace, whitelist: Whitelist) -> int:
    chunks = iter_csv(whitelist)
    if args.file == "-":  # the same bytes as a file export (CRLF line ends)
        sys.stdout.flush()
        out = getattr(sys.stdout, "buffer", None)
        for chunk in chunks:
            if out is not None:
                out.write(chunk)
            else:
                sys.stdout.write(chunk.decode("ascii"))
        (out or sys.stdout).flush()
        return 0
    path = Path(args.file)
    rows = _write_atomically(path, chunks) - 1
    print(f"Exported {rows:,} entries to {path}")
    return 0


def _write_atomically(path: Path, chunks) -> int:
    """Write to a temporary file beside ``path``, then rename: a reader never sees half a file.
    Returns the number of lines written."""
    directory = path.parent if str(path.parent) else Path(".")
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise CommandError(f"cannot write {path}: {exc.strerror or exc}") from None
    lines = 0
    try:
        with os.fdopen(handle, "wb") as out:
            for chunk in chunks:
                out.write(chunk)
                lines += chunk.count(b"\n")
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except OSError as exc:
        Path(temporary).unlink(missing_ok=True)
        raise CommandError(f"cannot write {path}: {exc.strerror or exc}") from None
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return lines


# ----------------------------------------------------------------------------- list / edit
def cmd_list(args: argparse.Namespace, whitelist: Whitelist) -> int:
    entries = whitelist.entries(include_deleted=args.all)
    now = datetime.now(timezone.utc)
    columns = ["#", "UID", "GID", "EXPIRY", "AUTHORIZATION"] + (["STATE"] if args.all else [])
    table = [
        [str(number), entry.uid, entry.gid or "", format_expiry(entry.expiry),
         entry.authorization + (" (expired)" if entry.expired(now) else "")]
        + (["deleted" if entry.deleted else ""] if args.all else [])
        for number, entry in enumerate(entries, start=1)
    ]
    widths = [max([len(column)] + [len(row[i]) for row in table]) for i, column in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip()]
    lines.extend("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in table)
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


def cmd_add(args: argparse.Namespace, whitelist: Whitelist) -> int:
    entry = Entry.make(args.uid, args.gid, args.expiry, BLOCKED if args.blocked else ACCEPTED)
    existed = whitelist.get(entry.uid)
    whitelist.add(entry.uid, entry.gid, entry.expiry, entry.authorization)
    verb = "Added" if existed is None or existed.deleted else "Updated"
    print(f"{verb} {_describe(entry)}")
    return 0


def cmd_edit(args: argparse.Namespace, whitelist: Whitelist) -> int:
    operation, verb = {
        "block": (whitelist.block, "Blocked"),
        "accept": (whitelist.accept, "Accepted"),
        "delete": (whitelist.delete, "Deleted"),
        "restore": (whitelist.restore, "Restored"),
    }[args.action]
    entry = operation(args.uid)
    note = f" (restorable until the daemon restarts: stationd whitelist restore {entry.uid})" if entry.deleted else ""
    print(f"{verb} {_describe(entry)}{note}")
    return 0


def _describe(entry: Entry) -> str:
    details = [entry.authorization]
    if entry.gid:
        details.append(f"GID {entry.gid}")
    if entry.expiry:
        details.append(f"expires {format_expiry(entry.expiry)} UTC")
    return f"{entry.uid} ({', '.join(details)})"
