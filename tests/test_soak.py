"""The soak of ``benchmarks/soak.py``, short: 50 sessions on one backend for 10 s, 2 msg/s each.

Run as its own process (as the full 500-session, 60 s soak runs), so that its memory is its own:
no error, nothing lost, duplicated or reordered, and no memory growth beyond noise.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.helpers.node import node_missing_reason
from tests.helpers.paths import REPO_ROOT

# Slow, not node: it runs the Node backend where installed, else the Python one.
pytestmark = pytest.mark.slow


def test_fifty_sessions_for_ten_seconds_lose_nothing_and_do_not_grow() -> None:
    backend = "python" if node_missing_reason() else "node"
    command = [sys.executable, "-m", "benchmarks.soak", "--backend", backend]
    done = subprocess.run(
        [*command, "--sessions", "50", "--duration", "10"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert done.stdout, done.stderr
    report = json.loads(done.stdout.splitlines()[-1])
    assert report["errors"] == 0, report["first_errors"]
    assert (report["lost"], report["duplicated"], report["reordered"]) == (0, 0, 0)
    assert report["sends"] >= 400
    assert report["calls"] >= 400
    assert report["rtt_ms"]["p99"] is not None
    rss = report["rss_mib"]
    if rss["start"] is not None:  # Linux
        # Warmed up before the start: what is left is noise (allocator, GC timing).
        assert rss["end"] - rss["start"] < 16, rss
    assert done.returncode == 0, done.stderr
