"""The platform clients: :class:`Jamsocket` and :class:`Plane`, over one shared base.

Each wraps a sans-I/O :class:`~jamsocket_rt.protocol.api.PlatformApi` (which builds the
requests and parses the answers) and a :class:`~jamsocket_rt._http_client.Transport` (which
sends them), and keeps track of the status streams it opened so that closing the client
closes them too.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from types import TracebackType
from typing import Any, TypeVar

import aiohttp

from .._errors import ConfigurationError
from .._models import BackendState, ConnectRequest, ConnectResponse
from ..protocol.api import (
    DEFAULT_API_URL,
    HttpRequest,
    JamsocketApi,
    PlaneApi,
    PlatformApi,
    make_connect_request,
    stream_url_for,
)
from ..protocol.proxy import ProxySetting
from ..protocol.session import Backoff
from ..protocol.sse import StatusDecoder
from ._http import DEFAULT_TIMEOUT, Timeout, Transport
from .config import DevPlatform, JamsocketPlatform, PlanePlatform, platform_from_env
from .status_stream import (
    AUTO,
    DEFAULT_MAX_RETRIES,
    ReadTimeout,
    StatusStream,
    new_backoff,
    resolve_read_timeout,
)

__all__ = ["Jamsocket", "Plane", "client_for"]

_C = TypeVar("_C", bound="_PlatformClient")
_J = TypeVar("_J", bound="Jamsocket")


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
        proxy: ProxySetting,
    ) -> None:
        self._api = api
        self._transport = Transport(session, timeout, proxy)
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
            read_timeout=resolve_read_timeout(read_timeout, url),
            backoff=new_backoff(self._backoff),
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
        proxy: the HTTP proxy: None (``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``NO_PROXY``), a URL
            (``http://user:password@host:port``), or False (connect directly).

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
        proxy: ProxySetting = None,
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
            proxy=proxy,
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
            **options: ``timeout``, ``session``, ``backoff``, ``max_retries``, ``proxy``.
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
        are required and ``JAMSOCKET_API_URL`` is optional. The command line reads the same
        variables the same way (:mod:`jamsocket_rt._config`).

        Args:
            environ: the variables to read (default: ``os.environ``).
            **options: ``timeout``, ``session``, ``backoff``, ``max_retries``, ``proxy``.

        Raises:
            ConfigurationError: a required variable is missing or empty, or a variable's value
                is malformed (the variable is named, its value never shown).
        """
        platform = platform_from_env(environ)
        if isinstance(platform, DevPlatform):
            return cls.dev(api_url=platform.api_url, **options)
        return cls(
            account=platform.account,
            token=platform.token,
            service=platform.service,
            api_url=platform.api_url,
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

    ``timeout``, ``session``, ``backoff``, ``max_retries`` and ``proxy`` are as for
    :class:`Jamsocket`.

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
        proxy: ProxySetting = None,
    ) -> None:
        self._plane = PlaneApi(controller_url, image=image, token=token, namespace=namespace)
        super().__init__(
            self._plane,
            timeout=timeout,
            session=session,
            backoff=backoff,
            max_retries=max_retries,
            proxy=proxy,
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


def client_for(
    platform: DevPlatform | JamsocketPlatform | PlanePlatform, **options: Any
) -> Jamsocket | Plane:
    """The client of a platform that :mod:`jamsocket_rt._config` resolved.

    Args:
        platform: the dev server, Jamsocket or Plane.
        **options: ``timeout``, ``session``, ``backoff``, ``max_retries``, ``proxy``.

    Raises:
        ConfigurationError: a name or URL the client refuses.
    """
    if isinstance(platform, DevPlatform):
        return Jamsocket.dev_server(platform.api_url, **options)
    if isinstance(platform, JamsocketPlatform):
        return Jamsocket(
            account=platform.account,
            token=platform.token,
            service=platform.service,
            api_url=platform.api_url,
            **options,
        )
    return Plane(platform.controller_url, image=platform.image, token=platform.token, **options)
