"""The benchmarks' many-sessions clients and the open-file limit (RLIMIT_NOFILE).

A client that needs more descriptors than its soft limit raises it to the hard limit; when the
hard limit is too low it fails at once, naming the limit. Real child processes with real
limits, no server needed (the limit is checked before the first connection).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.helpers.paths import REPO_ROOT

resource = pytest.importorskip("resource")

SPEC = {
    "mode": "many",
    "url": "http://127.0.0.1:9",
    "path": "/socket.io/",
    "response": {},
    "sessions": 1000,
    "call_seconds": 1,
    "payload": 64,
}


def _limited(soft: int, hard: int) -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_hard_limit_below_the_sessions_is_named() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "benchmarks.client", "--client", "raw", json.dumps(SPEC)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=lambda: _limited(256, 256),
    )
    result = json.loads(run.stdout.strip().splitlines()[-1])
    error = result["error"]
    assert error.startswith("DescriptorLimitError")
    assert "RLIMIT_NOFILE is 256 (soft) / 256 (hard)" in error
    assert "1,000 sessions" in error
    assert "ulimit -Hn 1064" in error


def test_the_soft_limit_is_raised_to_the_hard_limit() -> None:
    script = (
        "import resource; from benchmarks.limits import raise_open_file_limit; "
        "print(raise_open_file_limit(1064, 'x'), *resource.getrlimit(resource.RLIMIT_NOFILE))"
    )
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard < 1064:
        pytest.skip(f"this machine's hard limit ({hard}) is below 1,064")
    target = 2048 if hard == resource.RLIM_INFINITY else min(hard, 2048)
    run = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=lambda: _limited(256, target),
        check=True,
    )
    now, soft, hard_now = (int(part) for part in run.stdout.split())
    assert now == soft == hard_now == target
