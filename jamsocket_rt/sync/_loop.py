"""The background event loop of the blocking front end, and running coroutines on it.

Every blocking object of a process (SyncSession, SyncJamsocket, SyncPlane) drives its asyncio
twin on one daemon thread's event loop: started with the first user, stopped with the last.
That works in a plain script, in any thread, and inside a running loop (a Jupyter kernel).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

__all__ = ["_LoopThread", "run_on_loop"]

T = TypeVar("T")


class _LoopThread:
    """One event loop on a daemon thread, reference-counted by the blocking objects using it."""

    _lock = threading.Lock()
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _users = 0

    @classmethod
    def acquire(cls) -> asyncio.AbstractEventLoop:
        with cls._lock:
            if cls._loop is None:
                loop = asyncio.new_event_loop()
                started = threading.Event()

                def run() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(started.set)
                    loop.run_forever()

                thread = threading.Thread(target=run, name="jamsocket_rt loop", daemon=True)
                thread.start()
                started.wait()
                cls._loop, cls._thread = loop, thread
            cls._users += 1
            return cls._loop

    @classmethod
    def release(cls) -> None:
        with cls._lock:
            cls._users -= 1
            if cls._users > 0 or cls._loop is None:
                return
            loop, thread = cls._loop, cls._thread
            cls._loop = cls._thread = None
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        loop.close()

    @classmethod
    def is_current(cls) -> bool:
        return cls._thread is threading.current_thread()


def run_on_loop(
    loop: asyncio.AbstractEventLoop | None,
    make: Callable[[], Awaitable[T]],
    timeout: float | None,
    owner: str,
) -> T:
    """Runs ``make()`` on ``loop`` and waits for its result in the calling thread.

    Args:
        loop: the background loop (from :meth:`_LoopThread.acquire`).
        make: makes the awaitable, on the loop thread.
        timeout: seconds to wait (None: no limit); the operation is then cancelled.
        owner: the blocking class, for error messages.

    Raises:
        RuntimeError: called on the loop thread itself (from a handler: it would wait for
            itself), or ``loop`` is None (not started).
        TimeoutError: ``timeout`` elapsed.
        BaseException: whatever the operation raised.
    """
    if _LoopThread.is_current():
        raise RuntimeError(
            f"a blocking {owner} method was called from a handler on the loop thread; it would "
            "wait for itself (use the asyncio API there)"
        )
    if loop is None:
        raise RuntimeError(f"the {owner} is not started")

    async def run() -> T:
        return await make()

    future = asyncio.run_coroutine_threadsafe(run(), loop)
    try:
        return future.result(timeout)
    except concurrent.futures.TimeoutError:
        if future.done():
            raise  # the operation's own TimeoutError (a call or wait_for that timed out)
        future.cancel()
        raise TimeoutError("the operation did not finish in time") from None
    except BaseException:
        # KeyboardInterrupt in a notebook cell: do not leave the operation running.
        future.cancel()
        raise
