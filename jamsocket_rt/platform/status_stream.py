"""Following a backend's status stream, and reading its status once, over HTTP.

:class:`StatusStream` feeds the bytes of a server-sent events stream to the sans-I/O
:class:`~jamsocket_rt.protocol.sse.StatusDecoder` and resumes the stream, with a backoff, when
it drops. :func:`fetch_status` and :func:`follow_status_stream` need only a status URL (a
ConnectResponse's own), no account.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator
from types import TracebackType
from typing import Final, Literal

import aiohttp
import attrs

from .._errors import ApiConnectionError, ApiError, ApiTimeout, ConfigurationError, JamsocketError
from .._models import BackendState, ConnectResponse
from ..protocol.api import (
    PLANE_KEEPALIVE_READ_TIMEOUT,
    origin,
    parse_model,
    promises_keepalives,
    status_request,
    stream_request,
    stream_url_for,
)
from ..protocol.proxy import ProxySetting
from ..protocol.session import Backoff
from ..protocol.sse import DEFAULT_MAX_LINE_LENGTH, StatusDecoder
from ._http import DEFAULT_TIMEOUT, Timeout, Transport, where

__all__ = [
    "AUTO",
    "DEFAULT_MAX_RETRIES",
    "ReadTimeout",
    "StatusStream",
    "fetch_status",
    "follow_status_stream",
    "new_backoff",
    "resolve_read_timeout",
    "retryable_stream_error",
]

logger = logging.getLogger("jamsocket_rt.api")

#: Consecutive failed attempts after which a status stream gives up.
DEFAULT_MAX_RETRIES = 10

AUTO: Final = "auto"
#: Seconds without data before a stream is resumed; None: never; ``"auto"``: where promised.
ReadTimeout = float | None | Literal["auto"]


def retryable_stream_error(exc: ApiError) -> bool:
    """True for an answer worth trying again: 408, 429 and any 5xx."""
    return exc.http_status in (408, 429) or exc.http_status >= 500


def resolve_read_timeout(read_timeout: ReadTimeout, stream_url: str) -> float | None:
    """The read timeout of a stream: ``"auto"`` becomes 45 s where keep-alives are promised.

    Raises:
        ConfigurationError: not a positive number, None or ``"auto"``.
    """
    if read_timeout == AUTO:
        return PLANE_KEEPALIVE_READ_TIMEOUT if promises_keepalives(stream_url) else None
    if read_timeout is not None and (isinstance(read_timeout, bool) or read_timeout <= 0):
        raise ConfigurationError("read_timeout must be a positive number of seconds, or None")
    return read_timeout


class StatusStream:
    """The new statuses of one backend, as an async iterator of :class:`~jamsocket_rt.BackendState`.

    Each status is delivered once, in lifecycle order; the iteration ends after
    ``terminated``. When the stream drops, is cut, or stays silent past the read timeout, it
    is resumed after an exponential backoff with jitter (the server's ``retry:`` is honoured
    as a minimum), sending ``Last-Event-ID`` where the server gave event ids; after
    ``max_retries`` consecutive attempts that delivered nothing new, the last error is raised.

    Use it with ``async for``; ``aclose()`` it (or use ``async with``) if you stop early.
    Cancelling a pending step (for example with ``asyncio.wait_for``) ends the stream, as it
    ends any async generator: keep one task reading it and hand states over instead.

    Raises (from iteration):
        ApiError: the server refused the stream (4xx other than 408 and 429 are not retried).
        InvalidResponse: the server sent something that is not a status stream.
        ApiConnectionError, ApiTimeout: the retries are exhausted.
    """

    def __init__(
        self,
        transport: Transport,
        stream_url: str,
        *,
        decoder: StatusDecoder,
        read_timeout: float | None,
        backoff: Backoff,
        max_retries: int | None,
        owns_transport: bool = False,
    ) -> None:
        self.url = stream_url
        self._transport = transport
        self._decoder = decoder
        self._read_timeout = read_timeout
        self._backoff = backoff
        self._max_retries = max_retries
        self._owns_transport = owns_transport
        self._closing = False
        self._wake = asyncio.Event()
        self._response: aiohttp.ClientResponse | None = None
        self._running = False
        self._iterator = self._run()

    @property
    def last_state(self) -> BackendState | None:
        """The latest status delivered."""
        return self._decoder.last_state

    @property
    def last_event_id(self) -> str:
        """The last event id received (``""``: none); sent as ``Last-Event-ID`` on resume."""
        return self._decoder.last_event_id

    @property
    def done(self) -> bool:
        """True once ``terminated`` has been delivered."""
        return self._decoder.done

    def __aiter__(self) -> StatusStream:
        return self

    async def __anext__(self) -> BackendState:
        self._running = True
        try:
            return await self._iterator.__anext__()
        finally:
            self._running = False

    async def __aenter__(self) -> StatusStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop following the stream and release its connection. Idempotent.

        An iteration in progress in another task ends (without error) soon after.
        """
        self._closing = True
        self._wake.set()
        if self._response is not None:
            self._response.close()
        if not self._running:
            # A generator suspended in another task's __anext__ cannot be closed from here;
            # closing the response and waking it makes it return by itself.
            await self._iterator.aclose()
        await self._release()

    async def _release(self) -> None:
        if self._owns_transport:
            await self._transport.aclose()

    async def _run(self) -> AsyncGenerator[BackendState, None]:
        failures = 0
        try:
            while not self._decoder.done and not self._closing:
                request = stream_request(self.url, self._decoder.last_event_id)
                error: JamsocketError | None = None
                final: list[BackendState] = []
                try:
                    async with self._transport.stream(request, self._read_timeout) as response:
                        self._response = response
                        self._decoder.new_connection()
                        while not self._closing:
                            chunk = await self._transport.read(
                                response, request, self._read_timeout
                            )
                            if not chunk:
                                break
                            states = self._decoder.feed(chunk)
                            if states:
                                failures = 0
                                self._backoff.reset()
                            if self._decoder.done:
                                final = states
                                break
                            for state in states:
                                yield state
                except (ApiConnectionError, ApiTimeout) as exc:
                    error = exc
                except ApiError as exc:
                    if not retryable_stream_error(exc):
                        raise
                    error = exc
                finally:
                    self._response = None
                if final:
                    # Release the connection before the last yield: a consumer that stops at
                    # ``terminated`` (without closing us) must not leave it open.
                    await self._release()
                    for state in final:
                        yield state
                    return
                if self._closing:
                    return
                failures += 1
                if self._max_retries is not None and failures > self._max_retries:
                    if error is not None:
                        raise error
                    host = origin(self.url)
                    raise ApiConnectionError(
                        f"the status stream from {host} kept ending before 'terminated' "
                        f"({failures} attempts)",
                        host,
                    )
                delay = max(
                    self._backoff.next_delay(),
                    min(self._decoder.retry or 0.0, self._backoff.maximum),
                )
                logger.info(
                    "status stream %s interrupted (%s); resuming in %.2f s",
                    where(request),
                    error or "ended",
                    delay,
                )
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)
        finally:
            await self._release()


def new_backoff(template: Backoff | None) -> Backoff:
    """A fresh Backoff with ``template``'s settings (the default one for None)."""
    # A Backoff counts attempts: every stream gets its own copy of the caller's settings.
    return Backoff() if template is None else attrs.evolve(template, attempt=0)


def _status_url_of(source: str | ConnectResponse) -> str:
    return source.status_url if isinstance(source, ConnectResponse) else source


async def fetch_status(
    session: aiohttp.ClientSession | None,
    status_url: str | ConnectResponse,
    *,
    retries: int = 0,
    retry_delay: float = 0.5,
    timeout: Timeout = DEFAULT_TIMEOUT,
    proxy: ProxySetting = None,
) -> BackendState:
    """GET a status URL (a ConnectResponse's own ``status_url``; no account needed).

    Args:
        session: the aiohttp session to use (None: a temporary one).
        status_url: the status URL, or a ConnectResponse.
        retries: how many times to try again after a transient failure (404, as the dev
            server answers just after connect, 408, 429, 5xx, connection errors, timeouts).
        retry_delay: seconds between tries.
        timeout: seconds (or a ClientTimeout) for each try.
        proxy: the HTTP proxy: None (the environment's), a URL, or False (none).

    Returns:
        The backend's latest state.

    Raises:
        ApiError, ApiConnectionError, ApiTimeout: the last try failed.
        InvalidResponse: the answer is not a BackendState.
    """
    request = status_request(_status_url_of(status_url))
    transport = Transport(session, timeout, proxy)
    try:
        for attempt in range(retries + 1):
            try:
                return parse_model(await transport.send(request), BackendState)
            except ApiError as exc:
                transient = exc.http_status == 404 or retryable_stream_error(exc)
                if not transient or attempt == retries:
                    raise
            except (ApiConnectionError, ApiTimeout):
                if attempt == retries:
                    raise
            await asyncio.sleep(retry_delay)
        raise AssertionError("unreachable")  # pragma: no cover
    finally:
        await transport.aclose()


def follow_status_stream(
    session: aiohttp.ClientSession | None,
    status_url: str | ConnectResponse,
    *,
    last_state: BackendState | None = None,
    read_timeout: ReadTimeout = AUTO,
    timeout: Timeout = DEFAULT_TIMEOUT,
    backoff: Backoff | None = None,
    max_retries: int | None = DEFAULT_MAX_RETRIES,
    max_line_length: int = DEFAULT_MAX_LINE_LENGTH,
    proxy: ProxySetting = None,
) -> StatusStream:
    """Follow the status stream of a status URL until ``terminated`` (no account needed).

    Args:
        session: the aiohttp session to use (None: one owned by the stream, closed when the
            stream ends or is closed).
        status_url: the status URL (the stream URL is derived from it), or a ConnectResponse.
        last_state: a state already known (from :func:`fetch_status`); it and older statuses
            are not delivered.
        read_timeout: seconds without data after which the stream is resumed; ``"auto"``:
            45 s where keep-alives are promised (Plane), else none.
        timeout: seconds (or a ClientTimeout) allowed for the response headers.
        backoff: the reconnection backoff.
        max_retries: consecutive failed attempts after which the stream gives up (None: never).
        max_line_length: the longest line accepted from the server, in bytes.
        proxy: the HTTP proxy: None (the environment's), a URL, or False (none).

    Returns:
        A :class:`StatusStream` (iterate it with ``async for``).
    """
    url = stream_url_for(_status_url_of(status_url))
    return StatusStream(
        Transport(session, timeout, proxy),
        url,
        decoder=StatusDecoder(last_state=last_state, max_line_length=max_line_length),
        read_timeout=resolve_read_timeout(read_timeout, url),
        backoff=new_backoff(backoff),
        max_retries=max_retries,
        owns_transport=True,
    )
