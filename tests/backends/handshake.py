"""A python-socketio session backend that reports each socket's handshake (twin of
tests/node/handshake_backend.js).

    PORT=8080 python tests/backends/handshake.py

Namespaces "/" and "/x" answer ``handshake`` with {nsp, query, auth}: the query parsed from the
connect handler's ``environ["QUERY_STRING"]`` (Engine.IO's own EIO, transport, sid and t
included, as socket.io's ``handshake.query`` has them), the auth as the handler got it.
``echo``, ``record`` and ``records`` work as in the Node twin.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any
from urllib.parse import parse_qsl

import socketio
from aiohttp import web

sio = socketio.AsyncServer(async_mode="aiohttp", cors_allowed_origins="*")
handshakes: dict[tuple[str, str], dict[str, Any]] = {}
records: list[list[Any]] = []


def serve(nsp: str) -> None:
    async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        query = dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))
        handshakes[(nsp, sid)] = {"nsp": nsp, "query": query, "auth": auth}

    async def handshake(sid: str) -> dict[str, Any]:
        return handshakes[(nsp, sid)]

    async def echo(sid: str, *args: Any) -> Any:
        return args

    async def record(sid: str, *args: Any) -> None:
        records.append(list(args))

    async def all_records(sid: str) -> list[list[Any]]:
        return records

    sio.on("connect", connect, namespace=nsp)
    sio.on("handshake", handshake, namespace=nsp)
    sio.on("echo", echo, namespace=nsp)
    sio.on("record", record, namespace=nsp)
    sio.on("records", all_records, namespace=nsp)


for name in ("/", "/x"):
    serve(name)


async def main() -> None:
    app = web.Application()
    sio.attach(app)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", int(os.environ["PORT"]))
    await site.start()
    print(f"listening on {site._server.sockets[0].getsockname()[1]}", flush=True)  # type: ignore[union-attr]
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
