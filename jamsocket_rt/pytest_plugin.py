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
    jamsocket_session: a factory ``(key=None, *, shared=False, **session_options) ->
        SyncSession`` that connects through that server; every session it opened is closed
        after the test, and every backend it spawned for the test is terminated.

The backend command runs in the folder of the ini file that names it (the rootdir for a
marker or when there is no ini file), so ``python my_backend.py`` finds its file whatever
the current directory; a leading ``python`` (or ``python3``) is the interpreter running
pytest, so a virtual environment works without being activated.

Tests are isolated: a ``key`` is scoped to the test (two sessions of one test with
``key="room"`` share a backend; two tests do not). ``shared=True`` uses the key as it is, so
tests that ask for it share that backend (and it outlives them).
"""

from __future__ import annotations

import contextlib
import hashlib
import shlex
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from ._errors import JamsocketError
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


#: A backend command and the folder it runs in (None: the bundled example, anywhere).
_Command = tuple[str | tuple[str, ...], str | None]


def with_this_python(command: str) -> str:
    """``command`` with a leading ``python``/``python3`` replaced by the running interpreter."""
    words = command.split(maxsplit=1)
    if words and words[0] in ("python", "python3"):
        return shlex.quote(sys.executable) + (" " + words[1] if len(words) > 1 else "")
    return command


def _command_for(request: pytest.FixtureRequest) -> _Command:
    config = request.config
    marker = request.node.get_closest_marker(MARKER)
    if marker is not None:
        if len(marker.args) != 1 or not isinstance(marker.args[0], str):
            raise pytest.UsageError(f"@pytest.mark.{MARKER} takes one command string")
        return with_this_python(str(marker.args[0])), str(config.rootpath)
    configured = str(config.getini(INI_OPTION)).strip()
    if not configured:
        return EXAMPLE_BACKEND, None
    folder = Path(config.inipath).parent if config.inipath is not None else config.rootpath
    return with_this_python(configured), str(folder)


class _Servers:
    """One running dev server per backend command for the whole test session."""

    def __init__(self) -> None:
        self._by_command: dict[_Command, BackgroundDevServer] = {}

    def get(self, command: _Command) -> BackgroundDevServer:
        if command not in self._by_command:
            self._by_command[command] = BackgroundDevServer(command[0], cwd=command[1])
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


def scoped_key(nodeid: str, key: str) -> str:
    """``key`` for one test only: the same key in another test names another backend."""
    digest = hashlib.sha256(nodeid.encode()).hexdigest()[:12]
    return f"{key}@test-{digest}"


@pytest.fixture
def jamsocket_session(
    request: pytest.FixtureRequest, jamsocket_dev_server: BackgroundDevServer
) -> Iterator[Callable[..., SyncSession]]:
    """A factory of connected SyncSessions on the dev server (see the module docstring): all
    closed after the test, and the backends it spawned for the test terminated."""
    opened: list[SyncSession] = []
    spawned: set[str] = set()

    def open_session(
        key: str | None = None, *, shared: bool = False, **options: Any
    ) -> SyncSession:
        fields = {}
        if key is not None:
            fields["key"] = key if shared else scoped_key(request.node.nodeid, key)
        response = jamsocket_dev_server.connect(**fields)
        if response.spawned and not shared:
            spawned.add(response.backend_id)
        session = SyncSession(response, **options)
        session.connect()
        opened.append(session)
        return session

    yield open_session
    for session in reversed(opened):
        session.close()
    for backend_id in spawned:
        # A backend the test ended itself is gone already: nothing to do then.
        with contextlib.suppress(JamsocketError):
            jamsocket_dev_server.terminate(backend_id)
