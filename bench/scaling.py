"""Cost against size: how the authorization decision, the whitelist CSV and the outbox replay grow.

Informational figures only (``<series>_at_<size>``, see :func:`bench.plots.at`), drawn as the
plots of BENCHMARKS.md (:mod:`bench.plots`); the goals are checked at the budget's sizes by
:mod:`bench.auth` and :mod:`bench.ocpp`. Each size is measured the way those benchmarks measure
it, with their own code:

* **decision** — :func:`bench.auth.decision_samples`: a local list and a whitelist of N entries
  each (above 100,000, the station's capacity, they are opened with a larger one), a cache of
  N / 10 entries (at most 10,000, the cache's capacity), the same mix of cards; p50 and p99 of
  20,000 offline decisions per size (quick: 5,000) after 1,000 warm-up per phase.
* **CSV** — :func:`bench.auth.csv_round_trips`: import (Replace) of an N-row file into an empty
  whitelist of a fresh durable database, then the byte-identical export; median of 3 runs
  (quick: 1), one run at 1M.
* **replay** — :func:`bench.ocpp._separate_process`: StartTransaction + N MeterValues queued
  offline, then replayed to the central system in a separate process, as for
  ``replay_ratio_to_rtt_limit``; with it the Heartbeat round trip of the same central system
  (200 calls; quick: 100), whose inverse is the limit one CALL in flight allows.

Sizes: decision and CSV 1k, 10k, 100k, 1M entries (quick: no 1M); replay 1k, 10k, 100k messages
(quick: 1k, 10k). Smoke: 1k and 10k entries, 200 and 1,000 messages. 1M entries take about
1 GB of memory at the peak (the CSV import's parsed rows).
"""

from __future__ import annotations

import gc
import statistics
import tempfile
from pathlib import Path

from .auth import all_samples, csv_round_trips, decision_samples
from .common import percentile
from .figures import Figure
from .mode import Mode
from .ocpp import _separate_process
from .plots import at

__all__ = ["run"]

MILLION = 1_000_000


def run(mode: Mode) -> list[Figure]:
    entries = mode.pick(full=(1_000, 10_000, 100_000, MILLION), quick=(1_000, 10_000, 100_000),
                        smoke=(1_000, 10_000))
    decisions, warm_up = mode.pick(full=(20_000, 1_000), quick=(5_000, 1_000), smoke=(500, 50))
    repeats = mode.pick(full=3, quick=1, smoke=1)
    messages = mode.pick(full=(1_000, 10_000, 100_000), quick=(1_000, 10_000), smoke=(200, 1_000))
    calls = mode.pick(full=200, quick=100, smoke=50)
    figures = []
    for size in entries:
        figures += _decision(size, decisions, warm_up)
    for size in entries:
        figures += _csv(size, repeats if size < MILLION else 1)
    for size in messages:
        figures += _replay(size, calls)
    return figures


def _decision(size: int, count: int, warm_up: int) -> list[Figure]:
    every = all_samples(decision_samples(size, count, warm_up))
    gc.collect()  # the million entries are gone before the next size
    how = f"{len(every):,} offline decisions, local list and whitelist of {size:,} entries each"
    return [Figure(at(f"auth_decision_p{p}_us", size), round(percentile(every, p) / 1e3, 2), "µs", None,
                   f"p{p} of {how}") for p in (50, 99)]


def _csv(rows: int, repeats: int) -> list[Figure]:
    times = csv_round_trips(rows, repeats)
    gc.collect()
    return [Figure(at("csv_import_s", rows), round(statistics.median(times.imports), 4), "s", None,
                   f"import_csv Replace, {times.how()}"),
            Figure(at("csv_export_s", rows), round(statistics.median(times.exports), 4), "s", None,
                   f"export_csv, {times.how()}")]


def _replay(messages: int, calls: int) -> list[Figure]:
    with tempfile.TemporaryDirectory(prefix="bench-scaling-replay-") as tmp:
        loops = _separate_process(Path(tmp), messages, calls)
    replay, heartbeat = loops["replay"], loops["heartbeat"]
    how = (f"Start + {messages:,} MeterValues replayed in {replay.wall_s:.2f} s ({replay.cpu_us()}), "
           f"CS in a separate process")
    return [Figure(at("replay_msgs_per_s", messages), round(1 / replay.per_message_s), "msg/s", None, how),
            Figure(at("replay_rtt_limit_msgs_per_s", messages), round(1 / heartbeat.per_message_s), "msg/s", None,
                   f"1 / mean Heartbeat round trip of {calls} calls, same CS, before the replay")]
