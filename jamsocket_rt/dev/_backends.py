"""The session backends of one dev server: by id, by key and by token.

A connect request gets a token for the live backend holding its key, or for a new backend
spawned on a free port; a token stops working when its backend ends, when its lifetime runs
out, or when :meth:`BackendRegistry.expire_tokens` says so. The backends themselves, one local
process each, are :class:`~jamsocket_rt.dev._process.Backend`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import socket
import string
from collections.abc import Callable
from typing import Any

from .._models import ConnectRequest, SpawnOptions
from ._process import Backend, LaunchConfig, as_command

__all__ = [
    "Backend",
    "BackendRegistry",
    "Grant",
    "LaunchConfig",
    "NoBackendForKey",
    "as_command",
    "check_connect_request",
    "free_port",
]

_log = logging.getLogger("jamsocket_rt.dev")

_ID_ALPHABET = string.ascii_lowercase + string.digits


def free_port(host: str = "127.0.0.1", avoid: set[int] | frozenset[int] = frozenset()) -> int:
    """A TCP port that is free on ``host`` right now (and not in ``avoid``).

    Raises:
        OSError: no port could be bound.
    """
    for _ in range(20):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port: int = sock.getsockname()[1]
        if port not in avoid:
            return port
    raise OSError("could not find a free port")


class NoBackendForKey(LookupError):
    """``spawn`` was false and no live backend holds the key."""


class Grant:
    """What one connect call handed out: a token for a backend, and who it is for.

    The proxy resolves a token to its Grant; the ``x-verified-*`` headers come from here,
    since two connects to the same backend may name different users.
    """

    def __init__(self, backend: Backend, user: str | None, auth: dict[str, Any] | None) -> None:
        self.backend = backend
        self.token = secrets.token_urlsafe(24)
        self.secret_token = secrets.token_urlsafe(24)
        lines = [f"x-verified-backend: {backend.id}", f"x-verified-secret: {self.secret_token}"]
        if user is not None:
            lines.append(f"x-verified-username: {user}")
        if auth is not None:
            # ASCII-only JSON: header values are bytes, and this keeps them unambiguous.
            lines.append(f"x-verified-user-data: {json.dumps(auth, separators=(',', ':'))}")
        self.request_headers = "".join(line + "\r\n" for line in lines).encode("utf-8")

    # The proxy's view (see _proxy.ProxyTarget).
    @property
    def backend_id(self) -> str:
        return self.backend.id

    @property
    def port(self) -> int:
        return self.backend.port

    async def wait_ready(self) -> bool:
        return await self.backend.wait_ready()

    def connection_opened(self) -> None:
        self.backend.connection_opened()

    def connection_closed(self) -> None:
        self.backend.connection_closed()


class BackendRegistry:
    """Every backend of one dev server, by id, by key and by token.

    Args:
        config: how backends are started, and how long tokens live.
        on_expired: called with each grant whose token expires (by its lifetime or by
            :meth:`expire_tokens`), so that the proxy can drop the connections it serves.
    """

    def __init__(
        self, config: LaunchConfig, on_expired: Callable[[Grant], object] | None = None
    ) -> None:
        self._config = config
        self._on_expired = on_expired
        self._backends: dict[str, Backend] = {}
        self._by_key: dict[str, Backend] = {}
        self._grants: dict[str, Grant] = {}
        self._tokens_of: dict[str, list[str]] = {}
        self._expiry_timers: dict[str, asyncio.TimerHandle] = {}
        self._closed = False

    def connect(self, request: ConnectRequest) -> tuple[Grant, bool]:
        """A new token for the live backend holding ``request.key``, or for a new backend.

        Returns:
            The grant (token, secret token, backend) and whether a backend was spawned.

        Raises:
            NoBackendForKey: ``spawn`` is false and no live backend holds the key.
            RuntimeError: the registry is closed.
        """
        if self._closed:
            raise RuntimeError("the dev server is shutting down")
        backend = self._by_key.get(request.key) if request.key is not None else None
        spawned = backend is None or not backend.is_live
        if spawned:
            if request.spawn is False:
                raise NoBackendForKey("no live backend holds this key, and spawn is false")
            backend = self._spawn(request)
        assert backend is not None
        grant = Grant(backend, request.user, request.auth)
        self._grants[grant.token] = grant
        self._tokens_of[backend.id].append(grant.token)
        if self._config.token_lifetime is not None:
            self._expiry_timers[grant.token] = asyncio.get_running_loop().call_later(
                self._config.token_lifetime, self._expire, grant.token
            )
        return grant, spawned

    def expire_tokens(self, backend_id: str) -> int:
        """Expires every token handed out for a backend so far, as if their lifetime ended.

        The proxy answers 410 Gone to them from now on and drops the connections they opened;
        the backend itself goes on, and a new connect (same key) gets a working token.

        Returns:
            How many tokens expired.
        """
        tokens = list(self._tokens_of.get(backend_id, ()))
        for token in tokens:
            self._expire(token)
        return len(tokens)

    def _expire(self, token: str) -> None:
        timer = self._expiry_timers.pop(token, None)
        if timer is not None:
            timer.cancel()
        grant = self._grants.pop(token, None)
        if grant is None:
            return
        with contextlib.suppress(KeyError, ValueError):
            self._tokens_of[grant.backend.id].remove(token)
        _log.info("backend %s: a token expired", grant.backend.id)
        if self._on_expired is not None:
            self._on_expired(grant)

    def _spawn(self, request: ConnectRequest) -> Backend:
        backend_id = self._new_id()
        in_use = {b.port for b in self._backends.values() if not b.ended}
        spawn = request.spawn if isinstance(request.spawn, SpawnOptions) else None
        backend = Backend(
            backend_id,
            free_port(self._config.upstream_host, in_use),
            self._config,
            key=request.key,
            spawn=spawn,
        )
        self._backends[backend_id] = backend
        self._tokens_of[backend_id] = []
        if request.key is not None:
            self._by_key[request.key] = backend
        backend.task.add_done_callback(lambda _: self._forget_routes(backend))
        _log.info("backend %s: spawned (port %d)", backend_id, backend.port)
        return backend

    def _new_id(self) -> str:
        while True:
            backend_id = "".join(secrets.choice(_ID_ALPHABET) for _ in range(12))
            if backend_id not in self._backends:
                return backend_id

    def _forget_routes(self, backend: Backend) -> None:
        # The backend's status stays available; only its tokens and key stop working.
        for token in self._tokens_of.pop(backend.id, []):
            self._grants.pop(token, None)
            timer = self._expiry_timers.pop(token, None)
            if timer is not None:
                timer.cancel()
        if backend.key is not None and self._by_key.get(backend.key) is backend:
            del self._by_key[backend.key]

    def get(self, backend_id: str) -> Backend | None:
        """The backend with that id, live or terminated, or None."""
        return self._backends.get(backend_id)

    def grant(self, token: str) -> Grant | None:
        """The grant of a token whose backend has not ended, or None."""
        grant = self._grants.get(token)
        if grant is None or grant.backend.ended:
            return None
        return grant

    @property
    def live_pids(self) -> list[int]:
        """Process ids of the backends that have not ended."""
        return [b.pid for b in self._backends.values() if b.pid is not None and not b.ended]

    async def close(self) -> None:
        """Terminates every backend (soft, then killed after the grace period) and waits."""
        self._closed = True
        for timer in self._expiry_timers.values():
            timer.cancel()
        self._expiry_timers.clear()
        tasks = [b.task for b in self._backends.values() if not b.task.done()]
        for backend in self._backends.values():
            backend.terminate()
        if not tasks:
            return
        # Each backend kills its group after the grace period itself; the margin covers reaping.
        _, pending = await asyncio.wait(tasks, timeout=self._config.terminate_grace + 5.0)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)


def check_connect_request(request: ConnectRequest) -> list[str]:
    """What the dev server cannot honour in a well-typed connect request, one line per field.

    Returns:
        ``"field.path: problem"`` lines; empty when the request is fine.
    """
    problems: list[str] = []
    # The user name becomes a request header: a line break would forge more headers.
    if request.user is not None and any(c in request.user for c in "\r\n\0"):
        problems.append("user: must not contain line breaks or NUL characters")
    spawn = request.spawn
    if not isinstance(spawn, SpawnOptions):
        return problems
    for name in ("lifetime_limit_seconds", "max_idle_seconds"):
        value = getattr(spawn, name)
        if value is not None and value <= 0:
            problems.append(f"spawn.{name}: must be a positive number of seconds")
    env = spawn.executable.env if spawn.executable is not None else None
    for key, value in (env or {}).items():
        if not key or "=" in key or "\0" in key or "\0" in value:
            problems.append(
                "spawn.executable.env: names must be non-empty without '=' or NUL, "
                "values without NUL"
            )
            break
    return problems
