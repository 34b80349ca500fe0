"""The contract between a Session and the Socket.IO connection under it.

A Session owns everything that outlives one connection (queued sends, listeners, pending
calls, reconnect policy, the backend's status). A Transport is one Socket.IO connection: it is
opened once with its own namespace (``target.namespace``), may carry more namespaces
(:meth:`Transport.open_namespace`), moves events both ways, and reports exactly once that it is
gone. A new connection after a drop is a new Transport.

Two implementations exist: :class:`~jamsocket_rt.transport.websocket.WebSocketTransport`, a
lean Engine.IO v4 / Socket.IO v5 speaker on a websocket of its own (the fast default), and
:class:`~jamsocket_rt.transport.python_socketio.PythonSocketIOTransport`, python-socketio's
AsyncClient behind the same contract (long-polling, and anything the fast path lacks).
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from attrs import field, frozen

# Part of the contract (connect raises it); defined with the other errors.
from .._errors import ConnectRefused as ConnectRefused
from ..protocol.proxy import ProxySetting
from ..protocol.recovery import Recovery

#: Called with the acknowledgement's arguments (a list, possibly empty).
AckCallback = Callable[[list[Any]], None]

#: Given to the receiver of an event that asked for an acknowledgement; call it once (a second
#: call raises RuntimeError; a call after the connection is gone does nothing).
AckResponder = Callable[[Sequence[Any]], None]


@frozen
class ConnectTarget:
    """Where and how to open the Socket.IO connection.

    Attributes:
        origin: scheme://host:port of the backend URL (http or https).
        socketio_path: the Socket.IO path *with* the token segment, e.g. ``/TOKEN/socket.io/``.
        headers: extra HTTP headers for the handshake.
        auth: the Socket.IO CONNECT payload (``auth``), or None.
        transports: allowed transports in order of preference: "websocket", "polling".
        ssl: None = verify certificates (the default); False = do not verify; or an SSLContext.
        proxy: the ``proxy=`` option: None (the environment's HTTP(S)_PROXY / NO_PROXY), a
            proxy URL, or False (connect directly).
        connect_timeout: seconds for the whole handshake (HTTP upgrade + Socket.IO CONNECT).
        max_payload: largest inbound message accepted, in bytes.
        namespace: the namespace the connection opens with (``/`` by default).
        query: query parameters for every Engine.IO request (``socket.handshake.query``).
        recovery: that namespace's connection state recovery, kept across connections by its
            owner (see :mod:`jamsocket_rt.protocol.recovery`); a transport that cannot recover
            calls its ``forget()``.
        parser: the server's Socket.IO parser: "json" (socket.io's default) or "msgpack"
            (socket.io-msgpack-parser).
    """

    origin: str
    socketio_path: str
    headers: Mapping[str, str] = field(factory=dict, repr=False)
    auth: Mapping[str, Any] | None = field(default=None, repr=False)
    transports: tuple[str, ...] = ("websocket",)
    ssl: ssl.SSLContext | bool | None = None
    proxy: ProxySetting = field(default=None, repr=False)
    connect_timeout: float = 10.0
    max_payload: int = 16 * 1024 * 1024
    namespace: str = "/"
    query: Mapping[str, str] = field(factory=dict, repr=False)
    recovery: Recovery | None = field(default=None, repr=False, eq=False)
    parser: str = "json"


class TransportListener(Protocol):
    """What a Transport reports to its owner (the Session). Called on the event loop thread."""

    def transport_event(self, event: str, args: list[Any], ack: AckResponder | None) -> None:
        """A server event arrived (``args`` may be empty); ``ack`` is set if it wants one."""

    def transport_lost(self, error: BaseException | None) -> None:
        """The connection is gone (called exactly once, never after a local ``close()``).

        ``error`` says why when known (e.g. ConnectionResetError, TimeoutError on a missed ping,
        or a server-side disconnect as ConnectionAbortedError).
        """


class NamespaceListener(Protocol):
    """What a Transport reports about one extra namespace. Called on the event loop thread."""

    def transport_event(self, event: str, args: list[Any], ack: AckResponder | None) -> None:
        """A server event of that namespace arrived."""

    def namespace_lost(self, reason: str) -> None:
        """The server disconnected that namespace (``reason``: socket.io-client's words)."""


class Transport(Protocol):
    """One Socket.IO connection, carrying its own namespace and any others opened on it."""

    @property
    def sid(self) -> str | None:
        """The Socket.IO session id once connected."""

    @property
    def connected(self) -> bool:
        """True between a successful ``connect`` and the loss or ``close``."""

    async def connect(self, target: ConnectTarget, listener: TransportListener) -> None:
        """Open the connection and complete the Socket.IO CONNECT.

        Raises:
            TokenExpired: the proxy answered 410 Gone.
            ConnectRefused: the server refused the Socket.IO CONNECT (a ConnectionError).
            ConnectionError: the connection could not be opened or the handshake failed
                (the message names the host, never the token).
            TimeoutError: ``target.connect_timeout`` elapsed.
            RuntimeError: the transport was connected before (one transport, one connection).
        """

    @property
    def dropped_packets(self) -> int:
        """Packets received for namespaces nobody opened on this connection (dropped)."""

    async def open_namespace(
        self,
        nsp: str,
        auth: Mapping[str, Any] | None,
        listener: NamespaceListener,
        recovery: Recovery | None = None,
    ) -> str:
        """Send the CONNECT of namespace ``nsp`` on this connection and wait for the answer.

        ``recovery`` is that namespace's connection state recovery (as ``target.recovery``).

        Returns:
            The namespace's socket id.

        Raises:
            ConnectRefused: the server refused it (with the server's data).
            ConnectionError: the connection is not connected, or was lost while waiting.
        """

    def close_namespace(self, nsp: str) -> None:
        """Send the DISCONNECT of namespace ``nsp``; its events are dropped from now on."""

    def emit(
        self,
        event: str,
        args: Sequence[Any],
        on_ack: AckCallback | None = None,
        nsp: str | None = None,
    ) -> None:
        """Encode one event (of namespace ``nsp``, default: the connection's own) and queue it
        for writing; never blocks and never awaits.

        ``bytes``, ``bytearray`` and ``memoryview`` anywhere in ``args`` travel as binary
        attachments (they arrive as ``bytes``).

        Raises:
            TypeError: an argument cannot be serialized (nothing was written).
            ValueError: the encoded event exceeds the server's maxPayload, which would make the
                server drop the connection (nothing was written).
            ConnectionError: the transport is not connected.
        """

    async def drain(self) -> None:
        """Wait while the outgoing buffer is above its high-water mark (back-pressure).

        Returns at once below the high-water mark, else once the buffer is down to the
        low-water mark.

        Raises:
            ConnectionError: the transport is not connected, or was lost while waiting.
        """

    def pause_reading(self) -> None:
        """Stop reading from the network until :meth:`resume_reading` (back-pressure).

        For a consumer that has fallen behind: unread data then waits in the kernel and, once
        its buffers are full, in the server. At most the events of the message being decoded
        are still delivered. While paused, the transport's own liveness check is suspended
        (the server's pings wait unread, and a loss is noticed once reading resumes); a server
        may end a connection that stays paused past its ping timeout. Idempotent; does nothing
        when not connected.
        """

    def resume_reading(self) -> None:
        """Read again after :meth:`pause_reading`; idempotent."""

    async def close(self) -> None:
        """Disconnect politely and release everything; idempotent. Pending acks never fire."""
