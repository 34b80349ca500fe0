"""Socket.IO v5 over Engine.IO v4 (websocket transport), sans I/O.

A Socket.IO packet travels as the data of an Engine.IO MESSAGE (``4``)::

    <type>[<attachments>-][<namespace>,][<ack id>][<JSON>]

e.g. ``42["chat",{"text":"hi"}]`` (EVENT), ``4317["ok"]`` (ACK of id 17),
``451-["file",{"_placeholder":true,"num":0}]`` followed by one binary websocket message
(BINARY_EVENT with one attachment). Only the default namespace ``/`` is spoken; a namespace
prefix is parsed, and packets for other namespaces are ignored.

:class:`ClientProtocol` holds the state of one client connection and never touches a socket:
feed it what the websocket received (:meth:`~ClientProtocol.receive_text`,
:meth:`~ClientProtocol.receive_bytes`), write what it asks for
(:meth:`~ClientProtocol.data_to_send`, and the frames its ``send_*`` methods return), and act on
the events it returns.
"""

from __future__ import annotations

import contextvars
import importlib
import json as _stdlib_json
import time
from collections.abc import Callable, Sequence
from enum import Enum, IntEnum
from json import encoder as _json_encoder
from json import scanner as _json_scanner
from typing import Any, Protocol

from attrs import define, frozen

from .engineio import (
    CLOSE,
    MESSAGE,
    NOOP,
    OPEN,
    PING,
    PONG,
    UPGRADE,
    OpenInfo,
    ProtocolError,
    excerpt,
    parse_open,
)

__all__ = [
    "OP_BINARY",
    "OP_TEXT",
    "Ack",
    "ClientProtocol",
    "ConnectError",
    "Connected",
    "Disconnected",
    "Event",
    "Frame",
    "JsonCodec",
    "OrjsonCodec",
    "Packet",
    "PacketType",
    "ProtocolError",
    "ProtocolEvent",
    "State",
    "StdlibJsonCodec",
    "decode_packet",
    "default_json",
    "encode_packet",
    "reconstruct",
]

#: Websocket opcodes of the frames the codec produces.
OP_TEXT = 1
OP_BINARY = 2

#: One websocket message to write: (opcode, payload). Text payloads are UTF-8.
Frame = tuple[int, bytes]


class PacketType(IntEnum):
    """Socket.IO v5 packet types."""

    CONNECT = 0
    DISCONNECT = 1
    EVENT = 2
    ACK = 3
    CONNECT_ERROR = 4
    BINARY_EVENT = 5
    BINARY_ACK = 6


# --------------------------------------------------------------------------- JSON


class JsonCodec(Protocol):
    """The pluggable JSON encoder/decoder.

    ``dumps`` must produce compact UTF-8 JSON. When ``default`` is given it is called for every
    object JSON cannot represent and returns a replacement (or raises TypeError); without it
    such objects raise TypeError. ``loads`` raises ValueError on malformed input.
    """

    def dumps(self, obj: Any, default: Callable[[Any], Any] | None = None) -> bytes:
        """Serializes ``obj`` to compact UTF-8 JSON."""

    def loads(self, data: str | bytes) -> Any:
        """Parses one JSON document."""


class StdlibJsonCodec:
    """The standard library's json, compact, refusing NaN and infinities (JSON has neither)."""

    def __init__(self) -> None:
        # Building a JSONEncoder per call costs more than encoding a small event, so one
        # encoder serves every call and reaches the call's ``default`` through a context
        # variable (safe across threads and tasks: encoding never awaits).
        self._default: contextvars.ContextVar[Callable[[Any], Any] | None] = contextvars.ContextVar(
            "default", default=None
        )
        self._encoder = _stdlib_json.JSONEncoder(
            separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=self._fallback
        )
        self._decode = _stdlib_json.loads
        # JSONEncoder.encode() builds its C encoder anew for every call, and json.loads() runs
        # two regular expressions around its C scanner: for an event of a few dozen bytes that
        # is most of the work (encode 1.7 -> 0.4 us, decode 1.0 -> 0.2 us). So the C pieces are
        # kept and called directly where this Python has them. Without the circular-reference
        # check a cyclic value ends in RecursionError, which callers report as TypeError.
        self._encode: Callable[[Any, int], Sequence[str]] | None = None
        self._scan: Callable[[str, int], tuple[Any, int]] | None = None
        make_encoder = getattr(_json_encoder, "c_make_encoder", None)
        encode_string = getattr(_json_encoder, "c_encode_basestring", None)
        make_scanner = getattr(_json_scanner, "c_make_scanner", None)
        if make_encoder is not None and encode_string is not None:
            self._encode = make_encoder(
                None, self._fallback, encode_string, None, ":", ",", False, False, False
            )
        if make_scanner is not None:
            self._scan = make_scanner(_stdlib_json.JSONDecoder())

    def _fallback(self, value: Any) -> Any:
        default = self._default.get()
        if default is None:
            raise TypeError(f"{type(value).__name__} is not JSON serializable")
        return default(value)

    def _text(self, obj: Any) -> str:
        encode = self._encode
        if encode is None:  # pragma: no cover (Pythons without the C accelerator)
            return self._encoder.encode(obj)
        return "".join(encode(obj, 0))

    def dumps(self, obj: Any, default: Callable[[Any], Any] | None = None) -> bytes:
        """Serializes ``obj`` to compact UTF-8 JSON (see :class:`JsonCodec`)."""
        if default is None:
            return self._text(obj).encode()
        token = self._default.set(default)
        try:
            return self._text(obj).encode()
        finally:
            self._default.reset(token)

    def loads(self, data: str | bytes) -> Any:
        """Parses one JSON document."""
        scan = self._scan
        if scan is not None and type(data) is str:
            try:
                value, end = scan(data, 0)
            except StopIteration:
                pass  # not JSON at the start: json.loads says why
            else:
                if end == len(data):
                    return value
        return self._decode(data)  # whitespace around the value, errors, bytes


class OrjsonCodec:
    """orjson: several times faster than the standard library (see the benchmarks).

    Differences from :class:`StdlibJsonCodec`: NaN and infinities become ``null``, integers
    must fit in 64 bits, and dataclasses, datetimes, UUIDs and enums are serialized natively.
    Non-string dict keys are converted to strings, as the standard library does.
    """

    def __init__(self) -> None:
        # Imported by name so that type checkers without orjson installed don't stumble.
        orjson = importlib.import_module("orjson")
        self._dumps = orjson.dumps
        self._option = orjson.OPT_NON_STR_KEYS
        self._decode = orjson.loads

    def dumps(self, obj: Any, default: Callable[[Any], Any] | None = None) -> bytes:
        """Serializes ``obj`` to compact UTF-8 JSON (see :class:`JsonCodec`)."""
        result: bytes = self._dumps(obj, default=default, option=self._option)
        return result

    def loads(self, data: str | bytes) -> Any:
        """Parses one JSON document."""
        return self._decode(data)


_default_codec: JsonCodec | None = None


def default_json() -> JsonCodec:
    """orjson when it is installed (much faster), else the standard library's json."""
    global _default_codec
    if _default_codec is None:
        try:
            _default_codec = OrjsonCodec()
        except ImportError:
            _default_codec = StdlibJsonCodec()
    return _default_codec


# --------------------------------------------------------------------------- packets


@frozen
class Packet:
    """One Socket.IO packet as it is on the wire (binary placeholders left in place).

    Attributes:
        type: the packet type.
        data: the decoded JSON, or None when the packet has none.
        id: the acknowledgement id, or None.
        namespace: the namespace, ``/`` by default.
        attachments: how many binary messages follow (BINARY_EVENT and BINARY_ACK only).
    """

    type: PacketType
    data: Any = None
    id: int | None = None
    namespace: str = "/"
    attachments: int = 0


# Digits for ack ids and attachment counts: str.isdigit() would also accept "²" or "٣".
_DIGITS = frozenset("0123456789")
_NO_DATA = object()


def _parse(text: str, start: int, loads: Callable[[str], Any]) -> tuple[int, int, str, Any, Any]:
    """Parses the Socket.IO packet at ``text[start:]``.

    Returns:
        (type, attachments, namespace, ack id or None, data or _NO_DATA).

    Raises:
        ProtocolError: the packet is malformed.
    """
    end = len(text)
    if start >= end:
        raise ProtocolError("empty Socket.IO packet")
    kind = text[start]
    if not "0" <= kind <= "6":
        raise ProtocolError(f"unknown Socket.IO packet type {kind!r}: {excerpt(text)}")
    ptype = ord(kind) - 48
    i = start + 1
    attachments = 0
    if ptype == 5 or ptype == 6:
        dash = text.find("-", i)
        count = text[i:dash]
        if dash < 0 or not count or not _DIGITS.issuperset(count):
            raise ProtocolError(f"binary packet without an attachment count: {excerpt(text)}")
        attachments = int(count)
        i = dash + 1
    namespace = "/"
    if i < end and text[i] == "/":
        comma = text.find(",", i)
        if comma < 0:
            namespace, i = text[i:], end
        else:
            namespace, i = text[i:comma], comma + 1
    j = i
    while j < end and text[j] in _DIGITS:
        j += 1
    ack_id = int(text[i:j]) if j > i else None
    if j == end:
        return ptype, attachments, namespace, ack_id, _NO_DATA
    try:
        data = loads(text[j:])
    except (ValueError, RecursionError):
        raise ProtocolError(f"Socket.IO packet data is not JSON: {excerpt(text)}") from None
    return ptype, attachments, namespace, ack_id, data


def decode_packet(text: str, json: JsonCodec | None = None) -> Packet:
    """Decodes one Socket.IO packet (the data of an Engine.IO MESSAGE, without the ``4``).

    Binary placeholders are left in place: call :func:`reconstruct` once the attachments have
    arrived. The data is checked against the packet type as socket.io-parser does.

    Args:
        text: the packet, e.g. ``2["chat","hi"]``.
        json: the JSON codec (default: :func:`default_json`).

    Returns:
        The packet.

    Raises:
        ProtocolError: the packet is malformed or its data does not fit its type.
    """
    codec = json or default_json()
    ptype, attachments, namespace, ack_id, data = _parse(text, 0, codec.loads)
    _check_payload(ptype, data, ack_id, text)
    return Packet(
        PacketType(ptype),
        None if data is _NO_DATA else data,
        ack_id,
        namespace,
        attachments,
    )


def _check_payload(ptype: int, data: Any, ack_id: int | None, text: str) -> None:
    if ptype == 2 or ptype == 5:
        if not isinstance(data, list) or not data or not _is_event_name(data[0]):
            raise ProtocolError(f"EVENT data is not [name, ...args]: {excerpt(text)}")
    elif ptype == 3 or ptype == 6:
        if not isinstance(data, list):
            raise ProtocolError(f"ACK data is not a list: {excerpt(text)}")
        if ack_id is None:
            raise ProtocolError(f"ACK without an id: {excerpt(text)}")
    elif ptype == 0:
        if data is not _NO_DATA and not isinstance(data, dict):
            raise ProtocolError(f"CONNECT data is not an object: {excerpt(text)}")
    elif ptype == 1:
        if data is not _NO_DATA:
            raise ProtocolError(f"DISCONNECT has data: {excerpt(text)}")
    elif data is not _NO_DATA and not isinstance(data, (dict, str)):
        raise ProtocolError(f"CONNECT_ERROR data is not an object or a string: {excerpt(text)}")


def _is_event_name(name: object) -> bool:
    # socket.io-parser accepts numbers as event names too.
    return isinstance(name, str) or (isinstance(name, int) and not isinstance(name, bool))


def encode_packet(packet: Packet, json: JsonCodec | None = None) -> list[Frame]:
    """Encodes a packet as the websocket messages that carry it (Engine.IO ``4`` prefix included).

    ``bytes``, ``bytearray`` and ``memoryview`` anywhere in ``packet.data`` become attachments
    (the type turns into BINARY_EVENT / BINARY_ACK); ``packet.attachments`` is ignored.

    Args:
        packet: the packet.
        json: the JSON codec (default: :func:`default_json`).

    Returns:
        The frames: one text frame, then one binary frame per attachment.

    Raises:
        TypeError: the data cannot be serialized.
    """
    ptype = int(packet.type)
    ns = "" if packet.namespace == "/" else packet.namespace + ","
    ack = "" if packet.id is None else str(packet.id)
    if packet.data is None and ptype in (0, 1, 4):
        return [(OP_TEXT, f"4{ptype}{ns}{ack}".encode())]
    body, attachments = _dumps(json or default_json(), packet.data)
    if attachments:
        if ptype == 2 or ptype == 3:
            ptype += 3
        head = f"4{ptype}{len(attachments)}-{ns}{ack}".encode()
        return [(OP_TEXT, head + body), *[(OP_BINARY, a) for a in attachments]]
    if ptype == 5 or ptype == 6:
        ptype -= 3
    return [(OP_TEXT, f"4{ptype}{ns}{ack}".encode() + body)]


class _BinaryFound(Exception):
    """The first pass of :func:`_dumps` met a binary value: the second pass collects them."""


def _refuse(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        raise _BinaryFound
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _dumps(codec: JsonCodec, data: Any) -> tuple[bytes, Sequence[bytes]]:
    """Serializes ``data``, turning binary values into placeholders and attachments.

    Raises:
        TypeError: something in ``data`` is neither JSON nor binary (or is NaN / infinite).
    """
    # Most events carry no binary: one pass that needs no list and no closure of its own.
    # Whatever stops it (a binary value, however a codec wraps what its default raises, or an
    # error) goes to the full pass, which collects attachments or raises the error itself.
    try:
        return codec.dumps(data, _refuse), ()
    except (_BinaryFound, TypeError, ValueError, RecursionError):
        pass
    attachments: list[bytes] = []

    def collect(value: Any) -> Any:
        if isinstance(value, (bytes, bytearray, memoryview)):
            attachments.append(bytes(value))
            return {"_placeholder": True, "num": len(attachments) - 1}
        raise TypeError(f"{type(value).__name__} is not JSON serializable")

    try:
        return codec.dumps(data, collect), attachments
    except (TypeError, ValueError, RecursionError) as exc:
        raise TypeError(f"cannot serialize the arguments: {exc}") from None


def reconstruct(data: Any, attachments: Sequence[bytes]) -> Any:
    """Replaces every ``{"_placeholder": true, "num": n}`` in ``data`` with ``attachments[n]``.

    Raises:
        ProtocolError: a placeholder's ``num`` is not a valid index.
    """
    if isinstance(data, list):
        return [reconstruct(item, attachments) for item in data]
    if isinstance(data, dict):
        if data.get("_placeholder") is True:
            num = data.get("num")
            if type(num) is not int or not 0 <= num < len(attachments):
                raise ProtocolError(f"binary placeholder with an invalid num: {num!r}")
            return attachments[num]
        return {key: reconstruct(value, attachments) for key, value in data.items()}
    return data


def _count_placeholders(data: Any) -> int:
    if isinstance(data, list):
        return sum(_count_placeholders(item) for item in data)
    if isinstance(data, dict):
        if data.get("_placeholder") is True:
            return 1
        return sum(_count_placeholders(value) for value in data.values())
    return 0


# --------------------------------------------------------------------------- client protocol


@define
class Connected:
    """The server accepted the Socket.IO CONNECT."""

    sid: str


@define
class ConnectError:
    """The server refused the Socket.IO CONNECT (``data`` is its payload, often a message)."""

    data: Any

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


@define
class Ack:
    """The server's acknowledgement of one of our events."""

    id: int
    args: list[Any]


@define
class Disconnected:
    """The server ended the connection.

    ``reason`` is socket.io-client's: ``"io server disconnect"`` (a Socket.IO DISCONNECT) or
    ``"transport close"`` (an Engine.IO CLOSE).
    """

    reason: str


ProtocolEvent = Connected | ConnectError | Event | Ack | Disconnected


class State(Enum):
    """Where a :class:`ClientProtocol` is in its life."""

    OPENING = "opening"  # waiting for the Engine.IO OPEN packet
    CONNECTING = "connecting"  # CONNECT sent, waiting for the answer
    CONNECTED = "connected"
    CLOSED = "closed"  # refused or disconnected by the server, or closed by us


# The states as module constants: an enum member looked up on its class costs about 0.1 us,
# which the per-message paths cannot afford.
_OPENING = State.OPENING
_CONNECTING = State.CONNECTING
_CONNECTED = State.CONNECTED
_CLOSED = State.CLOSED

_PONG = (OP_TEXT, b"3")
_DISCONNECT = (OP_TEXT, b"41")


class ClientProtocol:
    """The client side of one Socket.IO connection over an Engine.IO websocket.

    Args:
        auth: the Socket.IO CONNECT payload, sent once the server's OPEN arrives.
        json: the JSON codec (default: :func:`default_json`).
        max_payload: the largest inbound message accepted (characters of a text message,
            bytes of a binary one); a binary packet with its attachments counts as one.
        clock: the monotonic clock the liveness deadline is measured with.

    Attributes:
        state: the :class:`State`.
        sid: the Socket.IO session id once connected.
        open_info: the server's OPEN packet, once received.
        last_seen: ``clock()`` at the last received message.
    """

    __slots__ = (
        "_auth",
        "_binary",
        "_clock",
        "_early",
        "_json",
        "_liveness",
        "_loads",
        "_max_payload",
        "_next_ack_id",
        "_outgoing",
        "_server_max_payload",
        "last_seen",
        "open_info",
        "sid",
        "state",
    )

    def __init__(
        self,
        *,
        auth: Any = None,
        json: JsonCodec | None = None,
        max_payload: int = 16 * 1024 * 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.state = _OPENING
        self.sid: str | None = None
        self.open_info: OpenInfo | None = None
        self._auth = auth
        self._json = json or default_json()
        self._loads = self._json.loads
        self._max_payload = max_payload
        self._clock = clock
        self.last_seen = clock()
        self._liveness: float | None = None
        self._server_max_payload = 1_000_000
        self._next_ack_id = 0
        self._outgoing: list[Frame] = []
        # A binary packet waiting for its attachments:
        # [type, ack id, data, expected count, received attachments, bytes so far]
        self._binary: list[Any] | None = None
        self._early: list[ProtocolEvent] = []  # events that came before the CONNECT answer

    # ----------------------------------------------------------------------- liveness

    @property
    def deadline(self) -> float | None:
        """When the connection counts as dead if nothing arrives (None before OPEN).

        Engine.IO servers ping every ``pingInterval`` and give up after ``pingTimeout``; a client
        that heard nothing for their sum is talking to a dead (or black-holed) connection.
        """
        if self._liveness is None:
            return None
        return self.last_seen + self._liveness

    def expired(self, now: float) -> bool:
        """True when ``now`` is past the :attr:`deadline`."""
        deadline = self.deadline
        return deadline is not None and now >= deadline

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
                    if digits.isdigit() and digits.isascii():
                        ack_id = int(digits)
                    else:
                        bracket = -1
                if bracket > 1:
                    try:
                        payload = self._loads(data[bracket:])
                    except (ValueError, RecursionError):
                        payload = None
                    if type(payload) is list:
                        if second == "3":
                            if ack_id is not None:
                                return [Ack(ack_id, payload)]
                        elif payload and type(payload[0]) is str:
                            return [Event(payload[0], payload[1:], ack_id)]
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
        return self._complete(pending[0], pending[1], reconstruct(pending[2], received))

    def data_to_send(self) -> list[Frame]:
        """The frames the protocol itself needs written (CONNECT, PONG), oldest first."""
        out = self._outgoing
        if out:
            self._outgoing = []
        return out

    def _on_open(self, data: str) -> None:
        if self.state is not _OPENING:
            raise ProtocolError("second Engine.IO OPEN packet")
        info = parse_open(data[1:], self._loads)
        self.open_info = info
        self._liveness = info.ping_interval + info.ping_timeout
        self._server_max_payload = info.max_payload
        self.state = _CONNECTING
        self._outgoing.extend(encode_packet(Packet(PacketType.CONNECT, self._auth), self._json))

    def _on_message(self, data: str) -> list[ProtocolEvent]:
        state = self.state
        if state is not _CONNECTED and state is not _CONNECTING:
            if state is _CLOSED:
                return []
            raise ProtocolError("Engine.IO MESSAGE before OPEN")
        ptype, attachments, namespace, ack_id, payload = _parse(data, 1, self._loads)
        if namespace != "/":
            # Not ours: we only ever connect the default namespace.
            return []
        _check_payload(ptype, payload, ack_id, data)
        if state is _CONNECTING and ptype != 2 and ptype != 5:
            return self._on_connect_answer(ptype, payload, data)
        if ptype == 5 or ptype == 6:
            placeholders = _count_placeholders(payload)
            if placeholders != attachments:
                raise ProtocolError(
                    f"binary packet announces {attachments} attachments "
                    f"but has {placeholders} placeholders"
                )
            if attachments:
                self._binary = [ptype - 3, ack_id, payload, attachments, [], len(data)]
                return []
            ptype -= 3
        if ptype == 2 or ptype == 3:
            return self._complete(ptype, ack_id, payload)
        if ptype == 1:
            self.state = _CLOSED
            return [Disconnected("io server disconnect")]
        raise ProtocolError(f"unexpected {PacketType(ptype).name} while connected")

    def _complete(self, ptype: int, ack_id: int | None, payload: list[Any]) -> list[ProtocolEvent]:
        if ptype == 2:
            name = payload[0]
            event = Event(name if type(name) is str else str(name), payload[1:], ack_id)
            if self.state is _CONNECTING:
                # python-socketio sends what its connect handler emits before the CONNECT
                # answer; socket.io-client buffers such events until connected, and so do we.
                self._early.append(event)
                return []
            return [event]
        assert ack_id is not None  # _check_payload made sure
        return [Ack(ack_id, payload)]

    def _on_connect_answer(self, ptype: int, payload: Any, data: str) -> list[ProtocolEvent]:
        if ptype == 0:
            sid = payload.get("sid") if isinstance(payload, dict) else None
            if not isinstance(sid, str):
                raise ProtocolError(f"CONNECT answer without a sid: {excerpt(data)}")
            self.sid = sid
            self.state = _CONNECTED
            early, self._early = self._early, []
            return [Connected(sid), *early]
        if ptype == 4:
            self.state = _CLOSED
            return [ConnectError(None if payload is _NO_DATA else payload)]
        raise ProtocolError(f"{PacketType(ptype).name} before the CONNECT answer")

    # ----------------------------------------------------------------------- sending

    def send_event(
        self, name: str, args: Sequence[Any], ack: bool
    ) -> tuple[list[Frame], int | None]:
        """Encodes one event.

        Args:
            name: the event name.
            args: its arguments; binary values anywhere become attachments.
            ack: allocate an acknowledgement id.

        Returns:
            The frames to write (a text frame, then one per attachment) and the ack id or None.

        Raises:
            TypeError: an argument cannot be serialized (no ack id was allocated).
            ValueError: a frame exceeds the server's ``maxPayload`` (it would kill the
                connection).
            RuntimeError: the protocol is not connected.
        """
        if self.state is not _CONNECTED:
            raise RuntimeError(f"cannot send an event while {self.state.value}")
        body, attachments = _dumps(self._json, [name, *args])
        ack_id: int | None = self._next_ack_id if ack else None
        if attachments:
            head = f"45{len(attachments)}-{'' if ack_id is None else ack_id}"
            frames = [(OP_TEXT, head.encode() + body), *[(OP_BINARY, a) for a in attachments]]
            self._check_size(frames)
        else:
            payload = b"42" + body if ack_id is None else b"42%d" % ack_id + body
            if len(payload) > self._server_max_payload:
                self._check_size([(OP_TEXT, payload)])
            frames = [(OP_TEXT, payload)]
        if ack_id is not None:
            self._next_ack_id = ack_id + 1
        return frames, ack_id

    def send_ack(self, ack_id: int, args: Sequence[Any]) -> list[Frame]:
        """Encodes the acknowledgement of server event ``ack_id``.

        Raises:
            TypeError: an argument cannot be serialized.
            ValueError: a frame exceeds the server's ``maxPayload``.
            RuntimeError: the protocol is not connected.
        """
        if self.state is not _CONNECTED:
            raise RuntimeError(f"cannot acknowledge while {self.state.value}")
        frames = encode_packet(Packet(PacketType.ACK, list(args), ack_id), self._json)
        self._check_size(frames)
        return frames

    def send_disconnect(self) -> list[Frame]:
        """Encodes the Socket.IO DISCONNECT and moves to CLOSED (nothing after it when closed)."""
        was_connected = self.state is _CONNECTED
        self.state = _CLOSED
        self._binary = None
        return [_DISCONNECT] if was_connected else []

    def _check_size(self, frames: list[Frame]) -> None:
        limit = self._server_max_payload
        for _, payload in frames:
            if len(payload) > limit:
                raise ValueError(
                    f"a message of {len(payload)} bytes exceeds the server's maxPayload of "
                    f"{limit} bytes (the server would drop the connection)"
                )
