"""The Session's one connection: what socket.io-client calls the Manager.

:class:`Connection` opens an Engine.IO connection (the first allowed transport that works),
carries every namespace of the Session over it, routes what arrives to the namespace it is
for, and pauses reading while any namespace's handlers or streams are behind. What to do after
a drop, a 410 or a refusal is not decided here: the Session asks the lifecycle table
(:mod:`jamsocket_rt.protocol.lifecycle`) and tells the Connection to open again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .._errors import AuthFailed, ConnectRefused, TokenExpired
from .._models import ConnectResponse
from ..protocol.options import SessionOptions
from ..transport.base import AckResponder, ConnectTarget, Transport
from ._util import resolve_auth

if TYPE_CHECKING:
    from .namespace import Namespace

logger = logging.getLogger("jamsocket_rt.session")

TransportFactory = Callable[[ConnectTarget], Transport]


class _Link:
    """Binds a Transport's reports to the Connection while that transport is the current one."""

    __slots__ = ("connection", "root")

    def __init__(self, connection: Connection, root: Namespace) -> None:
        self.connection = connection
        self.root = root

    def transport_event(self, event: str, args: list[Any], ack: AckResponder | None) -> None:
        if self.connection._link is self:
            self.root._on_event(event, args, ack)

    def transport_lost(self, error: BaseException | None) -> None:
        if self.connection._link is self:
            self.connection._lost(error)


class _NamespaceLink:
    """Binds one extra namespace's events on one transport to its Namespace."""

    __slots__ = ("connection", "link", "namespace")

    def __init__(self, connection: Connection, link: _Link, namespace: Namespace) -> None:
        self.connection = connection
        self.link = link
        self.namespace = namespace

    def transport_event(self, event: str, args: list[Any], ack: AckResponder | None) -> None:
        if self.connection._link is self.link:
            self.namespace._on_event(event, args, ack)

    def namespace_lost(self, reason: str) -> None:
        if self.connection._link is self.link:
            self.connection._namespace_ended(self.namespace, reason)


class Connection:
    """One Engine.IO connection at a time, carrying the Session's namespaces.

    Args:
        root: the Session (its own namespace, the one the transport connects).
        options: the Session's options.
        on_lost: called with the error when the current transport is lost.

    Attributes:
        transport: the current transport, or None while disconnected.
        namespaces: the extra namespaces opened with ``Session.namespace()``, by name.
        read_pauses: how many times reading was paused because handlers or streams fell behind.
    """

    __slots__ = (
        "_factory",
        "_joins",
        "_link",
        "_on_lost",
        "_options",
        "_pausers",
        "_root",
        "namespaces",
        "read_pauses",
        "transport",
    )

    def __init__(
        self,
        root: Namespace,
        options: SessionOptions,
        on_lost: Callable[[BaseException | None], None],
    ) -> None:
        self._root = root
        self._options = options
        self._on_lost = on_lost
        factory = options.transport_factory
        self._factory: TransportFactory = factory or default_transport_factory
        self.transport: Transport | None = None
        self._link: _Link | None = None
        # Why reading is paused (backlogs, full streams); None while it never was.
        self._pausers: set[object] | None = None
        self.namespaces: dict[str, Namespace] = {}
        self.read_pauses = 0
        self._joins: set[asyncio.Task[None]] | None = None  # CONNECTs of extra namespaces

    # ------------------------------------------------------------------ opening

    def target(
        self, response: ConnectResponse, kind: str, auth: Mapping[str, Any] | None = None
    ) -> ConnectTarget:
        """Where the transport of ``kind`` connects for ``response`` (the token in the path),
        with ``auth`` as the own namespace's CONNECT payload."""
        parts = urlsplit(response.url)
        options = self._options
        return ConnectTarget(
            origin=f"{parts.scheme}://{parts.netloc}",
            socketio_path=parts.path.rstrip("/") + "/socket.io/",
            headers=options.headers,
            auth=auth,
            transports=(kind,),
            ssl=options.ssl,
            proxy=options.proxy,
            connect_timeout=options.connect_timeout,
            max_payload=options.max_payload,
            namespace=self._root.name,
            query=options.query,
            recovery=self._root._recovery,
            parser=options.parser,
        )

    async def open(self, response: ConnectResponse) -> Transport:
        """Opens a transport, trying each allowed one in order, and makes it the current one.

        A network that breaks websockets still gets a session over polling when both are
        allowed.

        Raises:
            TokenExpired: the proxy answered 410.
            ConnectRefused: the server refused the CONNECT.
            AuthFailed: the ``auth`` function raised or returned no mapping.
            OSError, TimeoutError: no transport could connect.
        """
        kinds = self._options.transports
        # Once per attempt: an auth function hands out fresh credentials for every CONNECT.
        auth = await resolve_auth(self._root._auth, self._root.name)
        for index, kind in enumerate(kinds):
            target = self.target(response, kind, auth)
            transport = self._factory(target)
            link = _Link(self, self._root)
            self._link = link
            try:
                await transport.connect(target, link)
            except BaseException as exc:
                self._link = None
                with contextlib.suppress(Exception):
                    await transport.close()
                fallback = isinstance(exc, (OSError, TimeoutError)) and not isinstance(
                    exc, (TokenExpired, ConnectRefused)
                )
                if fallback and index + 1 < len(kinds):
                    logger.info("%s transport failed (%s); trying the next", kind, exc)
                    continue
                raise
            return transport
        raise AssertionError("unreachable: transports is never empty")  # pragma: no cover

    def attach(self, transport: Transport) -> None:
        """Makes an opened transport the current one and joins the extra namespaces."""
        self.transport = transport
        if self._pausers:  # handlers or streams are still behind
            transport.pause_reading()
        for namespace in self.namespaces.values():
            self.join(namespace)

    def detach(self) -> Transport | None:
        """Forgets the current transport (its reports are ignored from now on); returns it."""
        transport, self.transport, self._link = self.transport, None, None
        for task in self._joins or ():
            task.cancel()
        return transport

    def _lost(self, error: BaseException | None) -> None:
        self.detach()
        self._on_lost(error)

    # ------------------------------------------------------------------ namespaces

    def add(self, namespace: Namespace) -> None:
        """Registers an extra namespace; it joins now if connected, else on the next open."""
        self.namespaces[namespace.name] = namespace
        if self.transport is not None and self.transport.connected:
            self.join(namespace)

    def join(self, namespace: Namespace) -> None:
        """Sends the namespace's CONNECT on the current transport (in a task of its own)."""
        transport, link = self.transport, self._link
        if transport is None or link is None:
            return
        task = asyncio.get_running_loop().create_task(
            self._join(transport, link, namespace), name=f"jamsocket_rt join {namespace.name}"
        )
        if self._joins is None:
            self._joins = set()
        self._joins.add(task)
        task.add_done_callback(self._joins.discard)

    async def _join(self, transport: Transport, link: _Link, namespace: Namespace) -> None:
        listener = _NamespaceLink(self, link, namespace)
        try:
            auth = await resolve_auth(namespace._auth, namespace.name)
            sid = await transport.open_namespace(
                namespace.name, auth, listener, namespace._recovery
            )
        except (ConnectRefused, AuthFailed) as refused:
            self.namespaces.pop(namespace.name, None)
            namespace._refused(refused)
            return
        except (ConnectionError, RuntimeError):
            return  # the connection went away first: the next one joins again
        if self._link is link:
            namespace._joined_as(sid)

    def leave(self, namespace: Namespace) -> None:
        """Closes an extra namespace (a DISCONNECT for it when connected)."""
        self.namespaces.pop(namespace.name, None)
        if self.transport is not None:
            with contextlib.suppress(ConnectionError, RuntimeError):
                self.transport.close_namespace(namespace.name)

    def _namespace_ended(self, namespace: Namespace, reason: str) -> None:
        self.namespaces.pop(namespace.name, None)
        namespace._ended_by_server(reason)

    @property
    def dropped_packets(self) -> int:
        """Packets received for namespaces nobody opened, on the current connection."""
        transport = self.transport
        return transport.dropped_packets if transport is not None else 0

    # ------------------------------------------------------------------ back-pressure

    def hold_reading(self, reason: object) -> None:
        """Stop reading from the connection while ``reason`` (a backlog, a stream) is behind."""
        if self._pausers is None:
            self._pausers = set()
        if reason in self._pausers:
            return
        if not self._pausers:
            self.read_pauses += 1
            logger.debug("handlers or streams are behind: reading paused")
            if self.transport is not None:
                self.transport.pause_reading()
        self._pausers.add(reason)

    def release_reading(self, reason: object) -> None:
        if self._pausers is None or reason not in self._pausers:
            return
        self._pausers.discard(reason)
        if not self._pausers and self.transport is not None:
            self.transport.resume_reading()


def default_transport_factory(target: ConnectTarget) -> Transport:
    """The fast websocket transport, or python-socketio's client for polling."""
    if target.transports[0] == "websocket":
        from ..transport.websocket import WebSocketTransport

        return WebSocketTransport()
    from ..transport.python_socketio import PythonSocketIOTransport

    return PythonSocketIOTransport()
