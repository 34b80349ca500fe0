"""The server processes of the benchmarks (each runs in a process of its own).

    python -m benchmarks.servers socketio --path /bench/socket.io/ [--uvloop]
    python -m benchmarks.servers status
    python -m benchmarks.servers devserver -- node benchmarks/node/bench_server.js

``socketio``
    A python-socketio AsyncServer on aiohttp with the same two events as
    ``benchmarks/node/bench_server.js``: ``echo`` acknowledges with its arguments, ``ping``
    answers ``pong`` with its arguments.
``status``
    A stand-in for a status API whose every backend is ``ready``: what a Session needs to
    talk to a server directly, without the dev server (``GET /v2/backend/ID/status`` and its
    stream, which says ``ready`` once and then stays open).
``devserver``
    The dev server (:class:`jamsocket_rt.dev.DevServer`) with the given backend command: its
    token proxy is what the proxy rows measure.

Each prints one line once it listens: ``listening on PORT`` (``devserver``: a JSON object
with ``api_url``), and exits when its standard input closes (the runner that started it is
gone) or on SIGTERM / SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from typing import Any

from aiohttp import web


async def _until_stopped() -> None:
    """Returns on SIGTERM, SIGINT or the end of standard input."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    waits: list[asyncio.Future[Any]] = [asyncio.ensure_future(stop.wait())]
    if sys.stdin is not None and not sys.stdin.isatty():
        reader = asyncio.StreamReader()
        try:
            await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        except (OSError, ValueError):
            pass  # not a pipe (e.g. /dev/null): signals only
        else:
            waits.append(asyncio.ensure_future(reader.read()))
    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    for task in waits:
        task.cancel()


async def _serve_app(app: web.Application, before_close: Callable[[], Awaitable[None]]) -> None:
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        print(f"listening on {runner.addresses[0][1]}", flush=True)
        await _until_stopped()
        await before_close()
    finally:
        await runner.cleanup()


async def serve_socketio(path: str) -> None:
    import socketio

    sio = socketio.AsyncServer(
        async_mode="aiohttp",
        logger=False,
        engineio_logger=False,
        max_http_buffer_size=64 * 1024 * 1024,
    )
    app = web.Application(client_max_size=64 * 1024 * 1024)
    sio.attach(app, socketio_path=path.strip("/"))

    async def echo(sid: str, *args: Any) -> tuple[Any, ...]:
        return args  # a tuple is acknowledged as that many arguments

    async def ping(sid: str, *args: Any) -> None:
        await sio.emit("pong", args, to=sid)

    sio.on("echo", echo)
    sio.on("ping", ping)

    async def close() -> None:
        await sio.shutdown()

    await _serve_app(app, close)


async def serve_status() -> None:
    ready = json.dumps(
        {"status": "ready", "time": datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")}
    )

    async def status(request: web.Request) -> web.Response:
        return web.Response(text=ready, content_type="application/json")

    async def stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        await response.write(f"data:{ready}\n\n".encode())
        await asyncio.Event().wait()  # open until the client goes
        return response

    app = web.Application()
    app.router.add_get("/v2/backend/{backend_id}/status", status)
    app.router.add_get("/v2/backend/{backend_id}/status/stream", stream)

    async def nothing() -> None:
        pass

    await _serve_app(app, nothing)


async def serve_devserver(backend: list[str]) -> None:
    from jamsocket_rt.dev import DevServer

    async with DevServer(backend=backend, quiet=True) as dev:
        print(json.dumps({"api_url": dev.api_url}), flush=True)
        await _until_stopped()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.servers")
    sub = parser.add_subparsers(dest="what", required=True)
    sio = sub.add_parser("socketio", help="a python-socketio AsyncServer")
    sio.add_argument("--path", default="/socket.io/")
    sio.add_argument("--uvloop", action="store_true", help="run on uvloop")
    sub.add_parser("status", help="a status API whose backends are all ready")
    dev = sub.add_parser("devserver", help="the dev server with a backend command")
    dev.add_argument("backend", nargs="+")
    args = parser.parse_args(argv)
    if args.what == "socketio":
        coro: Awaitable[None] = serve_socketio(args.path)
        if args.uvloop:
            import uvloop

            uvloop.run(coro)  # type: ignore[arg-type]
            return
    elif args.what == "status":
        coro = serve_status()
    else:
        coro = serve_devserver(args.backend)
    asyncio.run(coro)  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
