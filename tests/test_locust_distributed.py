"""Locust's distributed mode with jamsocket_rt.locust: a master and two workers on loopback.

Every Locust process is a separate process (Locust monkey-patches whatever imports it, so
never this one). They run ``examples/locustfile.py`` against a dev server for about 20 s,
and Locust's own CSV output must show samples for every request name and no failure.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.net import free_port
from tests.helpers.paths import REPO_ROOT

pytestmark = pytest.mark.slow

RUN_SECONDS = 20
EXPECTED = {
    ("session", "connect_api"),
    ("session", "ready"),
    ("session", "socket_connect"),
    ("call", "echo"),
    ("send", "ping"),
    ("wait", "pong"),
    ("send", "broadcast"),
}


def locust_command() -> list[str]:
    locust = shutil.which("locust", path=str(Path(sys.executable).parent))
    if locust is None:
        pytest.skip("locust is not installed (pip install 'jamsocket_rt[load]')")
    return [locust, "-f", str(REPO_ROOT / "examples" / "locustfile.py")]


def test_master_and_two_workers_report_every_request(tmp_path: Path) -> None:
    command = locust_command()
    dev = subprocess.Popen(
        [sys.executable, "-m", "jamsocket_rt.load._devserver"],
        cwd=REPO_ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    processes: list[subprocess.Popen[str]] = []
    try:
        assert dev.stdout is not None
        api_url = json.loads(dev.stdout.readline())["api_url"]
        port = free_port()
        env = {**os.environ, "LOCUST_KEYS": "2", "LOCUST_PERIOD": "0.5", "PYTHONUNBUFFERED": "1"}
        master_log = (tmp_path / "master.log").open("w")
        master = subprocess.Popen(
            [
                *command,
                "--master",
                "--master-bind-host",
                "127.0.0.1",
                "--master-bind-port",
                str(port),
                "--expect-workers",
                "2",
                "--headless",
                "--users",
                "40",
                "--spawn-rate",
                "20",
                "--run-time",
                f"{RUN_SECONDS}s",
                "--host",
                api_url,
                "--csv",
                str(tmp_path / "out"),
                "--web-port",
                str(free_port()),
            ],
            cwd=tmp_path,
            env=env,
            stdout=master_log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        processes.append(master)
        for index in range(2):
            log = (tmp_path / f"worker{index}.log").open("w")
            processes.append(
                subprocess.Popen(
                    [
                        *command,
                        "--worker",
                        "--master-host",
                        "127.0.0.1",
                        "--master-port",
                        str(port),
                    ],
                    cwd=tmp_path,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    text=True,
                )
            )
        code = master.wait(timeout=RUN_SECONDS + 40)
        for worker in processes[1:]:
            worker.wait(timeout=20)
    finally:
        for proc in processes:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert dev.stdin is not None
        dev.stdin.close()
        dev.wait(timeout=20)

    logs = "\n".join(p.read_text() for p in sorted(tmp_path.glob("*.log")))
    assert code == 0, logs
    assert "Traceback" not in logs, logs
    with (tmp_path / "out_stats.csv").open() as file:
        rows = {(row["Type"], row["Name"]): row for row in csv.DictReader(file)}
    assert set(rows) - {("", "Aggregated")} == EXPECTED, logs
    for key in EXPECTED:
        assert int(rows[key]["Request Count"]) > 0, key
        assert int(rows[key]["Failure Count"]) == 0, (key, logs)
    # 40 users each connected once, through both workers.
    assert int(rows[("session", "connect_api")]["Request Count"]) == 40
    assert "to 2 ready workers" in logs
    with (tmp_path / "out_failures.csv").open() as file:
        assert list(csv.DictReader(file)) == []
