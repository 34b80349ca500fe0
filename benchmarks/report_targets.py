"""The issue's targets, each with the figures of one run that decide it.

Ratios and figures come from ``report.summarize``'s rows (medians); a target is met or not in
the report only, never asserted in a test (speed on a shared machine is noise).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .runner import ASYNCIO_CLIENT

OURS = "jamsocket_rt"
#: The loops jamsocket_rt's many-sessions targets are checked on.
LOOPS = ((OURS, "uvloop"), (ASYNCIO_CLIENT, "stdlib asyncio"))


def _median(stats: Mapping[str, Any] | None) -> float | None:
    return None if stats is None else float(stats["median"])


def _extreme(stats: Mapping[str, Any] | None, which: str) -> float | None:
    return None if stats is None else float(stats[which])


def _known(pairs: Iterable[tuple[str, float | None]]) -> list[tuple[str, float]]:
    return [(name, value) for name, value in pairs if value is not None]


def targets(summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets, each with the figures that decide it."""
    checks: list[dict[str, Any]] = []
    node_rows = summary["roundtrip"].get("node", [])
    throughput = [
        r for r in node_rows if r["metric"] == "rate" and not r["scenario"].startswith("seq")
    ]
    known = _known((r["scenario"], _median(r.get("ratio_node"))) for r in throughput)
    busy = {
        r["scenario"]: _median(r["clients"].get(OURS))
        for r in node_rows
        if r["metric"] == "busy_pct"
    }
    if known:
        failing = [
            f"{s} {v:.2f}×" + (f" (client CPU {busy[s]:.0f} % of a core)" if busy.get(s) else "")
            for s, v in known
            if v < 1.2
        ]
        lowest = min(known, key=lambda item: item[1])
        checks.append(
            {
                "target": "pipelined calls and event echo: ≥ 1.2× Node socket.io-client "
                "(Node server)",
                "met": not failing,
                "detail": f"{len(known) - len(failing)}/{len(known)} rows; lowest "
                f"{lowest[1]:.2f}× ({lowest[0]})"
                + ("; below: " + ", ".join(failing) if failing else ""),
            }
        )
    below: list[str] = []
    rows_checked = 0
    for target, rows in summary["roundtrip"].items():
        for r in rows:
            ratio = _median(r.get("ratio_python-socketio"))
            if ratio is None:
                continue
            rows_checked += 1
            worse = ratio < 1.0 if r["higher_is_better"] else ratio > 1.0
            if worse:
                below.append(f"{target} {r['scenario']} {r['metric']} {ratio:.2f}×")
    if rows_checked:
        checks.append(
            {
                "target": "never below raw python-socketio on any row",
                "met": not below,
                "detail": f"{rows_checked - len(below)}/{rows_checked} rows"
                + ("; worse: " + ", ".join(below) if below else ""),
            }
        )
    seq = [r for r in node_rows if r["metric"] == "p50_us"]
    sizes = _known((str(r["payload"]), _median(r.get("ratio_node"))) for r in seq)
    if sizes:
        checks.append(
            {
                "target": "sequential p50 round trip ≤ 1.1× Node's (Node server)",
                "met": all(v <= 1.1 for _, v in sizes),
                "detail": ", ".join(f"{p} B: {v:.2f}×" for p, v in sizes),
            }
        )
    checks += many_targets(summary["many"])
    return checks


def many_targets(many: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[dict[str, Any]]:
    """The many suite's targets: 1,000 sessions (both loops' connect rate), 10,000 per loop."""
    checks: list[dict[str, Any]] = []
    thousand = many.get("1000")
    if thousand:
        by_metric = {r["metric"]: _median(r["clients"].get(OURS)) for r in thousand}
        for metric, limit, text in (
            ("connect_rate", 2000.0, "1,000 sessions: ≥ 2,000 sessions/s connected"),
            ("rss_kib_per_session", 32.0, "1,000 sessions: ≤ 32 KiB resident per session"),
            ("p99_ms", 20.0, "1,000 sessions: p99 round trip < 20 ms at 1 call/s each"),
        ):
            value = by_metric.get(metric)
            if value is None:
                continue
            met = value >= limit if metric == "connect_rate" else value <= limit
            checks.append({"target": text, "met": met, "detail": f"{value:,.1f}"})
        on_asyncio = _median(_metric(thousand, "connect_rate").get(ASYNCIO_CLIENT))
        if on_asyncio is not None:
            checks.append(
                {
                    "target": "1,000 sessions on stdlib asyncio: ≥ 2,500 sessions/s connected",
                    "met": on_asyncio >= 2500,
                    "detail": f"{on_asyncio:,.1f}",
                }
            )
    crowd = many.get("10000")
    if crowd:
        for client, loop in LOOPS:
            check = _ten_thousand(crowd, client, loop)
            if check is not None:
                checks.append(check)
    return checks


def _metric(rows: Sequence[Mapping[str, Any]], metric: str) -> Mapping[str, Any]:
    """A metric's figures by client (empty when the metric is missing)."""
    for row in rows:
        if row["metric"] == metric:
            found: Mapping[str, Any] = row["clients"]
            return found
    return {}


def _ten_thousand(
    rows: Sequence[Mapping[str, Any]], client: str, loop: str
) -> dict[str, Any] | None:
    """10,000 sessions on one loop: all connected, no errors, p99 < 50 ms, <= 16 KiB each."""
    figures = {r["metric"]: r["clients"].get(client) for r in rows}
    if not any(figures.values()):
        return None
    # Every repetition counts: the fewest connected, the most errors.
    connected = _extreme(figures.get("connected"), "min")
    errors = _extreme(figures.get("errors"), "max")
    p99 = _median(figures.get("p99_ms"))
    rss = _median(figures.get("rss_kib_per_session"))
    rate = _median(figures.get("connect_rate"))
    met = (
        connected is not None
        and connected >= 10000
        and errors == 0
        and p99 is not None
        and p99 < 50
        and rss is not None
        and rss <= 16
    )
    detail = ", ".join(
        part
        for part in (
            f"{connected:,.0f} connected" if connected is not None else "none connected",
            f"{errors:,.0f} errors" if errors is not None else "",
            f"p99 {p99:.1f} ms" if p99 is not None else "",
            f"{rss:.1f} KiB/session" if rss is not None else "",
            f"{rate:,.0f} sessions/s connected" if rate is not None else "",
        )
        if part
    )
    return {
        "target": f"10,000 sessions on {loop}: all connected, 0 errors, p99 < 50 ms at 1 call/s "
        "each, ≤ 16 KiB resident each (connect rate reported)",
        "met": met,
        "detail": detail,
    }
