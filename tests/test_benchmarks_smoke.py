"""The benchmark suite's smoke run: ``python -m benchmarks --quick`` measures every row.

Only correctness is asserted (every row measured, no errors, well-formed files), never speed:
the quick run's counts are far too small to mean anything.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.paths import REPO_ROOT

pytestmark = [pytest.mark.node, pytest.mark.slow]

CLIENTS = ("jamsocket_rt", "jamsocket_rt-asyncio", "python-socketio", "node")
TARGETS = ("node", "python", "proxy")


def test_quick_run_measures_every_row(tmp_path: Path, require_node: str) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--out", str(tmp_path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert run.returncode == 0, f"stdout:\n{run.stdout[-4000:]}\nstderr:\n{run.stderr[-4000:]}"

    document = json.loads((tmp_path / "latest.json").read_text())
    summary = document["summary"]
    assert summary["errors"] == []
    assert document["settings"]["quick"] is True
    assert set(document["settings"]["clients"]) == set(CLIENTS)
    assert document["machine"]["cores"] >= 1
    assert document["versions"]["servers"]["socket.io"].startswith("4.")

    # Round trips: 3 payloads x (sequential, 4 windows, echo), every client, every server.
    assert set(document["roundtrip"]) == set(TARGETS)
    for target, by_scenario in document["roundtrip"].items():
        assert len(by_scenario) == 18, target
        for scenario, by_client in by_scenario.items():
            # On the Node server, jamsocket_rt without its extras too (asyncio, stdlib json),
            # and with parser="msgpack" (against the Node server's socket.io-msgpack-parser twin).
            node_extra = {"jamsocket_rt-plain", "jamsocket_rt-msgpack"}
            expected = {*CLIENTS, *node_extra} if target == "node" else set(CLIENTS)
            assert set(by_client) == expected, (target, scenario)
            for client, runs in by_client.items():
                assert runs, (target, scenario, client)
                for result in runs:
                    assert "error" not in result, (target, scenario, client, result)
                    assert result["count"] > 0, (target, scenario, client)
                    assert result["rate"] > 0
                    if scenario.startswith("seq"):
                        assert 0 < result["p50_us"] <= result["p99_us"]
    for target, rows in summary["roundtrip"].items():
        assert set(document["roundtrip_clients"][target]) >= set(CLIENTS)
        for row in rows:
            for client in document["roundtrip_clients"][target]:
                assert row["clients"][client]["n"] >= 1, row
            if row["metric"] == "busy_pct":  # a diagnosis (rate x CPU), without ratios
                assert "ratio_node" not in row
                continue
            assert row["ratio_node"] is not None
            assert row["ratio_python-socketio"] is not None
            assert row["ratio_asyncio"] is not None  # jamsocket_rt: stdlib asyncio ÷ uvloop

    # Many sessions in one process.
    assert document["many"], "the many-sessions suite did not run"
    for size, by_client in document["many"].items():
        assert set(by_client) == set(CLIENTS)
        for client, runs in by_client.items():
            for result in runs:
                assert "error" not in result, (size, client, result)
                assert result["sessions"] == int(size)
                if client != "node":  # (Node's client fails as a whole, or connects all)
                    assert result["connected"] == int(size)
                    assert result["connect_errors"] == 0
                assert result["connect_rate"] > 0
                assert result["call_errors"] == 0
                assert result["calls"] >= int(size)
                assert result["p99_ms"] is not None
                assert isinstance(result["rss_kib_per_session"], (int, float))

    # The report: a table per server and for many sessions, the targets, a plot.
    markdown = (tmp_path / "latest.md").read_text()
    for heading in ("Targets", "Node socket.io server", "python-socketio AsyncServer", "proxy"):
        assert heading in markdown
    assert markdown.count("\n|") > 3 * 33
    assert "asyncio ÷ uvloop" in markdown
    assert (tmp_path / "latest.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_floor_measures_every_client(require_node: str) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "benchmarks.floor", "--reps", "1", "--duration", "0.2"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    rows = {
        line.split("|")[1].strip(): [cell.strip() for cell in line.split("|")[2:-1]]
        for line in run.stdout.splitlines()
        if line.startswith("| ") and not line.startswith("| client")
    }
    assert set(rows) == {"floor", "jamsocket_rt", "node"}
    for client, (p50, rate, cpu, ratio) in rows.items():
        assert float(p50.split()[0].replace(",", "")) > 0, client
        assert float(rate.split()[0].replace(",", "")) > 0, client
        assert float(cpu.split()[0]) > 0, client
        assert float(ratio.split()[0]) > 0, client


def test_load_generators_side_by_side(require_node: str) -> None:
    """benchmarks/load_vs_peers.py, its max rows only, 1 s each, without Artillery (npm)."""
    run = subprocess.run(
        [
            sys.executable,
            "benchmarks/load_vs_peers.py",
            "--seconds",
            "1",
            "--only",
            "max",
            "--artillery",
            "off",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    table = [line for line in run.stdout.splitlines() if line.startswith("| ")]
    tools = [row.split("|")[1].strip() for row in table[1:]]
    assert tools == [
        "jamsocket-rt load (1 process)",
        "jamsocket-rt load (1 process), asyncio loop",
        "jamsocket-rt load (1 process), 16 in flight",
        "jamsocket-rt load (1 process), 16 in flight, asyncio loop",
        "python-socketio AsyncClient",
        "Locust SocketIOUser",
        "jamsocket_rt.locust SessionUser",
    ]
    for row in table[1:]:
        max_calls = row.split("|")[2].strip()
        assert max_calls != "failed", row
        assert float(max_calls.split()[0].replace(",", "")) > 0, row
        if row.split("|")[1].strip().endswith("asyncio loop"):  # beside its uvloop twin
            assert "(asyncio/uvloop " in max_calls, row
    assert "target: max calls/s (10 sessions) on stdlib asyncio" in run.stdout
