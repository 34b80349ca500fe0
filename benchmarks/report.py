"""The figures of a run: medians with min and max, paired ratios, the targets; Markdown, JSON, PNG.

A ratio is jamsocket_rt's figure divided by the peer's, repetition by repetition (the two were
measured seconds apart, see ``runner.py``), then the median (and min, max) of those ratios.
Above 1 is better for rates, below 1 for latencies and memory. The "asyncio ÷ uvloop" ratio is
made the same way: the same Session and codec on stdlib asyncio's loop ("jamsocket_rt-asyncio")
divided by on uvloop ("jamsocket_rt"). The targets are in ``report_targets.py``, the plot in
``report_plot.py``.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .report_plot import size_text, write_plot
from .report_targets import OURS, targets
from .runner import ASYNCIO_CLIENT, CLIENT_LABELS, TARGET_LABELS

__all__ = [
    "OURS",
    "markdown",
    "paired",
    "summarize",
    "targets",
    "update_readme",
    "write",
    "write_plot",
]

PEERS = ("node", "python-socketio")
PEER_SHORT = {"node": "Node client", "python-socketio": "python-socketio"}

#: metric: (label, unit, higher is better)
ROUNDTRIP_METRICS = {
    "rate": ("msgs/s", "/s", True),
    "p50_us": ("p50", "µs", False),
    "p99_us": ("p99", "µs", False),
    # The client's own CPU time per message: what it costs, whichever side was the limit.
    "cpu_us": ("client CPU per message", "µs", False),
    # msgs/s x CPU per message: the client process's CPU time over the measurement (all its
    # threads). Near a whole core, the client set the pace; lower, it waited for the server or
    # the kernel (no ratio: neither more nor less is better).
    "busy_pct": (
        "client process CPU, % of one core (near 100: the client set the pace; lower: it waited)",
        "%",
        False,
    ),
}
#: Metrics shown without ratios (to the peers, or between the loops).
UNRATED = ("busy_pct", "connected", "errors")
MANY_METRICS = {
    "connected": ("sessions connected", "sessions", True),
    "errors": ("errors (connect and call)", "errors", False),
    "connect_rate": ("sessions connected / s", "/s", True),
    "rss_kib_per_session": ("resident memory / session", "KiB", False),
    "p50_ms": ("round trip p50 at 1 call/s each", "ms", False),
    "p99_ms": ("round trip p99 at 1 call/s each", "ms", False),
}

README_BEGIN = "<!-- benchmarks:begin (written by python -m benchmarks) -->"
README_END = "<!-- benchmarks:end -->"


# --------------------------------------------------------------------------- figures


def spread(values: Sequence[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "n": len(values),
    }


def _value(result: Mapping[str, Any], metric: str) -> float | None:
    if "error" in result:
        return None
    if metric == "busy_pct":
        rate, cpu = _value(result, "rate"), _value(result, "cpu_us")
        return None if rate is None or cpu is None else rate * cpu / 1e4
    if metric == "connected":  # (a client of a baseline tree may not say: all, or it failed)
        return float(result.get("connected", result.get("sessions", 0)))
    if metric == "errors":
        return float(result.get("connect_errors", 0) + result.get("call_errors", 0))
    value = result.get(metric)
    return float(value) if isinstance(value, (int, float)) else None


def paired(
    ours: Sequence[Mapping[str, Any]], peer: Sequence[Mapping[str, Any]], metric: str
) -> list[float]:
    """``ours ÷ peer`` of ``metric`` for each repetition both measured."""
    by_rep = {r.get("rep"): _value(r, metric) for r in peer}
    ratios = []
    for result in ours:
        mine, theirs = _value(result, metric), by_rep.get(result.get("rep"))
        if mine is not None and theirs:
            ratios.append(mine / theirs)
    return ratios


def _row(
    results: Mapping[str, Sequence[Mapping[str, Any]]],
    metric: str,
    label: str,
    unit: str,
    higher: bool,
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "metric": metric,
        "label": label,
        "unit": unit,
        "higher_is_better": higher,
    }
    row["clients"] = {
        client: spread([v for r in runs if (v := _value(r, metric)) is not None])
        for client, runs in results.items()
    }
    if OURS in results and metric not in UNRATED:
        for peer in PEERS:
            if peer in results:
                row[f"ratio_{peer}"] = spread(paired(results[OURS], results[peer], metric))
        if ASYNCIO_CLIENT in results:
            row["ratio_asyncio"] = spread(paired(results[ASYNCIO_CLIENT], results[OURS], metric))
    return row


def _scenario_label(scenario: str) -> tuple[str, int]:
    kind, payload = scenario.rsplit("-", 1)
    if kind == "seq":
        name = "sequential call"
    elif kind.startswith("pipe"):
        name = f"pipelined calls, window {kind[4:]}"
    else:
        name = "event echo (ping → pong), 64 in flight"
    return name, int(payload)


def summarize(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The figures of a run (``raw`` from ``runner.run``), ready for the report and the JSON."""
    summary: dict[str, Any] = {"roundtrip": {}, "many": {}, "errors": []}
    errors: list[dict[str, Any]] = summary["errors"]
    for target, by_scenario in raw.get("roundtrip", {}).items():
        rows = []
        for scenario, results in by_scenario.items():
            name, payload = _scenario_label(scenario)
            if scenario.startswith("seq"):
                metrics = ["p50_us", "p99_us", "rate"]
            elif scenario.startswith(("pipe64-", "echo-")):
                metrics = ["rate", "cpu_us", "busy_pct"]
            else:
                metrics = ["rate"]
            for metric in metrics:
                label, unit, higher = ROUNDTRIP_METRICS[metric]
                row = _row(results, metric, label, unit, higher)
                row.update(scenario=scenario, name=name, payload=payload)
                rows.append(row)
            for client, runs in results.items():
                errors.extend(
                    {"target": target, "scenario": scenario, "client": client, **_error_of(r)}
                    for r in runs
                    if "error" in r
                )
                if not runs:
                    errors.append(
                        {
                            "target": target,
                            "scenario": scenario,
                            "client": client,
                            "error": "not measured",
                        }
                    )
        summary["roundtrip"][target] = rows
    for size, results in raw.get("many", {}).items():
        rows = []
        for metric, (label, unit, higher) in MANY_METRICS.items():
            rows.append(_row(results, metric, label, unit, higher))
        summary["many"][size] = rows
        for client, runs in results.items():
            for r in runs:
                if "error" in r:
                    errors.append(
                        {"target": "many", "scenario": size, "client": client, **_error_of(r)}
                    )
                elif r.get("call_errors") or r.get("connect_errors"):
                    failed = [
                        f"{r[key]} {what} failed"
                        for key, what in (("connect_errors", "connects"), ("call_errors", "calls"))
                        if r.get(key)
                    ]
                    if r.get("connect_error"):
                        failed.append(f"first: {r['connect_error']}")
                    errors.append(
                        {
                            "target": "many",
                            "scenario": size,
                            "client": client,
                            "rep": r.get("rep"),
                            "error": "; ".join(failed),
                        }
                    )
    summary["targets"] = targets(summary)
    return summary


def _error_of(result: Mapping[str, Any]) -> dict[str, Any]:
    return {"rep": result.get("rep"), "error": str(result.get("error"))}


# --------------------------------------------------------------------------- Markdown


def _number(value: float, unit: str) -> str:
    if unit == "/s":
        return f"{value / 1000:.1f}k" if value >= 1000 else f"{value:.0f}"
    if unit == "µs":
        return f"{value:.1f}" if value < 100 else f"{value:.0f}"
    if unit == "ms":
        return f"{value:.2f}"
    if unit in ("sessions", "errors"):
        return f"{value:,.0f}"
    return f"{value:.1f}"


def _cell(stats: Mapping[str, Any] | None, unit: str, ratio: bool = False) -> str:
    if stats is None:
        return "–"
    if ratio:
        text = f"{stats['median']:.2f}×"
        if stats["n"] > 1:
            text += f" <sub>{stats['min']:.2f}–{stats['max']:.2f}</sub>"
        return text
    text = _number(stats["median"], unit)
    if stats["n"] > 1:
        text += f" <sub>{_number(stats['min'], unit)}–{_number(stats['max'], unit)}</sub>"
    return text


def _header(clients: Sequence[str], first: Sequence[str]) -> list[str]:
    columns = [*first, *(CLIENT_LABELS.get(c, c) for c in clients)]
    if OURS in clients:
        columns += [f"jamsocket_rt ÷ {PEER_SHORT[p]}" for p in PEERS if p in clients]
        if ASYNCIO_CLIENT in clients:
            columns.append("asyncio ÷ uvloop")
    return ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]


def _ratio_cells(row: Mapping[str, Any], clients: Sequence[str]) -> list[str]:
    if OURS not in clients:
        return []
    cells = [_cell(row.get(f"ratio_{p}"), "", ratio=True) for p in PEERS if p in clients]
    if ASYNCIO_CLIENT in clients:
        cells.append(_cell(row.get("ratio_asyncio"), "", ratio=True))
    return cells


def roundtrip_table(rows: Sequence[Mapping[str, Any]], clients: Sequence[str]) -> list[str]:
    lines = _header(clients, ["measure", "payload", "unit"])
    for row in rows:
        arrow = "" if row["metric"] in UNRATED else "↑" if row["higher_is_better"] else "↓"
        if row["metric"] == "rate":
            label = row["name"]
        elif row["metric"] in ("cpu_us", "busy_pct"):
            label = f"{row['name']}: {row['label']}"
        else:
            label = f"{row['name']} {row['label']}"
        cells = [
            label,
            size_text(row["payload"]),
            f"{row['unit'].lstrip('/') if row['unit'] != '/s' else 'msgs/s'} {arrow}".rstrip(),
        ]
        cells += [_cell(row["clients"].get(c), row["unit"]) for c in clients]
        cells += _ratio_cells(row, clients)
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def many_table(
    many: Mapping[str, Sequence[Mapping[str, Any]]], clients: Sequence[str]
) -> list[str]:
    lines = _header(clients, ["sessions", "measure", "unit"])
    for size, rows in many.items():
        for row in rows:
            arrow = "↑" if row["higher_is_better"] else "↓"
            unit = "sessions/s" if row["unit"] == "/s" else row["unit"]
            cells = [f"{int(size):,}", row["label"], f"{unit} {arrow}"]
            cells += [_cell(row["clients"].get(c), row["unit"]) for c in clients]
            cells += _ratio_cells(row, clients)
            lines.append("| " + " | ".join(cells) + " |")
    return lines


def targets_table(checks: Iterable[Mapping[str, Any]]) -> list[str]:
    lines = ["| target | met | figures (medians) |", "|---|---|---|"]
    for check in checks:
        lines.append(
            f"| {check['target']} | {'yes' if check['met'] else '**no**'} | {check['detail']} |"
        )
    return lines


def markdown(
    raw: Mapping[str, Any], summary: Mapping[str, Any], *, for_readme: bool = False
) -> str:
    clients = raw["settings"]["clients"]
    settings = raw["settings"]
    machine = raw["machine"]
    lines: list[str] = []
    if not for_readme:
        lines += ["# Benchmarks: Socket.IO round trips, side by side", ""]
    lines += [
        f"Run of {raw.get('date', '?')} ({raw.get('seconds', '?')} s"
        + (", **quick smoke run: not representative**" if settings["quick"] else "")
        + f") on {machine.get('cpu', '?')}, {machine.get('cores')} cores, "
        f"{machine.get('memory_gib', '?')} GiB, {machine.get('platform')}; load average "
        f"{' '.join(machine.get('loadavg_start', []))} at the start and "
        f"{' '.join(machine.get('loadavg_end', [])) or '?'} at the end (a shared machine).",
        "",
        f"Each figure is the median of {_reps_text(settings['reps'])} "
        f"({settings['duration_s']} s each, after {settings['warmup_s']} s of warm-up) with "
        "min–max in small print; a ratio is jamsocket_rt's figure divided by the peer's, "
        "repetition by repetition (measured seconds apart), then the median: above 1 is better "
        'for msgs/s, below 1 for latency and memory. The "asyncio ÷ uvloop" column divides '
        f"the {CLIENT_LABELS[ASYNCIO_CLIENT]} (the same Session and JSON codec) by the "
        f"{CLIENT_LABELS[OURS]} on uvloop, the same way: what leaving uvloop out costs. Every "
        "client runs in its own process, every server too; all use the websocket transport.",
        "",
        _versions_line(raw),
        "",
    ]
    if summary.get("targets"):
        lines += ["**Targets**", "", *targets_table(summary["targets"]), ""]
    for target in ("node", "python", "proxy"):
        rows = summary["roundtrip"].get(target)
        if not rows:
            continue
        if for_readme and target != "node":
            lines += [
                f"Round trips against the {TARGET_LABELS[target]}: under "
                "[Every row](#every-row) below.",
                "",
            ]
            continue
        lines += [
            f"**Round trips: {TARGET_LABELS[target]}**",
            "",
            *roundtrip_table(rows, raw.get("roundtrip_clients", {}).get(target, clients)),
            "",
        ]
    if summary["many"]:
        many_target = TARGET_LABELS.get(raw.get("many_target", "node"), "")
        lines += [
            f"**Many sessions in one process ({many_target}; "
            f"median of {settings['many_reps']} runs, each in a fresh process)**",
            "",
            *many_table(summary["many"], clients),
            "",
            "Sessions are opened all at once; memory is the growth of the process's resident "
            "set per session once all are up (after one connection not counted; the heap's "
            "free pages handed back before each reading, so that what start-up left free is "
            "not counted as free sessions); then each "
            f"calls `echo` once a second for {settings['call_seconds']:g} s, evenly phased, "
            "with what is open frozen out of the garbage collector's generations "
            "(`gc.freeze()`, as a program holding thousands of connections would do: a full "
            "collection scanning 10,000 sessions stalls the loop for tens of ms) and each "
            "client's own call timeout. "
            "Sessions connected and errors (failed connects and calls) are per run, like every "
            "figure." + _peers_max_text(settings),
            "",
        ]
    if raw.get("skipped"):
        lines += ["Skipped: " + "; ".join(f"{k} ({v})" for k, v in raw["skipped"].items()), ""]
    if summary["errors"]:
        lines += [f"**{len(summary['errors'])} errors**, e.g. {summary['errors'][0]}", ""]
    return "\n".join(lines)


def _peers_max_text(settings: Mapping[str, Any]) -> str:
    """Which sizes the peers sat out (they are optional there), or nothing."""
    most = settings.get("peers_max_sessions")
    above = [size for size in settings.get("many_sizes", []) if most and size > most]
    if not above:
        return ""
    return (
        f" At {', '.join(f'{size:,}' for size in above)} sessions only jamsocket_rt's clients "
        f"are measured: the peers are optional there (`--peers-up-to {max(above)}` adds them)."
    )


def _reps_text(reps: Any) -> str:
    if isinstance(reps, int):
        return f"{reps} repetitions"
    names = {"node": "the Node server", "python": "python-socketio's", "proxy": "the proxy"}
    parts = [f"{count} on {names.get(target, target)}" for target, count in reps.items()]
    return "repetitions (" + ", ".join(parts) + ")"


def _versions_line(raw: Mapping[str, Any]) -> str:
    servers = raw["versions"].get("servers", {})
    clients = raw["versions"].get("clients", {})
    ours = clients.get(OURS, {})
    settings = raw["settings"]
    parts = [
        f"Python {raw['machine'].get('python')}",
        f"Node {servers.get('node', '?')}",
        f"socket.io {servers.get('socket.io', '?')} / socket.io-client "
        f"{clients.get('node', {}).get('socket.io-client', '?')}",
        f"python-socketio {servers.get('python-socketio', '?')} "
        f"(python-engineio {servers.get('python-engineio', '?')})",
        f"aiohttp {servers.get('aiohttp', '?')}",
    ]
    text = "Versions: " + ", ".join(parts) + ". "
    uvloop = ours.get("loop") == "uvloop"
    loop_name = f"uvloop {ours.get('uvloop', '')}" if uvloop else "the asyncio loop"
    text += (
        f"jamsocket_rt {ours.get('jamsocket_rt', '?')} runs on "
        f"{loop_name}"
        f" with {ours.get('json', '?')} (the runner's choice where installed); python-socketio's "
        "AsyncClient with its defaults (asyncio loop, stdlib json); "
        f"the {CLIENT_LABELS[ASYNCIO_CLIENT]} is the same Session and codec on asyncio's own "
        f"loop; {CLIENT_LABELS['jamsocket_rt-plain']} shows the library without its optional "
        "extras; "
        "the python-socketio server runs on "
        f"{'uvloop' if settings.get('uvloop_for_python_server') else 'the asyncio loop'}."
    )
    msgpack = clients.get("jamsocket_rt-msgpack")
    if msgpack is not None:
        text += (
            f' The msgpack column is the same Session with parser="msgpack" (msgpack '
            f"{msgpack.get('msgpack', '?')}) against a second Node server that differs only by "
            "socket.io-msgpack-parser."
        )
    return text


def update_readme(readme: Path, text: str) -> bool:
    """Replaces what is between a page's benchmark markers; False when it has none.

    The page is the docs' benchmarks page (``docs/benchmarks.md``); the name is the README's,
    which held the markers before the docs site.
    """
    content = readme.read_text()
    begin, end = content.find(README_BEGIN), content.find(README_END)
    if begin < 0 or end < begin:
        return False
    new = content[: begin + len(README_BEGIN)] + "\n" + text.rstrip() + "\n" + content[end:]
    if new != content:
        readme.write_text(new)
    return True


# --------------------------------------------------------------------------- files


def write(raw: dict[str, Any], out: Path, *, readme: Path | None = None) -> dict[str, Any]:
    """Writes latest.json, latest.md and latest.png into ``out``; returns the summary."""
    raw.setdefault("date", time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
    raw.pop("summary", None)  # (when re-rendering a latest.json)
    summary = summarize(raw)
    out.mkdir(parents=True, exist_ok=True)
    document = {**raw, "summary": summary}
    (out / "latest.json").write_text(json.dumps(document, indent=1, sort_keys=False) + "\n")
    (out / "latest.md").write_text(markdown(raw, summary) + "\n")
    why_not = write_plot(raw, summary, out / "latest.png")
    if why_not:
        summary["plot"] = why_not
    if readme is not None:
        update_readme(readme, markdown(raw, summary, for_readme=True))
    return summary
