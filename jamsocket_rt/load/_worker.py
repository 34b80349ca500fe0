"""``python -m jamsocket_rt.load._worker``: one worker process of ``jamsocket-rt load``.

Reads one JSON line from standard input, ``{"config", "worker", "anchor", "api_url"}`` (a pipe:
the configuration may hold an API token), runs a :class:`~jamsocket_rt.load._driver.Worker` and
writes each tick's snapshot to standard output as one JSON line.
"""

from __future__ import annotations

import json
import sys

from ._driver import Worker, resolve_scenario
from ._loop import run_on_loop
from .config import LoadConfig
from .stats import Snapshot


def _emit(snapshot: Snapshot) -> None:
    sys.stdout.write(json.dumps(snapshot.to_dict(), separators=(",", ":")) + "\n")
    sys.stdout.flush()


async def _run(spec: dict[str, object]) -> None:
    config = LoadConfig.from_dict(spec["config"])  # type: ignore[arg-type]
    worker = Worker(
        config,
        resolve_scenario(config),
        worker=int(spec["worker"]),  # type: ignore[call-overload]
        anchor=float(spec["anchor"]),  # type: ignore[arg-type]
        api_url=spec.get("api_url"),  # type: ignore[arg-type]
        emit=_emit,
    )
    await worker.run()


def main() -> None:
    spec = json.loads(sys.stdin.readline())
    loop = str(spec["config"].get("loop", "asyncio"))
    run_on_loop(loop, _run(spec))


if __name__ == "__main__":
    main()
