"""The summary of ``load_vs_peers.py``: the Markdown table, per-session lines and the targets.

Results are ``{tool: {scenario: result}}``, a result as ``load_vs_peers.jrt_load`` or a peer
of ``load_peers`` returns it. Each peer's cell carries the ratio ours / peer, and each
``jamsocket-rt load`` row on stdlib asyncio the ratio asyncio / uvloop (its row without
``ASYNCIO_ROW``): above 1 is better for calls/s, below 1 for p99 and RSS.
"""

from __future__ import annotations

from typing import Any

Results = dict[str, dict[str, dict[str, Any]]]

JRT = "jamsocket-rt load (1 process)"
#: The rows of ``jamsocket-rt load`` on asyncio's own loop end so (its default is uvloop).
ASYNCIO_ROW = ", asyncio loop"
IN_FLIGHT_ROW = ", 16 in flight"
#: The suffixes of the loops ``jamsocket-rt load`` runs on, with its flags for each.
LOOP_ROWS: tuple[tuple[str, dict[str, Any]], ...] = (("", {}), (ASYNCIO_ROW, {"loop": "asyncio"}))
PYSIO = "python-socketio AsyncClient"
LOCUST = "Locust SocketIOUser"
OURS_USER = "jamsocket_rt.locust SessionUser"

COLUMNS = (
    ("max", "calls_per_s", "max calls/s (10 sessions, no wait)"),
    ("1000 @ 1/s", "p99_ms", "1,000 at 1 call/s: p99"),
    ("1000 @ 1/s", "rss", "peak RSS at 1,000"),
    ("5000 @ 1/s", "p99_ms", "5,000 at 1 call/s: p99"),
    ("5000 @ 1/s", "rss", "peak RSS at 5,000"),
    ("10000 @ 1/s", "p99_ms", "10,000 at 1 call/s: p99"),
    ("10000 @ 1/s", "rss", "peak RSS at 10,000"),
)
#: The scenarios of the per-session memory and CPU lines.
CROWDS = ("1000 @ 1/s", "5000 @ 1/s", "10000 @ 1/s")


def fmt(result: dict[str, Any], key: str) -> str:
    """A result's figure as the table shows it ("failed" when the run failed)."""
    if "error" in result:
        return "failed"
    value = result.get(key)
    if value is None:
        return "-"
    if key == "rss":
        return f"{value / 2**20:.0f} MiB"
    if key == "per_session":
        return f"{value / 1024:.1f} KiB"
    if key == "p99_ms":
        return f"{value:.1f} ms"
    return f"{value:,.0f}"


def ratio(ours: dict[str, Any], peer: dict[str, Any], key: str) -> str:
    """``ours[key] / peer[key]`` as "1.23x", or "" when either is missing or failed."""
    if "error" in ours or "error" in peer or not peer.get(key) or ours.get(key) is None:
        return ""
    return f"{ours[key] / peer[key]:.2f}x"


def _compared(results: Results, tool: str, scenario: str) -> tuple[Any, Any, str] | None:
    """(mine, theirs, how the ratio is named) for a cell, or None when it has no ratio.

    The Locust user is compared with Locust's own SocketIOUser; python-socketio with
    ``jamsocket-rt load`` on asyncio's loop where measured (like for like: the ratio is the
    libraries'), every other peer with ``jamsocket-rt load``; a row on asyncio's loop with its
    uvloop twin.
    """
    result = results[tool][scenario]
    if tool.startswith(JRT):
        if not tool.endswith(ASYNCIO_ROW):
            return None
        twin = results.get(tool.removesuffix(ASYNCIO_ROW), {}).get(scenario)
        return (result, twin, "asyncio/uvloop") if twin else None
    if tool == OURS_USER:
        return result, results.get(LOCUST, {}).get(scenario), "ours/peer"
    on_asyncio = results.get(JRT + ASYNCIO_ROW, {})
    if tool == PYSIO and scenario in on_asyncio:
        return on_asyncio[scenario], result, "ours/peer"
    return results.get(JRT, {}).get(scenario), result, "ours/peer"


def print_table(results: Results) -> None:
    """The Markdown table, a row per tool, with the ratios in the cells."""
    print()
    print("| tool | " + " | ".join(title for _, _, title in COLUMNS) + " |")
    print("|---" * (len(COLUMNS) + 1) + "|")
    for tool, runs in results.items():
        cells = []
        for scenario, key, _ in COLUMNS:
            result = runs.get(scenario)
            if result is None:
                cells.append("")
                continue
            text = fmt(result, key)
            compared = _compared(results, tool, scenario)
            if compared is not None and compared[0] and compared[1]:
                r = ratio(compared[0], compared[1], key)
                text += f" ({compared[2]} {r})" if r else ""
            cells.append(text)
        print(f"| {tool} | " + " | ".join(cells) + " |")


def print_loads(results: Results) -> None:
    """Per-session memory and CPU of ``jamsocket-rt load`` at 1,000 sessions and more."""
    for loop_row, _ in LOOP_ROWS:
        for scenario in CROWDS:
            mine = results.get(JRT + loop_row, {}).get(scenario, {})
            if not mine.get("per_session"):
                continue
            loop = mine.get("loop") or ("asyncio" if loop_row else "its default loop")
            bottlenecks = "; ".join(mine.get("bottlenecks", [])) or "none"
            connect = (
                f", {mine['connect_rate']:,.0f} sessions/s connected"
                if mine.get("connect_rate")
                else ""
            )
            print(
                f"\njamsocket-rt load ({loop}), {scenario}: {fmt(mine, 'per_session')} resident "
                f"per session, {mine.get('cpu', 0):.0f}% of a core{connect}; "
                f"bottlenecks: {bottlenecks}"
            )


def targets(results: Results) -> list[tuple[str, bool, str]]:
    """The issue's load targets: (target, met, figures), for the rows that were measured."""
    found: list[tuple[str, bool, str]] = []
    uvloop = results.get(JRT, {}).get("max")
    asyncio = results.get(JRT + ASYNCIO_ROW, {}).get("max")
    if uvloop and asyncio and "error" not in uvloop and "error" not in asyncio:
        share = asyncio["calls_per_s"] / uvloop["calls_per_s"]
        found.append(
            (
                "max calls/s (10 sessions) on stdlib asyncio ≥ 0.7x its uvloop figure",
                share >= 0.7,
                f"{share:.2f}x ({fmt(asyncio, 'calls_per_s')} / {fmt(uvloop, 'calls_per_s')})",
            )
        )
    for loop_row, _ in LOOP_ROWS:
        crowd = results.get(JRT + loop_row, {}).get("10000 @ 1/s")
        if crowd is None:
            continue
        loop = crowd.get("loop") or ("asyncio" if loop_row else "its default loop")
        text = f"10,000 sessions at 1 call/s ({loop}): all ready, 0 errors, p99 < 50 ms, ≤ 16 KiB"
        if "error" in crowd:
            found.append((text, False, f"failed: {crowd['error']}"))
            continue
        per_session = crowd["per_session"] / 1024
        met = (
            crowd["ready"] >= crowd["requested"]
            and crowd["errors"] == 0
            and crowd["p99_ms"] is not None
            and crowd["p99_ms"] < 50
            and per_session <= 16
        )
        figures = (
            f"{crowd['ready']:,}/{crowd['requested']:,} ready, {crowd['errors']} errors, "
            f"p99 {fmt(crowd, 'p99_ms')}, {per_session:.1f} KiB/session"
        )
        found.append((text, met, figures))
    return found


def print_targets(results: Results) -> None:
    """The targets as lines: met or not, with their figures."""
    checks = targets(results)
    if checks:
        print()
    for text, met, figures in checks:
        print(f"target: {text}: {'met' if met else 'NOT met'} ({figures})")
