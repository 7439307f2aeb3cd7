"""``python -m bench [--quick | --smoke] [--only NAME …]`` — run the benchmarks, print the table, write results.json.

Each benchmark is one entry of :data:`BENCHMARKS`: a name and the module whose function
``run(mode: Mode) -> list[Figure]`` measures it (:class:`bench.mode.Mode`: full, quick or
smoke). Adding a benchmark means writing that module (one per family) and adding one line to
the list; the table, the goal check, ``results.json`` and the plots follow. A module is imported
only when its benchmark runs, so one that cannot even be imported fails alone and the others
still give their figures.

``results.json`` is exactly ``{"figures": {NAME: {"value", "unit", "goal", "met"}}}`` for the
names of the performance budget (:data:`bench.figures.BUDGET`, 13 figures) and no others: other
figures with a goal are checked and printed only, informational ones printed only. A run
*merges* into the file: the budget figures it measured replace their entries, the others keep
the value of their last run, so after ``--only auth`` the file still holds the latest value of
all 13. A run of every benchmark in which none failed must give all 13 figures (else exit 2).

The scaling figures (``…_at_1k`` … ``…_at_1m``) become PNG plots in ``bench/plots/``
(:mod:`bench.plots`). ``--smoke`` (every benchmark at its smallest size, to prove that it runs)
writes its results.json and plots into a new temporary directory unless ``--results`` and
``--plots`` say where, and never into ``bench/results.json`` or ``bench/plots/``.

Exit status: 0 every goal met, 1 a goal missed, 2 a benchmark could not run or a budget figure
was not measured (the error is printed, the others still run), 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import signal
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .common import machine
from .figures import BUDGET, RESULT_NAMES, Figure
from .mode import Mode
from .plots import draw

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results.json"
PLOTS = HERE / "plots"


@dataclass(frozen=True)
class Benchmark:
    name: str
    module: str  # defines run(mode: Mode) -> list[Figure]
    what: str

    def run(self, mode: Mode) -> list[Figure]:
        return importlib.import_module(self.module).run(mode)


BENCHMARKS: list[Benchmark] = [
    Benchmark("meters", "bench.meters", "Modbus requests per meter sample, every meter model"),
    Benchmark("latency", "bench.latency", "controller Status → core, core limit → controller PWM, over a pty"),
    Benchmark("daemon_cpu", "bench.daemon_cpu", "daemon CPU idle and charging, RSS, 4 connectors"),
    Benchmark("ocpp", "bench.ocpp", "outbox replay vs. loopback RTT, RFID tap (local list hit) → StartTransaction, "
                                    "start → boot"),
    Benchmark("auth", "bench.auth", "offline authorization decision, whitelist CSV import/export, SendLocalList 100k"),
    Benchmark("smart_charging", "bench.smart_charging",
              "GetCompositeSchedule of 10 profiles × 1440 periods: composite_schedule alone and over OCPP"),
    Benchmark("scaling", "bench.scaling",
              "cost against size: auth decision and CSV import at 1k-1M entries, outbox replay at 1k-100k messages"),
]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    names = [b.name for b in BENCHMARKS]
    parser = argparse.ArgumentParser(
        prog="python -m bench", description="Run the station's hardware benchmarks (see BENCHMARKS.md).",
        epilog="benchmarks: " + "; ".join(f"{b.name}: {b.what}" for b in BENCHMARKS))
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="fewer samples and shorter windows, no 1M scaling point")
    size.add_argument("--smoke", action="store_true",
                      help="every benchmark at its smallest size, to check that it runs (figures not meaningful); "
                           "writes into a new temporary directory unless --results/--plots say where")
    parser.add_argument("--only", nargs="+", choices=names, metavar="NAME",
                        help=f"run only these benchmarks ({', '.join(names)}); their figures are merged into "
                             "results.json, the others keep their last values")
    parser.add_argument("--results", type=Path, metavar="FILE",
                        help="where to merge the budget figures (default bench/results.json)")
    parser.add_argument("--plots", type=Path, metavar="DIR", help="where to write the scaling plots (default bench/plots)")
    args = parser.parse_args(argv)
    args.mode = Mode.SMOKE if args.smoke else Mode.QUICK if args.quick else Mode.FULL
    if args.mode is Mode.SMOKE:
        if (args.results and args.results.resolve() == RESULTS) or (args.plots and args.plots.resolve() == PLOTS):
            parser.error("--smoke never writes bench/results.json or bench/plots/: its figures are not meaningful")
        if args.results is None or args.plots is None:
            scratch = Path(tempfile.mkdtemp(prefix="bench-smoke-"))
            args.results = args.results or scratch / "results.json"
            args.plots = args.plots or scratch / "plots"
    args.results = args.results or RESULTS
    args.plots = args.plots or PLOTS
    return args


def _interrupt(signum: int, _frame: object) -> None:
    # SIGTERM ends the run like Ctrl-C does, so every ``finally`` stops its child processes.
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    selected = [b for b in BENCHMARKS if args.only is None or b.name in args.only]
    info = machine()
    print(f"machine: {info['cpus']} CPUs, {info['cpu_model']}, Python {info['python']}"
          f"{'' if args.mode is Mode.FULL else f' ({args.mode.value} run)'}", flush=True)

    figures: list[Figure] = []
    failed: list[str] = []
    started = time.monotonic()
    try:
        for benchmark in selected:
            print(f"[{time.monotonic() - started:5.1f} s] {benchmark.name}: {benchmark.what} …", file=sys.stderr,
                  flush=True)
            try:
                figures.extend(benchmark.run(args.mode))
            except Exception:  # noqa: BLE001 - one broken benchmark must not hide the others' figures
                failed.append(benchmark.name)
                print(f"bench: {benchmark.name} FAILED:\n{traceback.format_exc()}", file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        print("bench: interrupted; nothing written", file=sys.stderr)
        return 130
    elapsed = time.monotonic() - started

    check_figures(figures)
    print(render_table(figures))
    for figure in figures:
        if figure.note and figure.goal is not None:
            print(f"  {figure.name}: {figure.note}")
    missed = [f.name for f in figures if f.met is False]
    unmeasured = sorted(RESULT_NAMES - {f.name for f in figures}) if len(selected) == len(BENCHMARKS) else []
    try:
        plots = draw(figures, args.plots)
    except Exception:  # noqa: BLE001 - the figures are still written
        failed.append("plots")
        plots = []
        print(f"bench: the plots FAILED:\n{traceback.format_exc()}", file=sys.stderr, flush=True)
    merge_results(args.results, figures)
    print(f"\n{len(figures)} figures in {elapsed:.0f} s; budget figures merged into {args.results}")
    if plots:
        print(f"plots: {', '.join(str(p) for p in plots)}")
    if missed:
        print(f"GOAL MISSED: {', '.join(missed)}")
    if failed:
        print(f"COULD NOT RUN: {', '.join(failed)} (see the errors above)")
    elif unmeasured:
        print(f"NOT MEASURED by any benchmark: {', '.join(unmeasured)}")
    return 2 if failed or unmeasured else 1 if missed else 0


def check_figures(figures: list[Figure]) -> None:
    """Every name once; a budget figure with the budget's goal (a mistake in a benchmark otherwise)."""
    names = [f.name for f in figures]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise SystemExit(f"bench: figure names used twice: {', '.join(duplicates)}")
    wrong = [f"{f.name} {f.goal!r} (budget {BUDGET[f.name]!r})" for f in figures
             if f.name in BUDGET and f.goal != BUDGET[f.name]]
    if wrong:
        raise SystemExit(f"bench: budget figures with another goal: {', '.join(wrong)}")


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


def merge_results(path: Path, figures: list[Figure]) -> None:
    """This run's budget figures into ``path``; the budget figures it did not measure keep theirs."""
    kept = {name: entry for name, entry in _read_results(path).items() if name in RESULT_NAMES}
    kept.update({f.name: f.as_json() for f in figures if f.name in RESULT_NAMES})
    data = {"figures": {name: kept[name] for name in BUDGET if name in kept}}
    text = json.dumps(data, indent=2, allow_nan=False) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(text)
    os.replace(temp, path)


def _read_results(path: Path) -> dict[str, Any]:
    try:
        figures = json.loads(path.read_text())["figures"]
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"bench: note: {path} unreadable ({exc}); written anew", file=sys.stderr)
        return {}
    return figures if isinstance(figures, dict) else {}


if __name__ == "__main__":
    sys.exit(main())
