"""Socket.IO v5 packets: their encoding, decoding and the JSON codecs, sans I/O.

A Socket.IO packet travels as the data of an Engine.IO MESSAGE (``4``)::

    <type>[<attachments>-][<namespace>,][<ack id>][<JSON>]

e.g. ``42["chat",{"text":"hi"}]`` (EVENT), ``4317["ok"]`` (ACK of id 17),
``451-["file",{"_placeholder":true,"num":0}]`` followed by one binary websocket message
(BINARY_EVENT with one attachment); ``42/admin,["x"]`` is an EVENT of namespace ``/admin``.

The state of a client connection is :class:`~jamsocket_rt.protocol.socketio.ClientProtocol`'s.
"""

from __future__ import annotations

import contextvars
import importlib
import json as _stdlib_json
from collections.abc import Callable, Sequence
from enum import IntEnum
from json import encoder as _json_encoder
from json import scanner as _json_scanner
from typing import Any, Protocol

from attrs import frozen

from .engineio import ProtocolError, excerpt

__all__ = [
    "MAX_ACK_ID",
    "MAX_ATTACHMENTS",
    "OP_BINARY",
    "OP_TEXT",
    "Frame",
    "JsonCodec",
    "OrjsonCodec",
    "Packet",
    "PacketType",
    "ProtocolError",
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
        # is most of the work. So the C pieces are
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

#: The largest acknowledgement id accepted from the wire (2**53, where JavaScript numbers stop
#: being exact), so that a peer can never make the parser build a huge int (Python refuses past
#: 4,300 digits with a ValueError that would escape as something other than a ProtocolError).
MAX_ACK_ID = 2**53
#: The most binary attachments one packet may announce.
MAX_ATTACHMENTS = 10_000
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
        if len(count) > 5 or int(count) > MAX_ATTACHMENTS:
            raise ProtocolError(f"binary packet announces too many attachments: {excerpt(text)}")
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
    ack_id = ack_id_of(text[i:j], text) if j > i else None
    if j == end:
        return ptype, attachments, namespace, ack_id, _NO_DATA
    try:
        data = loads(text[j:])
    except (ValueError, RecursionError):
        raise ProtocolError(f"Socket.IO packet data is not JSON: {excerpt(text)}") from None
    return ptype, attachments, namespace, ack_id, data


def ack_id_of(digits: str, text: str) -> int:
    """``digits`` (ASCII digits only) as an acknowledgement id.

    Raises:
        ProtocolError: the id exceeds :data:`MAX_ACK_ID`.
    """
    if len(digits) > 16 or int(digits) > MAX_ACK_ID:
        raise ProtocolError(f"acknowledgement id out of range: {excerpt(text)}")
    return int(digits)


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


def _check_payload(ptype: int, data: Any, ack_id: int | None, text: str | bytes) -> None:
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
