"""Waiting for a condition that nothing signals: poll it, with a deadline.

Prefer waiting on what announces the change (an ``asyncio.Event``, a future, a callback, an
acknowledgement that comes after it); poll with :func:`eventually` only where nothing does.
Never wait with a fixed ``sleep()``: too short on a loaded machine, too long everywhere else.

::

    await eventually(lambda: proxy.open_connections == 0)
    port = eventually_sync(lambda: find_port(log()), timeout=15, message=log)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeAlias, TypeVar

T = TypeVar("T")

#: Seconds to wait by default: far beyond what any condition needs on an idle machine.
TIMEOUT = 10.0
#: Seconds between two checks by default.
INTERVAL = 0.02

#: What a failure says: a text, or a callable that makes one when it fails.
Message: TypeAlias = "str | Callable[[], object]"


def _failure(timeout: float, message: Message) -> AssertionError:
    detail = message() if callable(message) else message
    text = f"the condition did not hold within {timeout} s"
    return AssertionError(f"{text}: {detail}" if detail else text)


async def eventually(
    predicate: Callable[[], T | None],
    *,
    timeout: float = TIMEOUT,
    interval: float = INTERVAL,
    message: Message = "",
) -> T:
    """Calls ``predicate()`` until it returns a true value, and returns that value (so a
    predicate may return what it found, or None while there is nothing yet).

    It is called at once, then every ``interval`` seconds (the event loop runs meanwhile), and
    once more at the deadline. Exceptions from it propagate.

    Args:
        predicate: a cheap, synchronous check.
        timeout: seconds before giving up.
        interval: seconds between checks.
        message: what the failure says, or a callable that makes it then (for state to show).

    Raises:
        AssertionError: ``predicate()`` was still false after ``timeout`` seconds.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = predicate()
        if value:
            return value
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise _failure(timeout, message)
        await asyncio.sleep(min(interval, remaining))


def eventually_sync(
    predicate: Callable[[], T | None],
    *,
    timeout: float = TIMEOUT,
    interval: float = INTERVAL,
    message: Message = "",
) -> T:
    """:func:`eventually` for synchronous code: blocks the thread between checks.

    ``interval=0`` suits a predicate that blocks for a while itself (a ``select()``...).

    Raises:
        AssertionError: ``predicate()`` was still false after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _failure(timeout, message)
        time.sleep(min(interval, remaining))
