"""The HTTP plumbing of the platform clients: sending sans-I/O requests with aiohttp.

:class:`Transport` sends the :class:`~jamsocket_rt.protocol.api.HttpRequest` objects that
:mod:`jamsocket_rt.protocol.api` builds, reads bounded answers, opens event streams, and turns
aiohttp's failures into the library's errors (:func:`translate`), whose messages name the
origin and path of a request but never its credentials.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import aiohttp

from .._errors import (
    ApiConnectionError,
    ApiError,
    ApiTimeout,
    ConfigurationError,
    InvalidResponse,
    JamsocketError,
)
from ..protocol.api import MAX_BODY_SIZE, HttpRequest, HttpResponse, api_error, origin
from ..protocol.proxy import ProxySetting, proxy_for

__all__ = ["DEFAULT_TIMEOUT", "Timeout", "Transport", "client_timeout", "translate", "where"]

#: Seconds allowed for each API call (and for a status stream to start answering).
DEFAULT_TIMEOUT = 10.0

#: A timeout in seconds, or aiohttp's own.
Timeout = float | aiohttp.ClientTimeout


def client_timeout(timeout: Timeout) -> aiohttp.ClientTimeout:
    """``timeout`` as aiohttp's ClientTimeout (seconds bound the whole call).

    Raises:
        ConfigurationError: neither a positive number nor a ClientTimeout.
    """
    if isinstance(timeout, aiohttp.ClientTimeout):
        return timeout
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
        raise ConfigurationError("timeout must be a positive number of seconds or a ClientTimeout")
    return aiohttp.ClientTimeout(total=float(timeout))


def where(request: HttpRequest) -> str:
    """The origin and path of ``request``'s URL, for messages and logs."""
    # Origin and path only: user info and a query string may carry a credential.
    return origin(request.url) + urlsplit(request.url).path


def translate(exc: BaseException, request: HttpRequest, seconds: float | None) -> JamsocketError:
    """The library's error for an aiohttp / timeout failure of ``request``."""
    host = origin(request.url)
    what = f"{request.method} {where(request)}"
    if isinstance(exc, asyncio.TimeoutError):
        after = f"{seconds:g} s" if seconds is not None else "the configured timeout"
        return ApiTimeout(f"{what}: no answer from {host} within {after}", host, seconds)
    if isinstance(exc, aiohttp.ClientProxyConnectionError):
        reason = exc.os_error.strerror or type(exc.os_error).__name__
        return ApiConnectionError(f"cannot reach the proxy {exc.host}:{exc.port}: {reason}", host)
    if isinstance(exc, aiohttp.ClientHttpProxyError):
        return ApiConnectionError(
            f"{what}: the proxy refused the tunnel to {host}: {exc.status} {exc.message}", host
        )
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


class Transport:
    """Sends :class:`HttpRequest` objects with aiohttp; owns the ClientSession if none is given."""

    def __init__(
        self, session: aiohttp.ClientSession | None, timeout: Timeout, proxy: ProxySetting = None
    ) -> None:
        self._session = session
        self._proxy = proxy
        self._owns_session = session is None
        self._closed = False
        self.timeout = client_timeout(timeout)

    @property
    def closed(self) -> bool:
        return self._closed

    def proxy_url(self, url: str) -> str | None:
        """The proxy (with its credentials) that a request to ``url`` goes through, or None.

        Raises:
            ConfigurationError: the ``proxy`` option or an ``*_PROXY`` variable is malformed.
        """
        proxy = proxy_for(url, self._proxy)
        return None if proxy is None else proxy.url

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
        proxy = self.proxy_url(request.url)
        try:
            async with session.request(
                request.method,
                request.url,
                headers=dict(request.headers),
                data=request.body,
                timeout=self.timeout,
                allow_redirects=request.follow_redirects,
                proxy=proxy,
            ) as response:
                answer = await _to_response(response)
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise translate(exc, request, self.timeout.total) from exc
        if answer.status == 407 and proxy is not None:
            # The proxy's answer, not the API's (a plain http request goes to the proxy).
            where_proxy = proxy.rsplit("@", 1)[-1].removeprefix("http://")
            raise ApiError(
                407, f"the proxy {where_proxy} refused: it wants (other) credentials in proxy="
            )
        return answer

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
                    proxy=self.proxy_url(request.url),
                ),
                self.timeout.total,
            )
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise translate(exc, request, self.timeout.total) from exc
        try:
            if not 200 <= response.status < 300:
                try:
                    answer = await asyncio.wait_for(_to_response(response), self.timeout.total)
                except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                    raise translate(exc, request, self.timeout.total) from exc
                raise api_error(answer)
            if response.content_type != "text/event-stream":
                raise InvalidResponse(
                    f"{where(request)}: expected a text/event-stream, got {response.content_type}"
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
            raise translate(exc, request, read_timeout) from exc

    async def aclose(self) -> None:
        self._closed = True
        session, self._session = self._session, None
        if session is not None and self._owns_session:
            await session.close()
