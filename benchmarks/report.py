"""The figures of a run: medians with min and max, paired ratios, the targets; Markdown, JSON, PNG.

A ratio is jamsocket_rt's figure divided by the peer's, repetition by repetition (the two were
measured seconds apart, see ``runner.py``), then the median (and min, max) of those ratios.
Above 1 is better for rates, below 1 for latencies and memory.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .runner import CLIENT_LABELS, TARGET_LABELS

OURS = "jamsocket_rt"
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
#: Metrics shown without ratios to the peers.
UNRATED = ("busy_pct",)
MANY_METRICS = {
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
    value = result.get(metric)
    return float(value) if isinstance(value, (int, float)) else None


def _paired(
    ours: Sequence[Mapping[str, Any]], peer: Sequence[Mapping[str, Any]], metric: str
) -> list[float]:
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
                row[f"ratio_{peer}"] = spread(_paired(results[OURS], results[peer], metric))
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
                elif r.get("call_errors"):
                    errors.append(
                        {
                            "target": "many",
                            "scenario": size,
                            "client": client,
                            "rep": r.get("rep"),
                            "error": f"{r['call_errors']} calls failed",
                        }
                    )
    summary["targets"] = targets(summary)
    return summary


def _error_of(result: Mapping[str, Any]) -> dict[str, Any]:
    return {"rep": result.get("rep"), "error": str(result.get("error"))}


def _median(stats: Mapping[str, Any] | None) -> float | None:
    return None if stats is None else float(stats["median"])


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
    many = summary["many"].get("1000")
    if many:
        by_metric = {r["metric"]: _median(r["clients"].get(OURS)) for r in many}
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
    return checks


# --------------------------------------------------------------------------- Markdown


def _number(value: float, unit: str) -> str:
    if unit == "/s":
        return f"{value / 1000:.1f}k" if value >= 1000 else f"{value:.0f}"
    if unit == "µs":
        return f"{value:.1f}" if value < 100 else f"{value:.0f}"
    if unit == "ms":
        return f"{value:.2f}"
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
    return ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]


def _ratio_cells(row: Mapping[str, Any], clients: Sequence[str]) -> list[str]:
    if OURS not in clients:
        return []
    return [_cell(row.get(f"ratio_{p}"), "", ratio=True) for p in PEERS if p in clients]


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
            _size(row["payload"]),
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
            arrow = "" if row["metric"] in UNRATED else "↑" if row["higher_is_better"] else "↓"
            unit = "sessions/s" if row["unit"] == "/s" else row["unit"]
            cells = [f"{int(size):,}", row["label"], f"{unit} {arrow}"]
            cells += [_cell(row["clients"].get(c), row["unit"]) for c in clients]
            cells += _ratio_cells(row, clients)
            lines.append("| " + " | ".join(cells) + " |")
    return lines


def _kind(row: Mapping[str, Any]) -> str:
    return "echo" if row["scenario"].startswith("echo") else "call w=64"


def _size(payload: int) -> str:
    return f"{payload // 1024} KiB" if payload >= 1024 else f"{payload} B"


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
        "for msgs/s, below 1 for latency and memory. Every client runs in its own process, "
        "every server too; all use the websocket transport.",
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
            f"calls `echo` once a second for {settings['call_seconds']:g} s, evenly phased.",
            "",
        ]
    if raw.get("skipped"):
        lines += ["Skipped: " + "; ".join(f"{k} ({v})" for k, v in raw["skipped"].items()), ""]
    if summary["errors"]:
        lines += [f"**{len(summary['errors'])} errors**, e.g. {summary['errors'][0]}", ""]
    return "\n".join(lines)


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
        f"{CLIENT_LABELS['jamsocket_rt-plain']} shows the library without its optional extras; "
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


# --------------------------------------------------------------------------- plot


def write_plot(raw: Mapping[str, Any], summary: Mapping[str, Any], path: Path) -> str | None:
    """Draws the PNG; returns why not when it cannot (matplotlib missing, nothing measured)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed: no plot"
    clients = raw.get("roundtrip_clients", {}).get("node") or raw["settings"]["clients"]
    colors = {
        "jamsocket_rt": "#1f77b4",
        "python-socketio": "#ff7f0e",
        "node": "#2ca02c",
        "jamsocket_rt-plain": "#9467bd",
        "jamsocket_rt-msgpack": "#17becf",
    }
    figure, axes = plt.subplots(2, 3, figsize=(17, 9.5))
    try:
        _bars(
            axes[0][0],
            summary["roundtrip"].get("node", []),
            clients,
            colors,
            lambda r: r["metric"] == "rate" and r["scenario"].split("-")[0] in ("pipe64", "echo"),
            lambda r: f"{_kind(r)}\n{_size(r['payload'])}",
            "msgs/s (log)",
            "Node server: pipelined calls (window 64), event echo",
            log=True,
        )
        _bars(
            axes[0][1],
            summary["roundtrip"].get("node", []),
            clients,
            colors,
            lambda r: r["metric"] == "p50_us",
            lambda r: _size(r["payload"]),
            "µs",
            "Node server: sequential call, p50 round trip",
        )
        ax = axes[0][2]
        for client in clients:
            points = [
                (int(r["scenario"].split("-")[0][4:]), r["clients"].get(client))
                for r in summary["roundtrip"].get("node", [])
                if r["scenario"].startswith("pipe") and r["payload"] == 64
            ]
            points = [(w, s["median"]) for w, s in points if s]
            if points:
                ax.plot(
                    *zip(*points, strict=True),
                    marker="o",
                    label=CLIENT_LABELS.get(client, client),
                    color=colors.get(client),
                )
        ax.set_xscale("log", base=2)
        ax.set_xlabel("calls in flight (window)")
        ax.set_ylabel("calls/s")
        ax.set_title("Node server: pipelined calls by window, 64 B")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        rows = []
        for target in ("node", "python", "proxy"):
            for r in summary["roundtrip"].get(target, []):
                if r["metric"] == "rate" and r["scenario"] in ("pipe64-64", "echo-64"):
                    rows.append({**r, "target": target})
        _bars(
            axes[1][0],
            rows,
            clients,
            colors,
            lambda r: True,
            lambda r: f"{r['target']}\n{'echo' if r['scenario'].startswith('echo') else 'w=64'}",
            "msgs/s",
            "64 B by server: Node, python-socketio, proxy",
        )
        many = summary.get("many", {})
        for ax, metric, title in (
            (axes[1][1], "connect_rate", "many sessions: connected per second"),
            (axes[1][2], "rss_kib_per_session", "many sessions: resident KiB per session"),
        ):
            rows = [
                {**r, "size": size}
                for size, rs in many.items()
                for r in rs
                if r["metric"] == metric
            ]
            _bars(
                ax,
                rows,
                clients,
                colors,
                lambda r: True,
                lambda r: f"{int(r['size']):,} sessions",
                "",
                title,
            )
        figure.suptitle(
            f"Socket.IO clients side by side ({raw.get('date', '')}; medians, bars min–max)"
            + (" — QUICK SMOKE RUN" if raw["settings"]["quick"] else "")
        )
        figure.tight_layout()
        figure.savefig(path, dpi=90)
    finally:
        plt.close(figure)
    return None


def _bars(
    ax: Any,
    rows: Sequence[Mapping[str, Any]],
    clients: Sequence[str],
    colors: Mapping[str, str],
    keep: Any,
    label: Any,
    ylabel: str,
    title: str,
    *,
    log: bool = False,
) -> None:
    rows = [r for r in rows if keep(r)]
    width = 0.8 / max(1, len(clients))
    for index, client in enumerate(clients):
        xs, ys, lo, hi = [], [], [], []
        for x, row in enumerate(rows):
            stats = row["clients"].get(client)
            if stats:
                xs.append(x + (index - (len(clients) - 1) / 2) * width)
                ys.append(stats["median"])
                lo.append(stats["median"] - stats["min"])
                hi.append(stats["max"] - stats["median"])
        if xs:
            ax.bar(
                xs,
                ys,
                width,
                yerr=[lo, hi],
                capsize=2,
                label=CLIENT_LABELS.get(client, client),
                color=colors.get(client),
            )
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels([label(r) for r in rows], fontsize=8)
    if log:
        ax.set_yscale("log")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7)


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
