"""``python -m bench [--quick] [--only NAME …]`` — run the benchmarks, print the table, write results.json.

Each benchmark is one entry of :data:`BENCHMARKS`: a name and the module whose function
``run(quick) -> list[Figure]`` measures it. Adding a benchmark means writing that module (one
per family) and adding one line to the list; the table, the goal check and ``results.json``
follow. A module is imported only when its benchmark runs, so one that cannot even be imported
fails alone and the others still give their figures.

``bench/results.json`` is exactly ``{"figures": {NAME: {"value", "unit", "goal", "met"}}}`` with
every goal-checked figure of this run (informational figures are printed only). Exit status:
0 every goal met, 1 a goal missed, 2 a benchmark could not run (its error is printed, the
others still run), 130 interrupted.
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

from .common import machine
from .figures import Figure

RESULTS = Path(__file__).resolve().parent / "results.json"


@dataclass(frozen=True)
class Benchmark:
    name: str
    module: str  # defines run(quick: bool) -> list[Figure]
    what: str

    def run(self, quick: bool) -> list[Figure]:
        return importlib.import_module(self.module).run(quick)


BENCHMARKS: list[Benchmark] = [
    Benchmark("meters", "bench.meters", "Modbus requests per meter sample, every meter model"),
    Benchmark("latency", "bench.latency", "controller Status → core, core limit → controller PWM, over a pty"),
    Benchmark("daemon_cpu", "bench.daemon_cpu", "daemon CPU idle and charging, RSS, 4 connectors"),
    Benchmark("ocpp", "bench.ocpp", "outbox replay vs. loopback RTT, RFID tap → StartTransaction, start → boot"),
    Benchmark("auth", "bench.auth", "offline authorization decision, whitelist CSV import/export, SendLocalList 100k"),
    Benchmark("smart_charging", "bench.smart_charging",
              "GetCompositeSchedule of 10 profiles × 1440 periods: composite_schedule alone and over OCPP"),
]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    names = [b.name for b in BENCHMARKS]
    parser = argparse.ArgumentParser(
        prog="python -m bench", description="Run the station's hardware benchmarks (see BENCHMARKS.md).",
        epilog="benchmarks: " + "; ".join(f"{b.name}: {b.what}" for b in BENCHMARKS))
    parser.add_argument("--quick", action="store_true", help="fewer samples and shorter windows (< 60 s in all)")
    parser.add_argument("--only", nargs="+", choices=names, metavar="NAME",
                        help=f"run only these benchmarks ({', '.join(names)}); results.json then holds only their figures")
    parser.add_argument("--results", type=Path, default=RESULTS, metavar="FILE",
                        help="where to write the figures (default bench/results.json)")
    return parser.parse_args(argv)


def _interrupt(signum: int, _frame: object) -> None:
    # SIGTERM ends the run like Ctrl-C does, so every ``finally`` stops its child processes.
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    selected = [b for b in BENCHMARKS if args.only is None or b.name in args.only]
    info = machine()
    print(f"machine: {info['cpus']} CPUs, {info['cpu_model']}, Python {info['python']}"
          f"{' (quick run)' if args.quick else ''}", flush=True)

    figures: list[Figure] = []
    failed: list[str] = []
    started = time.monotonic()
    try:
        for benchmark in selected:
            print(f"[{time.monotonic() - started:5.1f} s] {benchmark.name}: {benchmark.what} …", file=sys.stderr,
                  flush=True)
            try:
                figures.extend(benchmark.run(args.quick))
            except Exception:  # noqa: BLE001 - one broken benchmark must not hide the others' figures
                failed.append(benchmark.name)
                print(f"bench: {benchmark.name} FAILED:\n{traceback.format_exc()}", file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        print("bench: interrupted; nothing written", file=sys.stderr)
        return 130
    elapsed = time.monotonic() - started

    names = [f.name for f in figures]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise SystemExit(f"bench: figure names used twice: {', '.join(duplicates)}")
    print(render_table(figures))
    for figure in figures:
        if figure.note and figure.goal is not None:
            print(f"  {figure.name}: {figure.note}")
    missed = [f.name for f in figures if f.met is False]
    write_results(args.results, figures)
    print(f"\n{len(figures)} figures in {elapsed:.0f} s; written to {args.results}")
    if missed:
        print(f"GOAL MISSED: {', '.join(missed)}")
    if failed:
        print(f"COULD NOT RUN: {', '.join(failed)} (see the errors above)")
    return 2 if failed else 1 if missed else 0


def render_table(figures: list[Figure]) -> str:
    rows = [("figure", "value", "unit", "goal", "met?")]
    for f in figures:
        met = "-" if f.met is None else "yes" if f.met else "NO"
        rows.append((f.name, f"{f.value:.4g}", f.unit, f.goal or "(info)", met))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for index, row in enumerate(rows):
        lines.append("  ".join(cell.rjust(w) if i == 1 else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths)))
                     .rstrip())
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def write_results(path: Path, figures: list[Figure]) -> None:
    data = {"figures": {f.name: f.as_json() for f in figures if f.goal is not None}}
    text = json.dumps(data, indent=2, allow_nan=False) + "\n"
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(text)
    os.replace(temp, path)


if __name__ == "__main__":
    sys.exit(main())
