"""``jamsocket-rt demo``: the whole library at work on the embedded dev server, in seconds.

It starts the dev server with the bundled example backend, opens three sessions (two sharing
one key, so one backend; one on its own), prints each status walk as it happens, exchanges
events and calls, prints round-trip times, and shuts everything down.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from typing import Any, TextIO

from ._models import BackendState
from .asyncio.session import Session
from .dev import DevServer
from .platform import Jamsocket


class _Printer:
    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.start = time.perf_counter()
        self.colour = out.isatty()

    def __call__(self, who: str, text: str) -> None:
        elapsed = time.perf_counter() - self.start
        label = f"\033[1m{who:<8}\033[0m" if self.colour else f"{who:<8}"
        print(f"{elapsed:7.3f}s  {label} {text}", file=self.out, flush=True)


async def run_demo(out: TextIO = sys.stdout, calls: int = 200) -> dict[str, Any]:
    """Run the demo; returns a summary (used by the tests).

    Args:
        out: where to print.
        calls: how many sequential echo calls each session makes for the round-trip figures.
    """
    say = _Printer(out)
    say("dev", "starting the dev server with the example backend (python-socketio)")
    async with DevServer(output=out) as dev, Jamsocket.dev_server(dev.api_url) as api:
        say("dev", f"API at {dev.api_url}")
        plan = {"alice": "demo-room", "bob": "demo-room", "carol": None}
        sessions: dict[str, Session] = {}
        welcomes: dict[str, Any] = {}
        broadcasts: dict[str, list[Any]] = {name: [] for name in plan}

        async def open_session(name: str, key: str | None) -> Session:
            response = await api.connect(key=key) if key else await api.connect()
            where = f"key {key!r}" if key else "its own backend"
            say(
                name,
                f"connect -> backend {response.backend_id} ({where}, spawned={response.spawned})",
            )
            session = Session(response)

            def show(state: BackendState) -> None:
                say(name, f"status {state.status}")

            def welcome(message: dict[str, Any]) -> None:
                welcomes[name] = message
                say(name, f"welcome event (socket {message.get('sid')})")

            session.on_status(show)
            session.on("welcome", welcome)
            session.on("broadcast", lambda *args: broadcasts[name].append(args))
            await session.connect()
            say(name, "connected")
            return session

        opened = await asyncio.gather(*(open_session(n, k) for n, k in plan.items()))
        sessions = dict(zip(plan, opened, strict=False))

        await sessions["alice"].send("broadcast", "hello room, from alice")
        await asyncio.sleep(0.2)
        for name in plan:
            got = [b[0] for b in broadcasts[name]]
            say(name, f"broadcasts received: {got}")

        rtts: dict[str, list[float]] = {}
        for name, session in sessions.items():
            samples = []
            for i in range(calls):
                started = time.perf_counter()
                reply = await session.call("echo", {"i": i})
                samples.append(time.perf_counter() - started)
                assert reply == {"i": i}
            rtts[name] = samples
            say(
                name,
                f"{calls} echo calls: p50 {statistics.median(samples) * 1e6:.0f} us, "
                f"max {max(samples) * 1e6:.0f} us",
            )

        for session in sessions.values():
            await session.close()
        backend_ids = {s.backend_id for s in sessions.values()}
        for backend_id in backend_ids:
            assert backend_id is not None
            await api.terminate(backend_id)
        say("dev", f"terminated {len(backend_ids)} backends; stopping the dev server")
    say("demo", "done")
    return {
        "backends": len(backend_ids),
        "broadcasts": {name: len(items) for name, items in broadcasts.items()},
        "welcomes": len(welcomes),
        "rtt_p50_us": {n: statistics.median(s) * 1e6 for n, s in rtts.items()},
    }
