"""One status watcher per backend per event loop, shared by every Session on that backend.

A load test may open a thousand sessions on one backend; they must not open a thousand status
streams. :func:`subscribe` hands out subscriptions to a shared :class:`StatusWatcher`, which
reads ``status_url`` once, follows its stream (and ``ready_url`` where there is one) and replays
everything it has seen to each new subscriber, so every Session tells the same story.

A stream that drops is resumed (with backoff) for as long as the backend lives; what the server
says twice (a replayed history) is told once. A stream that cannot be trusted (a body that is
not a status stream, a status that does not parse, a line over the limit, a refusal that
retrying will not change, a certificate that does not verify) ends the watcher: its subscribers
get the error, and the next subscription starts a fresh watcher.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl as ssl_module
from collections.abc import Callable
from datetime import datetime, timezone
from urllib.parse import urlsplit

import aiohttp

from .._errors import ApiConnectionError, JamsocketError
from .._models import BackendState, BackendStatus, ConnectResponse
from ..platform import fetch_status, follow_status_stream
from ..protocol.proxy import ProxySetting, proxy_for
from ..protocol.session import StatusTracker

logger = logging.getLogger("jamsocket_rt.status")

StateCallback = Callable[[BackendState], None]
ErrorCallback = Callable[[JamsocketError], None]

#: How often ready_url is polled while the backend is not ready yet.
READY_POLL_INTERVAL = 0.25

#: How long the stream may stay silent before the first GET's status is published instead.
STREAM_SILENCE_FALLBACK = 1.0

#: Seconds allowed for a probe of the status (see :meth:`Subscription.probe`).
PROBE_TIMEOUT = 5.0


class Subscription:
    """A Session's handle on a shared watcher; ``close()`` it when done (idempotent)."""

    def __init__(
        self, watcher: StatusWatcher, callback: StateCallback, on_error: ErrorCallback | None
    ) -> None:
        self._watcher: StatusWatcher | None = watcher
        self.callback = callback
        self.on_error = on_error

    @property
    def last_problem(self) -> str | None:
        """Why the status could not be read lately (for error messages), or None."""
        return self._watcher.last_problem if self._watcher is not None else None

    async def probe(self) -> None:
        """Read the status once now; a new status reaches every subscriber as usual.

        For a moment when the stream may be behind (the proxy refused a token: has the
        backend ended?). Failures are ignored: the stream goes on.
        """
        if self._watcher is not None:
            await self._watcher.probe()

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
        proxy: ProxySetting = None,
        on_empty: Callable[[StatusWatcher], None],
    ) -> None:
        self.status_url = response.status_url
        self._ready_url = response.ready_url
        self._ssl = ssl
        self._proxy = proxy
        self._on_empty = on_empty
        self.history: list[BackendState] = []
        self._tracker = StatusTracker()  # the same rule as each Session's: no repeats
        self._subscribers: list[Subscription] = []
        self._http: aiohttp.ClientSession | None = None
        self._tasks: list[asyncio.Task[None]] = []
        #: The error that ended the watcher, if one did.
        self.error: JamsocketError | None = None
        #: The last failure to read the status (a description without credentials).
        self.last_problem: str | None = None

    def subscribe(
        self, callback: StateCallback, on_error: ErrorCallback | None = None
    ) -> Subscription:
        subscription = Subscription(self, callback, on_error)
        self._subscribers.append(subscription)
        for state in list(self.history):
            callback(state)
        if self.error is not None:
            if on_error is not None:
                on_error(self.error)
        elif not self._tasks:
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
            self._stop_tasks()

    def _stop_tasks(self) -> None:
        for task in self._tasks:
            if task is not asyncio.current_task():
                task.cancel()

    def _fail(self, error: JamsocketError) -> None:
        """The status cannot be followed any more: tell every subscriber, and stop."""
        if self.error is not None or self._tracker.terminal is not None:
            return
        logger.warning("status of %s cannot be followed: %s", self._where(), error)
        self.error = error
        self._on_empty(self)  # the next subscription starts afresh
        self._stop_tasks()
        for subscription in list(self._subscribers):
            if subscription.on_error is None:
                continue
            try:
                subscription.on_error(error)
            except Exception:  # a subscriber's bug must not stop the others'
                logger.exception("status error callback failed")

    def _where(self) -> str:
        # Origin and path only: a query string could carry a credential.
        parts = urlsplit(self.status_url)
        return f"{parts.scheme}://{parts.netloc}{parts.path}"

    async def probe(self) -> None:
        if self._http is None or self.error is not None or self._tracker.terminal is not None:
            return
        try:
            state = await fetch_status(
                self._http, self.status_url, timeout=PROBE_TIMEOUT, proxy=self._proxy
            )
        except (JamsocketError, aiohttp.ClientError, TimeoutError, OSError) as exc:
            self.last_problem = f"{type(exc).__name__}: {exc}"
            return
        self._publish(state)

    async def _read_once(self) -> None:
        """GET the status once, in parallel with the stream.

        The stream replays the whole walk (scheduled, loading, ...) as it happens, so the GET
        only speaks when it knows something the stream has not said: that the backend has
        already terminated (no need to wait), or, if the stream stays silent (a proxy that
        buffers server-sent events), the current status.
        """
        assert self._http is not None
        try:
            state = await fetch_status(self._http, self.status_url, retries=1, proxy=self._proxy)
        except (JamsocketError, aiohttp.ClientError, TimeoutError, OSError) as exc:
            self.last_problem = f"{type(exc).__name__}: {exc}"
            unverified = _certificate_failed(exc)
            if unverified is not None:
                # Retrying cannot make a certificate verify: say so now, not at ReadyTimeout.
                host = urlsplit(self.status_url).netloc
                self._fail(
                    ApiConnectionError(
                        f"the TLS certificate of {host} did not verify ({unverified}); pass "
                        "ssl= an SSLContext that trusts it (or ssl=False to skip verification)",
                        host,
                    )
                )
                return
            logger.debug("status read failed (%s); following the stream", type(exc).__name__)
            return
        if not state.is_terminated:
            await asyncio.sleep(STREAM_SILENCE_FALLBACK)
        self._publish(state)

    async def _follow(self) -> None:
        assert self._http is not None
        # While a session lives, never give up on the stream: it is how termination is heard.
        # Only what retrying cannot mend (InvalidResponse, a 4xx) ends it.
        stream = follow_status_stream(
            self._http, self.status_url, max_retries=None, proxy=self._proxy
        )
        try:
            async with stream:
                async for state in stream:
                    self._publish(state)
                    if state.is_terminated:
                        return
        except JamsocketError as exc:
            self._fail(exc)

    async def _poll_ready(self) -> None:
        assert self._http is not None
        timeout = aiohttp.ClientTimeout(total=5)
        through = proxy_for(self._ready_url, self._proxy)
        proxy = None if through is None else through.url
        while not self._tracker.ready and self._tracker.terminal is None:
            with contextlib.suppress(aiohttp.ClientError, TimeoutError, OSError):
                async with self._http.get(self._ready_url, timeout=timeout, proxy=proxy) as answer:
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


def _certificate_failed(exc: BaseException) -> str | None:
    """The verification error somewhere in ``exc``'s chain, as text, or None."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        # (aiohttp's error is an ssl.CertificateError too: ask for it first.)
        if isinstance(current, aiohttp.ClientConnectorCertificateError):
            return str(current.certificate_error)
        if isinstance(current, ssl_module.SSLCertVerificationError):
            return current.verify_message or str(current)
        current = current.__cause__ or current.__context__
    return None


_watchers: dict[tuple[int, str], StatusWatcher] = {}


def subscribe(
    response: ConnectResponse,
    callback: StateCallback,
    *,
    ssl: ssl_module.SSLContext | bool | None = None,
    proxy: ProxySetting = None,
    on_error: ErrorCallback | None = None,
) -> Subscription:
    """Subscribe ``callback`` to the status of ``response``'s backend, replaying what is known.

    ``on_error`` is called once if the status can no longer be followed (see the module
    docstring). Must be called on the event loop that will run the watcher.
    """
    loop_id = id(asyncio.get_running_loop())
    # (Like ssl, the proxy is the first subscriber's: sessions of one program share them.)
    key = (loop_id, response.status_url)
    watcher = _watchers.get(key)
    if watcher is None:

        def forget(empty: StatusWatcher) -> None:
            if _watchers.get(key) is empty:
                del _watchers[key]

        watcher = StatusWatcher(response, ssl=ssl, proxy=proxy, on_empty=forget)
        _watchers[key] = watcher
    return watcher.subscribe(callback, on_error)
