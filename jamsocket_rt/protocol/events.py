"""What a :class:`~jamsocket_rt.protocol.socketio.ClientProtocol` reports, and its states."""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING, Any

from attrs import define

if TYPE_CHECKING:
    from .recovery import Recovery

#: The namespace every Socket.IO server has; packets without a namespace prefix belong to it.
DEFAULT_NAMESPACE = "/"


@define
class Connected:
    """The server accepted the Socket.IO CONNECT of ``nsp``.

    ``pid`` is the server's private session id when it has connection state recovery on (see
    :mod:`~jamsocket_rt.protocol.recovery`); ``recovered`` says the server restored the previous
    socket of the namespace (same sid, missed events replayed).
    """

    sid: str
    nsp: str = DEFAULT_NAMESPACE
    pid: str | None = None
    recovered: bool = False


@define
class ConnectError:
    """The server refused the Socket.IO CONNECT of ``nsp`` (``data`` is its payload)."""

    data: Any
    nsp: str = DEFAULT_NAMESPACE

    @property
    def message(self) -> str:
        """The server's message, or a generic one."""
        if isinstance(self.data, dict) and isinstance(self.data.get("message"), str):
            return str(self.data["message"])
        if isinstance(self.data, str):
            return self.data
        return "connection refused by the server"


@define
class Event:
    """A server event; ``ack_id`` is set when the server wants an acknowledgement."""

    name: str
    args: list[Any]
    ack_id: int | None = None
    nsp: str = DEFAULT_NAMESPACE


@define
class Ack:
    """The server's acknowledgement of one of our events (ids are unique per connection)."""

    id: int
    args: list[Any]


@define
class Disconnected:
    """The server ended a namespace or the whole connection.

    ``reason`` is socket.io-client's: ``"io server disconnect"`` (a Socket.IO DISCONNECT of
    ``nsp``) or ``"transport close"`` (an Engine.IO CLOSE). The connection's own namespace
    ending ends the connection.
    """

    reason: str
    nsp: str | None = None  # None: the connection's own namespace, or the whole connection


ProtocolEvent = Connected | ConnectError | Event | Ack | Disconnected


class State(Enum):
    """Where a namespace (and the connection, for its own namespace) is in its life."""

    OPENING = "opening"  # waiting for the Engine.IO OPEN packet
    CONNECTING = "connecting"  # CONNECT sent, waiting for the answer
    CONNECTED = "connected"
    CLOSED = "closed"  # refused or disconnected by the server, or closed by us


def check_namespace(name: object) -> str:
    """``name`` if it is a valid namespace: a string starting with ``/`` and without a comma.

    Raises:
        TypeError: it is not a string.
        ValueError: it does not start with ``/`` or contains a comma (which ends a namespace on
            the wire).
    """
    if not isinstance(name, str):
        raise TypeError(f"namespace: expected a string, got {type(name).__name__}")
    if not name.startswith("/") or "," in name:
        raise ValueError(f"namespace: expected a name like '/admin' (no comma), got {name!r}")
    return name


class NamespaceState:
    """An extra namespace's state on the connection: its CONNECT, socket id, early events, and
    its :class:`Recovery` (``tracking`` is it once the server answered with a pid: the offsets
    of its events are recorded there)."""

    __slots__ = ("auth", "early", "recovery", "sid", "state", "tracking")

    def __init__(self, auth: Any, recovery: Recovery | None = None) -> None:
        self.auth = auth
        self.state = State.OPENING
        self.sid: str | None = None
        self.early: list[ProtocolEvent] = []
        self.recovery = recovery
        self.tracking: Recovery | None = None


# The states as module constants: looking an enum member up on its class, once per message,
# costs more than the per-message paths can afford.
_OPENING = State.OPENING
_CONNECTING = State.CONNECTING
_CONNECTED = State.CONNECTED
_CLOSED = State.CLOSED

#: The extra namespaces of a connection that has none (most): one shared, never changed.
_NO_OTHERS: dict[str, NamespaceState] = {}
