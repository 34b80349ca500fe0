"""``jamsocket-rt load`` and the Locust user against their peers, in the same run, same server.

    .venv/bin/python benchmarks/load_vs_peers.py [--seconds 10] [--artillery auto|off|PATH]
                                                 [--skip-5000] [--markdown]

The server is the real Node socket.io server (tests/node/node_modules) with the example
backend's ``echo`` (acknowledged with its arguments), serving Socket.IO under a token path as a
Jamsocket proxy does; every client sends the same 64-byte string. A tiny status server in this
process answers the ConnectResponse's ``status_url`` (ready), so no dev-server proxy sits in
the path. Each load generator runs as one process of its own; its peak RSS comes from
``wait4``.

Runs, per tool:

- max calls/s: 10 sessions, no wait (each session: call, wait for the ack, call again);
  ``jamsocket-rt load`` (on uvloop where installed, its default) also with 16 calls in flight
  per session, and on asyncio's own loop, which python-socketio's AsyncClient is compared with;
- 1,000 sessions at 1 call/s each: p99 of the round trip, peak RSS;
- 5,000 sessions at 1 call/s each (``jamsocket-rt load`` and python-socketio only).

Tools: ``jamsocket-rt load`` (one process), python-socketio's AsyncClient in plain asyncio
(the same even pacing), Locust's ``contrib.socketio.SocketIOUser`` (stock
``constant_pacing``), ``jamsocket_rt.locust.SessionUser`` (``spread_pacing``), and Artillery's
socketio engine (emit + acknowledge) when it can be installed from npm (``--artillery auto``
installs it with ``--ignore-scripts`` into ~/.cache/jamsocket_rt-bench). Numbers depend on
the machine and on whatever else runs on it: compare the rows of one run only.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
NODE_MODULES = ROOT / "tests" / "node" / "node_modules"
PAYLOAD = "x" * 64
TOKEN = "bench-token"
ARTILLERY_VERSION = "2.0.34"
CACHE = Path.home() / ".cache" / "jamsocket_rt-bench"
#: The row of ``jamsocket-rt load`` on asyncio's own loop (its default is uvloop where installed).
ASYNCIO_ROW = ", asyncio loop"

# The example backend's echo, served under /TOKEN/socket.io as behind a Jamsocket proxy.
ECHO_SERVER_JS = """
"use strict";
const http = require("http");
const { Server } = require("socket.io");
const httpServer = http.createServer();
const io = new Server(httpServer, {
  path: `/${process.env.TOKEN}/socket.io`, maxHttpBufferSize: 64 * 1024 * 1024,
});
io.on("connection", (socket) => {
  socket.on("echo", (...args) => {
    const ack = typeof args[args.length - 1] === "function" ? args.pop() : null;
    if (ack) ack(...args);
  });
});
httpServer.listen(0, "127.0.0.1", () => console.log(`listening on ${httpServer.address().port}`));
"""

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


# --------------------------------------------------------------------------- servers


def start_echo_server(workdir: Path) -> tuple[subprocess.Popen[str], int]:
    script = workdir / "echo_server.js"
    script.write_text(ECHO_SERVER_JS)
    proc = subprocess.Popen(
        ["node", str(script)],
        env={**os.environ, "NODE_PATH": str(NODE_MODULES), "TOKEN": TOKEN},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    match = re.search(r"listening on (\d+)", proc.stdout.readline())
    if match is None:
        proc.kill()
        raise SystemExit("the Node echo server did not start (npm ci in tests/node?)")
    return proc, int(match.group(1))


def start_status_server() -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve-status"], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    return proc, int(proc.stdout.readline())


async def serve_status() -> None:
    """A status_url that says ready, and a stream that says it once and stays open."""
    from datetime import datetime, timezone

    from aiohttp import web

    def state() -> str:
        return json.dumps({"status": "ready", "time": datetime.now(timezone.utc).isoformat()})

    async def status(request: web.Request) -> web.Response:
        return web.Response(text=state(), content_type="application/json")

    async def stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(f"data:{state()}\n\n".encode())
        await asyncio.Event().wait()
        return response

    app = web.Application()
    app.router.add_get("/status", status)
    app.router.add_get("/status/stream", stream)
    runner = web.AppRunner(app, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=4096)
    await site.start()
    print(runner.addresses[0][1], flush=True)
    await asyncio.Event().wait()


# --------------------------------------------------------------------------- running tools


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


def jrt_load(
    response: dict[str, Any], sessions: int, rate: float, seconds: float, **extra: Any
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "report.json"
        args = [
            sys.executable,
            "-m",
            "jamsocket_rt",
            "load",
            "--connect-response",
            json.dumps(response),
            "--sessions",
            str(sessions),
            "--rate",
            str(rate),
            "--duration",
            str(seconds),
            "--ramp-up",
            "500",
            "--payload-size",
            "64",
            "--json",
            str(path),
            "--quiet",
        ]
        for name, value in extra.items():
            args += [f"--{name.replace('_', '-')}", str(value)]
        code, out, err, rss = run_measured(args, cwd=ROOT)
        if code != 0:
            return {"error": err.strip().splitlines()[-1:] or out}
        report = json.loads(path.read_text())
    ops = report["all_operations"]
    return {
        "calls_per_s": ops["throughput_per_s"],
        "p99_ms": ops["p99_ms"],
        "rss": rss,
        "per_session": report["resources"]["rss_per_session_bytes"],
        "errors": report["errors"]["total"],
        "cpu": report["resources"]["cpu_percent_of_one_core"],
        "bottlenecks": report["bottlenecks"],
    }


def asyncclient(origin: str, sessions: int, rate: float, seconds: float) -> dict[str, Any]:
    args = [sys.executable, __file__, "--peer-asyncclient", origin, str(sessions), str(rate)]
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


# --------------------------------------------------------------------------- the table


def fmt(result: dict[str, Any], key: str) -> str:
    if "error" in result:
        return "failed"
    value = result.get(key)
    if value is None:
        return "-"
    if key == "rss":
        return f"{value / 2**20:.0f} MiB"
    if key == "per_session":
        return f"{value / 1024:.1f} KiB"
    if key == "p99_ms":
        return f"{value:.1f} ms"
    return f"{value:,.0f}"


def ratio(ours: dict[str, Any], peer: dict[str, Any], key: str) -> str:
    if "error" in ours or "error" in peer or not peer.get(key) or ours.get(key) is None:
        return ""
    return f"{ours[key] / peer[key]:.2f}x"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds per measurement")
    parser.add_argument("--artillery", default="auto", help="auto, off, or its binary's path")
    parser.add_argument("--skip-5000", action="store_true", help="leave out 5,000 sessions")
    parser.add_argument(
        "--only", choices=["max", "1000", "5000"], action="append", help="run only these rows"
    )
    parser.add_argument("--serve-status", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--peer-asyncclient", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_status:
        asyncio.run(serve_status())
        return
    if args.peer_asyncclient:
        origin, sessions, rate, seconds = args.peer_asyncclient
        asyncio.run(asyncclient_peer(origin, int(sessions), float(rate), float(seconds)))
        return

    seconds = args.seconds
    artillery = find_artillery(args.artillery)
    workdir = Path(tempfile.mkdtemp(prefix="jrt-bench-"))
    node, port = start_echo_server(workdir)
    status, status_port = start_status_server()
    origin = f"http://127.0.0.1:{port}"
    response = {
        "backend_id": "bench",
        "spawned": False,
        "status": "ready",
        "token": TOKEN,
        "url": f"{origin}/{TOKEN}/",
        "status_url": f"http://127.0.0.1:{status_port}/status",
        "ready_url": "",
    }
    locust_env = {
        "BENCH_ORIGIN": origin,
        "BENCH_PATH": f"/{TOKEN}/socket.io",
        "BENCH_RESPONSE": json.dumps(response),
    }
    results: dict[str, dict[str, dict[str, Any]]] = {}

    def measure(tool: str, scenario: str, fn: Any, *fn_args: Any, **fn_kw: Any) -> None:
        if args.only and scenario.split()[0] not in args.only:
            return
        print(f"  {tool:<38} {scenario:<14}", end="", flush=True)
        result = fn(*fn_args, **fn_kw)
        results.setdefault(tool, {})[scenario] = result
        shown = result.get("error") or (
            f"{fmt(result, 'calls_per_s')} calls/s, p99 {fmt(result, 'p99_ms')}, "
            f"RSS {fmt(result, 'rss')}, errors {result.get('errors', 0)}"
        )
        print(shown, flush=True)
        time.sleep(1)  # let the server settle between runs

    try:
        print(f"Node socket.io echo server on {origin}; {seconds:g} s per run")
        jrt = "jamsocket-rt load (1 process)"
        measure(jrt, "max", jrt_load, response, 10, 0, seconds)
        measure(jrt + ", 16 in flight", "max", jrt_load, response, 10, 0, seconds, in_flight=16)
        measure(jrt + ASYNCIO_ROW, "max", jrt_load, response, 10, 0, seconds, loop="asyncio")
        measure("python-socketio AsyncClient", "max", asyncclient, origin, 10, 0, seconds)
        measure(
            "Locust SocketIOUser",
            "max",
            locust_run,
            LOCUST_CONTRIB,
            10,
            0,
            seconds,
            locust_env,
            "WSC",
        )
        measure(
            "jamsocket_rt.locust SessionUser",
            "max",
            locust_run,
            LOCUST_OURS,
            10,
            0,
            seconds,
            locust_env,
            "call",
        )
        if artillery:
            measure(
                f"Artillery {ARTILLERY_VERSION}",
                "max",
                artillery_run,
                artillery,
                port,
                10,
                0,
                seconds,
            )

        long = max(seconds, 20.0)
        measure(jrt, "1000 @ 1/s", jrt_load, response, 1000, 1, long)
        measure("python-socketio AsyncClient", "1000 @ 1/s", asyncclient, origin, 1000, 1, long)
        measure(
            "Locust SocketIOUser",
            "1000 @ 1/s",
            locust_run,
            LOCUST_CONTRIB,
            1000,
            1.0,
            long,
            locust_env,
            "WSC",
        )
        measure(
            "jamsocket_rt.locust SessionUser",
            "1000 @ 1/s",
            locust_run,
            LOCUST_OURS,
            1000,
            1.0,
            long,
            locust_env,
            "call",
        )
        if artillery:
            measure(
                f"Artillery {ARTILLERY_VERSION}",
                "1000 @ 1/s",
                artillery_run,
                artillery,
                port,
                1000,
                1.0,
                long,
            )
        if not args.skip_5000:
            measure(jrt, "5000 @ 1/s", jrt_load, response, 5000, 1, long)
            measure("python-socketio AsyncClient", "5000 @ 1/s", asyncclient, origin, 5000, 1, long)
    finally:
        for proc in (node, status):
            proc.terminate()
            proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)

    print_table(results, jrt)


def print_table(results: dict[str, dict[str, dict[str, Any]]], jrt: str) -> None:
    """The Markdown table; each peer's cell carries the ratio ours / peer.

    The Locust user is compared with Locust's own SocketIOUser; every other peer with
    ``jamsocket-rt load``. Above 1 is better for calls/s, below 1 for p99 and RSS.
    """
    columns = (
        ("max", "calls_per_s", "max calls/s (10 sessions, no wait)"),
        ("1000 @ 1/s", "p99_ms", "1,000 at 1 call/s: p99"),
        ("1000 @ 1/s", "rss", "peak RSS at 1,000"),
        ("5000 @ 1/s", "p99_ms", "5,000 at 1 call/s: p99"),
        ("5000 @ 1/s", "rss", "peak RSS at 5,000"),
    )
    print()
    print("| tool | " + " | ".join(title for _, _, title in columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    on_asyncio = results.get(jrt + ASYNCIO_ROW, {})
    for tool, runs in results.items():
        reference = results.get(
            "Locust SocketIOUser" if tool == "jamsocket_rt.locust SessionUser" else jrt, {}
        )
        cells = []
        for scenario, key, _ in columns:
            result = runs.get(scenario)
            if result is None:
                cells.append("")
                continue
            text = fmt(result, key)
            mine: dict[str, Any] | None
            theirs: dict[str, Any] | None
            if tool == "jamsocket_rt.locust SessionUser":
                mine, theirs = result, reference.get(scenario)
            elif tool == "python-socketio AsyncClient" and scenario in on_asyncio:
                # Like for like: both on asyncio's own loop, so the ratio is the libraries'.
                mine, theirs = on_asyncio[scenario], result
            else:
                mine, theirs = reference.get(scenario), result
            if not tool.startswith(jrt) and mine and theirs:
                r = ratio(mine, theirs, key)
                text += f" (ours/peer {r})" if r else ""
            cells.append(text)
        print(f"| {tool} | " + " | ".join(cells) + " |")
    ours = results[jrt]
    for scenario in ("1000 @ 1/s", "5000 @ 1/s"):
        mine = ours.get(scenario, {})
        if mine.get("per_session"):
            bottlenecks = "; ".join(mine.get("bottlenecks", [])) or "none"
            print(
                f"\njamsocket-rt load, {scenario}: {fmt(mine, 'per_session')} resident per "
                f"session, {mine.get('cpu', 0):.0f}% of a core; bottlenecks: {bottlenecks}"
            )


if __name__ == "__main__":
    main()
