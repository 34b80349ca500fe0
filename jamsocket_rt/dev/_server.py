"""DevServer: the Jamsocket v2 API and the token proxy, with backends as local processes."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import secrets
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from types import TracebackType
from typing import TextIO
from urllib.parse import urlsplit

from aiohttp import web

from .._errors import InvalidResponse
from .._models import ConnectRequest, ConnectResponse
from ..asyncio import _served as served
from ._backends import (
    Backend,
    BackendRegistry,
    Grant,
    LaunchConfig,
    NoBackendForKey,
    as_command,
    check_connect_request,
)
from ._proxy import TokenProxy

_log = logging.getLogger("jamsocket_rt.dev")

#: The command of the bundled example backend, the default of :class:`DevServer`.
EXAMPLE_BACKEND: tuple[str, ...] = (sys.executable, "-m", "jamsocket_rt.dev.example_backend")

_LOOPBACK_NAMES = ("localhost",)
# A connect body is small; anything near this is a mistake (or an attack).
_MAX_BODY_BYTES = 1024 * 1024


def _is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _error(status: int, code: str, message: str) -> web.Response:
    """The Jamsocket API's error body: ``{"error": {message, status, code, id}}``."""
    body = {
        "error": {"message": message, "status": status, "code": code, "id": secrets.token_hex(8)}
    }
    return web.json_response(body, status=status)


async def _json_body(request: web.Request) -> object:
    """The decoded JSON body; an empty body counts as ``{}``.

    Raises:
        ValueError: the body is not JSON (the message says where, not what).
    """
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        where = f" at position {exc.pos}" if isinstance(exc, json.JSONDecodeError) else ""
        raise ValueError(f"the request body is not valid JSON{where}") from None


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    # A web page must not spawn processes through a developer's browser: refuse POSTs that a
    # browser sends from a non-local origin (the API itself only listens on loopback).
    origin = request.headers.get("Origin")
    if request.method == "POST" and origin and not _is_loopback(urlsplit(origin).hostname or ""):
        return _error(403, "Forbidden", "cross-origin requests may only read statuses")
    return await handler(request)


async def _allow_reads(request: web.Request, response: web.StreamResponse) -> None:
    if request.method == "GET":
        # Browser clients read status_url and its stream (simple CORS requests).
        response.headers["Access-Control-Allow-Origin"] = "*"


class _Api:
    """The v2 endpoints of the official ``jamsocket dev`` server."""

    def __init__(self, registry: BackendRegistry, base_url: Callable[[], tuple[str, str]]) -> None:
        self._registry = registry
        self._base_url = base_url  # (api_url, proxy_url), known once listening

    def _backend(self, request: web.Request) -> Backend | web.Response:
        """The backend named in the path, or the 404 answer."""
        backend = self._registry.get(request.match_info["backend_id"])
        if backend is None:
            return _error(404, "BackendNotFound", "no backend with this id")
        return backend

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/v2/service/{account}/{service}/connect", self.connect),
            web.post("/v2/service/{account}/{service}/{environment}/connect", self.connect),
            web.get("/v2/backend/{backend_id}/status", self.status),
            web.get("/v2/backend/{backend_id}/status/stream", self.status_stream),
            web.post("/v2/backend/{backend_id}/terminate", self.terminate),
            web.get("/", self.index),
        ]

    async def index(self, request: web.Request) -> web.Response:
        api_url, _ = self._base_url()
        return web.Response(
            text=f"jamsocket_rt dev server\nPOST {api_url}/v2/service/-/-/connect\n"
        )

    async def connect(self, request: web.Request) -> web.Response:
        try:
            connect_request = ConnectRequest.from_dict(await _json_body(request))
        except (ValueError, InvalidResponse) as exc:
            # InvalidResponse names every bad field (and never quotes a value).
            return _error(400, "InvalidConnectRequest", str(exc))
        problems = check_connect_request(connect_request)
        if problems:
            return _error(
                400, "InvalidConnectRequest", "invalid ConnectRequest: " + "; ".join(problems)
            )
        try:
            grant, spawned = self._registry.connect(connect_request)
        except NoBackendForKey as exc:
            return _error(404, "NoBackendForKey", str(exc))
        except RuntimeError as exc:
            return _error(503, "ShuttingDown", str(exc))
        api_url, proxy_url = self._base_url()
        backend = grant.backend
        response = ConnectResponse(
            backend_id=backend.id,
            spawned=spawned,
            status=backend.status,
            token=grant.token,
            url=f"{proxy_url}/{grant.token}/",
            status_url=f"{api_url}/v2/backend/{backend.id}/status",
            ready_url="",
            secret_token=grant.secret_token,
        )
        return web.json_response(response.to_dict())

    async def status(self, request: web.Request) -> web.Response:
        backend = self._backend(request)
        if isinstance(backend, web.Response):
            return backend
        return web.json_response(backend.state.to_dict())

    async def status_stream(self, request: web.Request) -> web.StreamResponse:
        backend = self._backend(request)
        if isinstance(backend, web.Response):
            return backend
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
            }
        )
        await response.prepare(request)
        async for state in backend.states():
            await response.write(f"data:{state.to_json()}\n\n".encode())
        # Unlike the official servers, the stream ends after "terminated": nothing follows it.
        await response.write_eof()
        return response

    async def terminate(self, request: web.Request) -> web.Response:
        backend = self._backend(request)
        if isinstance(backend, web.Response):
            return backend
        try:
            body = await _json_body(request)
        except ValueError as exc:
            return _error(400, "InvalidTerminateRequest", str(exc))
        hard = body.get("hard", False) if isinstance(body, dict) else None
        if not isinstance(hard, bool):
            return _error(
                400, "InvalidTerminateRequest", 'hard: expected a boolean (body {"hard": bool})'
            )
        backend.terminate(hard=hard)
        return web.json_response({})


class DevServer:
    """A local stand-in for Jamsocket: the v2 API, a token proxy, backends as processes.

    ::

        async with DevServer(backend="python my_backend.py") as dev:
            ...  # POST {dev.api_url}/v2/service/-/-/connect, then use the returned url

    Every connect with no live backend for its ``key`` spawns the backend command with the
    environment variables ``PORT`` (a free port on 127.0.0.1 it must listen on),
    ``SESSION_BACKEND_ID`` and ``JAMSOCKET_BACKEND_ID`` (its id), plus the connect request's
    ``spawn.executable.env``. The status stream ends after ``terminated`` (the official servers
    keep it open). Terminated backends stay known: their status and stream keep answering.
    Tokens stop working when their backend ends, after ``token_lifetime`` if one is set (Plane's
    is an hour), or when :meth:`expire_tokens` says so: the proxy then answers 410 Gone to them
    and drops the connections they opened, as a client meets an expired token. POSIX only.

    The API and the proxy listen on loopback only: a connect request chooses environment
    variables of a process, which no one else on the network should be able to do.
    """

    def __init__(
        self,
        backend: str | Sequence[str] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        proxy_port: int = 0,
        startup_timeout: float = 30.0,
        terminate_grace: float = 5.0,
        output: TextIO | None = None,
        quiet: bool = False,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        token_lifetime: float | None = None,
    ) -> None:
        """Configures the server; nothing runs until :meth:`start`.

        Args:
            backend: the backend command, a shell command line or an argv list; None runs
                the bundled example backend (:data:`EXAMPLE_BACKEND`).
            host: the loopback address to listen on (API and proxy).
            port: the API port; 0 picks a free one.
            proxy_port: the proxy port; 0 picks a free one.
            startup_timeout: seconds a backend has to accept connections on its port before it
                is killed (reason ``startuptimeout``).
            terminate_grace: seconds a soft terminate waits after SIGTERM before SIGKILL.
            output: where backend output goes, line by line, prefixed with the backend id;
                None means ``sys.stderr`` (looked up when each backend starts).
            quiet: discard backend output.
            env: the base environment of backends (None: this process's environment).
            cwd: the working directory of backends (None: this process's).
            token_lifetime: seconds each token works after its connect (None: until its
                backend ends).

        Raises:
            ValueError: the command is empty, ``host`` is not a loopback address, or a timeout
                or the token lifetime is not positive.
            TypeError: the command is neither a string nor a list of strings.
        """
        if not _is_loopback(host):
            raise ValueError(f"the dev server only listens on loopback addresses, not {host!r}")
        if startup_timeout <= 0 or terminate_grace < 0:
            raise ValueError("startup_timeout must be positive and terminate_grace not negative")
        if token_lifetime is not None and token_lifetime <= 0:
            raise ValueError("token_lifetime must be a positive number of seconds (or None)")
        self._host = host
        self._port = port
        config = LaunchConfig(
            command=as_command(EXAMPLE_BACKEND if backend is None else backend),
            env=env,
            cwd=cwd,
            startup_timeout=startup_timeout,
            terminate_grace=terminate_grace,
            output=output,
            quiet=quiet,
            upstream_host="127.0.0.1",
            token_lifetime=token_lifetime,
        )
        self._proxy = TokenProxy(self._resolve, host=host, port=proxy_port)
        self._registry = BackendRegistry(config, on_expired=self._proxy.drop)
        self._runner: web.AppRunner | None = None
        self._api_url: str | None = None
        self._proxy_url: str | None = None
        self._closed = False

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Starts the API and the proxy.

        Raises:
            RuntimeError: already started (or started and closed).
            OSError: a port cannot be bound.
        """
        if self._runner is not None or self._closed:
            raise RuntimeError("a dev server can be started once")
        app = web.Application(middlewares=[_guard], client_max_size=_MAX_BODY_BYTES)
        app.on_response_prepare.append(_allow_reads)
        app.add_routes(_Api(self._registry, self._urls).routes())
        # handler_cancellation: a status stream whose client left stops waiting for news.
        runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0
        )
        await runner.setup()
        self._runner = runner
        try:
            site = web.TCPSite(runner, self._host, self._port, backlog=1024)
            await site.start()
            await self._proxy.start()
        except BaseException:
            await self.close()
            raise
        host = f"[{self._host}]" if ":" in self._host else self._host
        api_port = runner.addresses[0][1]
        self._api_url = f"http://{host}:{api_port}"
        self._proxy_url = f"http://{host}:{self._proxy.port}"
        loop = asyncio.get_running_loop()
        served.serve(self._api_url, loop)
        served.serve(self._proxy_url, loop)
        _log.debug("dev server: API %s, proxy %s", self._api_url, self._proxy_url)

    async def close(self) -> None:
        """Terminates every backend (leaving no process behind) and stops serving.

        Backends get SIGTERM, then SIGKILL after ``terminate_grace`` seconds; their process
        groups are killed in any case. Calling it again does nothing.
        """
        runner, self._runner = self._runner, None
        if runner is None:
            return
        self._closed = True
        for url in (self._api_url, self._proxy_url):
            if url is not None:
                served.unserve(url)
        try:
            await self._registry.close()
        finally:
            await self._proxy.close()
            await runner.cleanup()

    async def __aenter__(self) -> DevServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- addresses ---------------------------------------------------------------------------

    def _urls(self) -> tuple[str, str]:
        if self._api_url is None or self._proxy_url is None:
            raise RuntimeError("the dev server is not started")
        return self._api_url, self._proxy_url

    @property
    def api_url(self) -> str:
        """The API's base URL, e.g. ``http://127.0.0.1:8080`` (the ``api_url`` of clients).

        Raises:
            RuntimeError: the server is not started.
        """
        return self._urls()[0]

    @property
    def proxy_url(self) -> str:
        """The proxy's base URL; backend URLs are ``{proxy_url}/{token}/``.

        Raises:
            RuntimeError: the server is not started.
        """
        return self._urls()[1]

    @property
    def port(self) -> int:
        """The API port.

        Raises:
            RuntimeError: the server is not started.
        """
        port = urlsplit(self.api_url).port
        assert port is not None
        return port

    def connect_url(self, account: str = "-", service: str = "-") -> str:
        """The connect endpoint (account and service are ignored by the dev server).

        Raises:
            RuntimeError: the server is not started.
        """
        return f"{self.api_url}/v2/service/{account}/{service}/connect"

    def _resolve(self, token: str) -> Grant | None:
        return self._registry.grant(token)

    def expire_tokens(self, backend_id: str) -> int:
        """Expires every token handed out for a backend so far (the backend goes on).

        The proxy answers 410 Gone to those tokens from now on and drops the connections they
        opened; a new connect for the same key gets a working token. For tests of token
        renewal.

        Returns:
            How many tokens expired (0 for an unknown or ended backend).
        """
        return self._registry.expire_tokens(backend_id)

    @property
    def backend_pids(self) -> list[int]:
        """Process ids of the backends still running (each also its process group id)."""
        return self._registry.live_pids

    def __repr__(self) -> str:
        where = self._api_url or "not started"
        return f"<DevServer {where}>"
