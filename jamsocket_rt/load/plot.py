"""The PNG plot of a load run: latency over time, and the latency distribution.

Needs matplotlib (``pip install 'jamsocket_rt[load]'``); without it :func:`write_plot` says so
and writes nothing. matplotlib is imported only here, only when a plot is asked for.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .report import nines
from .stats import Aggregate

__all__ = ["MATPLOTLIB_MISSING", "write_plot"]

MATPLOTLIB_MISSING = (
    "the plot needs matplotlib, which is not installed: pip install 'jamsocket_rt[load]' "
    "(the JSON and CSV files do not need it)"
)


def write_plot(report: Mapping[str, Any], agg: Aggregate, path: str | Path) -> str | None:
    """Draws the plot into ``path`` (PNG).

    Returns:
        None when written, else why not (matplotlib is missing, or nothing was measured).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display: files only
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FuncFormatter
    except ImportError:
        return MATPLOTLIB_MISSING
    timeline = report["timeline"]
    if not timeline or not agg.operations:
        return "nothing was measured: no plot"
    figure, (over_time, distribution) = plt.subplots(2, 1, figsize=(10, 8.5))
    try:
        times = [row["t"] for row in timeline]
        for key, label in (("p50_ms", "p50"), ("p95_ms", "p95"), ("p99_ms", "p99")):
            over_time.plot(times, [row[key] for row in timeline], label=label)
        over_time.plot(
            times, [row["max_ms"] for row in timeline], label="max", linestyle=":", alpha=0.6
        )
        over_time.set_yscale("log")
        plain = FuncFormatter(lambda value, _: f"{value:g}")
        over_time.yaxis.set_major_formatter(plain)
        over_time.yaxis.set_minor_formatter(plain)
        over_time.set_xlabel("seconds since start")
        over_time.set_ylabel("latency (ms), every operation")
        rate = over_time.twinx()
        interval = agg.interval
        rate.plot(
            times,
            [row["operations"] / interval for row in timeline],
            color="grey",
            alpha=0.4,
            label="operations/s",
        )
        rate.set_ylabel("operations per second")
        over_time.legend(loc="upper left")
        rate.legend(loc="upper right")
        over_time.set_title("latency over time (per tick)")

        points = nines()
        for name, histogram in sorted(agg.operations.items()):
            if histogram.count == 0:
                continue
            values = [v / 1000 for v in histogram.percentiles(points)]
            distribution.plot([1 / (1 - p / 100) for p in points], values, label=name)
        distribution.set_xscale("log")
        ticks = [1, 2, 10, 100, 1000, 10000, 100000]
        distribution.set_xticks(ticks)
        distribution.set_xticklabels(["0", "50", "90", "99", "99.9", "99.99", "99.999"])
        distribution.set_xlabel("percentile")
        distribution.set_ylabel("latency (ms)")
        distribution.set_title("latency distribution (whole run)")
        distribution.legend(loc="upper left")
        distribution.grid(True, which="both", alpha=0.3)
        figure.tight_layout()
        figure.savefig(path, dpi=100)
    finally:
        plt.close(figure)
    return None
