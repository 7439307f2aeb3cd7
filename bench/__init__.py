"""Benchmarks of the station's performance budget: timing goals live here, never in tests.

``python -m bench`` (``--quick`` for a short run, ``--smoke`` to check that everything runs,
``--only NAME`` for some) runs every benchmark, prints a table of figures with their goals,
merges the 13 figures of the budget into ``bench/results.json`` and draws the scaling plots in
``bench/plots/``; BENCHMARKS.md at the repository root says how each figure is measured and
holds the latest full run.

* :mod:`bench.figures` — the ``Figure`` record (name, value, unit, goal), goal checking and the
  budget (``BUDGET``: the figures results.json holds);
* :mod:`bench.mode` — ``Mode``: full, quick or smoke, and each benchmark's sizes for them;
* :mod:`bench.plots` — the scaling plots (matplotlib, Agg) from ``…_at_<size>`` figures;
* :mod:`bench.common` — free ports, /proc CPU and RSS readers, percentiles, child processes
  that are always stopped (own process group, SIGTERM then SIGKILL);
* :mod:`bench.meters` — Modbus requests per meter sample, every meter model;
* :mod:`bench.latency` — controller Status → core and core limit → controller PWM over a pty,
  SimWorld and Daemon in one process;
* :mod:`bench.daemon_cpu` — ``stationd run`` and ``firmware_sim`` as separate processes:
  daemon CPU idle and charging, resident memory;
* :mod:`bench.ocpp` — replay of queued transaction messages against the loopback round trip,
  RFID tap (a local list hit) → StartTransaction, process start → BootNotification;
* :mod:`bench.auth` — authorization decisions with 100,000 list and 10,000 cache entries,
  CSV import/export and SendLocalList of 100,000 cards;
* :mod:`bench.smart_charging` — GetCompositeSchedule of 10 profiles × 1,440 periods, the pure
  composite and over a WebSocket to ``stationd demo``;
* :mod:`bench.scaling` — the decision and the CSV at 1k … 1M entries, the outbox replay at
  1k … 100k messages (informational figures, the plots' points);
* :mod:`bench.__main__` — the command line, the table, ``results.json`` and the list of
  benchmarks (``BENCHMARKS``): a new benchmark is a module with a function
  ``run(mode) -> list[Figure]`` plus one line there.
"""
