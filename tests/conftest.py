"""Fixtures and hooks only; the helpers they use are in :mod:`tests.helpers`.

Backends
    ``backend_flavour`` (session, params ``python`` and ``node``; the ``node`` run carries the
    ``node`` marker), ``example_backend`` (module, one backend per flavour), ``python_backend``
    / ``node_backend`` (module), ``spawn_backend`` (function: a factory, for tests that kill
    their backend). See :mod:`tests.helpers.backends`.

Peers
    ``sio_client`` (factory of :class:`~tests.helpers.peers.SioClient`, a python-socketio
    AsyncClient that records everything it receives) and ``node_client`` (factory of
    :class:`~tests.helpers.peers.NodeClient`, a real socket.io-client in Node driven through
    ``tests/node/client.js``).

Node
    ``node_bin``, ``node_modules_dir`` and ``require_node`` skip the test, with the reason,
    when node or ``tests/node/node_modules`` is missing (``./run test`` installs them).

Dev server
    ``dev`` (a DevServer with the example backend of ``backend_flavour``) and ``api`` (its
    platform API client).

Markers
    ``node`` (needs the Node peers) and ``slow`` (several seconds or more) are registered in
    pyproject.toml; ``pytest -m "not node and not slow"`` runs the fast tests alone. A test
    that asks for one of the Node fixtures gets the ``node`` marker here even if its module
    forgot it.

Every process a fixture starts is stopped at teardown, even when the test fails.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import jamsocket_rt as jrt
from jamsocket_rt.dev import DevServer
from tests.helpers.backends import BackendProcess, backend_command, running_backend, start_backend
from tests.helpers.node import NODE_PACKAGES, node_missing_reason
from tests.helpers.paths import NODE_MODULES
from tests.helpers.peers import NodeClient, SioClient

#: Fixtures that run Node peers: a test that asks for one needs Node (the ``node`` marker).
NODE_FIXTURES = frozenset(
    {"node_bin", "node_modules_dir", "require_node", "node_backend", "node_client"}
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Marks ``node`` every test that asks for a Node fixture (a safety net for new tests)."""
    for item in items:
        uses_node = NODE_FIXTURES.intersection(getattr(item, "fixturenames", ()))
        if uses_node and item.get_closest_marker("node") is None:
            item.add_marker(pytest.mark.node)


# --------------------------------------------------------------------------- Node availability


@pytest.fixture(scope="session")
def node_bin() -> str:
    """The path of the node executable; skips the test when there is none."""
    path = shutil.which("node")
    if path is None:
        pytest.skip("node is not installed: the Node peers (tests/node) are skipped")
    return path


@pytest.fixture(scope="session")
def node_modules_dir() -> Path:
    """tests/node/node_modules with socket.io and socket.io-client; skips when not installed."""
    for package in NODE_PACKAGES:
        if not (NODE_MODULES / package / "package.json").is_file():
            pytest.skip(f"{NODE_MODULES} lacks {package}: run `npm ci` in tests/node")
    return NODE_MODULES


@pytest.fixture(scope="session")
def require_node(node_bin: str, node_modules_dir: Path) -> str:
    """Skips the test unless node and the Node peers are installed; gives the node path."""
    return node_bin


# --------------------------------------------------------------------------- backends


@pytest.fixture(scope="session", params=["python", pytest.param("node", marks=pytest.mark.node)])
def backend_flavour(request: pytest.FixtureRequest) -> str:
    """``"python"`` then ``"node"``: runs the test against both example backends.

    Session-scoped so that module-scoped backends can depend on it; the Node run is skipped
    when Node is not installed, and carries the ``node`` marker.
    """
    flavour: str = request.param
    if flavour == "node":
        request.getfixturevalue("require_node")
    return flavour


@pytest.fixture(scope="module")
def example_backend(backend_flavour: str) -> Iterator[BackendProcess]:
    """One backend of each flavour per test module, with backend id ``example-{flavour}``.

    Shared by the module's tests: don't kill it (use ``spawn_backend``), and reset what you
    rely on (``reset_records``).
    """
    with running_backend(backend_flavour, backend_id=f"example-{backend_flavour}") as backend:
        yield backend


@pytest.fixture(scope="module")
def python_backend() -> Iterator[BackendProcess]:
    """A Python example backend shared by the module (backend id ``example-python``)."""
    with running_backend("python", backend_id="example-python") as backend:
        yield backend


@pytest.fixture(scope="module")
def node_backend(require_node: str) -> Iterator[BackendProcess]:
    """A Node example backend shared by the module (backend id ``example-node``)."""
    with running_backend("node", backend_id="example-node") as backend:
        yield backend


@pytest.fixture
def spawn_backend() -> Iterator[Callable[..., BackendProcess]]:
    """A factory ``spawn_backend(flavour="python", *, backend_id="local", env=None)``.

    For tests that end their backend themselves; whatever is left runs is stopped afterwards.
    """
    started: list[BackendProcess] = []

    def spawn(flavour: str = "python", **kwargs: Any) -> BackendProcess:
        if flavour == "node":
            reason = node_missing_reason()
            if reason is not None:
                pytest.skip(reason)
        backend = start_backend(flavour, **kwargs)
        started.append(backend)
        return backend

    yield spawn
    for backend in started:
        backend.stop()


# --------------------------------------------------------------------------- peers


@pytest.fixture
async def sio_client() -> AsyncIterator[Callable[..., Awaitable[SioClient]]]:
    """A factory ``await sio_client(url, **connect_kwargs) -> SioClient``, already connected.

    ``url=None`` returns it unconnected; ``client_kwargs={...}`` go to ``AsyncClient``.
    Every client is disconnected at teardown.
    """
    clients: list[SioClient] = []

    async def make(
        url: str | None, *, client_kwargs: dict[str, Any] | None = None, **connect_kwargs: Any
    ) -> SioClient:
        client = SioClient(**(client_kwargs or {}))
        clients.append(client)
        if url is not None:
            await client.connect(url, **connect_kwargs)
        return client

    yield make
    for client in clients:
        await client.disconnect()


@pytest.fixture
async def node_client(require_node: str) -> AsyncIterator[Callable[..., Awaitable[NodeClient]]]:
    """A factory ``await node_client(url, path="/socket.io/", transports=("websocket",),
    options=None, *, wait_connected=True) -> NodeClient``; all are closed at teardown."""
    clients: list[NodeClient] = []

    async def make(url: str, *args: Any, **kwargs: Any) -> NodeClient:
        client = await NodeClient.start(url, *args, node=require_node, **kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


# --------------------------------------------------------------------------- dev server


@pytest.fixture
async def dev(backend_flavour: str) -> AsyncIterator[DevServer]:
    """A DevServer running the example backend of ``backend_flavour`` (python, then node).

    Test modules that need another backend or options define their own ``dev``.
    """
    async with DevServer(backend=backend_command(backend_flavour), quiet=True) as server:
        yield server


@pytest.fixture
async def api(dev: DevServer) -> AsyncIterator[jrt.Jamsocket]:
    """A platform API client of the ``dev`` server."""
    async with jrt.Jamsocket.dev_server(dev.api_url) as client:
        yield client
