"""Small asyncio helpers shared by the Session's modules."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import sys
from collections.abc import AsyncIterator, Mapping
from typing import Any

from .._errors import AuthFailed
from ..protocol.options import Auth


async def resolve_auth(auth: Auth, where: str) -> Mapping[str, Any] | None:
    """The CONNECT payload of ``auth``: the mapping itself, or what its function returns now.

    Args:
        auth: the ``auth`` option (a mapping, a sync or async function, or None).
        where: the namespace, for the error message.

    Raises:
        AuthFailed: the function raised or returned something other than a mapping (or None).
    """
    if auth is None or not callable(auth):
        return auth
    try:
        value = auth()
        if inspect.isawaitable(value):
            value = await value
    except Exception as exc:
        raise AuthFailed(
            f"auth: the function for namespace {where!r} raised {type(exc).__name__}: {exc}"
        ) from exc
    if value is not None and not isinstance(value, Mapping):
        raise AuthFailed(
            f"auth: the function for namespace {where!r} returned {type(value).__name__}, "
            "expected a mapping (or None)"
        )
    return value


@contextlib.asynccontextmanager
async def timeout(seconds: float | None) -> AsyncIterator[None]:
    """``asyncio.timeout`` for Python 3.10 too (raises TimeoutError)."""
    if seconds is None:
        yield
        return
    if sys.version_info >= (3, 11):
        async with asyncio.timeout(seconds):
            yield
        return
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    fired = False

    def expire() -> None:
        nonlocal fired
        fired = True
        task.cancel()

    handle = loop.call_later(seconds, expire)
    try:
        yield
    except asyncio.CancelledError:
        if fired:
            raise TimeoutError from None
        raise
    finally:
        handle.cancel()


class Flag:
    """``asyncio.Event``'s set / clear / wait, in 56 bytes instead of 760.

    An Event keeps a deque of waiters (624 bytes even when empty); every Session keeps one
    flag for its backend's status, so ten thousand sessions would hold 7 MiB of empty deques.
    The flag keeps one future, made only while someone waits.
    """

    __slots__ = ("_is_set", "_waiter")

    def __init__(self) -> None:
        self._is_set = False
        self._waiter: asyncio.Future[None] | None = None

    def is_set(self) -> bool:
        return self._is_set

    def set(self) -> None:
        """Sets the flag and wakes every waiter."""
        self._is_set = True
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def clear(self) -> None:
        self._is_set = False

    async def wait(self) -> None:
        """Returns once the flag is set (at once if it is)."""
        if self._is_set:
            return
        waiter = self._waiter
        if waiter is None:
            waiter = self._waiter = asyncio.get_running_loop().create_future()
        # Shielded: one waiter cancelled (a timeout) does not cancel the others' wait.
        await asyncio.shield(waiter)
