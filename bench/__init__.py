"""Benchmarks of the station's performance budget: timing goals live here, never in tests.

``python -m bench`` (``--quick`` for a short run, ``--only NAME`` for some) runs every benchmark,
prints a table of figures with their goals and writes ``bench/results.json``; BENCHMARKS.md at
the repository root says how each figure is measured and holds the latest full run.

* :mod:`bench.figures` — the ``Figure`` record (name, value, unit, goal) and goal checking;
* :mod:`bench.common` — free ports, /proc CPU and RSS readers, percentiles, child processes
  that are always stopped (own process group, SIGTERM then SIGKILL);
* :mod:`bench.meters` — Modbus requests per meter sample, every meter model;
* :mod:`bench.latency` — controller Status → core and core limit → controller PWM over a pty,
  SimWorld and Daemon in one process;
* :mod:`bench.daemon_cpu` — ``stationd run`` and ``firmware_sim`` as separate processes:
  daemon CPU idle and charging, resident memory;
* :mod:`bench.ocpp` — replay of queued transaction messages against the loopback round trip,
  RFID tap → StartTransaction, process start → BootNotification;
* :mod:`bench.auth` — authorization decisions with 100,000 list and 10,000 cache entries,
  CSV import/export and SendLocalList of 100,000 cards;
* :mod:`bench.smart_charging` — GetCompositeSchedule of 10 profiles × 1,440 periods, the pure
  composite and over a WebSocket to ``stationd demo``;
* :mod:`bench.__main__` — the command line, the table, ``results.json`` and the list of
  benchmarks (``BENCHMARKS``): a new benchmark is a module with a function
  ``run(quick) -> list[Figure]`` plus one line there.
"""
