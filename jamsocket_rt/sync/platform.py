"""SyncJamsocket and SyncPlane: the platform clients, blocking.

Each drives its asyncio twin (:class:`~jamsocket_rt.Jamsocket`, :class:`~jamsocket_rt.Plane`) on
the background loop thread that SyncSessions use, so it works in scripts, worker threads and
notebooks alike. Use it as a context manager (``with SyncJamsocket.from_env() as js:``) or call
:meth:`close`: nothing stays open afterwards (no "Unclosed client session" at exit).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator, Iterator, Mapping
from types import TracebackType
from typing import Any, Generic, TypeVar

from .._models import BackendState, ConnectRequest, ConnectResponse
from ..platform._http import DEFAULT_TIMEOUT, Timeout
from ..platform.clients import Jamsocket, Plane, _PlatformClient
from ..platform.status_stream import AUTO, DEFAULT_MAX_RETRIES, ReadTimeout
from ..protocol.api import DEFAULT_API_URL
from ..protocol.proxy import ProxySetting
from ..protocol.session import Backoff
from ._loop import _LoopThread, run_on_loop

__all__ = ["SyncJamsocket", "SyncPlane"]

T = TypeVar("T")
_Client = TypeVar("_Client", bound=_PlatformClient)
_S = TypeVar("_S", bound="_SyncPlatformClient[Any]")


class _SyncPlatformClient(Generic[_Client]):
    """What SyncJamsocket and SyncPlane share: the loop, status, stream, terminate, closing."""

    def __init__(self, client: _Client) -> None:
        self._client = client
        self._loop = _LoopThread.acquire()
        self._released = False

    def _run(self, make: Callable[[], Awaitable[T]]) -> T:
        if self._released:
            raise RuntimeError(f"the {type(self).__name__} is closed")
        return run_on_loop(self._loop, make, None, type(self).__name__)

    def __enter__(self: _S) -> _S:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Sync{self._client!r}"

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._released

    def close(self) -> None:
        """Ends the status streams, closes the HTTP session, lets go of the loop. Idempotent."""
        if self._released:
            return
        try:
            self._run(self._client.aclose)
        finally:
            self._released = True
            _LoopThread.release()

    def status(self, backend_id: str) -> BackendState:
        """The latest status of a backend (see ``Jamsocket.status``, and its errors)."""
        return self._run(lambda: self._client.status(backend_id))

    def status_stream(
        self,
        backend: str | ConnectResponse,
        *,
        last_state: BackendState | None = None,
        read_timeout: ReadTimeout = AUTO,
    ) -> Iterator[BackendState]:
        """A backend's statuses until ``terminated``, as a blocking iterator.

        Close it (``close()``, or ``with contextlib.closing(...)``) to stop early; the client's
        :meth:`close` ends it too. Arguments and errors as ``Jamsocket.status_stream``.
        """
        stream = self._client.status_stream(
            backend, last_state=last_state, read_timeout=read_timeout
        )
        return self._iterate(stream)

    def _iterate(self, stream: Any) -> Generator[BackendState, None, None]:
        try:
            while True:
                try:
                    state: BackendState = self._run(stream.__anext__)
                except StopAsyncIteration:
                    return
                yield state
        finally:
            if not self._released:
                self._run(stream.aclose)

    def terminate(self, backend_id: str, hard: bool = False) -> None:
        """Ask for a backend to be terminated (see ``Jamsocket.terminate``)."""
        self._run(lambda: self._client.terminate(backend_id, hard))


class SyncJamsocket(_SyncPlatformClient[Jamsocket]):
    """:class:`~jamsocket_rt.Jamsocket`, blocking: the same constructor, class methods and calls.

    The arguments are :class:`~jamsocket_rt.Jamsocket`'s, but ``session``: an aiohttp session
    belongs to one event loop, so none can be given here.

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
        backoff: Backoff | None = None,
        max_retries: int | None = DEFAULT_MAX_RETRIES,
        proxy: ProxySetting = None,
    ) -> None:
        client = Jamsocket(
            account=account,
            token=token,
            service=service,
            api_url=api_url,
            timeout=timeout,
            backoff=backoff,
            max_retries=max_retries,
            proxy=proxy,
        )
        super().__init__(client)

    @staticmethod
    def _check_options(options: Mapping[str, Any]) -> None:
        if "session" in options:
            raise TypeError("session: an aiohttp session belongs to one event loop; not here")

    @classmethod
    def _wrapping(cls, client: Jamsocket) -> SyncJamsocket:
        sync = cls.__new__(cls)
        _SyncPlatformClient.__init__(sync, client)
        return sync

    @classmethod
    def dev(cls, port: int = 8080, *, api_url: str | None = None, **options: Any) -> SyncJamsocket:
        """A client of the ``jamsocket dev`` server (see ``Jamsocket.dev``)."""
        cls._check_options(options)
        return cls._wrapping(Jamsocket.dev(port, api_url=api_url, **options))

    @classmethod
    def dev_server(cls, api_url: str, **options: Any) -> SyncJamsocket:
        """A client of a dev server running at ``api_url`` (see ``Jamsocket.dev_server``)."""
        cls._check_options(options)
        return cls._wrapping(Jamsocket.dev_server(api_url, **options))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **options: Any) -> SyncJamsocket:
        """A client configured from ``JAMSOCKET_*`` (see ``Jamsocket.from_env``)."""
        cls._check_options(options)
        return cls._wrapping(Jamsocket.from_env(environ, **options))

    def connect(
        self, request: ConnectRequest | Mapping[str, Any] | None = None, /, **fields: Any
    ) -> ConnectResponse:
        """Get a backend for a key, spawning one if needed (see ``Jamsocket.connect``)."""
        return self._run(lambda: self._client.connect(request, **fields))


class SyncPlane(_SyncPlatformClient[Plane]):
    """:class:`~jamsocket_rt.Plane`, blocking: the same constructor and calls.

    The arguments are :class:`~jamsocket_rt.Plane`'s, but ``session`` (see
    :class:`SyncJamsocket`).

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
        backoff: Backoff | None = None,
        max_retries: int | None = DEFAULT_MAX_RETRIES,
        proxy: ProxySetting = None,
    ) -> None:
        client = Plane(
            controller_url,
            image=image,
            token=token,
            namespace=namespace,
            timeout=timeout,
            backoff=backoff,
            max_retries=max_retries,
            proxy=proxy,
        )
        super().__init__(client)

    def connect(
        self,
        request: ConnectRequest | Mapping[str, Any] | None = None,
        /,
        *,
        image: str | None = None,
        **fields: Any,
    ) -> ConnectResponse:
        """Get a backend for a key, spawning one if needed (see ``Plane.connect``)."""
        return self._run(lambda: self._client.connect(request, image=image, **fields))
