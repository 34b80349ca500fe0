"""A pytest plugin for testing your own session backend in a few lines.

Installed with jamsocket_rt and registered through the ``pytest11`` entry point; it does
nothing unless a test asks for one of its fixtures::

    # pytest.ini (or [tool.pytest.ini_options] in pyproject.toml)
    [pytest]
    jamsocket_backend = python my_backend.py

    # test_my_backend.py
    def test_echo(jamsocket_session):
        session = jamsocket_session()                 # a connected SyncSession on a new backend
        assert session.call("echo", "hi") == "hi"

    @pytest.mark.jamsocket_backend("node server.js")  # per-test (or per-module) override
    def test_node(jamsocket_session): ...

    async def test_async(jamsocket_dev_server):       # with pytest-asyncio or anyio
        async with jamsocket_rt.Session(jamsocket_dev_server.connect(key="room")) as s:
            ...

Fixtures:
    jamsocket_dev_server: a :class:`RunningDevServer` for the backend command of the test
        (marker, else the ini option, else the bundled example backend). The server runs on
        its own event loop thread, so it serves sync and async tests alike; one per command,
        shared by the whole test session.
    jamsocket_session: a factory ``(key=None, **session_options) -> SyncSession`` that
        connects through that server; every session it opened is closed after the test.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import pytest

from ._api import Jamsocket
from ._models import ConnectResponse
from .dev import EXAMPLE_BACKEND, DevServer
from .sync.session import SyncSession

T = TypeVar("T")

INI_OPTION = "jamsocket_backend"
MARKER = "jamsocket_backend"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        INI_OPTION,
        "jamsocket_rt: the session backend command the dev server runs for the tests "
        "(default: the bundled example backend)",
        default="",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(command): the session backend command for the jamsocket_rt dev server "
        "fixtures of this test",
    )


class RunningDevServer:
    """A :class:`~jamsocket_rt.dev.DevServer` on a background loop thread, for any test.

    Attributes:
        command: the backend command it runs.
        api_url: its API URL (give it to ``Jamsocket.dev_server`` or ``JAMSOCKET_API_URL``).
    """

    def __init__(self, command: str | tuple[str, ...]) -> None:
        self.command = command
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="jamsocket_rt dev server", daemon=True
        )
        self._thread.start()
        self._server = DevServer(backend=command, quiet=False)
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


def _command_for(request: pytest.FixtureRequest) -> str | tuple[str, ...]:
    marker = request.node.get_closest_marker(MARKER)
    if marker is not None:
        if len(marker.args) != 1 or not isinstance(marker.args[0], str):
            raise pytest.UsageError(f"@pytest.mark.{MARKER} takes one command string")
        return str(marker.args[0])
    configured = str(request.config.getini(INI_OPTION)).strip()
    return configured or EXAMPLE_BACKEND


class _Servers:
    """One running dev server per backend command for the whole test session."""

    def __init__(self) -> None:
        self._by_command: dict[str | tuple[str, ...], RunningDevServer] = {}

    def get(self, command: str | tuple[str, ...]) -> RunningDevServer:
        if command not in self._by_command:
            self._by_command[command] = RunningDevServer(command)
        return self._by_command[command]

    def close(self) -> None:
        for server in self._by_command.values():
            server.close()
        self._by_command.clear()


@pytest.fixture(scope="session")
def _jamsocket_servers() -> Iterator[_Servers]:
    servers = _Servers()
    yield servers
    servers.close()


@pytest.fixture
def jamsocket_dev_server(
    request: pytest.FixtureRequest, _jamsocket_servers: _Servers
) -> RunningDevServer:
    """The dev server for this test's backend command (see the module docstring)."""
    return _jamsocket_servers.get(_command_for(request))


@pytest.fixture
def jamsocket_session(
    jamsocket_dev_server: RunningDevServer,
) -> Iterator[Callable[..., SyncSession]]:
    """A factory of connected SyncSessions on the dev server; all closed after the test."""
    opened: list[SyncSession] = []

    def open_session(key: str | None = None, **options: Any) -> SyncSession:
        response = jamsocket_dev_server.connect(**({"key": key} if key is not None else {}))
        session = SyncSession(response, **options)
        session.connect()
        opened.append(session)
        return session

    yield open_session
    for session in reversed(opened):
        session.close()
