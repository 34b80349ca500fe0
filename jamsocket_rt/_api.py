"""The asyncio front end of the platform API: :class:`Jamsocket`, :class:`Plane`, status streams.

A thin layer over the sans-I/O :mod:`jamsocket_rt.protocol.api` and
:mod:`jamsocket_rt.protocol.sse`: it sends the requests they build with aiohttp, hands the
answers back to them, and turns transport failures into a small set of errors:

- :class:`ApiConnectionError` (also ``ConnectionError``): the host could not be reached, or the
  connection broke.
- :class:`ApiTimeout` (also ``TimeoutError``): no complete answer within the timeout.
- :class:`~jamsocket_rt.ApiError`: the server answered with an error status.
- :class:`~jamsocket_rt.InvalidResponse`: a 2xx answer that is not what it should be.

No message, log line or ``repr`` contains the bearer token, a backend token or a secret token.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from types import TracebackType
from typing import Any, Final, Literal, TypeVar
from urllib.parse import urlsplit

import aiohttp
import attrs

from ._errors import (
    ApiConnectionError,
    ApiError,
    ApiTimeout,
    ConfigurationError,
    InvalidResponse,
    JamsocketError,
)
from ._models import BackendState, ConnectRequest, ConnectResponse
from .protocol.api import (
    DEFAULT_API_URL,
    MAX_BODY_SIZE,
    PLANE_KEEPALIVE_READ_TIMEOUT,
    HttpRequest,
    HttpResponse,
    JamsocketApi,
    PlaneApi,
    PlatformApi,
    api_error,
    make_connect_request,
    origin,
    parse_model,
    promises_keepalives,
    status_request,
    stream_request,
    stream_url_for,
)
from .protocol.session import Backoff
from .protocol.sse import DEFAULT_MAX_LINE_LENGTH, StatusDecoder

__all__ = [
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_TIMEOUT",
    "ApiConnectionError",
    "ApiTimeout",
    "ConfigurationError",
    "Jamsocket",
    "Plane",
    "StatusStream",
    "fetch_status",
    "follow_status_stream",
]

logger = logging.getLogger("jamsocket_rt.api")

#: Seconds allowed for each API call (and for a status stream to start answering).
DEFAULT_TIMEOUT = 10.0
#: Consecutive failed attempts after which a status stream gives up.
DEFAULT_MAX_RETRIES = 10

Timeout = float | aiohttp.ClientTimeout
AUTO: Final = "auto"
ReadTimeout = float | None | Literal["auto"]

_C = TypeVar("_C", bound="_PlatformClient")
_J = TypeVar("_J", bound="Jamsocket")


def _client_timeout(timeout: Timeout) -> aiohttp.ClientTimeout:
    if isinstance(timeout, aiohttp.ClientTimeout):
        return timeout
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
        raise ConfigurationError("timeout must be a positive number of seconds or a ClientTimeout")
    return aiohttp.ClientTimeout(total=float(timeout))


def _where(request: HttpRequest) -> str:
    # Origin and path only: user info and a query string may carry a credential.
    return origin(request.url) + urlsplit(request.url).path


def _translate(exc: BaseException, request: HttpRequest, seconds: float | None) -> JamsocketError:
    """The library's error for an aiohttp / timeout failure of ``request``."""
    host = origin(request.url)
    what = f"{request.method} {_where(request)}"
    if isinstance(exc, asyncio.TimeoutError):
        after = f"{seconds:g} s" if seconds is not None else "the configured timeout"
        return ApiTimeout(f"{what}: no answer from {host} within {after}", host, seconds)
    if isinstance(exc, aiohttp.ClientConnectorError):
        reason = exc.os_error.strerror or type(exc.os_error).__name__
        return ApiConnectionError(f"cannot connect to {host}: {reason}", host)
    if isinstance(exc, (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError)):
        return ApiConnectionError(f"{what}: {host} closed the connection", host)
    return ApiConnectionError(f"{what}: connection to {host} failed ({type(exc).__name__})", host)


async def _read_body(response: aiohttp.ClientResponse) -> bytes:
    """The body, at most MAX_BODY_SIZE bytes: a larger answer is refused, a larger error page cut.

    An error's body only serves to find the API's message, so a huge one (an HTML page from a
    proxy) still gives an ApiError from its status line.
    """
    success = 200 <= response.status < 300
    if success and (response.content_length or 0) > MAX_BODY_SIZE:
        raise InvalidResponse(f"response body too large ({response.content_length} bytes)")
    body = bytearray()
    async for chunk in response.content.iter_chunked(64 * 1024):
        body += chunk
        if len(body) > MAX_BODY_SIZE:
            if success:
                raise InvalidResponse(f"response body larger than {MAX_BODY_SIZE} bytes")
            return bytes(body[:MAX_BODY_SIZE])
    return bytes(body)


async def _to_response(response: aiohttp.ClientResponse) -> HttpResponse:
    content_type = response.content_type if aiohttp.hdrs.CONTENT_TYPE in response.headers else ""
    body = await _read_body(response)
    return HttpResponse(response.status, body, content_type, response.reason or "")


class _Transport:
    """Sends :class:`HttpRequest` objects with aiohttp; owns the ClientSession if none is given."""

    def __init__(self, session: aiohttp.ClientSession | None, timeout: Timeout) -> None:
        self._session = session
        self._owns_session = session is None
        self._closed = False
        self.timeout = _client_timeout(timeout)

    @property
    def closed(self) -> bool:
        return self._closed

    def _get_session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise RuntimeError("the client is closed")
        if self._session is None:
            # Created on first use, inside the running event loop, as aiohttp wants.
            self._session = aiohttp.ClientSession()
        return self._session

    async def send(self, request: HttpRequest) -> HttpResponse:
        """Send ``request`` and read its (bounded) answer.

        Raises:
            ApiConnectionError: the host could not be reached or the connection broke.
            ApiTimeout: no complete answer within the timeout.
            InvalidResponse: the body is larger than :data:`MAX_BODY_SIZE`.
        """
        session = self._get_session()
        try:
            async with session.request(
                request.method,
                request.url,
                headers=dict(request.headers),
                data=request.body,
                timeout=self.timeout,
                allow_redirects=request.follow_redirects,
            ) as response:
                return await _to_response(response)
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise _translate(exc, request, self.timeout.total) from exc

    @contextlib.asynccontextmanager
    async def stream(
        self, request: HttpRequest, read_timeout: float | None
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """Open an event stream; the response is checked (2xx, ``text/event-stream``).

        The timeout bounds the wait for the response headers; after that only ``read_timeout``
        applies, between two reads.
        """
        session = self._get_session()
        timeout = aiohttp.ClientTimeout(
            total=None,
            connect=self.timeout.connect,
            sock_connect=self.timeout.sock_connect,
            sock_read=read_timeout,
        )
        try:
            response = await asyncio.wait_for(
                session.request(
                    request.method,
                    request.url,
                    headers=dict(request.headers),
                    timeout=timeout,
                    allow_redirects=request.follow_redirects,
                ),
                self.timeout.total,
            )
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise _translate(exc, request, self.timeout.total) from exc
        try:
            if not 200 <= response.status < 300:
                try:
                    answer = await asyncio.wait_for(_to_response(response), self.timeout.total)
                except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                    raise _translate(exc, request, self.timeout.total) from exc
                raise api_error(answer)
            if response.content_type != "text/event-stream":
                raise InvalidResponse(
                    f"{_where(request)}: expected a text/event-stream, got {response.content_type}"
                )
            yield response
        finally:
            # close(), not release(): a status stream never ends, so it cannot be drained.
            response.close()

    async def read(
        self, response: aiohttp.ClientResponse, request: HttpRequest, read_timeout: float | None
    ) -> bytes:
        """The next bytes of a stream; ``b""`` at its end."""
        try:
            return await response.content.readany()
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise _translate(exc, request, read_timeout) from exc

    async def aclose(self) -> None:
        self._closed = True
        session, self._session = self._session, None
        if session is not None and self._owns_session:
            await session.close()


def _retryable_stream_error(exc: ApiError) -> bool:
    return exc.http_status in (408, 429) or exc.http_status >= 500


def _resolve_read_timeout(read_timeout: ReadTimeout, stream_url: str) -> float | None:
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
        transport: _Transport,
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
                    if not _retryable_stream_error(exc):
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
                    _where(request),
                    error or "ended",
                    delay,
                )
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)
        finally:
            await self._release()


def _backoff(template: Backoff | None) -> Backoff:
    # A Backoff counts attempts: every stream gets its own copy of the caller's settings.
    return Backoff() if template is None else attrs.evolve(template, attempt=0)


class _PlatformClient:
    """What Jamsocket and Plane share: the transport, the four calls, closing."""

    def __init__(
        self,
        api: PlatformApi,
        *,
        timeout: Timeout,
        session: aiohttp.ClientSession | None,
        backoff: Backoff | None,
        max_retries: int | None,
    ) -> None:
        self._api = api
        self._transport = _Transport(session, timeout)
        self._backoff = backoff
        self._max_retries = max_retries
        self._streams: weakref.WeakSet[StatusStream] = weakref.WeakSet()

    async def __aenter__(self: _C) -> _C:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    @property
    def closed(self) -> bool:
        """True once :meth:`aclose` was called."""
        return self._transport.closed

    async def aclose(self) -> None:
        """End the client's status streams and close its HTTP session (unless it was given one).

        Idempotent. Nothing stays open afterwards.
        """
        for stream in list(self._streams):
            await stream.aclose()
        await self._transport.aclose()

    async def _connect(self, request: HttpRequest) -> ConnectResponse:
        return self._api.parse_connect(await self._transport.send(request))

    async def status(self, backend_id: str) -> BackendState:
        """The latest status of a backend.

        Args:
            backend_id: the backend's id.

        Returns:
            Its latest state.

        Raises:
            ApiError: the API answered with an error (404: unknown backend).
            InvalidResponse: the answer is not a BackendState.
            ApiConnectionError: the API could not be reached.
            ApiTimeout: no answer within the timeout.
        """
        response = await self._transport.send(self._api.status_request(backend_id))
        return self._api.parse_status(response)

    def status_stream(
        self,
        backend: str | ConnectResponse,
        *,
        last_state: BackendState | None = None,
        read_timeout: ReadTimeout = AUTO,
    ) -> StatusStream:
        """Follow a backend's statuses until ``terminated``.

        Args:
            backend: a backend id, or a ConnectResponse (its own status URL is used; that URL
                may be on another host: no credentials are ever sent to it).
            last_state: a state already known; it and older statuses are not delivered.
            read_timeout: seconds without any data after which the stream is resumed;
                ``"auto"``: 45 s where keep-alives are promised (Plane), else none.

        Returns:
            A :class:`StatusStream` (iterate it with ``async for``).
        """
        if isinstance(backend, ConnectResponse):
            url = stream_url_for(backend.status_url)
        else:
            url = self._api.stream_url(backend)
        stream = StatusStream(
            self._transport,
            url,
            decoder=StatusDecoder(last_state=last_state),
            read_timeout=_resolve_read_timeout(read_timeout, url),
            backoff=_backoff(self._backoff),
            max_retries=self._max_retries,
        )
        self._streams.add(stream)
        return stream

    async def terminate(self, backend_id: str, hard: bool = False) -> None:
        """Ask for a backend to be terminated.

        Args:
            backend_id: the backend's id.
            hard: kill it at once (SIGKILL) instead of asking it to stop (SIGTERM).

        Raises:
            ApiError: the API answered with an error (404: unknown backend).
            ApiConnectionError: the API could not be reached.
            ApiTimeout: no answer within the timeout.
        """
        request = self._api.terminate_request(backend_id, hard=hard)
        self._api.parse_terminate(await self._transport.send(request))


class Jamsocket(_PlatformClient):
    """A client of the Jamsocket platform API (or of the ``jamsocket dev`` server).

    Use it as ``async with Jamsocket(...) as js:``, or call :meth:`aclose` when done.

    Args:
        account: the account name.
        token: the API token; sent as a bearer token to ``api_url``'s host only.
        service: the service, or ``"{service}/{environment}"``.
        api_url: the API's base URL.
        timeout: seconds (or an ``aiohttp.ClientTimeout``) allowed for each call; a status
            stream uses it for its response headers.
        session: an aiohttp session to use; the client then leaves it open on close.
        backoff: the reconnection backoff of status streams.
        max_retries: consecutive failed attempts after which a status stream gives up
            (None: never).

    Raises:
        ConfigurationError: a missing name, a malformed URL or timeout.
    """

    def __init__(
        self,
        *,
        account: str,
        token: str,
        service: str,
        api_url: str = DEFAULT_API_URL,
        timeout: Timeout = DEFAULT_TIMEOUT,
        session: aiohttp.ClientSession | None = None,
        backoff: Backoff | None = None,
        max_retries: int | None = DEFAULT_MAX_RETRIES,
    ) -> None:
        if not isinstance(token, str) or not token:
            raise ConfigurationError("token must be a non-empty string")
        self._jamsocket = JamsocketApi(
            account=account, service=service, token=token, api_url=api_url
        )
        super().__init__(
            self._jamsocket,
            timeout=timeout,
            session=session,
            backoff=backoff,
            max_retries=max_retries,
        )

    def __repr__(self) -> str:
        api = self._jamsocket
        return (
            f"Jamsocket(account={api.account!r}, service={api.service!r}, api_url={api.base_url!r})"
        )

    @classmethod
    def dev(cls: type[_J], port: int = 8080, *, api_url: str | None = None, **options: Any) -> _J:
        """A client of the ``jamsocket dev`` server on ``http://localhost:{port}``.

        Account, service and token are all ``"-"``, as the official clients send them.

        Args:
            port: the dev server's port.
            api_url: the dev server's URL, instead of ``port`` (e.g. ``DevServer().api_url``).
            **options: ``timeout``, ``session``, ``backoff``, ``max_retries``.
        """
        # "-" is the dev server's placeholder for every name, not a secret.
        placeholder = "-"
        return cls(
            account=placeholder,
            token=placeholder,
            service=placeholder,
            api_url=api_url or f"http://localhost:{port}",
            **options,
        )

    @classmethod
    def dev_server(cls: type[_J], api_url: str, **options: Any) -> _J:
        """``Jamsocket.dev(api_url=api_url)``: a client of a dev server running at ``api_url``."""
        return cls.dev(api_url=api_url, **options)

    @classmethod
    def from_env(cls: type[_J], environ: Mapping[str, str] | None = None, **options: Any) -> _J:
        """A client configured from the environment, as the official clients read it.

        ``JAMSOCKET_DEV=true`` (with an optional ``JAMSOCKET_DEV_PORT``) selects the dev
        server; otherwise ``JAMSOCKET_ACCOUNT``, ``JAMSOCKET_TOKEN`` and ``JAMSOCKET_SERVICE``
        are required and ``JAMSOCKET_API_URL`` is optional.

        Args:
            environ: the variables to read (default: ``os.environ``).
            **options: ``timeout``, ``session``, ``backoff``, ``max_retries``.

        Raises:
            ConfigurationError: a required variable is missing or empty, or
                ``JAMSOCKET_DEV_PORT`` is not a port number (the variable is named, its
                value never shown).
        """
        env = os.environ if environ is None else environ
        if env.get("JAMSOCKET_DEV", "").strip().lower() in ("true", "1", "yes"):
            port_text = env.get("JAMSOCKET_DEV_PORT", "").strip() or "8080"
            if not port_text.isdigit() or not 0 < int(port_text) < 65536:
                raise ConfigurationError("JAMSOCKET_DEV_PORT must be a port number (1-65535)")
            return cls.dev(int(port_text), **options)
        missing = [
            name
            for name in ("JAMSOCKET_ACCOUNT", "JAMSOCKET_TOKEN", "JAMSOCKET_SERVICE")
            if not env.get(name)
        ]
        if missing:
            raise ConfigurationError(
                f"missing environment variable(s): {', '.join(missing)} "
                "(or set JAMSOCKET_DEV=true to use the dev server)"
            )
        return cls(
            account=env["JAMSOCKET_ACCOUNT"],
            token=env["JAMSOCKET_TOKEN"],
            service=env["JAMSOCKET_SERVICE"],
            api_url=env.get("JAMSOCKET_API_URL") or DEFAULT_API_URL,
            **options,
        )

    async def connect(
        self, request: ConnectRequest | Mapping[str, Any] | None = None, /, **fields: Any
    ) -> ConnectResponse:
        """Get a backend for a key, spawning one if needed.

        Args:
            request: a ConnectRequest or a dict of its fields; or, instead:
            **fields: ``key``, ``spawn`` (bool, SpawnOptions or dict), ``user``, ``auth``.

        Returns:
            Where the backend is and how to reach it.

        Raises:
            TypeError: both a request and fields, or an unknown field.
            ApiError: the API refused (``is_rate_limit`` for 429).
            InvalidResponse: the answer is not a valid ConnectResponse.
            ApiConnectionError: the API could not be reached.
            ApiTimeout: no answer within the timeout.
        """
        connect_request = make_connect_request(request, **fields)
        return await self._connect(self._jamsocket.connect_request(connect_request))


class Plane(_PlatformClient):
    """A client of a self-hosted Plane controller, with the same calls as :class:`Jamsocket`.

    Args:
        controller_url: the controller's base URL (a user name in it is taken as the token).
        image: the container image spawned when a connect needs a new backend.
        token: a bearer token, for a controller behind an authenticating proxy; sent to
            ``controller_url``'s host only.
        namespace: the key namespace.
        timeout, session, backoff, max_retries: as for :class:`Jamsocket`.

    Raises:
        ConfigurationError: a malformed URL or timeout.
    """

    def __init__(
        self,
        controller_url: str,
        *,
        image: str | None = None,
        token: str | None = None,
        namespace: str | None = None,
        timeout: Timeout = DEFAULT_TIMEOUT,
        session: aiohttp.ClientSession | None = None,
        backoff: Backoff | None = None,
        max_retries: int | None = DEFAULT_MAX_RETRIES,
    ) -> None:
        self._plane = PlaneApi(controller_url, image=image, token=token, namespace=namespace)
        super().__init__(
            self._plane,
            timeout=timeout,
            session=session,
            backoff=backoff,
            max_retries=max_retries,
        )

    def __repr__(self) -> str:
        return f"Plane(controller_url={self._plane.base_url!r}, image={self._plane.image!r})"

    async def connect(
        self,
        request: ConnectRequest | Mapping[str, Any] | None = None,
        /,
        *,
        image: str | None = None,
        **fields: Any,
    ) -> ConnectResponse:
        """Get a backend for a key, spawning one (from ``image``) if needed.

        Args:
            request: a ConnectRequest or a dict of its fields; or, instead:
            image: the image to spawn instead of the client's default.
            **fields: ``key``, ``spawn`` (bool, SpawnOptions or dict), ``user``, ``auth``.

        Returns:
            Where the backend is and how to reach it (``ready_url`` is ``""``: Plane has none).

        Raises:
            TypeError: both a request and fields, or an unknown field.
            ConfigurationError: a spawn was asked for but no image is known.
            ApiError: the controller refused (``code`` is Plane's error kind).
            InvalidResponse: the answer is not a valid ConnectResponse.
            ApiConnectionError: the controller could not be reached.
            ApiTimeout: no answer within the timeout.
        """
        connect_request = make_connect_request(request, **fields)
        return await self._connect(self._plane.connect_request(connect_request, image=image))


def _status_url_of(source: str | ConnectResponse) -> str:
    return source.status_url if isinstance(source, ConnectResponse) else source


async def fetch_status(
    session: aiohttp.ClientSession | None,
    status_url: str | ConnectResponse,
    *,
    retries: int = 0,
    retry_delay: float = 0.5,
    timeout: Timeout = DEFAULT_TIMEOUT,
) -> BackendState:
    """GET a status URL (a ConnectResponse's own ``status_url``; no account needed).

    Args:
        session: the aiohttp session to use (None: a temporary one).
        status_url: the status URL, or a ConnectResponse.
        retries: how many times to try again after a transient failure (404, as the dev
            server answers just after connect, 408, 429, 5xx, connection errors, timeouts).
        retry_delay: seconds between tries.
        timeout: seconds (or a ClientTimeout) for each try.

    Returns:
        The backend's latest state.

    Raises:
        ApiError, ApiConnectionError, ApiTimeout: the last try failed.
        InvalidResponse: the answer is not a BackendState.
    """
    request = status_request(_status_url_of(status_url))
    transport = _Transport(session, timeout)
    try:
        for attempt in range(retries + 1):
            try:
                return parse_model(await transport.send(request), BackendState)
            except ApiError as exc:
                transient = exc.http_status == 404 or _retryable_stream_error(exc)
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

    Returns:
        A :class:`StatusStream` (iterate it with ``async for``).
    """
    url = stream_url_for(_status_url_of(status_url))
    return StatusStream(
        _Transport(session, timeout),
        url,
        decoder=StatusDecoder(last_state=last_state, max_line_length=max_line_length),
        read_timeout=_resolve_read_timeout(read_timeout, url),
        backoff=_backoff(backoff),
        max_retries=max_retries,
        owns_transport=True,
    )
