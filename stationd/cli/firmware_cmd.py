"""``stationd firmware`` — build and check firmware update packages (docs/firmware-package.md).

Neither command needs a data directory, so both work anywhere, also while a daemon runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..firmware.package import (
    WRONG_MODEL,
    Manifest,
    PackageBuildError,
    PackageError,
    build_package,
    check_model,
    check_version,
    verify_package,
)
from .parser import Parser

EXIT_FAILED = 1
OUTCOME = {WRONG_MODEL: "a station answers MachineMismatch, then InstallationFailed"}


def add_commands(commands: argparse._SubParsersAction) -> None:
    firmware = commands.add_parser(
        "firmware", help="build and check firmware update packages",
        description="Build and check the update packages UpdateFirmware installs "
                    "(format: docs/firmware-package.md). No data directory needed.",
    )
    actions = firmware.add_subparsers(dest="action", metavar="ACTION", parser_class=Parser)
    actions.required = True

    pack = actions.add_parser("pack", help="build an update package",
                              description="Build an update package for stations of model MODEL carrying the "
                                          "PAYLOAD files (named by their base names), written atomically to FILE.")
    pack.add_argument("--model", required=True, type=_argument(check_model), metavar="MODEL",
                      help="the model the station reports as chargePointModel (1-20 characters)")
    pack.add_argument("--version", required=True, type=_argument(check_version), metavar="VERSION",
                      help="the firmwareVersion the station reports after the update (1-50 characters, no '/')")
    pack.add_argument("--output", required=True, type=Path, metavar="FILE", help="the package file to write")
    pack.add_argument("payloads", nargs="*", type=Path, metavar="PAYLOAD", help="files to carry (at least one)")
    pack.set_defaults(handler=cmd_pack)

    verify = actions.add_parser("verify", help="check a package as a station would",
                                description="Check a package as a station of model MODEL would before installing "
                                            "it: manifest, model, limits, archive safety, every payload's size "
                                            "and SHA-256. Prints OK or the problem (exit status 1).")
    verify.add_argument("file", type=Path, metavar="FILE")
    verify.add_argument("--model", required=True, metavar="MODEL", help="the station's chargePointModel")
    verify.set_defaults(handler=cmd_verify)


def _argument(check):
    def convert(text: str) -> str:
        try:
            return check(text)
        except ValueError as problem:
            raise argparse.ArgumentTypeError(str(problem)) from None
    return convert


def cmd_pack(args: argparse.Namespace) -> int:
    try:
        manifest = build_package(args.model, args.version, args.payloads, args.output)
    except PackageBuildError as problem:
        print(f"stationd firmware pack: {problem}", file=sys.stderr)
        return EXIT_FAILED
    except OSError as problem:
        print(f"stationd firmware pack: {problem}", file=sys.stderr)
        return EXIT_FAILED
    print(f"{args.output}: {args.output.stat().st_size} bytes")
    print(_summary(manifest))
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    try:
        verified = verify_package(args.file, expected_model=args.model)
    except PackageError as problem:
        outcome = OUTCOME.get(problem.kind, "a station answers InstallationFailed")
        print(f"{args.file}: {problem.kind.replace('_', ' ')}: {problem} ({outcome})", file=sys.stderr)
        return EXIT_FAILED
    print(f"{args.file}: OK")
    print(_summary(verified.manifest))
    return 0


def _summary(manifest: Manifest) -> str:
    lines = [f"model:    {manifest.model}", f"version:  {manifest.version}", f"created:  {manifest.created}",
             f"payloads: {len(manifest.payloads)} ({manifest.total_size} bytes)"]
    width = max(len(p.name) for p in manifest.payloads)
    for payload in manifest.payloads:
        kind = f"  {payload.kind}" + (f" {payload.version}" if payload.version else "")
        lines.append(f"  {payload.name.ljust(width)}  {payload.size:>12}  sha256 {payload.sha256}{kind}")
    return "\n".join(lines)
