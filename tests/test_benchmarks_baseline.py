"""``python -m benchmarks --baseline PATH``: another checkout measured in the same run.

Only correctness is asserted (the baseline client ran, from the other tree), never speed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent

pytestmark = [pytest.mark.node, pytest.mark.slow]


def test_a_baseline_tree_is_measured_beside_the_current_code(
    tmp_path: Path, require_node: str
) -> None:
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks",
            "--quick",
            "--suites",
            "roundtrip",
            "--targets",
            "node",
            "--only",
            "seq-64",
            "--clients",
            "jamsocket_rt,node",
            "--baseline",
            str(REPO_ROOT),
            "--out",
            str(tmp_path),
            "--no-readme",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert run.returncode == 0, f"stdout:\n{run.stdout[-4000:]}\nstderr:\n{run.stderr[-4000:]}"
    document = json.loads((tmp_path / "latest.json").read_text())
    assert document["summary"]["errors"] == []
    assert document["settings"]["clients"] == ["jamsocket_rt", "jamsocket_rt-baseline", "node"]
    rows = document["roundtrip"]["node"]["seq-64"]
    assert rows["jamsocket_rt-baseline"], rows
    assert all(result.get("error") is None for result in rows["jamsocket_rt-baseline"])


def test_a_baseline_without_the_package_is_a_usage_error(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--baseline", str(tmp_path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2
    assert "--baseline" in run.stderr
    assert "no jamsocket_rt package" in run.stderr
