"""The load runner's child processes: its dev server, and its worker processes.

Both speak JSON lines over pipes: the dev server (``python -m jamsocket_rt.load._devserver``)
prints its API URL and stops when its standard input closes; each worker process
(``python -m jamsocket_rt.load._worker``) reads its configuration from standard input (it may
hold an API token, which must not appear on a command line) and writes one snapshot per tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator, Callable

from .config import LoadConfig
from .stats import Snapshot

__all__ = ["dev_server_process", "run_worker_processes"]


@contextlib.asynccontextmanager
async def dev_server_process(backend: str | None) -> AsyncIterator[str]:
    """Runs ``python -m jamsocket_rt.load._devserver`` and yields its API URL.

    On exit, closes the server's standard input, which stops it and every backend it spawned;
    a server that has not stopped 15 s later is killed.

    Args:
        backend: the backend command (None: the dev server's bundled example backend).

    Raises:
        RuntimeError: the dev server did not print its API URL (its own error went to
            standard error).
        asyncio.TimeoutError: it printed nothing within 30 s.
    """
    command = [sys.executable, "-m", "jamsocket_rt.load._devserver"]
    if backend is not None:
        command += ["--backend", backend]
    proc = await asyncio.create_subprocess_exec(
        *command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        try:
            api_url = json.loads(line)["api_url"]
        except (ValueError, KeyError, TypeError):
            raise RuntimeError("the dev server did not start (see its error above)") from None
        yield api_url
    finally:
        # Closing its stdin asks it to stop; it terminates every backend on the way out.
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 15)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()


async def run_worker_processes(
    config: LoadConfig,
    anchor: float,
    api_url: str | None,
    on_snapshot: Callable[[int, Snapshot], None],
    on_finished: Callable[[int], None],
) -> list[str]:
    """Runs ``config.processes`` worker processes to their end, relaying their snapshots.

    Args:
        config: the run; each process gets it, its worker number, ``anchor`` and ``api_url``.
        anchor: the run's start on the ``time.monotonic()`` clock, shared by every worker.
        api_url: the dev server's API, for a dev target.
        on_snapshot: called with the worker number and each snapshot as it arrives.
        on_finished: called with the number of a worker that ended before its final
            snapshot (so that the coordinator stops waiting for its ticks).

    Returns:
        One line per worker process that ended before its final snapshot; empty when all
        of them reported.
    """
    procs = []
    for worker in range(config.processes):
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "jamsocket_rt.load._worker",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=64 * 1024 * 1024,  # one snapshot per line
        )
        assert proc.stdin is not None
        spec = {"config": config.to_dict(), "worker": worker, "anchor": anchor, "api_url": api_url}
        proc.stdin.write(json.dumps(spec).encode() + b"\n")
        await proc.stdin.drain()
        proc.stdin.close()
        procs.append(proc)

    async def follow(worker: int, proc: asyncio.subprocess.Process) -> str | None:
        assert proc.stdout is not None
        final = False
        async for line in proc.stdout:
            snapshot = Snapshot.from_dict(json.loads(line))
            final = final or snapshot.final
            on_snapshot(worker, snapshot)
        code = await proc.wait()
        if not final:
            on_finished(worker)
            return f"worker process {worker} ended with status {code} before its report"
        return None

    try:
        results = await asyncio.gather(*(follow(w, p) for w, p in enumerate(procs)))
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    return [r for r in results if r is not None]
