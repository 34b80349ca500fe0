"""socket.io-msgpack-parser's wire format (``parser="msgpack"``), sans I/O.

With that parser a Socket.IO packet is ONE binary Engine.IO message holding a MessagePack map::

    {"type": 2, "data": ["chat", {"text": "hi"}, b"\\x00\\x01"], "nsp": "/", "id": 17}

``type`` is 0 to 4 (CONNECT, DISCONNECT, EVENT, ACK, CONNECT_ERROR: no BINARY_* types), ``nsp``
always a string, ``id`` only when an acknowledgement is wanted or given, ``data`` absent (or
nil) when the packet has none. Binary values are native MessagePack ``bin`` anywhere in the
data: no attachments, no placeholders. Engine.IO's own packets (OPEN, PING, PONG, CLOSE) stay
text; a text MESSAGE never comes.

Where the frames are made and read: :func:`encode_packet` / :meth:`MsgpackCodec.pack` make
every outbound Socket.IO packet (one ``(OP_BINARY, bytes)`` frame each), and
:meth:`MsgpackClientProtocol.receive_bytes` decodes every inbound one (through
:func:`parse_packet`), in :class:`MsgpackClientProtocol`, the msgpack flavour of
:class:`~jamsocket_rt.protocol.socketio.ClientProtocol`.

socket.io's Node encoder (notepack.io) writes JavaScript's ``undefined`` (e.g. the ``pid`` of a
CONNECT answer when connection state recovery is off) as the extension type 0 with one byte:
it decodes to None, as JSON would make it ``null``. ArrayBuffers and typed arrays come as
extension type 0 with their contents: they decode to bytes (a Date too: send dates as strings).

The ``msgpack`` package is optional (``pip install 'jamsocket_rt[msgpack]'``):
:func:`load_msgpack` imports it, or says how to install it.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Sequence
from typing import Any

from .._errors import ConfigurationError
from .engineio import MESSAGE, ProtocolError, excerpt
from .events import DEFAULT_NAMESPACE, State
from .packets import (
    _NO_DATA,
    MAX_ACK_ID,
    OP_BINARY,
    Frame,
    JsonCodec,
    Packet,
    PacketType,
    _check_payload,
)
from .recovery import Recovery
from .socketio import Ack, ClientProtocol, Event, ProtocolEvent
from .trace import EXCERPT_LIMIT, FrameSummary

__all__ = [
    "INSTALL_HINT",
    "MsgpackClientProtocol",
    "MsgpackCodec",
    "decode_packet",
    "encode_packet",
    "ext_hook",
    "load_msgpack",
    "parse_packet",
]

#: How to get the optional dependency.
INSTALL_HINT = "pip install 'jamsocket_rt[msgpack]'"

# The packet types socket.io-msgpack-parser knows (it has no BINARY_EVENT / BINARY_ACK).
_CONNECT, _DISCONNECT, _EVENT, _ACK, _CONNECT_ERROR = 0, 1, 2, 3, 4
_CONNECTED = State.CONNECTED
_CLOSED = State.CLOSED


def load_msgpack() -> Any:
    """The ``msgpack`` module.

    Raises:
        ConfigurationError: it is not installed (the message names the extra to install).
    """
    try:
        # By name, so that type checkers without msgpack's (absent) stubs don't stumble.
        return importlib.import_module("msgpack")
    except ImportError as exc:
        raise ConfigurationError(
            f"parser: 'msgpack' needs the msgpack package, which is not installed: {INSTALL_HINT}"
        ) from exc


def ext_hook(code: int, data: bytes) -> Any:
    """What notepack.io's extension types mean in Python (see the module docstring).

    Returns:
        None for JavaScript's ``undefined``, bytes for other type-0 values (ArrayBuffers,
        typed arrays), else msgpack's ``ExtType`` (as python-socketio leaves it).
    """
    if code == 0:
        return None if data == b"\x00" else bytes(data)
    return load_msgpack().ExtType(code, data)


#: What msgpack's Packer raises for a value it cannot pack.
PACK_ERRORS = (TypeError, ValueError, OverflowError, RecursionError)


def unserializable(exc: BaseException) -> TypeError:
    """The TypeError to raise for one of :data:`PACK_ERRORS`."""
    return TypeError(f"cannot serialize the arguments: {exc}")


class MsgpackCodec:
    """Packs and unpacks MessagePack the way socket.io-msgpack-parser's peers expect.

    One per connection: the packer keeps a buffer between calls and is not thread-safe.

    Raises:
        ConfigurationError: ``msgpack`` is not installed.
    """

    __slots__ = ("_unpackb", "pack_raw")

    def __init__(self) -> None:
        msgpack = load_msgpack()
        # bytes, bytearray and memoryview become bin; str is always UTF-8 str; tuples arrays.
        #: Packer.pack itself: what :meth:`pack` raises is :func:`unserializable`'s to make.
        self.pack_raw: Callable[[Any], bytes] = msgpack.Packer(use_bin_type=True).pack
        self._unpackb: Callable[..., Any] = msgpack.unpackb

    def pack(self, obj: Any) -> bytes:
        """``obj`` as MessagePack.

        Raises:
            TypeError: something in ``obj`` has no MessagePack form (or an integer is out of
                its 64-bit range, or the nesting is too deep).
        """
        try:
            return self.pack_raw(obj)
        except PACK_ERRORS as exc:
            raise unserializable(exc) from None

    def unpack(self, data: bytes) -> Any:
        """One MessagePack value, exactly ``data``; map keys may be of any hashable type.

        Unpacking is bounded by ``data`` itself: no container or string may announce more
        than the message holds, and the nesting is limited by msgpack's unpacker.

        Raises:
            ProtocolError: ``data`` is not one MessagePack value.
        """
        try:
            return self._unpackb(data, raw=False, strict_map_key=False, ext_hook=ext_hook)
        except (ValueError, TypeError, RecursionError) as exc:
            # ValueError covers msgpack's FormatError, StackError, ExtraData and bad UTF-8;
            # TypeError an unhashable map key.
            why = str(exc) or type(exc).__name__
            raise ProtocolError(
                f"Socket.IO packet is not MessagePack ({excerpt(why)}): {excerpt(data)}"
            ) from None


def parse_packet(data: bytes, codec: MsgpackCodec) -> tuple[int, int, str, int | None, Any]:
    """Decodes and checks the shape of one msgpack Socket.IO packet (one binary message).

    The data is not checked against the type here: ``packets._check_payload`` does that, for
    both parsers alike.

    Returns:
        (type, 0 attachments, namespace, ack id or None, data or ``packets._NO_DATA``): the
        shape :func:`jamsocket_rt.protocol.packets._parse` returns for JSON.

    Raises:
        ProtocolError: not MessagePack, not a map, or a type, nsp or id that does not fit.
    """
    fields = codec.unpack(data)
    if type(fields) is not dict:
        raise ProtocolError(f"Socket.IO packet is not a MessagePack map: {excerpt(data)}")
    ptype = fields.get("type")
    if type(ptype) is not int or not _CONNECT <= ptype <= _CONNECT_ERROR:
        raise ProtocolError(f"unknown Socket.IO packet type {ptype!r}: {excerpt(data)}")
    nsp = fields.get("nsp")
    if type(nsp) is not str:
        raise ProtocolError(f"Socket.IO packet without a string nsp: {excerpt(data)}")
    ack_id = fields.get("id")
    if ack_id is not None and (type(ack_id) is not int or not 0 <= ack_id <= MAX_ACK_ID):
        raise ProtocolError(f"acknowledgement id out of range: {excerpt(data)}")
    payload = fields.get("data", _NO_DATA)
    # python-socketio writes "data": nil where a packet has none.
    if payload is None and ptype != _EVENT and ptype != _ACK:
        payload = _NO_DATA
    return ptype, 0, nsp, ack_id, payload


def decode_packet(data: bytes, codec: MsgpackCodec | None = None) -> Packet:
    """Decodes one msgpack Socket.IO packet, its data checked against its type.

    Raises:
        ProtocolError: the packet is malformed or its data does not fit its type.
    """
    ptype, _, nsp, ack_id, payload = parse_packet(data, codec or MsgpackCodec())
    _check_payload(ptype, payload, ack_id, data)
    return Packet(PacketType(ptype), None if payload is _NO_DATA else payload, ack_id, nsp)


def describe_packet(data: bytes, limit: int = EXCERPT_LIMIT) -> FrameSummary:
    """The wire trace's summary of one msgpack Socket.IO packet (never raises).

    Args:
        data: the binary message.
        limit: the longest payload excerpt, in characters.
    """
    try:
        packet = decode_packet(data)
    except (ProtocolError, ImportError):
        return FrameSummary(kind="binary", size=len(data))
    kind = packet.type.name
    payload = packet.data
    event = None
    if packet.type is PacketType.EVENT and isinstance(payload, list) and payload:
        event, payload = str(payload[0]), payload[1:]
    excerpt = "<redacted>" if packet.type is PacketType.CONNECT else repr(payload)
    if len(excerpt) > limit:
        excerpt = excerpt[:limit] + f"…(+{len(excerpt) - limit})"
    return FrameSummary(
        kind=kind, size=len(data), nsp=packet.namespace, event=event, ack=packet.id, excerpt=excerpt
    )


def encode_packet(packet: Packet, codec: MsgpackCodec) -> bytes:
    """One Socket.IO packet as socket.io-msgpack-parser's binary message.

    BINARY_EVENT and BINARY_ACK are sent as EVENT and ACK (binary needs no type of its own
    here); ``packet.attachments`` is ignored.

    Raises:
        TypeError: the data cannot be serialized.
    """
    ptype = int(packet.type)
    if ptype > _CONNECT_ERROR:
        ptype -= 3
    fields: dict[str, Any] = {"type": ptype, "nsp": packet.namespace}
    if packet.data is not None:
        fields["data"] = packet.data
    if packet.id is not None:
        fields["id"] = packet.id
    return codec.pack(fields)


class MsgpackClientProtocol(ClientProtocol):
    """:class:`~jamsocket_rt.protocol.socketio.ClientProtocol` speaking socket.io-msgpack-parser.

    Everything but the packet encoding is the JSON protocol's: namespaces, CONNECT answers,
    acks, the checks of each packet's data against its type. Engine.IO stays text (its OPEN is
    JSON, read with ``json``).

    Args:
        auth, json, max_payload, clock, namespace: as for ClientProtocol.
        codec: the MessagePack codec (default: a new :class:`MsgpackCodec`).

    Raises:
        ConfigurationError: ``msgpack`` is not installed.
    """

    __slots__ = ("_codec", "_pack", "_parsed")

    def __init__(
        self,
        *,
        auth: Any = None,
        json: JsonCodec | None = None,
        max_payload: int = 16 * 1024 * 1024,
        clock: Callable[[], float] = time.monotonic,
        namespace: str = DEFAULT_NAMESPACE,
        recovery: Recovery | None = None,
        codec: MsgpackCodec | None = None,
    ) -> None:
        self._codec = codec or MsgpackCodec()
        self._pack = self._codec.pack_raw
        # The packet receive_bytes parsed and handed to the general path (see _parse_message).
        self._parsed: tuple[int, int, str, int | None, Any] | None = None
        super().__init__(
            auth=auth,
            json=json,
            max_payload=max_payload,
            clock=clock,
            namespace=namespace,
            recovery=recovery,
        )

    def receive_text(self, data: str) -> list[ProtocolEvent]:
        """Handles one text websocket message: Engine.IO only (see ClientProtocol).

        Raises:
            ProtocolError: also for a text Socket.IO packet (the server's parser is not
                socket.io-msgpack-parser).
        """
        if data[:1] == MESSAGE:
            raise ProtocolError(
                "text Socket.IO packet on a msgpack connection (does the server use "
                f"socket.io-msgpack-parser?): {excerpt(data)}"
            )
        return super().receive_text(data)

    def receive_bytes(self, data: bytes) -> list[ProtocolEvent]:
        """Handles one binary websocket message: one whole Socket.IO packet.

        Returns:
            The events it completes (often one, possibly none).

        Raises:
            ProtocolError: the packet is malformed, out of place, or larger than
                ``max_payload``; the connection should be closed.
        """
        if len(data) > self._max_payload:
            raise ProtocolError(
                f"message of {len(data)} bytes exceeds max_payload {self._max_payload}"
            )
        self.last_seen = self._clock()
        if self.state is _CLOSED:
            return []
        parsed = parse_packet(data, self._codec)
        ptype, _, nsp, ack_id, payload = parsed
        if self.state is _CONNECTED and nsp == self._nsp and type(payload) is list:
            # The usual packets first: an ACK or an EVENT of the own namespace (what the
            # general path makes of them too, and says what is wrong with the rest).
            if ptype == _ACK:
                if ack_id is not None:
                    return [Ack(ack_id, payload)]
            elif ptype == _EVENT and payload and type(payload[0]) is str:
                return [Event(payload[0], payload[1:], ack_id, nsp)]
        self._parsed = parsed
        try:
            return self._on_message(data)
        finally:
            self._parsed = None

    def _parse_message(self, data: str | bytes) -> tuple[int, int, str, int | None, Any]:
        # receive_bytes parsed it already.
        parsed = self._parsed
        assert parsed is not None
        return parsed

    def _packet_frames(self, packet: Packet) -> list[Frame]:
        return [(OP_BINARY, encode_packet(packet, self._codec))]

    def send_event(
        self, name: str, args: Sequence[Any], ack: bool, nsp: str | None = None
    ) -> tuple[list[Frame], int | None]:
        """Encodes one event as one binary frame (see ClientProtocol.send_event).

        Raises:
            TypeError: an argument cannot be serialized (no ack id was allocated).
            ValueError: the frame exceeds the server's ``maxPayload``.
            RuntimeError: the namespace is not connected.
        """
        if nsp is not None and nsp != self._nsp:
            self._check_other(nsp, "send an event")
        else:
            nsp = self._nsp
            if self.state is not _CONNECTED:
                raise RuntimeError(f"cannot send an event while {self.state.value}")
        if ack:
            ack_id: int | None = self._next_ack_id
            fields = {"type": _EVENT, "data": [name, *args], "nsp": nsp, "id": ack_id}
        else:
            ack_id = None
            fields = {"type": _EVENT, "data": [name, *args], "nsp": nsp}
        try:
            payload = self._pack(fields)
        except PACK_ERRORS as exc:
            raise unserializable(exc) from None
        frames: list[Frame] = [(OP_BINARY, payload)]
        if len(payload) > self._server_max_payload:
            self._check_size(frames)
        if ack_id is not None:
            self._next_ack_id = ack_id + 1 if ack_id < MAX_ACK_ID else 0
        return frames, ack_id
