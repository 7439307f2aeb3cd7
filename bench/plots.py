"""The scaling plots: PNG files drawn from a run's ``…_at_<size>`` figures (matplotlib, Agg).

A scaling figure is named ``<series>_at_<size>`` (:func:`at`: ``auth_decision_p99_us_at_1m``),
so the size is in the name and a plot needs nothing but the figures of the run. Each entry of
:data:`PLOTS` is one PNG with one line per series; a plot none of whose series has a figure in
the run is not drawn (``--only auth``), one with fewer sizes (``--quick``: no 1M point) is drawn
with those it has. The files carry no date or version, so the same figures give the same file.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .figures import Figure

__all__ = ["PLOTS", "Plot", "at", "draw", "label", "points"]

_SUFFIXES = {"": 1, "k": 1_000, "m": 1_000_000}
_SCALING_RE = re.compile(r"(?P<series>.+)_at_(?P<count>\d+)(?P<suffix>[km]?)")


def label(size: int) -> str:
    """1000 → "1k", 1000000 → "1m", 200 → "200"."""
    for suffix, factor in (("m", 1_000_000), ("k", 1_000)):
        if size >= factor and size % factor == 0:
            return f"{size // factor}{suffix}"
    return str(size)


def at(series: str, size: int) -> str:
    """The name of the figure of ``series`` at ``size``: ``at("csv_import_s", 10_000)`` → ``csv_import_s_at_10k``."""
    return f"{series}_at_{label(size)}"


def points(figures: Sequence[Figure], series: str) -> list[tuple[int, float]]:
    """(size, value) of every figure of ``series`` in the run, by size."""
    found = []
    for figure in figures:
        match = _SCALING_RE.fullmatch(figure.name)
        if match and match["series"] == series:
            found.append((int(match["count"]) * _SUFFIXES[match["suffix"]], figure.value))
    return sorted(found)


def _value(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


@dataclass(frozen=True)
class Plot:
    file: str
    title: str
    x_label: str
    unit: str
    series: tuple[tuple[str, str], ...]  # (legend, series name of the figures)
    log_y: bool = False
    goal: tuple[float, str] | None = None  # a dashed line: (value, legend)


PLOTS: tuple[Plot, ...] = (
    Plot("auth_decision.png", "Offline authorization decision", "entries in the local list and in the whitelist",
         "µs per decision", (("p50", "auth_decision_p50_us"), ("p99", "auth_decision_p99_us")),
         goal=(100.0, "goal: p99 < 100 µs")),
    Plot("csv_whitelist.png", "Whitelist CSV, durable database", "rows", "s",
         (("import (Replace)", "csv_import_s"), ("export", "csv_export_s")), log_y=True),
    Plot("outbox_replay.png", "Outbox replay after a reconnect", "messages queued", "messages per s",
         (("replay", "replay_msgs_per_s"), ("limit: 1 / Heartbeat round trip", "replay_rtt_limit_msgs_per_s"))),
)


def draw(figures: Sequence[Figure], directory: Path) -> list[Path]:
    """Every plot of :data:`PLOTS` that has figures in the run, as ``directory/<file>``."""
    todo = [(plot, [(legend, points(figures, series)) for legend, series in plot.series]) for plot in PLOTS]
    todo = [(plot, lines) for plot, lines in todo if any(found for _, found in lines)]
    if not todo:
        return []  # matplotlib is imported only when there is something to draw
    try:
        import matplotlib
    except ImportError as exc:
        raise RuntimeError("the scaling plots need matplotlib: .venv/bin/pip install -e '.[bench]' "
                           "(scripts/setup.sh --test installs it)") from exc

    matplotlib.use("Agg")
    from matplotlib.figure import Figure as Chart
    from matplotlib.ticker import FuncFormatter, NullFormatter, NullLocator

    written = []
    for plot, lines in todo:
        chart = Chart(figsize=(5.0, 3.2), dpi=100, layout="constrained")
        axes = chart.add_subplot()
        sizes = sorted({size for _, found in lines for size, _ in found})
        for legend, found in lines:
            if not found:
                continue
            xs, ys = zip(*found)
            axes.plot(xs, ys, marker="o", label=legend)
            for x, y in found:
                axes.annotate(_value(y), (x, y), textcoords="offset points", xytext=(0, 5), ha="center", fontsize=7)
        if plot.goal is not None:
            axes.axhline(plot.goal[0], color="grey", linestyle="--", linewidth=1, label=plot.goal[1])
        axes.set_xscale("log")
        axes.set_xticks(sizes, [label(size).replace("m", "M") for size in sizes])
        axes.xaxis.set_minor_locator(NullLocator())
        axes.set_xlim(sizes[0] / 1.6, sizes[-1] * 1.6)  # room for the values' labels
        if plot.log_y:
            axes.set_yscale("log")
            axes.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
            axes.yaxis.set_minor_formatter(NullFormatter())
            low, high = axes.get_ylim()
            axes.set_ylim(low, high * 1.5)
        else:
            axes.set_ylim(bottom=0, top=axes.get_ylim()[1] * 1.1)
        axes.set_title(plot.title, fontsize=10)
        axes.set_xlabel(plot.x_label, fontsize=8)
        axes.set_ylabel(plot.unit, fontsize=8)
        axes.tick_params(labelsize=8)
        axes.grid(True, alpha=0.3)
        axes.legend(fontsize=7)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / plot.file
        chart.savefig(path, metadata={"Software": None})
        written.append(path)
    return written
