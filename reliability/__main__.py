"""``python -m reliability [--long] [--only NAME …]`` — run the categories, print the counts, write results.json.

Each category is one entry of :data:`CATEGORIES`: a name and the module whose function
``run(long: bool) -> Tally`` tries it against the real daemon (127.0.0.1 only, temporary
directories only). The short run (the default) is what CI runs through the tests; ``--long``
is the run whose counts go into docs/RELIABILITY.md. A module is imported only when its
category runs, so one that cannot even be imported fails alone.

Exit status: 0 every category passed (all tries survived, nothing lost), 1 one did not,
2 a category could not run (its error is printed, the others still run), 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import signal
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from .tally import Tally

RESULTS = Path(__file__).resolve().parent / "results.json"


@dataclass(frozen=True)
class Category:
    name: str
    module: str  # defines run(long: bool) -> Tally
    what: str

    def run(self, long: bool) -> Tally:
        return importlib.import_module(self.module).run(long)


CATEGORIES: list[Category] = [
    Category("ocpp_fuzz", "reliability.ocpp_fuzz",
             "generated hostile OCPP frames from a central system; every CALL answered, the daemon alive, memory bounded"),
    Category("power_cuts", "reliability.power_cuts",
             "kill -9 of stationd demo at random moments during sessions, restarted on the same data directory"),
    Category("backend_outages", "reliability.backend_outages",
             "a central system that drops the link at random during sessions; nothing lost, order kept, backoff kept"),
    Category("hardware_faults", "reliability.hardware_faults",
             "serial link pulled and fed garbage, CAN bus-off, meter timeouts, a controller rebooting mid-session"),
    Category("storage_faults", "reliability.storage_faults",
             "full disk, read-only file system, a corrupt database: a clear error, a safe state, no crash loop"),
    Category("security", "reliability.security",
             "TLS matrix, secrets never shown, WebUI access and upload bombs, Modbus writes out of range"),
]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    names = [c.name for c in CATEGORIES]
    parser = argparse.ArgumentParser(
        prog="python -m reliability", description="Try hostile and broken situations against the station and count "
        "them (see docs/RELIABILITY.md).",
        epilog="categories: " + "; ".join(f"{c.name}: {c.what}" for c in CATEGORIES))
    parser.add_argument("--long", action="store_true", help="the long run (more iterations; its counts go into "
                        "docs/RELIABILITY.md)")
    parser.add_argument("--only", nargs="+", choices=names, metavar="NAME",
                        help=f"run only these categories ({', '.join(names)})")
    parser.add_argument("--results", type=Path, default=RESULTS, metavar="FILE",
                        help="where to write the counts (default reliability/results.json)")
    return parser.parse_args(argv)


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    selected = [c for c in CATEGORIES if args.only is None or c.name in args.only]
    tallies: list[Tally] = []
    broken: list[str] = []
    started = time.monotonic()
    try:
        for category in selected:
            print(f"[{time.monotonic() - started:6.1f} s] {category.name}: {category.what} …", file=sys.stderr,
                  flush=True)
            try:
                tallies.append(category.run(args.long))
            except Exception:  # noqa: BLE001 - one broken category must not hide the others' counts
                broken.append(category.name)
                print(f"reliability: {category.name} COULD NOT RUN:\n{traceback.format_exc()}", file=sys.stderr,
                      flush=True)
    except KeyboardInterrupt:
        print("reliability: interrupted; nothing written", file=sys.stderr)
        return 130
    print(render_table(tallies))
    for tally in tallies:
        for line in tally.failures:
            print(f"  {tally.category} FAILED: {line}")
    write_results(args.results, tallies, long=args.long, elapsed=time.monotonic() - started)
    print(f"\n{len(tallies)} categories in {time.monotonic() - started:.0f} s; written to {args.results}")
    if broken:
        print(f"COULD NOT RUN: {', '.join(broken)} (see the errors above)")
        return 2
    return 0 if all(t.passed for t in tallies) else 1


def render_table(tallies: list[Tally]) -> str:
    rows = [("category", "unit", "tried", "survived", "lost", "duplicated", "passed?")]
    rows += [(t.category, t.unit, str(t.tried), str(t.survived), str(t.lost), str(t.duplicated),
              "yes" if t.passed else "NO") for t in tallies]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for index, row in enumerate(rows):
        lines.append("  ".join(cell.rjust(w) if 2 <= i <= 5 else cell.ljust(w)
                               for i, (cell, w) in enumerate(zip(row, widths))).rstrip())
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def write_results(path: Path, tallies: list[Tally], *, long: bool, elapsed: float) -> None:
    data = {"run": "long" if long else "short", "seconds": round(elapsed),
            "categories": {t.category: t.as_json() for t in tallies}}
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(temp, path)


if __name__ == "__main__":
    sys.exit(main())
