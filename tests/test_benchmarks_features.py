"""The feature prices' smoke run: ``python -m benchmarks.features --quick`` measures every row.

Only correctness is asserted (every row measured on both loops, no errors, well-formed files),
never speed: the quick run's counts are far too small to mean anything.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.features import FEATURES, plan
from tests.helpers.paths import REPO_ROOT

pytestmark = [pytest.mark.node, pytest.mark.slow]

LOOPS = ("uvloop", "asyncio")


def test_quick_run_prices_every_feature(tmp_path: Path, require_node: str) -> None:
    pytest.importorskip("uvloop")
    pytest.importorskip("msgpack")
    run = subprocess.run(
        [sys.executable, "-m", "benchmarks.features", "--quick", "--out", str(tmp_path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert run.returncode == 0, f"stdout:\n{run.stdout[-4000:]}\nstderr:\n{run.stderr[-4000:]}"

    document = json.loads((tmp_path / "features.json").read_text())
    summary = document["summary"]
    assert summary["errors"] == []
    assert document["skipped"] == {}
    assert document["settings"]["quick"] is True
    assert tuple(document["settings"]["loops"]) == LOOPS
    assert set(document["settings"]["features"]) == set(FEATURES)
    # Every client process started and said what it ran: the recovery one saw the server's
    # private session id (offsets on every event), the namespaces one has two.
    assert set(document["versions"]["clients"]) == {
        f"{f}@{loop}" for f in FEATURES for loop in LOOPS
    }
    for loop in LOOPS:
        assert document["ready"][f"recovery@{loop}"]["recovery_pid"] is True
        assert document["ready"][f"namespaces@{loop}"]["namespaces"] == ["/", "/second"]
        assert document["ready"][f"plain@{loop}"]["namespaces"] == ["/"]

    scenarios = plan(tuple(FEATURES))
    assert [s["id"] for s in document["scenarios"]] == [s["id"] for s in scenarios]
    for loop in LOOPS:
        for scenario in scenarios:
            for feature in scenario["features"]:
                runs = document["results"][loop][feature][scenario["id"]]
                assert len(runs) == 1, (loop, feature, scenario["id"])
                for result in runs:
                    assert "error" not in result, (loop, feature, result)
                    assert result["count"] > 0
                    assert result["rate"] > 0
                    assert result["cpu_us"] >= 0
                    if scenario["kind"] == "seq":
                        assert 0 < result["p50_us"] <= result["p99_us"]

    # Every row: a figure per loop, a ratio to plain on each loop (but plain's own), and the
    # loops' ratio; the two claims, decided one way or the other.
    rows = summary["rows"]
    assert {row["feature"] for row in rows} == set(FEATURES)
    for row in rows:
        for loop in LOOPS:
            assert row["loops"][loop]["n"] == 1, row
            if row["feature"] == "plain":
                assert row["vs_plain"][loop] is None
            else:
                assert row["vs_plain"][loop]["median"] > 0, row
        assert row["asyncio_vs_uvloop"]["median"] > 0, row
    payloads = {(r["payload"], r["binary"]) for r in rows if r["feature"] == "msgpack"}
    assert payloads == {(64, False), (1024, False), (16384, False), (1024, True)}
    claims = {check["claim"]: check for check in summary["claims"]}
    assert len(claims) == 2
    for check in claims.values():
        assert check["met"] in (True, False), check

    markdown = (tmp_path / "features.md").read_text()
    assert "## Claims" in markdown
    assert "## Rows" in markdown
    table = [line for line in markdown.splitlines() if line.startswith("| ")]
    assert len(table) == 1 + 2 + 1 + len(rows)  # claims header, 2 claims, rows header, rows
    assert "asyncio ÷ uvloop" in table[3]
