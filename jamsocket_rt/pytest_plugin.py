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
    jamsocket_dev_server: a :class:`~jamsocket_rt.dev.BackgroundDevServer` for the backend
        command of the test (marker, else the ini option, else the bundled example backend).
        The server runs on its own event loop thread, so it serves sync and async tests
        alike; one per command, shared by the whole test session.
    jamsocket_session: a factory ``(key=None, **session_options) -> SyncSession`` that
        connects through that server; every session it opened is closed after the test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest

from .dev import EXAMPLE_BACKEND, BackgroundDevServer
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
        self._by_command: dict[str | tuple[str, ...], BackgroundDevServer] = {}

    def get(self, command: str | tuple[str, ...]) -> BackgroundDevServer:
        if command not in self._by_command:
            self._by_command[command] = BackgroundDevServer(command)
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
) -> BackgroundDevServer:
    """The dev server for this test's backend command (see the module docstring)."""
    return _jamsocket_servers.get(_command_for(request))


@pytest.fixture
def jamsocket_session(
    jamsocket_dev_server: BackgroundDevServer,
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
