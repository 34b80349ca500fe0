"""The peers of ``jamsocket-rt load`` in ``load_vs_peers.py``: each run as a process of its own.

python-socketio's AsyncClient in plain asyncio (``python -m benchmarks.load_peers ORIGIN
SESSIONS RATE SECONDS``: paced like ``jamsocket-rt load``), Locust's
``contrib.socketio.SocketIOUser`` and ``jamsocket_rt.locust.SessionUser`` (headless Locust),
and Artillery's socketio engine (installed from npm into ~/.cache/jamsocket_rt-bench on
demand). Each returns ``{"calls_per_s", "p99_ms", "rss", "errors"}`` or ``{"error"}``; the
peak RSS of the process comes from ``wait4``.
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PAYLOAD = "x" * 64
TOKEN = "bench-token"
ARTILLERY_VERSION = "2.0.34"
CACHE = Path.home() / ".cache" / "jamsocket_rt-bench"

LOCUST_CONTRIB = """
import os
from locust import constant, constant_pacing, task
from locust.contrib.socketio import SocketIOUser

PERIOD = float(os.environ["BENCH_PERIOD"])


class Contrib(SocketIOUser):
    wait_time = constant_pacing(PERIOD) if PERIOD else constant(0)

    def on_start(self):
        self.sio.connect(os.environ["BENCH_ORIGIN"], socketio_path=os.environ["BENCH_PATH"],
                         transports=["websocket"])

    @task
    def echo(self):
        self.sio.call("echo", os.environ["BENCH_PAYLOAD"])

    def on_stop(self):
        self.sio.disconnect()
"""

LOCUST_OURS = """
import json, os
from locust import constant, task
from jamsocket_rt import ConnectResponse
from jamsocket_rt.locust import SessionUser, spread_pacing

PERIOD = float(os.environ["BENCH_PERIOD"])
RESPONSE = ConnectResponse.from_json(os.environ["BENCH_RESPONSE"])


class Ours(SessionUser):
    wait_time = spread_pacing(PERIOD) if PERIOD else constant(0)

    async def connect_response(self):
        return RESPONSE

    @task
    def echo(self):
        self.session.call("echo", os.environ["BENCH_PAYLOAD"])
"""


def run_measured(command: Sequence[str], env: dict[str, str] | None = None, **kw: Any) -> Any:
    """Runs a command; returns (exit code, stdout, stderr, peak RSS in bytes of the process)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(
            command, env={**os.environ, **(env or {})}, stdout=out, stderr=err, text=True, **kw
        )
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return proc.returncode, out.read(), err.read(), usage.ru_maxrss * 1024


def asyncclient(origin: str, sessions: int, rate: float, seconds: float) -> dict[str, Any]:
    args = [sys.executable, "-m", "benchmarks.load_peers", origin, str(sessions), str(rate)]
    code, out, err, rss = run_measured([*args, str(seconds)], cwd=ROOT)
    if code != 0:
        return {"error": err.strip().splitlines()[-1:]}
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    result["rss"] = rss
    return result


async def asyncclient_peer(origin: str, sessions: int, rate: float, seconds: float) -> None:
    """python-socketio's AsyncClient in plain asyncio, paced like jamsocket-rt load."""
    import socketio

    from jamsocket_rt.load.histogram import LatencyHistogram
    from jamsocket_rt.load.pacing import Pacer, even_phase

    loop = asyncio.get_running_loop()
    histogram = LatencyHistogram()
    clients = []
    semaphore = asyncio.Semaphore(200)

    async def open_one() -> socketio.AsyncClient:
        client = socketio.AsyncClient(reconnection=False)
        async with semaphore:
            await client.connect(
                origin, socketio_path=f"/{TOKEN}/socket.io", transports=["websocket"]
            )
        return client

    clients = await asyncio.gather(*(open_one() for _ in range(sessions)))
    anchor = loop.time() + 0.1
    stop = anchor + seconds
    counted = 0
    errors = 0

    async def drive(index: int, client: socketio.AsyncClient) -> None:
        nonlocal counted, errors
        pacer = (
            Pacer(period=1 / rate, anchor=anchor, phase=even_phase(index, sessions))
            if rate
            else None
        )
        while loop.time() < stop:
            if pacer is not None:
                start = pacer.next_start(loop.time())
                if start >= stop:
                    return
                await asyncio.sleep(max(0.0, start - loop.time()))
            begun = time.perf_counter()
            try:
                await client.call("echo", PAYLOAD, timeout=10)
            except Exception:
                errors += 1
                continue
            histogram.record(round((time.perf_counter() - begun) * 1e6))
            counted += 1

    await asyncio.gather(*(drive(i, c) for i, c in enumerate(clients)))
    elapsed = loop.time() - anchor
    for client in clients:
        await client.disconnect()
    result = {
        "calls_per_s": round(counted / elapsed, 1),
        "p99_ms": histogram.percentile(99) / 1000,
        "errors": errors,
    }
    print(json.dumps(result), flush=True)


def locust_run(
    locustfile: str, users: int, period: float, seconds: float, env: dict[str, str], label: str
) -> dict[str, Any]:
    locust = shutil.which("locust", path=str(Path(sys.executable).parent))
    if locust is None:
        return {"error": "locust is not installed"}
    with tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp) / "locustfile.py"
        file.write_text(locustfile)
        spawn = min(users, 250)
        ramp = users / spawn
        code, _, err, rss = run_measured(
            [
                locust,
                "-f",
                str(file),
                "--headless",
                "--users",
                str(users),
                "--spawn-rate",
                str(spawn),
                "--run-time",
                f"{round(seconds + ramp)}s",
                "--host",
                "http://127.0.0.1",
                "--csv",
                str(Path(tmp) / "out"),
                "--only-summary",
                "--stop-timeout",
                "5",
            ],
            env={**env, "BENCH_PERIOD": str(period), "BENCH_PAYLOAD": PAYLOAD},
            cwd=tmp,
        )
        stats = Path(tmp) / "out_stats.csv"
        if not stats.exists():
            return {"error": (err.strip().splitlines() or ["no output"])[-1]}
        rows = {(r["Type"], r["Name"]): r for r in csv.DictReader(stats.open())}
    row = rows.get((label, "echo"))
    if row is None:
        return {"error": f"no echo row ({code})"}
    return {
        "calls_per_s": round(float(row["Requests/s"]), 1),
        "p99_ms": float(row["99%"]),
        "rss": rss,
        "errors": int(row["Failure Count"]),
    }


# --------------------------------------------------------------------------- Artillery


def find_artillery(choice: str) -> str | None:
    if choice == "off":
        return None
    if choice != "auto":
        return choice
    binary = CACHE / "node_modules" / ".bin" / "artillery"
    if binary.exists():
        return str(binary)
    if shutil.which("npm") is None:
        return None
    CACHE.mkdir(parents=True, exist_ok=True)
    print(f"installing artillery@{ARTILLERY_VERSION} into {CACHE} (once)...", flush=True)
    # --ignore-scripts: its optional browser download cannot happen here, nor is it needed.
    done = subprocess.run(
        [
            "npm",
            "install",
            "--ignore-scripts",
            "--no-audit",
            "--no-fund",
            f"artillery@{ARTILLERY_VERSION}",
        ],
        cwd=CACHE,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if done.returncode != 0 or not binary.exists():
        print("artillery could not be installed:", done.stderr.strip()[-300:], flush=True)
        return None
    return str(binary)


def artillery_run(
    binary: str, port: int, users: int, period: float, seconds: float
) -> dict[str, Any]:
    if period:
        flow = [{"loop": [_artillery_emit(), {"think": period}], "count": int(seconds / period)}]
        phase = {"duration": max(1, round(users / 250)), "arrivalCount": users}
    else:
        flow = [{"loop": [_artillery_emit()], "whileTrue": "running"}]
        phase = {"duration": 1, "arrivalCount": users}
    script = {
        "config": {
            "target": f"http://127.0.0.1:{port}",
            "socketio": {"path": f"/{TOKEN}/socket.io", "transports": ["websocket"]},
            "phases": [phase],
            "processor": "./processor.js",
        },
        "scenarios": [{"engine": "socketio", "flow": flow}],
    }
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "script.json").write_text(json.dumps(script))
        # Stops the no-wait loops after the run time.
        (Path(tmp) / "processor.js").write_text(
            f"const end = Date.now() + {seconds * 1000};\n"
            "module.exports = { running: (context, next) => next(Date.now() < end) };\n"
        )
        out = Path(tmp) / "report.json"
        code, _, err, rss = run_measured(
            [binary, "run", "--output", str(out), "script.json"],
            cwd=tmp,
            env={"ARTILLERY_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1"},
        )
        if not out.exists():
            return {"error": (err.strip().splitlines() or [f"exit {code}"])[-1]}
        report = json.loads(out.read_text())
    aggregate = report["aggregate"]
    counters = aggregate.get("counters", {})
    emits = counters.get("socketio.emit", 0)
    summary = aggregate.get("summaries", {}).get("socketio.response_time", {})
    first, last = aggregate.get("firstMetricAt"), aggregate.get("lastMetricAt")
    span = (last - first) / 1000 if first and last and last > first else seconds
    failed = counters.get("vusers.failed", 0)
    return {
        "calls_per_s": round(emits / span, 1),
        "p99_ms": summary.get("p99"),
        "rss": rss,
        "errors": failed,
    }


def _artillery_emit() -> dict[str, Any]:
    return {"emit": {"channel": "echo", "data": PAYLOAD}, "acknowledge": {"data": PAYLOAD}}


def main(argv: Sequence[str] | None = None) -> None:
    """Runs python-socketio's AsyncClient peer: ORIGIN SESSIONS RATE SECONDS."""
    origin, sessions, rate, seconds = argv if argv is not None else sys.argv[1:]
    asyncio.run(asyncclient_peer(origin, int(sessions), float(rate), float(seconds)))


if __name__ == "__main__":
    main()
