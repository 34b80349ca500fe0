"""``jamsocket-rt load`` and the Locust user against their peers, in the same run, same server.

    .venv/bin/python benchmarks/load_vs_peers.py [--seconds 10] [--artillery auto|off|PATH]
        [--skip-5000] [--skip-10000] [--asyncclient-10000] [--only max|1000|5000|10000]

The server is the real Node socket.io server (tests/node/node_modules) with the example
backend's ``echo`` (acknowledged with its arguments), serving Socket.IO under a token path as a
Jamsocket proxy does; every client sends the same 64-byte string. A tiny status server in this
process answers the ConnectResponse's ``status_url`` (ready), so no dev-server proxy sits in
the path. Each load generator runs as one process of its own; its peak RSS comes from
``wait4``.

Runs, per tool; ``jamsocket-rt load`` runs each on its default loop (uvloop where installed)
and on stdlib asyncio's (``--loop asyncio``), and the summary gives the asyncio / uvloop ratio:

- max calls/s: 10 sessions, no wait (each session: call, wait for the ack, call again);
  ``jamsocket-rt load`` also with 16 calls in flight per session; python-socketio's
  AsyncClient is compared with ``jamsocket-rt load`` on asyncio's loop, like for like;
- 1,000 sessions at 1 call/s each: p99 of the round trip, peak RSS;
- 5,000 sessions at 1 call/s each (``jamsocket-rt load`` and python-socketio only);
- 10,000 sessions at 1 call/s each, opened all at once (``jamsocket-rt load``; python-socketio
  with ``--asyncclient-10000``): all ready, errors, p99, memory per session, connect rate.

Tools: ``jamsocket-rt load`` (one process), python-socketio's AsyncClient in plain asyncio
(the same even pacing), Locust's ``contrib.socketio.SocketIOUser`` (stock
``constant_pacing``), ``jamsocket_rt.locust.SessionUser`` (``spread_pacing``), and Artillery's
socketio engine (emit + acknowledge) when it can be installed from npm (``--artillery auto``
installs it with ``--ignore-scripts`` into ~/.cache/jamsocket_rt-bench); they are in
``load_peers.py``, the summary and the targets in ``load_table.py``. This process raises its
open-file soft limit to the hard limit for 10,000 sessions (the server and the tools inherit
it). Numbers depend on the machine and on whatever else runs on it: compare the rows of one
run only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: the repository's root holds the package
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.limits import DescriptorLimitError, raise_open_file_limit
from benchmarks.load_peers import (
    ARTILLERY_VERSION,
    LOCUST_CONTRIB,
    LOCUST_OURS,
    ROOT,
    TOKEN,
    artillery_run,
    asyncclient,
    find_artillery,
    locust_run,
    run_measured,
)
from benchmarks.load_table import (
    IN_FLIGHT_ROW,
    JRT,
    LOCUST,
    LOOP_ROWS,
    OURS_USER,
    PYSIO,
    fmt,
    print_loads,
    print_table,
    print_targets,
)

NODE_MODULES = ROOT / "tests" / "node" / "node_modules"
ARTILLERY = f"Artillery {ARTILLERY_VERSION}"

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


# --------------------------------------------------------------------------- jamsocket-rt load


def jrt_load(
    response: dict[str, Any],
    sessions: int,
    rate: float,
    seconds: float,
    ramp_up: float = 500,
    **extra: Any,
) -> dict[str, Any]:
    """One ``jamsocket-rt load`` process; ``extra`` are more of its flags (``loop="asyncio"``).

    Returns:
        The figures of its JSON report, with the process's peak RSS, or ``{"error"}``.
    """
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
            f"{ramp_up:g}",
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
    # The load window opens once every session is ready or failed: with no ramp-up, its start
    # is how long connecting them all took.
    opened = report["steady_window_s"][0]
    ready = report["sessions"]["ready"]
    return {
        "calls_per_s": ops["throughput_per_s"],
        "p99_ms": ops["p99_ms"],
        "rss": rss,
        "per_session": report["resources"]["rss_per_session_bytes"],
        "errors": report["errors"]["total"],
        "cpu": report["resources"]["cpu_percent_of_one_core"],
        "bottlenecks": report["bottlenecks"],
        "ready": ready,
        "requested": report["sessions"]["requested"],
        "connect_rate": ready / opened if ramp_up == 0 and opened > 0 else None,
        "loop": report["config"].get("loop"),
    }


# --------------------------------------------------------------------------- the run


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds per measurement")
    parser.add_argument("--artillery", default="auto", help="auto, off, or its binary's path")
    parser.add_argument("--skip-5000", action="store_true", help="leave out 5,000 sessions")
    parser.add_argument("--skip-10000", action="store_true", help="leave out 10,000 sessions")
    parser.add_argument(
        "--asyncclient-10000",
        action="store_true",
        help="also python-socketio's AsyncClient at 10,000 sessions (optional: slow)",
    )
    parser.add_argument(
        "--only",
        choices=["max", "1000", "5000", "10000"],
        action="append",
        help="run only these rows",
    )
    parser.add_argument("--serve-status", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_status:
        asyncio.run(serve_status())
        return
    # The Node server and the load processes inherit this soft limit: 10,000 sessions need
    # a descriptor each (jamsocket-rt load raises its own too, or says which limit stops it).
    largest = 10000 if not args.skip_10000 else 5000
    try:
        raise_open_file_limit(largest + 256, f"{largest:,} sessions")
    except DescriptorLimitError as exc:
        print(f"warning: {exc}", flush=True)

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
        print(f"  {tool:<58} {scenario:<12}", end="", flush=True)
        result = fn(*fn_args, **fn_kw)
        results.setdefault(tool, {})[scenario] = result
        shown = result.get("error") or (
            f"{fmt(result, 'calls_per_s')} calls/s, p99 {fmt(result, 'p99_ms')}, "
            f"RSS {fmt(result, 'rss')}, errors {result.get('errors', 0)}"
            + (f", ready {result['ready']:,}" if "ready" in result else "")
        )
        print(shown, flush=True)
        time.sleep(1)  # let the server settle between runs

    def both_loops(row: str, scenario: str, sessions: int, rate: float, **kw: Any) -> None:
        """``jamsocket-rt load`` on its default loop (uvloop where installed), then asyncio's."""
        for loop_row, loop_kw in LOOP_ROWS:
            tool = JRT + row + loop_row
            measure(tool, scenario, jrt_load, response, sessions, rate, **kw, **loop_kw)

    try:
        print(f"Node socket.io echo server on {origin}; {seconds:g} s per run")
        both_loops("", "max", 10, 0, seconds=seconds)
        both_loops(IN_FLIGHT_ROW, "max", 10, 0, seconds=seconds, in_flight=16)
        measure(PYSIO, "max", asyncclient, origin, 10, 0, seconds)
        measure(LOCUST, "max", locust_run, LOCUST_CONTRIB, 10, 0, seconds, locust_env, "WSC")
        measure(OURS_USER, "max", locust_run, LOCUST_OURS, 10, 0, seconds, locust_env, "call")
        if artillery:
            measure(ARTILLERY, "max", artillery_run, artillery, port, 10, 0, seconds)

        long = max(seconds, 20.0)
        both_loops("", "1000 @ 1/s", 1000, 1, seconds=long)
        measure(PYSIO, "1000 @ 1/s", asyncclient, origin, 1000, 1, long)
        measure(
            LOCUST, "1000 @ 1/s", locust_run, LOCUST_CONTRIB, 1000, 1.0, long, locust_env, "WSC"
        )
        measure(
            OURS_USER, "1000 @ 1/s", locust_run, LOCUST_OURS, 1000, 1.0, long, locust_env, "call"
        )
        if artillery:
            measure(ARTILLERY, "1000 @ 1/s", artillery_run, artillery, port, 1000, 1.0, long)
        if not args.skip_5000:
            both_loops("", "5000 @ 1/s", 5000, 1, seconds=long)
            measure(PYSIO, "5000 @ 1/s", asyncclient, origin, 5000, 1, long)
        if not args.skip_10000:
            # All at once (no ramp-up), so that the report's connect rate is the tool's own.
            both_loops("", "10000 @ 1/s", 10000, 1, seconds=long, ramp_up=0)
            if args.asyncclient_10000:
                measure(PYSIO, "10000 @ 1/s", asyncclient, origin, 10000, 1, long)
    finally:
        for proc in (node, status):
            proc.terminate()
            proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)

    print_table(results)
    print_loads(results)
    print_targets(results)


if __name__ == "__main__":
    main()
