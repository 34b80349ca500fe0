"""The Python clients of the benchmarks, one per process, driven by the runner.

    python -m benchmarks.client --client session|raw [--loop asyncio|uvloop]
        [--json default|stdlib|orjson] [--parser json|msgpack] SPEC_JSON

``session`` is a :class:`jamsocket_rt.Session` with its defaults (websocket transport, the
default call timeout of 30 s); ``--json`` picks its JSON codec (default: orjson where
installed), ``--parser`` its Socket.IO parser (``msgpack`` needs a server that speaks it).
``raw`` is python-socketio's ``AsyncClient()`` with its default settings, connected with
``transports=["websocket"]`` as every client in the benchmarks. ``--loop`` picks the event
loop.

It speaks the same protocol as ``benchmarks/node/bench_client.js``. SPEC_JSON is an object:

``{"mode": "roundtrip", "url", "path", "response", "warmup_first"}``
    Connects (``url`` and ``path`` for python-socketio, ``response``, a ConnectResponse as a
    dict, for the Session), runs ``warmup_first`` seconds of pipelined calls, prints
    ``{"ready": true, "versions": {...}}`` and then runs one scenario per line of standard
    input until it closes, printing one result line each. A scenario is
    ``{"id", "kind", "payload", "window", "duration", "warmup"}``:

    - ``seq``: one ``echo`` call at a time: ``count``, ``rate`` (calls/s), ``p50_us``,
      ``p99_us``;
    - ``pipe``: ``window`` callers, each awaiting its ``echo`` call before the next: ``rate``;
    - ``echo``: ``window`` ``ping`` events in flight, each ``pong`` sending the next: ``rate``
      (pongs/s).

    Each runs ``warmup`` seconds unmeasured, then ``duration`` seconds; every answer is checked.
    Results also give ``cpu_us``, this process's CPU time per message.

``{"mode": "many", "url", "path", "response", "sessions", "call_seconds", "payload"}``
    Raises the soft open-file limit to the hard one when ``sessions`` need it (or fails saying
    which limit stops it). Opens one connection (not counted), then ``sessions`` more at once:
    ``connected`` and ``connect_errors``, ``connect_rate`` (connections/s until all are up or
    failed), ``rss_kib_per_session`` (resident memory added per connection, read after
    :func:`trim_heap`); then, the heap frozen (``gc.freeze``), each connection calls ``echo``
    once a second for ``call_seconds``, evenly phased, bounded by the client's own call
    timeout: ``p50_ms``, ``p99_ms``, ``call_errors``.
    Prints one line and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import importlib.metadata
import json
import platform
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any

from .limits import raise_open_file_limit

if TYPE_CHECKING:  # the raw client's processes never import jamsocket_rt
    from jamsocket_rt.protocol.options import ParserName

Call = Callable[[str, Any], Awaitable[Any]]
Send = Callable[[str, Any], Awaitable[Any]]


def payload_of(size: int) -> str:
    return "x" * size


def trim_heap() -> None:
    """Hands the heap's free pages back to the system (glibc's ``malloc_trim``; elsewhere a
    no-op), so that a reading of the resident set counts what is in use.

    Without it, "memory added per session" depends on how much of the heap start-up happened
    to leave free: sessions that fit in those pages look as if they cost nothing, and a library
    that starts leaner looks as if its sessions cost more.
    """
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)


def rss_kib() -> float:
    """This process's resident memory in KiB (Linux)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return float(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    return values[min(len(values) - 1, int(len(values) * q))]


# --------------------------------------------------------------------------- measurements


async def sequential(call: Call, payload: str, seconds: float) -> dict[str, Any]:
    clock = time.perf_counter
    times: list[float] = []
    append = times.append
    start = now = clock()
    deadline = start + seconds
    while now < deadline:
        before = now
        answer = await call("echo", payload)
        now = clock()
        if answer != payload:
            raise AssertionError("echo answered something else")
        append(now - before)
    elapsed = now - start
    times.sort()
    p50, p99 = _percentile(times, 0.5), _percentile(times, 0.99)
    return {
        "count": len(times),
        "elapsed": elapsed,
        "rate": len(times) / elapsed,
        "p50_us": None if p50 is None else p50 * 1e6,
        "p99_us": None if p99 is None else p99 * 1e6,
    }


async def pipelined(call: Call, payload: str, window: int, seconds: float) -> dict[str, Any]:
    clock = time.perf_counter
    count = 0
    start = clock()
    deadline = start + seconds

    async def lane() -> None:
        # At least one call per lane, even when the lanes start after a tiny window has
        # passed (the smoke run's, on a loaded machine): a row is never empty.
        nonlocal count
        while True:
            if await call("echo", payload) != payload:
                raise AssertionError("echo answered something else")
            count += 1
            if clock() >= deadline:
                return

    await asyncio.gather(*(lane() for _ in range(window)))
    elapsed = clock() - start
    return {"count": count, "elapsed": elapsed, "rate": count / elapsed}


class Pongs:
    """The ``pong`` handler: counts pongs and frees a slot of the echo window for each."""

    def __init__(self) -> None:
        self.slots: asyncio.Semaphore | None = None
        self.payload: Any = None
        self.count = 0
        self.wrong = 0

    def __call__(self, answer: Any = None, *more: Any) -> None:
        if answer != self.payload or more:
            self.wrong += 1
        self.count += 1
        if self.slots is not None:
            self.slots.release()


async def echo(
    send: Send, pongs: Pongs, payload: str, window: int, seconds: float
) -> dict[str, Any]:
    clock = time.perf_counter
    slots = asyncio.Semaphore(window)
    pongs.slots, pongs.payload, pongs.count, pongs.wrong = slots, payload, 0, 0
    acquire = slots.acquire
    start = clock()
    deadline = start + seconds
    try:
        while True:  # at least one ping, as pipelined() makes at least one call per lane
            await acquire()
            await send("ping", payload)
            if clock() >= deadline:
                break
        for _ in range(window):  # every pong in flight
            await asyncio.wait_for(acquire(), 30)
    finally:
        pongs.slots = None
    elapsed = clock() - start
    if pongs.wrong:
        raise AssertionError(f"{pongs.wrong} pongs carried something else")
    return {"count": pongs.count, "elapsed": elapsed, "rate": pongs.count / elapsed}


async def run_scenario(
    call: Call, send: Send, pongs: Pongs, scenario: dict[str, Any], seconds: float
) -> dict[str, Any]:
    payload = payload_of(scenario["payload"])
    kind = scenario["kind"]
    if kind == "seq":
        return await sequential(call, payload, seconds)
    if kind == "pipe":
        return await pipelined(call, payload, scenario["window"], seconds)
    if kind == "echo":
        return await echo(send, pongs, payload, scenario["window"], seconds)
    raise ValueError(f"unknown scenario kind {kind!r}")


async def measure(call: Call, send: Send, pongs: Pongs, scenario: dict[str, Any]) -> dict[str, Any]:
    if scenario.get("warmup"):
        await run_scenario(call, send, pongs, scenario, scenario["warmup"])
    if scenario["duration"] >= 0.1:  # (not in the smoke run, where it would dominate)
        gc.collect()
    cpu = time.process_time()
    result = await run_scenario(call, send, pongs, scenario, scenario["duration"])
    result["cpu_us"] = (time.process_time() - cpu) / max(1, result["count"]) * 1e6
    return result


# --------------------------------------------------------------------------- clients


class Opened:
    """A connected client: what the measurements need of it."""

    def __init__(
        self, call: Call, send: Send, close: Callable[[], Awaitable[Any]], pongs: Pongs
    ) -> None:
        self.call = call
        self.send = send
        self.close = close
        self.pongs = pongs


def session_factory(
    json_choice: str, parser: ParserName = "json"
) -> Callable[[dict[str, Any]], Any]:
    import jamsocket_rt as jrt

    transport_factory = None
    if json_choice != "default":
        from jamsocket_rt.protocol.packets import OrjsonCodec, StdlibJsonCodec
        from jamsocket_rt.transport.websocket import WebSocketTransport

        codec = OrjsonCodec() if json_choice == "orjson" else StdlibJsonCodec()

        def transport_factory(target: Any) -> Any:
            return WebSocketTransport(json=codec)

    parsed: dict[str, Any] = {}

    def make(response: dict[str, Any]) -> Any:
        # As a program would: one ConnectResponse, parsed once, for every session it opens.
        if "response" not in parsed:
            parsed["response"] = jrt.ConnectResponse.from_dict(response)
        return jrt.Session(parsed["response"], transport_factory=transport_factory, parser=parser)

    return make


async def open_session(spec: dict[str, Any], json_choice: str, parser: ParserName) -> Opened:
    session = session_factory(json_choice, parser)(spec["response"])
    pongs = Pongs()
    session.on("pong", pongs)
    await session.connect()
    return Opened(session.call, session.send, session.close, pongs)


def raw_client() -> Any:
    import socketio

    return socketio.AsyncClient()


async def raw_connect(sio: Any, spec: dict[str, Any], wait_timeout: float = 1) -> None:
    await sio.connect(
        spec["url"],
        socketio_path=spec["path"].strip("/"),
        transports=["websocket"],
        wait_timeout=wait_timeout,
    )


async def open_raw(spec: dict[str, Any]) -> Opened:
    sio = raw_client()
    pongs = Pongs()
    sio.on("pong", pongs)
    await raw_connect(sio, spec)
    return Opened(sio.call, sio.emit, sio.disconnect, pongs)


def versions(args: argparse.Namespace) -> dict[str, str]:
    found = {"python": platform.python_version(), "loop": args.loop}
    for name in (
        "jamsocket_rt",
        "python-socketio",
        "python-engineio",
        "aiohttp",
        "orjson",
        "uvloop",
        "msgpack",
    ):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found[name] = importlib.metadata.version(name)
    if args.client == "session":
        from jamsocket_rt.protocol.packets import default_json

        found["json"] = (
            type(default_json()).__name__
            if args.json == "default"
            else {"orjson": "OrjsonCodec", "stdlib": "StdlibJsonCodec"}[args.json]
        )
        found["parser"] = args.parser
    else:
        found["json"] = "stdlib json (python-socketio's default)"
    return found


def emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def roundtrip(args: argparse.Namespace, spec: dict[str, Any]) -> None:
    opened = await (
        open_session(spec, args.json, args.parser) if args.client == "session" else open_raw(spec)
    )
    try:
        if spec.get("warmup_first"):
            await pipelined(opened.call, payload_of(64), 64, spec["warmup_first"])
        emit({"ready": True, "client": args.client, "versions": versions(args)})
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while line := await reader.readline():
            if not line.strip():
                continue
            scenario = json.loads(line)
            try:
                result = await measure(opened.call, opened.send, opened.pongs, scenario)
            except Exception as exc:
                result = {"error": f"{type(exc).__name__}: {exc}"}
            emit({"id": scenario["id"], **result})
    finally:
        await opened.close()


async def many(args: argparse.Namespace, spec: dict[str, Any]) -> dict[str, Any]:
    n = spec["sessions"]
    if args.client == "session":
        make = session_factory(args.json, args.parser)

        async def open_one() -> tuple[Call, Callable[[], Awaitable[Any]]]:
            session = make(spec["response"])
            await session.connect()
            return session.call, session.close
    else:

        async def open_one() -> tuple[Call, Callable[[], Awaitable[Any]]]:
            sio = raw_client()
            # python-socketio waits 1 s for the namespace by default, too short for a crowd.
            await raw_connect(sio, spec, wait_timeout=30)
            return sio.call, sio.disconnect

    # A descriptor per session, plus the interpreter's own and the first connection's.
    raise_open_file_limit(n + 64, f"{n:,} sessions in one process")
    first = await open_one()  # not counted: what all connections share is then there
    gc.collect()
    trim_heap()
    before = rss_kib()
    started = time.perf_counter()
    attempts = await asyncio.gather(*(open_one() for _ in range(n)), return_exceptions=True)
    connect_seconds = time.perf_counter() - started
    opened = [a for a in attempts if not isinstance(a, BaseException)]
    failed = [a for a in attempts if isinstance(a, BaseException)]
    if not opened:
        raise failed[0]
    connected = len(opened)
    await asyncio.sleep(0.3)  # let the buffers settle
    gc.collect()
    trim_heap()
    after = rss_kib()
    # What is open now lives until the end: out of the collector's generations, as a program
    # holding thousands of connections would do (gc.freeze), a full collection would
    # otherwise scan every session's objects again and stall the loop for tens of ms.
    gc.freeze()

    # One call a second on each connection, evenly phased, on an absolute schedule.
    payload = payload_of(spec["payload"])
    calls = max(1, round(spec["call_seconds"]))
    clock = time.perf_counter
    origin = clock() + 0.05
    times: list[float] = []
    errors = 0

    async def caller(index: int, call: Call) -> None:
        nonlocal errors
        for k in range(calls):
            wait = origin + k + index / connected - clock()
            if wait > 0:
                await asyncio.sleep(wait)
            before_call = clock()
            try:
                # The clients' own call timeouts (30 s, python-socketio's 60 s) bound a lost
                # answer: asyncio.wait_for would add a task and a timer per call, the
                # harness's cost rather than the library's (a fifth of the CPU at 10,000
                # sessions).
                answer = await call("echo", payload)
                if answer != payload:
                    raise AssertionError("wrong answer")
                times.append(clock() - before_call)
            except Exception:
                errors += 1

    await asyncio.gather(*(caller(i, call) for i, (call, _) in enumerate(opened)))
    await asyncio.gather(*(close() for _, close in opened), return_exceptions=True)
    await first[1]()
    times.sort()
    p50, p99 = _percentile(times, 0.5), _percentile(times, 0.99)
    return {
        "sessions": n,
        "connected": connected,
        "connect_errors": len(failed),
        **({"connect_error": f"{type(failed[0]).__name__}: {failed[0]}"} if failed else {}),
        "connect_seconds": connect_seconds,
        "connect_rate": connected / connect_seconds,
        "rss_kib_per_session": (after - before) / connected,
        "calls": len(times),
        "call_errors": errors,
        "p50_ms": None if p50 is None else p50 * 1e3,
        "p99_ms": None if p99 is None else p99 * 1e3,
    }


async def amain(args: argparse.Namespace) -> None:
    spec = json.loads(args.spec)
    try:
        if spec["mode"] == "many":
            emit({"client": args.client, "versions": versions(args), **await many(args, spec)})
        else:
            await roundtrip(args, spec)
    except Exception as exc:
        emit({"client": args.client, "error": f"{type(exc).__name__}: {exc}"})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.client")
    parser.add_argument("--client", choices=("session", "raw"), required=True)
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    parser.add_argument("--json", choices=("default", "stdlib", "orjson"), default="default")
    parser.add_argument("--parser", choices=("json", "msgpack"), default="json")
    parser.add_argument("spec")
    args = parser.parse_args(argv)
    run_on(args.loop, amain(args))


def run_on(loop: str, main: Coroutine[Any, Any, None]) -> None:
    """Runs ``main`` on asyncio's own loop (``"asyncio"``) or on uvloop (``"uvloop"``)."""
    if loop == "uvloop":
        import uvloop

        uvloop.run(main)
    else:
        asyncio.run(main)


if __name__ == "__main__":
    main()
