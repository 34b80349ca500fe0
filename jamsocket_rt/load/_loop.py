"""The event loop that ``jamsocket-rt load`` and its worker processes run on (``--loop``).

A load generator owns its process, so unlike the library (which never sets a loop policy) it
picks the fastest loop it can: uvloop when installed (``pip install 'jamsocket_rt[load]'``).
With few sessions and one call in flight each, a run is bound by the cost of a send and a
receive system call per call, which uvloop's loop in C makes cheaper than asyncio's own
(``benchmarks/load_vs_peers.py`` measures both).
"""

from __future__ import annotations

import asyncio
import importlib
import sys
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["LOOPS", "resolve_loop", "run_on_loop", "running_loop_kind"]

T = TypeVar("T")

#: The choices of ``--loop``: ``auto`` is uvloop where it is installed, else asyncio.
LOOPS = ("auto", "asyncio", "uvloop")


def _uvloop_installed() -> bool:
    try:
        importlib.import_module("uvloop")
    except ImportError:
        return False
    return True


def resolve_loop(choice: str) -> str:
    """The loop ``choice`` stands for here: ``"asyncio"`` or ``"uvloop"``.

    Raises:
        ValueError: the choice is unknown, or uvloop was asked for and is not installed
            (the message names ``--loop`` and how to install it).
    """
    if choice not in LOOPS:
        raise ValueError(f"--loop: expected one of {', '.join(LOOPS)}, got {choice!r}")
    if choice == "asyncio":
        return "asyncio"
    if _uvloop_installed():
        return "uvloop"
    if choice == "uvloop":
        if sys.platform == "win32":
            raise ValueError("--loop: uvloop does not run on Windows (use --loop asyncio)")
        raise ValueError(
            "--loop: uvloop is not installed (pip install 'jamsocket_rt[load]', or --loop asyncio)"
        )
    return "asyncio"


def running_loop_kind() -> str:
    """``"uvloop"`` or ``"asyncio"``: the kind of the running event loop (as :data:`LOOPS`)."""
    loop_type = type(asyncio.get_running_loop())
    return "uvloop" if loop_type.__module__.startswith("uvloop") else "asyncio"


def run_on_loop(loop: str, main: Coroutine[Any, Any, T]) -> T:
    """Runs ``main`` to completion on a new loop of kind ``loop`` (as :func:`resolve_loop` gives).

    Raises:
        ValueError: as :func:`resolve_loop`.
    """
    if resolve_loop(loop) == "uvloop":
        uvloop = importlib.import_module("uvloop")
        result: T = uvloop.run(main)
        return result
    return asyncio.run(main)
