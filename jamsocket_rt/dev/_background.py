"""A dev server on a background thread, for blocking code (scripts, tests, notebooks)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

from .._models import ConnectResponse
from ..platform import Jamsocket
from ._server import DevServer

T = TypeVar("T")


class BackgroundDevServer:
    """A :class:`DevServer` on its own event loop thread, driven with blocking calls.

    For code whose own thread or loop is busy or blocked: scripts and tests without asyncio,
    and notebooks that use :class:`~jamsocket_rt.SyncSession` (which blocks the kernel's
    loop while it waits, so a dev server on that loop could not answer it).

    Args:
        command: the backend command (default: the bundled example backend).
        quiet: discard the backends' output.
        cwd: the backends' working directory (None: this process's).

    Attributes:
        command: the backend command it runs.
        api_url: its API URL (give it to ``Jamsocket.dev_server`` or ``JAMSOCKET_API_URL``).
    """

    def __init__(
        self,
        command: str | Sequence[str] | None = None,
        *,
        quiet: bool = False,
        cwd: str | None = None,
    ) -> None:
        self.command = command
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="jamsocket_rt dev server", daemon=True
        )
        self._thread.start()
        self._server = DevServer(backend=command, quiet=quiet, cwd=cwd)
        self._api: Jamsocket | None = None
        try:
            self._run(self._start())
        except BaseException:
            self.close()
            raise
        self.api_url = self._server.api_url

    async def _start(self) -> None:
        await self._server.start()
        self._api = Jamsocket.dev_server(self._server.api_url)

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(120)

    def connect(self, **fields: Any) -> ConnectResponse:
        """Connect (spawning a backend, or reusing the one holding ``key``); blocking.

        Args:
            **fields: ConnectRequest fields: key, spawn, user, auth.
        """
        assert self._api is not None
        return self._run(self._api.connect(**fields))

    def terminate(self, backend_id: str, hard: bool = False) -> None:
        """Terminate a backend; blocking."""
        assert self._api is not None
        self._run(self._api.terminate(backend_id, hard=hard))

    def close(self) -> None:
        async def stop() -> None:
            if self._api is not None:
                await self._api.aclose()
            await self._server.close()

        if self._thread.is_alive():
            try:
                self._run(stop())
            finally:
                self._loop.call_soon_threadsafe(self._loop.stop)
                self._thread.join(30)
        self._loop.close()

    def __enter__(self) -> BackgroundDevServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
