"""What :class:`~jamsocket_rt.protocol.socketio.ClientProtocol` sends, encoded as frames, sans I/O.

:class:`Outbound` is ClientProtocol's base that encodes the client's Socket.IO packets: events
(the per-message path, inlined for the default namespace's events without attachments),
acknowledgements and DISCONNECTs, each checked against the server's ``maxPayload``. Every
packet but an event goes through :meth:`~Outbound._packet_frames`, the parser's seam (see
:class:`~jamsocket_rt.protocol.msgpack.MsgpackClientProtocol`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .engineio import EngineState
from .events import _CLOSED, _CONNECTED, _NO_OTHERS, NamespaceState, State
from .packets import (
    MAX_ACK_ID,
    OP_BINARY,
    OP_TEXT,
    Frame,
    JsonCodec,
    Packet,
    PacketType,
    _dumps,
    encode_packet,
)


class Outbound(EngineState):
    """The sending side of a :class:`~jamsocket_rt.protocol.socketio.ClientProtocol`, which
    holds (and sets) the state."""

    # What this side assigns (the rest is ClientProtocol's).
    __slots__ = ("_binary", "_next_ack_id", "_others", "state")

    state: State
    _nsp: str
    #: What follows the packet type on the wire: "" for "/", else "/name,".
    _prefix: str
    _json: JsonCodec
    _next_ack_id: int
    _binary: list[Any] | None
    _others: dict[str, NamespaceState]

    def _packet_frames(self, packet: Packet) -> list[Frame]:
        """The frames of a packet off the per-message paths (the parser's seam: see
        :class:`~jamsocket_rt.protocol.msgpack.MsgpackClientProtocol`)."""
        return encode_packet(packet, self._json)

    def send_event(
        self, name: str, args: Sequence[Any], ack: bool, nsp: str | None = None
    ) -> tuple[list[Frame], int | None]:
        """Encodes one event.

        Args:
            name: the event name.
            args: its arguments; binary values anywhere become attachments.
            ack: allocate an acknowledgement id.
            nsp: the namespace (default: the connection's own).

        Returns:
            The frames to write (a text frame, then one per attachment) and the ack id or None.

        Raises:
            TypeError: an argument cannot be serialized (no ack id was allocated).
            ValueError: a frame exceeds the server's ``maxPayload`` (it would kill the
                connection).
            RuntimeError: the namespace is not connected.
        """
        prefix = self._prefix
        if nsp is not None and nsp != self._nsp:
            prefix = self._check_other(nsp, "send an event")
        elif self.state is not _CONNECTED:
            raise RuntimeError(f"cannot send an event while {self.state.value}")
        body, attachments = _dumps(self._json, [name, *args])
        ack_id: int | None = self._next_ack_id if ack else None
        if attachments:
            head = f"45{len(attachments)}-{prefix}{'' if ack_id is None else ack_id}"
            frames = [(OP_TEXT, head.encode() + body), *[(OP_BINARY, a) for a in attachments]]
            self._check_size(frames)
        else:
            if prefix:
                head = f"42{prefix}{'' if ack_id is None else ack_id}"
                payload = head.encode() + body
            else:
                payload = b"42" + body if ack_id is None else b"42%d" % ack_id + body
            if len(payload) > self._server_max_payload:
                self._check_size([(OP_TEXT, payload)])
            frames = [(OP_TEXT, payload)]
        if ack_id is not None:
            self._next_ack_id = ack_id + 1 if ack_id < MAX_ACK_ID else 0
        return frames, ack_id

    def _check_other(self, nsp: str, what: str) -> str:
        other = self._others.get(nsp)
        if other is None or other.state is not _CONNECTED or self.state is _CLOSED:
            state = "closed" if other is None else other.state.value
            raise RuntimeError(f"cannot {what} on namespace {nsp!r} while {state}")
        return nsp + ","

    def send_ack(self, ack_id: int, args: Sequence[Any], nsp: str | None = None) -> list[Frame]:
        """Encodes the acknowledgement of server event ``ack_id`` (of namespace ``nsp``).

        Raises:
            TypeError: an argument cannot be serialized.
            ValueError: a frame exceeds the server's ``maxPayload``.
            RuntimeError: the namespace is not connected.
        """
        if nsp is not None and nsp != self._nsp:
            self._check_other(nsp, "acknowledge")
        elif self.state is not _CONNECTED:
            raise RuntimeError(f"cannot acknowledge while {self.state.value}")
        packet = Packet(PacketType.ACK, list(args), ack_id, namespace=nsp or self._nsp)
        frames = self._packet_frames(packet)
        self._check_size(frames)
        return frames

    def send_disconnect(self) -> list[Frame]:
        """Encodes the DISCONNECT of every namespace and moves to CLOSED (nothing when closed)."""
        was_connected = self.state is _CONNECTED
        self.state = _CLOSED
        self._binary = None
        frames: list[Frame] = [
            frame
            for nsp, other in self._others.items()
            if was_connected and other.state is _CONNECTED
            for frame in self._packet_frames(Packet(PacketType.DISCONNECT, namespace=nsp))
        ]
        self._others = _NO_OTHERS
        if was_connected:
            frames += self._packet_frames(Packet(PacketType.DISCONNECT, namespace=self._nsp))
        return frames

    def _check_size(self, frames: list[Frame]) -> None:
        limit = self._server_max_payload
        for _, payload in frames:
            if len(payload) > limit:
                raise ValueError(
                    f"a message of {len(payload)} bytes exceeds the server's maxPayload of "
                    f"{limit} bytes (the server would drop the connection)"
                )
