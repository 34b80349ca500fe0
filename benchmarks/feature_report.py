"""The figures of ``python -m benchmarks.features``: rows, ratios, the claims; Markdown, JSON.

A ratio is taken repetition by repetition (the two figures were measured seconds apart), then
the median with min and max, as ``report.py`` does for the clients: feature ÷ plain on the same
loop, asyncio ÷ uvloop for the same configuration. Above 1 is better for msgs/s, below 1 for
latencies and CPU time.
"""

from __future__ import annotations

import json
import logging
import time
import timeit
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .report import paired, spread

PLAIN = "plain"
NOISE = "plain-again"
#: metric: (label, unit, higher is better)
METRICS = {
    "p50_us": ("p50", "µs", False),
    "rate": ("msgs/s", "/s", True),
    "cpu_us": ("client CPU per message", "µs", False),
}
KIND_METRICS = {"seq": ("p50_us",), "pipe": ("rate", "cpu_us"), "echo": ("rate", "cpu_us")}
KIND_LABELS = {
    "seq": "sequential call",
    "pipe": "pipelined calls, window 64",
    "echo": "event echo, 64 in flight",
}


def _value(result: Mapping[str, Any], metric: str) -> float | None:
    value = None if "error" in result else result.get(metric)
    return float(value) if isinstance(value, (int, float)) else None


def _row(
    raw: Mapping[str, Any], scenario: Mapping[str, Any], name: str, metric: str
) -> dict[str, Any]:
    results, loops, sid = raw["results"], raw["settings"]["loops"], scenario["id"]
    runs = {loop: results[loop][name][sid] for loop in loops}
    label, unit, higher = METRICS[metric]
    row: dict[str, Any] = {
        "feature": name,
        "scenario": sid,
        "kind": scenario["kind"],
        "payload": scenario["payload"],
        "binary": scenario["binary"],
        "metric": metric,
        "label": label,
        "unit": unit,
        "higher_is_better": higher,
        "loops": {
            loop: spread([v for r in runs[loop] if (v := _value(r, metric)) is not None])
            for loop in loops
        },
        "vs_plain": {
            loop: None
            if name == PLAIN
            else spread(paired(runs[loop], results[loop][PLAIN][sid], metric))
            for loop in loops
        },
    }
    if "asyncio" in runs and "uvloop" in runs:
        row["asyncio_vs_uvloop"] = spread(paired(runs["asyncio"], runs["uvloop"], metric))
    return row


def _errors(raw: Mapping[str, Any]) -> list[dict[str, Any]]:
    not_started: Mapping[str, str] = raw.get("not_started", {})
    errors = [
        {"client": key, "error": f"could not start: {why}"} for key, why in not_started.items()
    ]
    for loop, by_feature in raw["results"].items():
        for name, by_scenario in by_feature.items():
            key = f"{name}@{loop}"
            for sid, runs in by_scenario.items():
                errors.extend(
                    {"client": key, "scenario": sid, "rep": r.get("rep"), "error": str(r["error"])}
                    for r in runs
                    if "error" in r
                )
                if not runs and key not in not_started:
                    errors.append({"client": key, "scenario": sid, "error": "not measured"})
    return errors


def summarize(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The rows of the report (figures per loop and their ratios), the errors and the claims
    (``raw`` from ``features.run``)."""
    rows = [
        _row(raw, scenario, name, metric)
        for scenario in raw["scenarios"]
        for metric in KIND_METRICS[scenario["kind"]]
        for name in scenario["features"]
    ]
    return {
        "rows": rows,
        "errors": _errors(raw),
        "claims": claims(rows, raw["settings"]["loops"], off_check_ns()),
    }


# --------------------------------------------------------------------------- claims


def off_check_ns() -> float:
    """Nanoseconds of what the features leave on a round trip's path when they are off, timed
    in this process: the wire trace's ``isEnabledFor(DEBUG)`` as a frame is written and as one
    is read, and the ``is None`` checks of recovery (no offsets to take) and of the namespace
    (the root's packets carry no name)."""
    wire = logging.getLogger("jamsocket_rt.wire")
    enabled, debug = wire.isEnabledFor, logging.DEBUG
    tracking: object = None
    nsp: object = None

    def off_checks() -> bool:
        return enabled(debug) or enabled(debug) or tracking is not None or nsp is not None

    number = 200_000
    return min(timeit.repeat(off_checks, number=number, repeat=5)) / number * 1e9


def _find(rows: Sequence[Mapping[str, Any]], feature: str, scenario: str, metric: str) -> Any:
    for row in rows:
        if (row["feature"], row["scenario"], row["metric"]) == (feature, scenario, metric):
            return row
    return None


def _median(stats: Mapping[str, Any] | None) -> float | None:
    return None if stats is None else float(stats["median"])


def noise_band(rows: Sequence[Mapping[str, Any]], loop: str) -> float | None:
    """The widest distance from 1 of a median ratio between the two plain processes (msgs/s
    and CPU rows), on this loop: what this run cannot tell apart from nothing."""
    found = [
        abs(median - 1)
        for row in rows
        if row["feature"] == NOISE and row["metric"] in ("rate", "cpu_us")
        if (median := _median(row["vs_plain"].get(loop))) is not None
    ]
    return max(found) if found else None


def claims(
    rows: Sequence[Mapping[str, Any]], loops: Sequence[str], off_ns: float
) -> list[dict[str, Any]]:
    """The issue's claims about the feature prices, each with the figures that decide it."""
    checks: list[dict[str, Any]] = []
    bands = {loop: noise_band(rows, loop) for loop in loops}
    parts = []
    met: bool | None = True
    for loop in loops:
        plain = _find(rows, PLAIN, "pipe64-64", "cpu_us")
        cpu = None if plain is None else _median(plain["loops"].get(loop))
        band = bands[loop]
        if cpu is None or band is None:
            met = None
            continue
        share = off_ns / 1000 / cpu
        if met is not None:
            met = met and share < band
        parts.append(
            f"{loop}: {off_ns:.0f} ns of {cpu:.1f} µs CPU per call = {share:.2%}, "
            f"noise band ±{band:.1%}"
        )
    checks.append(
        {
            "claim": "off-by-default features cost nothing measurable when off",
            "met": met,
            "detail": "with every feature off a Session is the plain row; what the features "
            "leave on its path are the off checks (trace level, recovery, namespace name), "
            "timed here; two identical plain processes differ by the noise band. "
            + "; ".join(parts),
        }
    )
    checks.append(msgpack_claim(rows, loops, bands))
    return checks


def msgpack_claim(
    rows: Sequence[Mapping[str, Any]], loops: Sequence[str], bands: Mapping[str, float | None]
) -> dict[str, Any]:
    """msgpack ÷ JSON at 1 KiB: met when every msgs/s median is at least 1; "within noise"
    when not, but none is lower than the noise band allows and msgpack's client CPU per
    message is nowhere above JSON's (msgs/s also carries the server's parsing and the noise of
    the machine; CPU per message is the client's own and far steadier)."""
    parts: list[str] = []
    rates: list[tuple[str, float]] = []
    cpus: list[float] = []
    for loop in loops:
        for sid in ("pipe64-1024", "echo-1024"):
            rate = _find(rows, "msgpack", sid, "rate")
            cpu = _find(rows, "msgpack", sid, "cpu_us")
            ratio = None if rate is None else _median(rate["vs_plain"].get(loop))
            cpu_ratio = None if cpu is None else _median(cpu["vs_plain"].get(loop))
            if ratio is None or cpu_ratio is None:
                continue
            rates.append((loop, ratio))
            cpus.append(cpu_ratio)
            parts.append(f"{loop} {sid}: {ratio:.2f}× msgs/s, {cpu_ratio:.2f}× CPU per message")
    measured = len(rates) == 2 * len(loops)
    met = measured and all(ratio >= 1.0 for _, ratio in rates)
    within_noise = (
        measured
        and not met
        and all(cpu <= 1.0 for cpu in cpus)
        and all(ratio >= 1 - (bands.get(loop) or 0) for loop, ratio in rates)
    )
    verdict = "yes" if met else "within noise" if within_noise else "**no**"
    return {
        "claim": "parser msgpack at least as fast as JSON on 1 KiB payloads",
        "met": met if measured else None,
        "within_noise": within_noise,
        "verdict": verdict if measured else "not measured",
        "detail": "msgpack ÷ JSON (plain): " + "; ".join(parts),
    }


# --------------------------------------------------------------------------- Markdown, JSON


def _number(value: float, unit: str) -> str:
    if unit == "/s":
        return f"{value / 1000:.1f}k" if value >= 1000 else f"{value:.0f}"
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


def cell(stats: Mapping[str, Any] | None, unit: str = "×") -> str:
    """A median with its min–max (a ratio when ``unit`` is ``×``); ``–`` without figures."""
    if stats is None:
        return "–"

    def show(value: float) -> str:
        return f"{value:.2f}" if unit == "×" else _number(value, unit)

    text = show(stats["median"]) + ("×" if unit == "×" else "")
    if stats["n"] > 1:
        text += f" <sub>{show(stats['min'])}–{show(stats['max'])}</sub>"
    return text


def measurement(row: Mapping[str, Any]) -> str:
    size = f"{row['payload'] // 1024} KiB" if row["payload"] >= 1024 else f"{row['payload']} B"
    unit = "" if row["unit"] == "/s" else f" ({row['unit']})"
    return f"{KIND_LABELS[row['kind']]}, {size}{' bytes' if row['binary'] else ''}: " + (
        f"{row['label']}{unit}"
    )


def _json_codec(raw: Mapping[str, Any]) -> str:
    clients: Mapping[str, Mapping[str, Any]] = raw["versions"].get("clients", {})
    codecs = {c.get("json") for key, c in clients.items() if key.startswith(f"{PLAIN}@")}
    return ", ".join(sorted(str(codec) for codec in codecs)) or "?"


def markdown(raw: Mapping[str, Any], summary: Mapping[str, Any]) -> str:
    """The report: the claims, then a table with a row per feature and measurement."""
    settings, machine = raw["settings"], raw["machine"]
    loops: list[str] = settings["loops"]
    labels: Mapping[str, str] = raw.get("labels", {})
    lines = [
        "# Feature prices (`python -m benchmarks.features`)",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(raw.get('finished', time.time())))}; "
        f"{machine.get('cpu', '?')}, {machine.get('cores')} cores, Python {machine.get('python')}, "
        f"socket.io {raw['versions']['servers'].get('socket.io', '?')} (one Node process for "
        f"every row); {settings['reps']} repetitions of {settings['duration_s']} s"
        + (" (quick: the counts mean nothing)" if settings["quick"] else "")
        + f"; load average {' '.join(machine.get('loadavg_start', []))} at the start, "
        f"{' '.join(machine.get('loadavg_end', []))} at the end. JSON codec of the plain "
        f"row: {_json_codec(raw)} (the Session's default: orjson where installed).",
        "",
        "Each configuration runs in a client process of its own; they take turns, in a "
        "rotating order. Ratios are taken repetition by repetition, then the median "
        "<sub>min–max</sub>: feature ÷ plain on the same loop, asyncio ÷ uvloop for the same "
        "configuration. msgs/s: above 1 is better; µs: below 1 is better.",
        "",
        "## Claims",
        "",
        "| claim | met | figures |",
        "|---|---|---|",
    ]
    for check in summary["claims"]:
        verdict = (
            check.get("verdict")
            or {True: "yes", False: "**no**", None: "not measured"}[check["met"]]
        )
        lines.append(f"| {check['claim']} | {verdict} | {check['detail']} |")
    if raw.get("skipped"):
        lines += ["", "Skipped: " + "; ".join(f"{k} ({v})" for k, v in raw["skipped"].items())]
    header = ["feature", "measurement"]
    for loop in loops:
        header += [loop, f"÷ plain ({loop})"]
    if len(loops) == 2:
        header.append("asyncio ÷ uvloop")
    lines += ["", "## Rows", "", "| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    for row in summary["rows"]:
        cells = [labels.get(row["feature"], row["feature"]), measurement(row)]
        for loop in loops:
            cells += [cell(row["loops"].get(loop), row["unit"]), cell(row["vs_plain"].get(loop))]
        if len(loops) == 2:
            cells.append(cell(row.get("asyncio_vs_uvloop")))
        lines.append("| " + " | ".join(cells) + " |")
    if summary["errors"]:
        lines += ["", "## Errors", ""]
        lines += [f"- {json.dumps(error)}" for error in summary["errors"]]
    return "\n".join(lines) + "\n"


def write(raw: dict[str, Any], out: Path) -> dict[str, Any]:
    """Writes ``features.json`` (the raw results and their summary) and ``features.md``.

    Returns:
        The summary.
    """
    summary = summarize(raw)
    out.mkdir(parents=True, exist_ok=True)
    (out / "features.json").write_text(json.dumps({**raw, "summary": summary}, indent=1) + "\n")
    (out / "features.md").write_text(markdown(raw, summary))
    return summary
