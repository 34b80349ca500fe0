"""The client side of one Socket.IO v5 connection over an Engine.IO v4 websocket, sans I/O.

:class:`ClientProtocol` holds the state of one connection and of every namespace opened on it
(socket.io-client's multiplexing: one Engine.IO connection carries any number of namespaces,
each with its own CONNECT, socket id and events). It never touches a socket: feed it what the
websocket received (:meth:`~ClientProtocol.receive_text`, :meth:`~ClientProtocol.receive_bytes`),
write what it asks for (:meth:`~ClientProtocol.data_to_send`, and the frames its ``send_*``
methods return), and act on the events it returns. Every event names its namespace.

The packet codec and the JSON codecs are in :mod:`jamsocket_rt.protocol.packets`, the events it
returns in :mod:`jamsocket_rt.protocol.events`, its sending side (events, acknowledgements and
DISCONNECTs encoded as frames) in its base :class:`~jamsocket_rt.protocol._outbound.Outbound`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ._outbound import Outbound
from .engineio import (
    CLOSE,
    MESSAGE,
    NOOP,
    OPEN,
    PING,
    PONG,
    UPGRADE,
    ProtocolError,
    excerpt,
    parse_open,
)
from .events import (
    _CLOSED,
    _CONNECTED,
    _CONNECTING,
    _NO_OTHERS,
    _OPENING,
    DEFAULT_NAMESPACE,
    Ack,
    Connected,
    ConnectError,
    Disconnected,
    Event,
    NamespaceState,
    ProtocolEvent,
    State,
    check_namespace,
)
from .packets import (
    _NO_DATA,
    OP_TEXT,
    Frame,
    JsonCodec,
    Packet,
    PacketType,
    _check_payload,
    _count_placeholders,
    _parse,
    default_json,
    reconstruct,
)
from .recovery import Recovery, answered

__all__ = [
    "Ack",
    "ClientProtocol",
    "ConnectError",
    "Connected",
    "Disconnected",
    "Event",
    "ProtocolEvent",
    "State",
    "check_namespace",
]


_PONG = (OP_TEXT, b"3")


class ClientProtocol(Outbound):
    """The client side of one Socket.IO connection over an Engine.IO websocket.

    The connection's own namespace (``namespace``, ``/`` by default) is connected once the
    server's OPEN arrives; its state is the connection's :attr:`state`. More namespaces share the
    connection through :meth:`connect_namespace`. Packets for a namespace that was never opened
    (or was closed) are dropped and counted in :attr:`dropped`.

    Args:
        auth: the own namespace's CONNECT payload, sent once the server's OPEN arrives.
        json: the JSON codec (default: :func:`default_json`).
        max_payload: the largest inbound message accepted (characters of a text message,
            bytes of a binary one); a binary packet with its attachments counts as one.
        clock: the monotonic clock the liveness deadline is measured with.
        namespace: the connection's own namespace.
        recovery: the own namespace's connection state recovery (kept across connections):
            its pid and offset go into the CONNECT, the answer's pid and the offsets of the
            events that follow are recorded there, and the offsets are taken off the events'
            arguments (see :mod:`~jamsocket_rt.protocol.recovery`). None: no recovery.

    Attributes:
        state: the own namespace's :class:`State` (CLOSED also once the connection ends).
        sid: the own namespace's socket id once connected.
        open_info: the server's OPEN packet, once received.
        last_seen: ``clock()`` at the last received message.
        dropped: packets received for namespaces nobody opened.
    """

    __slots__ = (
        "_auth",
        "_early",
        "_json",
        "_loads",
        "_max_payload",
        "_nsp",
        "_prefix",
        "_recovery",
        "_tracking",
        "dropped",
        "sid",
    )

    def __init__(
        self,
        *,
        auth: Any = None,
        json: JsonCodec | None = None,
        max_payload: int = 16 * 1024 * 1024,
        clock: Callable[[], float] = time.monotonic,
        namespace: str = DEFAULT_NAMESPACE,
        recovery: Recovery | None = None,
    ) -> None:
        super().__init__(clock)
        self.state = _OPENING
        self.sid: str | None = None
        self._auth = auth
        self._nsp = check_namespace(namespace)
        # What follows the packet type on the wire: "" for "/", else "/name,".
        self._prefix = "" if namespace == DEFAULT_NAMESPACE else namespace + ","
        self._json = json or default_json()
        self._loads = self._json.loads
        self._max_payload = max_payload
        self._next_ack_id = 0
        # A binary packet waiting for its attachments:
        # [type, ack id, data, expected count, received attachments, bytes so far, namespace]
        self._binary: list[Any] | None = None
        self._early: list[ProtocolEvent] = []  # events that came before the CONNECT answer
        self._others: dict[str, NamespaceState] = _NO_OTHERS  # replaced on the first one
        self.dropped = 0
        self._recovery = recovery
        # The recovery that records the own namespace's offsets: set once the server answered
        # the CONNECT with a pid (only then does it append offsets).
        self._tracking: Recovery | None = None

    @property
    def namespace(self) -> str:
        """The connection's own namespace."""
        return self._nsp

    # ----------------------------------------------------------------------- namespaces

    def connect_namespace(
        self, nsp: str, auth: Any = None, recovery: Recovery | None = None
    ) -> None:
        """Opens namespace ``nsp`` on this connection: its CONNECT is sent now (once the
        server's OPEN has arrived) and answered by a :class:`Connected` or
        :class:`ConnectError` event naming it. ``recovery``: that namespace's connection state
        recovery (as the constructor's).

        Raises:
            ValueError: ``nsp`` is not a valid namespace, or is already open here.
            RuntimeError: the connection is closed.
        """
        check_namespace(nsp)
        if nsp == self._nsp or nsp in self._others:
            raise ValueError(f"namespace {nsp!r} is already open on this connection")
        if self.state is _CLOSED:
            raise RuntimeError("cannot open a namespace on a closed connection")
        other = NamespaceState(auth, recovery)
        if self._others is _NO_OTHERS:
            self._others = {}
        self._others[nsp] = other
        if self.open_info is not None:
            self._send_connect(nsp, other)

    def disconnect_namespace(self, nsp: str) -> list[Frame]:
        """Closes namespace ``nsp`` (a Socket.IO DISCONNECT when it was connected).

        The own namespace closes the connection (see :meth:`send_disconnect`). Unknown
        namespaces are ignored.
        """
        if nsp == self._nsp:
            return self.send_disconnect()
        other = self._others.pop(nsp, None)
        if other is None or other.state is not _CONNECTED or self.state is _CLOSED:
            return []
        return self._packet_frames(Packet(PacketType.DISCONNECT, namespace=nsp))

    def _send_connect(self, nsp: str, other: NamespaceState) -> None:
        other.state = _CONNECTING
        auth = other.auth if other.recovery is None else other.recovery.connect_payload(other.auth)
        self._outgoing.extend(self._packet_frames(Packet(PacketType.CONNECT, auth, namespace=nsp)))

    def _parse_message(self, data: str | bytes) -> tuple[int, int, str, int | None, Any]:
        """(type, attachments, namespace, ack id, data or _NO_DATA) of a MESSAGE off the fast
        path (the parser's seam, as :meth:`_packet_frames`)."""
        assert type(data) is str
        return _parse(data, 1, self._loads)

    # ----------------------------------------------------------------------- receiving

    def receive_text(self, data: str) -> list[ProtocolEvent]:
        """Handles one text websocket message.

        Returns:
            The events it completes (often one, possibly none).

        Raises:
            ProtocolError: the message is malformed, out of place, or larger than
                ``max_payload``; the connection should be closed.
        """
        size = len(data)
        if size > self._max_payload:
            raise ProtocolError(
                f"message of {size} characters exceeds max_payload {self._max_payload}"
            )
        self.last_seen = self._clock()
        if self._binary is not None:
            raise ProtocolError("text message while binary attachments were expected")
        if self.state is _CONNECTED and size > 2 and data[0] == "4":
            # The usual packets first: an ACK ``43<id>[...]`` or an EVENT ``42[<id>]["name",...]``
            # of the default namespace, without attachments. Anything else, and anything
            # malformed, takes the general path below (which says what is wrong).
            second = data[1]
            if second == "3" or second == "2":
                bracket = data.find("[", 2)
                ack_id: int | None = None
                if bracket > 2:
                    digits = data[2:bracket]
                    if digits.isdigit() and digits.isascii() and len(digits) < 16:
                        ack_id = int(digits)
                    else:
                        if data[2] == "/":  # ``42/nsp,[<id>][...]``: a namespace's own
                            fast = self._receive_namespaced(data, second, bracket)
                            if fast is not None:
                                return fast
                        bracket = -1
                if bracket > 1 and not self._prefix:
                    try:
                        payload = self._loads(data[bracket:])
                    except (ValueError, RecursionError):
                        payload = None
                    if type(payload) is list:
                        if second == "3":
                            if ack_id is not None:
                                return [Ack(ack_id, payload)]
                        elif payload and type(payload[0]) is str:
                            tracking = self._tracking
                            if tracking is None or ack_id is not None:
                                return [Event(payload[0], payload[1:], ack_id)]
                            args = payload[1:]
                            tracking.take_offset(args)
                            return [Event(payload[0], args)]
        kind = data[:1]
        if kind == MESSAGE:
            return self._on_message(data)
        if kind == PING:
            self._outgoing.append(_PONG if len(data) == 1 else (OP_TEXT, b"3" + data[1:].encode()))
            return []
        if kind == OPEN:
            self._on_open(data)
            return []
        if kind == CLOSE:
            if self.state is _CLOSED:
                return []
            self.state = _CLOSED
            return [Disconnected("transport close")]
        if kind in (PONG, NOOP, UPGRADE):
            return []
        raise ProtocolError(f"unknown Engine.IO packet: {excerpt(data)}")

    def receive_bytes(self, data: bytes) -> list[ProtocolEvent]:
        """Handles one binary websocket message (an attachment of a binary packet).

        Returns:
            The completed event or ack once the last attachment arrived, else nothing.

        Raises:
            ProtocolError: no binary packet is waiting for attachments, or the packet with its
                attachments exceeds ``max_payload``.
        """
        self.last_seen = self._clock()
        pending = self._binary
        if pending is None:
            if self.state is _CLOSED:
                return []
            raise ProtocolError("binary message without a binary packet announcing it")
        pending[5] += len(data)
        if pending[5] > self._max_payload:
            raise ProtocolError(
                f"binary packet of more than {self._max_payload} bytes exceeds max_payload"
            )
        received: list[bytes] = pending[4]
        received.append(data)
        if len(received) < pending[3]:
            return []
        self._binary = None
        return self._complete(pending[0], pending[1], reconstruct(pending[2], received), pending[6])

    def _on_open(self, data: str) -> None:
        if self.state is not _OPENING:
            raise ProtocolError("second Engine.IO OPEN packet")
        self._opened(parse_open(data[1:], self._loads))
        self.state = _CONNECTING
        recovery = self._recovery
        auth = self._auth if recovery is None else recovery.connect_payload(self._auth)
        self._outgoing.extend(
            self._packet_frames(Packet(PacketType.CONNECT, auth, namespace=self._nsp))
        )
        for nsp, other in self._others.items():
            self._send_connect(nsp, other)

    def _receive_namespaced(
        self, data: str, second: str, bracket: int
    ) -> list[ProtocolEvent] | None:
        """The fast path of an ACK or EVENT of a connected namespace other than the root,
        ``4[23]/nsp,[<id>][...]``; None sends the packet to the general path (which says what
        is wrong with it, if anything is)."""
        comma = data.find(",", 3)
        if comma < 0 or comma > bracket:
            return None
        nsp = data[2:comma]
        if nsp == self._nsp:  # (the caller checked that it is connected)
            tracking = self._tracking
        else:
            other = self._others.get(nsp)
            if other is None or other.state is not _CONNECTED:
                return None
            tracking = other.tracking
        ack_id: int | None = None
        if bracket > comma + 1:
            digits = data[comma + 1 : bracket]
            if not (digits.isdigit() and digits.isascii() and len(digits) < 16):
                return None
            ack_id = int(digits)
        try:
            payload = self._loads(data[bracket:])
        except (ValueError, RecursionError):
            return None
        if type(payload) is not list:
            return None
        if second == "3":
            return None if ack_id is None else [Ack(ack_id, payload)]
        if not payload or type(payload[0]) is not str:
            return None
        args = payload[1:]
        if tracking is not None and ack_id is None:
            tracking.take_offset(args)
        return [Event(payload[0], args, ack_id, nsp)]

    def _on_message(self, data: str | bytes) -> list[ProtocolEvent]:
        state = self.state
        if state is not _CONNECTED and state is not _CONNECTING:
            if state is _CLOSED:
                return []
            raise ProtocolError("Engine.IO MESSAGE before OPEN")
        ptype, attachments, namespace, ack_id, payload = self._parse_message(data)
        other: NamespaceState | None = None
        if namespace != self._nsp:
            other = self._others.get(namespace)
            if other is None or other.state is _CLOSED or other.state is _OPENING:
                self.dropped += 1  # a namespace nobody opened (or one we closed)
                return []
            state = other.state
        _check_payload(ptype, payload, ack_id, data)
        if state is _CONNECTING and ptype != 2 and ptype != 5:
            return self._on_connect_answer(ptype, payload, data, namespace, other)
        if ptype == 5 or ptype == 6:
            placeholders = _count_placeholders(payload)
            if placeholders != attachments:
                raise ProtocolError(
                    f"binary packet announces {attachments} attachments "
                    f"but has {placeholders} placeholders"
                )
            if attachments:
                self._binary = [ptype - 3, ack_id, payload, attachments, [], len(data), namespace]
                return []
            ptype -= 3
        if ptype == 2 or ptype == 3:
            return self._complete(ptype, ack_id, payload, namespace)
        if ptype == 1:
            if other is not None:
                del self._others[namespace]
                return [Disconnected("io server disconnect", namespace)]
            self.state = _CLOSED
            return [Disconnected("io server disconnect")]
        raise ProtocolError(f"unexpected {PacketType(ptype).name} while connected")

    def _complete(
        self, ptype: int, ack_id: int | None, payload: list[Any], nsp: str
    ) -> list[ProtocolEvent]:
        if ptype == 2:
            name = payload[0]
            event = Event(name if type(name) is str else str(name), payload[1:], ack_id, nsp)
            if nsp == self._nsp:
                if self.state is _CONNECTING:
                    # python-socketio sends what its connect handler emits before the CONNECT
                    # answer, and a recovering Node server the events missed; socket.io-client
                    # buffers such events until connected, and so do we.
                    self._early.append(event)
                    return []
                tracking = self._tracking
            else:
                other = self._others.get(nsp)
                if other is None:
                    self.dropped += 1
                    return []
                if other.state is _CONNECTING:
                    other.early.append(event)
                    return []
                tracking = other.tracking
            if tracking is not None and ack_id is None:
                tracking.take_offset(event.args)
            return [event]
        assert ack_id is not None  # _check_payload made sure
        return [Ack(ack_id, payload)]

    def _on_connect_answer(
        self, ptype: int, payload: Any, data: str | bytes, nsp: str, other: NamespaceState | None
    ) -> list[ProtocolEvent]:
        if ptype == 0:
            sid = payload.get("sid") if isinstance(payload, dict) else None
            if not isinstance(sid, str):
                raise ProtocolError(f"CONNECT answer without a sid: {excerpt(data)}")
            if other is not None:
                other.sid, other.state = sid, _CONNECTED
                early, other.early = other.early, []
                connected, other.tracking = answered(other.recovery, payload, sid, nsp, early)
                return [connected, *early]
            self.sid = sid
            self.state = _CONNECTED
            early, self._early = self._early, []
            connected, self._tracking = answered(self._recovery, payload, sid, nsp, early)
            return [connected, *early]
        if ptype == 4:
            error = ConnectError(None if payload is _NO_DATA else payload, nsp)
            if other is not None:
                del self._others[nsp]
                return [error]
            self.state = _CLOSED
            return [error]
        raise ProtocolError(f"{PacketType(ptype).name} before the CONNECT answer")
