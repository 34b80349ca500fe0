"""``python -m jamsocket_rt.load._devserver [--backend COMMAND]``: the load runner's dev server.

Runs a :class:`~jamsocket_rt.dev.DevServer` in a process of its own (its token proxy must not
share a CPU core with the load it measures), prints one JSON line ``{"api_url": ...}`` once it
listens, and stops, terminating every backend, when its standard input closes (the load runner
exiting, even by a crash, closes it) or on SIGTERM / SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys

from ..dev import DevServer


async def _serve(backend: str | None) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    async with DevServer(backend, quiet=True) as dev:
        print(json.dumps({"api_url": dev.api_url}), flush=True)
        eof = asyncio.ensure_future(reader.read())
        stopped = asyncio.ensure_future(stop.wait())
        await asyncio.wait({eof, stopped}, return_when=asyncio.FIRST_COMPLETED)
        for task in (eof, stopped):
            task.cancel()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m jamsocket_rt.load._devserver")
    parser.add_argument("--backend", default=None, help="the backend command")
    args = parser.parse_args()
    asyncio.run(_serve(args.backend))


if __name__ == "__main__":
    main()
