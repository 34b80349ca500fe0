"""Small real HTTP servers for the API client tests (127.0.0.1, a free port each).

- :class:`StubServer`: records every request (method, path, headers, body) and lets a test
  answer any route its own way (``server.route("GET", "/x", handler)``).
- :class:`PlaneStub`: a self-hosted Plane controller as its source describes it: ``/ctrl/connect``,
  ``/pub/b/{id}/status``, ``/pub/b/{id}/status-stream`` (``id:`` lines, keep-alive comments,
  ``Last-Event-ID`` honoured, epoch-millisecond times), ``/ctrl/b/{id}/soft-terminate`` and
  ``/hard-terminate``, errors as ``{id, kind, message}``.
- :class:`JamsocketStub`: the Jamsocket v2 API shape: bearer-checked connect and terminate,
  a status stream without ids or keep-alives, ISO times, ``{"error": {...}}`` errors.

Both platform stubs can drop their status streams after some events (cleanly, or in the
middle of an event) to exercise resumption.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from types import TracebackType
from typing import Any, TypeVar

from aiohttp import web

S = TypeVar("S", bound="StubServer")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

STATUS_ORDER = (
    "scheduled",
    "loading",
    "starting",
    "waiting",
    "ready",
    "terminating",
    "terminated",
)


class Recorded:
    """One request the server received."""

    def __init__(self, method: str, path: str, headers: dict[str, str], body: bytes) -> None:
        self.method = method
        self.path = path
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    def __repr__(self) -> str:
        return f"Recorded({self.method} {self.path})"


class StubServer:
    """An aiohttp server on 127.0.0.1 that records requests and dispatches by (method, path)."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self._routes: dict[tuple[str, str], Handler] = {}
        self._runner: web.AppRunner | None = None
        self._closed = asyncio.Event()
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def route(self, method: str, path: str, handler: Handler) -> None:
        """Answer ``method path`` (``{name}`` placeholders allowed) with ``handler``.

        Routes added later win, so a test can override a stub's default behaviour.
        """
        self._routes[(method, path)] = handler

    def requests_to(self, path_part: str) -> list[Recorded]:
        return [r for r in self.requests if path_part in r.path]

    async def wait_closed(self) -> None:
        """For handlers that must never answer: returns when the server shuts down."""
        await self._closed.wait()

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.requests.append(Recorded(request.method, request.path, dict(request.headers), body))
        for (method, pattern), handler in reversed(list(self._routes.items())):
            params = _match(pattern, request.path)
            if method == request.method and params is not None:
                request.match_info.update(params)
                return await handler(request)
        return web.json_response({"message": "no such route"}, status=404)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=0.1
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def close(self) -> None:
        self._closed.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self: S) -> S:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


def _match(pattern: str, path: str) -> dict[str, str] | None:
    want, got = pattern.strip("/").split("/"), path.strip("/").split("/")
    if len(want) != len(got):
        return None
    params: dict[str, str] = {}
    for w, g in zip(want, got, strict=True):
        if w.startswith("{") and w.endswith("}"):
            params[w[1:-1]] = g
        elif w != g:
            return None
    return params


class StubBackend:
    """A backend's history, and a condition its stream handlers wait on."""

    def __init__(self, backend_id: str, key: str | None) -> None:
        self.id = backend_id
        self.key = key
        self.history: list[dict[str, Any]] = []
        self.changed = asyncio.Condition()

    @property
    def status(self) -> str:
        return str(self.history[-1]["status"])


class _PlatformStub(StubServer):
    """What both platform stubs share: backends, status progression, stream drops."""

    #: Whether status events carry ``id: {status}`` and the stream honours Last-Event-ID.
    event_ids = False
    #: Seconds between keep-alive comments (None: none).
    keepalive: float | None = None

    def __init__(self) -> None:
        super().__init__()
        self.backends: dict[str, StubBackend] = {}
        self._ids = itertools.count(1)
        #: Drop each stream connection after this many events (None: never).
        self.drop_after: int | None = None
        #: When dropping, first write half of the next event (a cut in the middle of a line).
        self.cut_mid_event = False
        #: Abort the TCP connection instead of ending the response cleanly.
        self.abort_connection = False
        #: How many stream connections were dropped so far (drops stop after ``max_drops``).
        self.drops = 0
        self.max_drops = 1
        self._tasks: set[asyncio.Task[None]] = set()

    def time_value(self) -> Any:
        raise NotImplementedError

    def new_backend(self, key: str | None = None) -> StubBackend:
        backend = StubBackend(f"b{next(self._ids)}{secrets.token_hex(2)}", key)
        backend.history.append({"status": "scheduled", "time": self.time_value()})
        self.backends[backend.id] = backend
        return backend

    async def advance(self, backend_id: str, status: str, **extra: Any) -> None:
        """Append a status to a backend's history and wake its streams."""
        backend = self.backends[backend_id]
        async with backend.changed:
            backend.history.append({"status": status, "time": self.time_value(), **extra})
            backend.changed.notify_all()

    async def run_to(self, backend_id: str, final: str = "ready") -> None:
        """Advance a backend through every status up to ``final``."""
        backend = self.backends[backend_id]
        start = STATUS_ORDER.index(backend.status) + 1
        for status in STATUS_ORDER[start : STATUS_ORDER.index(final) + 1]:
            await self.advance(backend_id, status)

    def _later(self, coroutine: Awaitable[None]) -> None:
        async def run() -> None:
            await coroutine

        task = asyncio.ensure_future(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _terminate(self, backend: StubBackend, hard: bool) -> None:
        kind = "hard" if hard else "soft"
        # The stub's own pace: statuses a moment apart, after the answer, as a real controller.
        await asyncio.sleep(0.01)
        if backend.status not in ("terminating", "terminated"):
            await self.advance(
                backend.id,
                "hard-terminating" if hard and not self.event_ids else "terminating",
                termination_reason="external",
                termination_kind=kind,
            )
        await asyncio.sleep(0.01)
        await self.advance(
            backend.id,
            "terminated",
            termination_reason="external",
            termination_kind=kind,
            exit_error=False,
        )

    async def status(self, request: web.Request) -> web.StreamResponse:
        backend = self.backends.get(request.match_info["backend_id"])
        if backend is None:
            return self.not_found()
        return web.json_response(backend.history[-1])

    def not_found(self) -> web.Response:
        raise NotImplementedError

    async def status_stream(self, request: web.Request) -> web.StreamResponse:
        backend = self.backends.get(request.match_info["backend_id"])
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        if backend is None:
            await self.wait_closed()  # an unknown id: open and silent, as the real servers
            return response
        last = request.headers.get("Last-Event-ID") if self.event_ids else None
        sent = 0
        if last in STATUS_ORDER:
            rank = STATUS_ORDER.index(last)
            sent = sum(
                1
                for entry in backend.history
                if entry["status"] in STATUS_ORDER and STATUS_ORDER.index(entry["status"]) <= rank
            )
        written = 0
        while True:
            async with backend.changed:
                pending = backend.history[sent:]
                if not pending:
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(backend.changed.wait(), self.keepalive)
                    pending = backend.history[sent:]
            if not pending and self.keepalive is not None:
                await response.write(b":\n\n")
                continue
            for entry in pending:
                event = self.encode_event(entry)
                if self._should_drop(written):
                    self.drops += 1
                    return await self._drop(request, response, event)
                await response.write(event)
                sent += 1
                written += 1

    def _should_drop(self, written: int) -> bool:
        return (
            self.drop_after is not None
            and written >= self.drop_after
            and self.drops < self.max_drops
        )

    async def _drop(
        self, request: web.Request, response: web.StreamResponse, event: bytes
    ) -> web.StreamResponse:
        if self.cut_mid_event:
            await response.write(event[: len(event) // 2])
        if self.abort_connection and request.transport is not None:
            request.transport.abort()
            return response
        await response.write_eof()
        return response

    def encode_event(self, entry: dict[str, Any]) -> bytes:
        data = json.dumps(entry, separators=(",", ":"))
        if self.event_ids:
            return f"data: {data}\nid: {entry['status']}\n\n".encode()
        return f"data:{data}\n\n".encode()

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await super().close()


class PlaneStub(_PlatformStub):
    """A Plane controller, as ``plane/src/controller`` serves it.

    Args:
        token: if set, ``/ctrl`` routes require ``Authorization: Bearer {token}`` (a
            controller behind an authenticating proxy).
        keepalive: seconds between keep-alive comments (Plane: 15 s).
    """

    event_ids = True

    def __init__(self, *, token: str | None = None, keepalive: float | None = 15.0) -> None:
        super().__init__()
        self.token = token
        self.keepalive = keepalive
        self.route("POST", "/ctrl/connect", self.connect)
        self.route("GET", "/pub/b/{backend_id}/status", self.status)
        self.route("GET", "/pub/b/{backend_id}/status-stream", self.status_stream)
        self.route("POST", "/ctrl/b/{backend_id}/soft-terminate", self.terminate)
        self.route("POST", "/ctrl/b/{backend_id}/hard-terminate", self.terminate)

    def time_value(self) -> Any:
        return int(time.time() * 1000)

    @staticmethod
    def error(status: int, kind: str, message: str) -> web.Response:
        body = {"id": secrets.token_hex(8), "kind": kind, "message": message}
        return web.json_response(body, status=status)

    def not_found(self) -> web.Response:
        return self.error(404, "NotFound", "Backend does not exist")

    def _authorized(self, request: web.Request) -> bool:
        return self.token is None or request.headers.get("Authorization") == f"Bearer {self.token}"

    async def connect(self, request: web.Request) -> web.StreamResponse:
        if not self._authorized(request):
            return web.Response(status=401, text="Unauthorized")
        try:
            body = json.loads(await request.read())
            key = body.get("key")
            spawn = body.get("spawn_config")
            if spawn is not None and not isinstance(spawn["executable"]["image"], str):
                raise TypeError("image")
        except (ValueError, KeyError, TypeError, AttributeError):
            # axum's Json extractor answers a body it cannot deserialize in plain text.
            return web.Response(status=422, text="Failed to deserialize the JSON body")
        name = key["name"] if key else None
        held = next((b for b in self.backends.values() if name and b.key == name), None)
        if held is not None and held.status != "terminated":
            backend, spawned = held, False
        elif spawn is None:
            return self.error(
                409, "KeyUnheldNoSpawnConfig", "Lock is unheld but no spawn config was provided."
            )
        else:
            backend, spawned = self.new_backend(name), True
        token = f"tok{secrets.token_hex(8)}"
        return web.json_response(
            {
                "backend_id": backend.id,
                "spawned": spawned,
                "status": backend.status,
                "token": token,
                "url": f"http://127.0.0.1:{self.port}/{token}/",
                "secret_token": f"sec{secrets.token_hex(8)}",
                "status_url": f"{self.url}/pub/b/{backend.id}/status",
                "drone": "drone1" if spawned else None,
            }
        )

    async def terminate(self, request: web.Request) -> web.StreamResponse:
        if not self._authorized(request):
            return web.Response(status=401, text="Unauthorized")
        backend = self.backends.get(request.match_info["backend_id"])
        if backend is None:
            return self.not_found()
        self._later(self._terminate(backend, hard=request.path.endswith("hard-terminate")))
        return web.json_response(None)


class JamsocketStub(_PlatformStub):
    """The Jamsocket v2 API shape.

    Args:
        token: the bearer token connect and terminate require.
        status_base: where status URLs point (default: this server); another server's URL
            lets a test check that no credential follows a status URL to another host.
    """

    def __init__(self, *, token: str = "secret-api-token", status_base: str | None = None) -> None:
        super().__init__()
        self.token = token
        self.status_base = status_base
        for path in (
            "/v2/service/{account}/{service}/connect",
            "/v2/service/{account}/{service}/{environment}/connect",
        ):
            self.route("POST", path, self.connect)
        self.route("GET", "/v2/backend/{backend_id}/status", self.status)
        self.route("GET", "/v2/backend/{backend_id}/status/stream", self.status_stream)
        self.route("POST", "/v2/backend/{backend_id}/terminate", self.terminate)

    def time_value(self) -> Any:
        return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")

    @staticmethod
    def error(status: int, code: str, message: str) -> web.Response:
        body = {"error": {"message": message, "status": status, "code": code, "id": "req-123"}}
        return web.json_response(body, status=status)

    def not_found(self) -> web.Response:
        return self.error(404, "BackendNotFound", "no backend with this id")

    def _authorized(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {self.token}"

    async def connect(self, request: web.Request) -> web.StreamResponse:
        if not self._authorized(request):
            return self.error(401, "Unauthorized", "bad token")
        body = json.loads(await request.read())
        key = body.get("key")
        held = next((b for b in self.backends.values() if key and b.key == key), None)
        if held is not None and held.status != "terminated":
            backend, spawned = held, False
        else:
            backend, spawned = self.new_backend(key), True
        token = f"tok{secrets.token_hex(8)}"
        base = self.status_base or self.url
        return web.json_response(
            {
                "backend_id": backend.id,
                "spawned": spawned,
                "status": backend.status,
                "token": token,
                "url": f"http://127.0.0.1:{self.port}/{token}/",
                "status_url": f"{base}/v2/backend/{backend.id}/status",
                "ready_url": "",
            }
        )

    async def terminate(self, request: web.Request) -> web.StreamResponse:
        if not self._authorized(request):
            return self.error(401, "Unauthorized", "bad token")
        backend = self.backends.get(request.match_info["backend_id"])
        if backend is None:
            return self.not_found()
        hard = bool(json.loads(await request.read() or b"{}").get("hard"))
        self._later(self._terminate(backend, hard=hard))
        return web.json_response({})
