"""One status watcher per backend per event loop, shared by every Session on that backend.

A load test may open a thousand sessions on one backend; they must not open a thousand status
streams. :func:`subscribe` hands out subscriptions to a shared :class:`StatusWatcher`, which
reads ``status_url`` once, follows its stream (and ``ready_url`` where there is one) and replays
everything it has seen to each new subscriber, so every Session tells the same story.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl as ssl_module
from collections.abc import Callable
from datetime import datetime, timezone

import aiohttp

from .._api import fetch_status, follow_status_stream
from .._errors import JamsocketError
from .._models import BackendState, BackendStatus, ConnectResponse
from ..protocol.session import StatusTracker

logger = logging.getLogger("jamsocket_rt.status")

StateCallback = Callable[[BackendState], None]

#: How often ready_url is polled while the backend is not ready yet.
READY_POLL_INTERVAL = 0.25

#: How long the stream may stay silent before the first GET's status is published instead.
STREAM_SILENCE_FALLBACK = 1.0


class Subscription:
    """A Session's handle on a shared watcher; ``close()`` it when done (idempotent)."""

    def __init__(self, watcher: StatusWatcher, callback: StateCallback) -> None:
        self._watcher: StatusWatcher | None = watcher
        self.callback = callback

    def close(self) -> None:
        """Unsubscribe; a watcher left without subscribers closes in the background."""
        watcher, self._watcher = self._watcher, None
        if watcher is not None and watcher.unsubscribe(self):
            asyncio.get_running_loop().create_task(watcher.aclose())

    async def aclose(self) -> None:
        """Unsubscribe, and wait until a watcher left without subscribers has closed.

        Waiting matters where the loop stops right after (SyncSession's loop thread): a close
        left in the background would never run, leaving its HTTP session open.
        """
        watcher, self._watcher = self._watcher, None
        if watcher is not None and watcher.unsubscribe(self):
            await watcher.aclose()


class StatusWatcher:
    """Follows one backend's status for all its subscribers until ``terminated``."""

    def __init__(
        self,
        response: ConnectResponse,
        *,
        ssl: ssl_module.SSLContext | bool | None,
        on_empty: Callable[[StatusWatcher], None],
    ) -> None:
        self.status_url = response.status_url
        self._ready_url = response.ready_url
        self._ssl = ssl
        self._on_empty = on_empty
        self.history: list[BackendState] = []
        self._tracker = StatusTracker()  # the same rule as each Session's: no repeats
        self._subscribers: list[Subscription] = []
        self._http: aiohttp.ClientSession | None = None
        self._tasks: list[asyncio.Task[None]] = []

    def subscribe(self, callback: StateCallback) -> Subscription:
        subscription = Subscription(self, callback)
        self._subscribers.append(subscription)
        for state in list(self.history):
            callback(state)
        if not self._tasks:
            self._start()
        return subscription

    def unsubscribe(self, subscription: Subscription) -> bool:
        """Remove a subscription; True if none is left (the caller then closes the watcher)."""
        with contextlib.suppress(ValueError):
            self._subscribers.remove(subscription)
        if self._subscribers:
            return False
        self._on_empty(self)
        return True

    def _start(self) -> None:
        self._http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=_ssl_arg(self._ssl)))
        self._tasks.append(asyncio.create_task(self._follow(), name="jamsocket_rt status"))
        self._tasks.append(asyncio.create_task(self._read_once(), name="jamsocket_rt status get"))
        if self._ready_url:
            self._tasks.append(asyncio.create_task(self._poll_ready(), name="jamsocket_rt ready"))

    def _publish(self, state: BackendState) -> None:
        if not self._tracker.update(state):
            return
        self.history.append(state)
        for subscription in list(self._subscribers):
            try:
                subscription.callback(state)
            except Exception:  # a subscriber's bug must not stop the others' statuses
                logger.exception("status callback failed")
        if state.is_terminated:
            for task in self._tasks:
                if task is not asyncio.current_task():
                    task.cancel()

    async def _read_once(self) -> None:
        """GET the status once, in parallel with the stream.

        The stream replays the whole walk (scheduled, loading, ...) as it happens, so the GET
        only speaks when it knows something the stream has not said: that the backend has
        already terminated (no need to wait), or, if the stream stays silent (a proxy that
        buffers server-sent events), the current status.
        """
        assert self._http is not None
        try:
            state = await fetch_status(self._http, self.status_url, retries=1)
        except (JamsocketError, aiohttp.ClientError, TimeoutError, OSError) as exc:
            logger.debug("status read failed (%s); following the stream", type(exc).__name__)
            return
        if not state.is_terminated:
            await asyncio.sleep(STREAM_SILENCE_FALLBACK)
        self._publish(state)

    async def _follow(self) -> None:
        assert self._http is not None
        # While a session lives, never give up on the stream: it is how termination is heard.
        stream = follow_status_stream(self._http, self.status_url, max_retries=None)
        async with stream:
            async for state in stream:
                self._publish(state)
                if state.is_terminated:
                    return

    async def _poll_ready(self) -> None:
        assert self._http is not None
        timeout = aiohttp.ClientTimeout(total=5)
        while not self._tracker.ready and self._tracker.terminal is None:
            with contextlib.suppress(aiohttp.ClientError, TimeoutError, OSError):
                async with self._http.get(self._ready_url, timeout=timeout) as answer:
                    if answer.status == 200:
                        self._publish(
                            BackendState(
                                status=BackendStatus.READY, time=datetime.now(timezone.utc)
                            )
                        )
                        return
            await asyncio.sleep(READY_POLL_INTERVAL)

    async def aclose(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._http is not None:
            await self._http.close()
            self._http = None


def _ssl_arg(value: ssl_module.SSLContext | bool | None) -> ssl_module.SSLContext | bool:
    return True if value is None else value


_watchers: dict[tuple[int, str], StatusWatcher] = {}


def subscribe(
    response: ConnectResponse,
    callback: StateCallback,
    *,
    ssl: ssl_module.SSLContext | bool | None = None,
) -> Subscription:
    """Subscribe ``callback`` to the status of ``response``'s backend, replaying what is known.

    Must be called on the event loop that will run the watcher.
    """
    loop_id = id(asyncio.get_running_loop())
    key = (loop_id, response.status_url)
    watcher = _watchers.get(key)
    if watcher is None:

        def forget(empty: StatusWatcher) -> None:
            if _watchers.get(key) is empty:
                del _watchers[key]

        watcher = StatusWatcher(response, ssl=ssl, on_empty=forget)
        _watchers[key] = watcher
    return watcher.subscribe(callback)
