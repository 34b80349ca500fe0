"""The benchmark report's plot (``latest.png``): the main figures of a run as bars and lines."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .runner import CLIENT_LABELS


def size_text(payload: int) -> str:
    """A payload's size as the report writes it: 64 B, 1 KiB, 16 KiB."""
    return f"{payload // 1024} KiB" if payload >= 1024 else f"{payload} B"


def _kind(row: Mapping[str, Any]) -> str:
    return "echo" if row["scenario"].startswith("echo") else "call w=64"


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
        "jamsocket_rt-asyncio": "#aec7e8",
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
            lambda r: f"{_kind(r)}\n{size_text(r['payload'])}",
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
            lambda r: size_text(r["payload"]),
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
