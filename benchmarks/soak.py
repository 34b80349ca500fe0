"""Soak: many sessions on one backend for a while, counting every message; reports a JSON line.

::

    python -m benchmarks.soak                        # 500 sessions, 60 s, 2 msg/s each, Node
    python -m benchmarks.soak --sessions 50 --duration 10 --backend python

Starts the dev server (in this process) with the example backend (``tests/node/backend.js``,
or the Python one), opens ``--sessions`` sessions on one backend (one key), and has each send
``--rate`` messages a second: half fire-and-forget ``record`` sends carrying (session, sequence
number), half ``echo`` calls whose round trip is timed. At the end the backend's records are
checked per session: every sequence number exactly once and in order.

The report (one JSON object on stdout) has ``errors`` (failed sends and calls, wrong answers,
disconnects), ``lost``, ``duplicated``, ``reordered``, round trips (``rtt_ms``: p50, p99, max),
and resident memory of this process (clients, dev server and proxy) and of the backend at the
start of the measured period and at its end. The exit code is 1 when anything was lost or
failed. The test suite runs a short version (``tests/test_soak.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import json
import math
import random
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import jamsocket_rt as jrt
from jamsocket_rt.dev import DevServer

ROOT = Path(__file__).resolve().parent.parent
NODE_BACKEND = ROOT / "tests" / "node" / "backend.js"


def backend_command(flavour: str) -> list[str]:
    """The example backend of that flavour ("node" falls back to "python" without node)."""
    node = shutil.which("node")
    if flavour == "node" and node is not None and NODE_BACKEND.is_file():
        return [node, str(NODE_BACKEND)]
    return [sys.executable, "-m", "jamsocket_rt.dev.example_backend"]


def rss_mib(pid: int | str = "self") -> float | None:
    """Resident memory of a process in MiB (Linux), or None where it cannot be read."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def percentile(values: list[float], p: float) -> float | None:
    """The nearest-rank percentile (None for no values)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))]


class Client:
    """One session's traffic and what went wrong with it."""

    def __init__(self, index: int, session: jrt.Session) -> None:
        self.index = index
        self.session = session
        self.sent = 0  # record sends; their sequence numbers are 0 .. sent - 1
        self.calls = 0
        self.rtts: list[float] = []
        self.errors: list[str] = []
        session.on_disconnect(self._disconnected)

    def _disconnected(self, error: BaseException | None) -> None:
        # The soak's own close() is told too ("io client disconnect"): not a failure.
        if not (isinstance(error, jrt.Disconnected) and error.reason == "io client disconnect"):
            self.errors.append(f"disconnect: {error!r}")

    async def run(self, rate: float, until: float) -> None:
        loop = asyncio.get_running_loop()
        period = 1.0 / rate
        tick = loop.time() + random.uniform(0, period)  # spread the sessions over a period
        turn = self.index  # half the sessions start with a call, half with a send
        while True:
            await asyncio.sleep(max(0.0, tick - loop.time()))
            if loop.time() >= until:
                return
            try:
                if turn % 2:
                    started = loop.time()
                    answer = await self.session.call("echo", self.calls, timeout=30)
                    self.rtts.append(loop.time() - started)
                    if answer != self.calls:
                        self.errors.append(f"echo answered {answer!r}, not {self.calls}")
                    self.calls += 1
                else:
                    await self.session.send("record", [self.index, self.sent])
                    self.sent += 1
            except Exception as exc:  # a soak counts failures, it does not stop at one
                self.errors.append(f"{type(exc).__name__}: {exc}")
            turn += 1
            tick += period
            if tick < loop.time():  # fell behind (a slow call): skip, do not burst
                tick = loop.time() + period


async def open_sessions(api: jrt.Jamsocket, count: int, parallel: int = 50) -> list[Client]:
    limit = asyncio.Semaphore(parallel)

    async def one(index: int) -> Client:
        async with limit:
            session = jrt.Session(await api.connect(key="soak"), call_timeout=30)
            await session.connect()
            return Client(index, session)

    return list(await asyncio.gather(*(one(i) for i in range(count))))


def check_records(records: list[Any], clients: list[Client]) -> dict[str, int]:
    """Lost, duplicated and reordered record sends, per the sequence numbers."""
    by_client: dict[int, list[int]] = {client.index: [] for client in clients}
    for entry in records:
        by_client.setdefault(entry[0], []).append(entry[1])
    lost = duplicated = reordered = 0
    for client in clients:
        got = by_client[client.index]
        unique = set(got)
        lost += len(set(range(client.sent)) - unique)
        duplicated += len(got) - len(unique)
        reordered += sum(1 for a, b in itertools.pairwise(got) if b < a)
    return {"lost": lost, "duplicated": duplicated, "reordered": reordered}


async def soak(sessions: int, duration: float, rate: float, flavour: str) -> dict[str, Any]:
    """Runs the soak and returns the report (see the module docstring)."""
    command = backend_command(flavour)
    async with (
        DevServer(backend=command, quiet=True) as dev,
        jrt.Jamsocket.dev_server(dev.api_url) as api,
    ):
        started = time.monotonic()
        clients = await open_sessions(api, sessions)
        connect_seconds = time.monotonic() - started
        first = clients[0].session
        await first.call("reset_records")
        (backend_pid,) = dev.backend_pids

        loop = asyncio.get_running_loop()
        warmup = min(2.0, duration / 5)
        end = loop.time() + warmup + duration
        runs = [asyncio.ensure_future(client.run(rate, end)) for client in clients]
        await asyncio.sleep(warmup)  # buffers and caches settle before memory is measured
        gc.collect()
        rss_start, backend_start = rss_mib(), rss_mib(backend_pid)
        rss_max = rss_start or 0.0
        while loop.time() < end - 1.0:
            await asyncio.sleep(1.0)
            rss_max = max(rss_max, rss_mib() or 0.0)
        await asyncio.gather(*runs)
        gc.collect()
        rss_end, backend_end = rss_mib(), rss_mib(backend_pid)

        records = await first.call("records", timeout=120)
        for client in clients:
            await client.session.close()
        errors = [error for client in clients for error in client.errors]
        rtts = [rtt for client in clients for rtt in client.rtts]

    def ms(value: float | None) -> float | None:
        return None if value is None else round(value * 1000, 2)

    def mib(value: float | None) -> float | None:
        return None if value is None else round(value, 1)

    return {
        "sessions": sessions,
        "duration_s": duration,
        "rate_per_session": rate,
        "backend": "node" if command[0].endswith("node") else "python",
        "connect_s": round(connect_seconds, 2),
        "sends": sum(client.sent for client in clients),
        "calls": sum(client.calls for client in clients),
        "errors": len(errors),
        "first_errors": errors[:5],
        **check_records(records, clients),
        "rtt_ms": {
            "p50": ms(percentile(rtts, 50)),
            "p99": ms(percentile(rtts, 99)),
            "max": ms(max(rtts, default=None)),
        },
        "rss_mib": {"start": mib(rss_start), "end": mib(rss_end), "max": mib(rss_max)},
        "backend_rss_mib": {"start": mib(backend_start), "end": mib(backend_end)},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.soak", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--sessions", type=int, default=500)
    parser.add_argument("--duration", type=float, default=60.0, help="measured seconds")
    parser.add_argument("--rate", type=float, default=2.0, help="messages a second per session")
    parser.add_argument("--backend", choices=("node", "python"), default="node")
    args = parser.parse_args(argv)
    report = asyncio.run(soak(args.sessions, args.duration, args.rate, args.backend))
    print(json.dumps(report))
    failed = report["errors"] or report["lost"] or report["duplicated"] or report["reordered"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
