"""parser="msgpack" sans I/O: socket.io-msgpack-parser's packets and MsgpackClientProtocol.

The live tests (the Node server with socket.io-msgpack-parser and python-socketio's msgpack
server) are in tests/test_msgpack.py.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jamsocket_rt as jrt
from jamsocket_rt.protocol.engineio import ProtocolError
from jamsocket_rt.protocol.msgpack import (
    MsgpackClientProtocol,
    MsgpackCodec,
    decode_packet,
    encode_packet,
    parse_packet,
)
from jamsocket_rt.protocol.packets import MAX_ACK_ID, OP_BINARY, OP_TEXT, Frame, Packet, PacketType
from jamsocket_rt.protocol.socketio import (
    Ack,
    ClientProtocol,
    Connected,
    ConnectError,
    Disconnected,
    Event,
    State,
)

pytestmark = pytest.mark.pure

OPEN = '0{"sid":"eio","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}'
RESPONSE = {"url": "http://127.0.0.1:9/t", "backend_id": "b", "status_url": "http://127.0.0.1:9/s"}


def pack(fields: Any) -> bytes:
    return bytes(msgpack.packb(fields, use_bin_type=True))


def unpack(frame: Frame) -> Any:
    opcode, payload = frame
    assert opcode == OP_BINARY
    return msgpack.unpackb(payload, raw=False)


def connected(**kwargs: Any) -> MsgpackClientProtocol:
    proto = MsgpackClientProtocol(**kwargs)
    assert proto.receive_text(OPEN) == []
    proto.data_to_send()
    nsp = proto.namespace
    answer = pack({"type": 0, "data": {"sid": "abc"}, "nsp": nsp})
    assert proto.receive_bytes(answer) == [Connected("abc", nsp)]
    return proto


def feed(proto: ClientProtocol, frames: list[Frame]) -> list[Any]:
    events: list[Any] = []
    for opcode, payload in frames:
        if opcode == OP_TEXT:
            events += proto.receive_text(payload.decode())
        else:
            events += proto.receive_bytes(payload)
    return events


# --------------------------------------------------------------------------- the protocol


def test_the_handshake_is_text_and_the_connect_binary() -> None:
    proto = MsgpackClientProtocol(auth={"token": "t"})
    assert proto.receive_text(OPEN) == []
    [connect] = proto.data_to_send()
    assert unpack(connect) == {"type": 0, "nsp": "/", "data": {"token": "t"}}
    # notepack.io writes JavaScript's undefined (the pid of a CONNECT answer) as ext type 0.
    answer = b"\x83" + pack("type")[0:] + b"\x00" + pack("data") + b"\x82"
    answer += pack("sid") + pack("xyz") + pack("pid") + b"\xd4\x00\x00" + pack("nsp") + pack("/")
    assert proto.receive_bytes(answer) == [Connected("xyz")]
    assert proto.state is State.CONNECTED
    # Engine.IO stays text.
    assert proto.receive_text("2") == []
    assert proto.data_to_send() == [(OP_TEXT, b"3")]


def test_a_connect_without_auth_has_no_data() -> None:
    proto = MsgpackClientProtocol()
    proto.receive_text(OPEN)
    [connect] = proto.data_to_send()
    assert unpack(connect) == {"type": 0, "nsp": "/"}


def test_events_and_acks_are_one_binary_message_each() -> None:
    proto = connected()
    frames, ack_id = proto.send_event("chat", [1, b"\x00\xff", {"n": [bytearray(b"x")]}], True)
    assert ack_id == 0
    [frame] = frames
    assert unpack(frame) == {
        "type": 2,
        "data": ["chat", 1, b"\x00\xff", {"n": [b"x"]}],
        "nsp": "/",
        "id": 0,
    }
    frames, no_id = proto.send_event("tell", [memoryview(b"mv")], False)
    assert no_id is None
    assert unpack(frames[0]) == {"type": 2, "data": ["tell", b"mv"], "nsp": "/"}
    assert unpack(proto.send_ack(7, [b"ok"])[0]) == {
        "type": 3,
        "data": [b"ok"],
        "nsp": "/",
        "id": 7,
    }
    ack = pack({"type": 3, "data": [b"\x01", {"deep": [b"\x02"]}], "nsp": "/", "id": 0})
    assert proto.receive_bytes(ack) == [Ack(0, [b"\x01", {"deep": [b"\x02"]}])]
    event = pack({"type": 2, "data": ["news", b"\x03"], "nsp": "/", "id": 4})
    assert proto.receive_bytes(event) == [Event("news", [b"\x03"], 4)]


def test_namespaces_connect_and_disconnect_in_binary() -> None:
    proto = connected()
    proto.connect_namespace("/admin", {"role": "admin"})
    [connect] = proto.data_to_send()
    assert unpack(connect) == {"type": 0, "nsp": "/admin", "data": {"role": "admin"}}
    refused = pack({"type": 4, "data": {"message": "no"}, "nsp": "/admin"})
    assert proto.receive_bytes(refused) == [ConnectError({"message": "no"}, "/admin")]
    proto.connect_namespace("/game")
    proto.data_to_send()
    answer = pack({"type": 0, "data": {"sid": "g"}, "nsp": "/game"})
    assert proto.receive_bytes(answer) == [Connected("g", "/game")]
    frames, _ = proto.send_event("move", [1], False, "/game")
    assert unpack(frames[0]) == {"type": 2, "data": ["move", 1], "nsp": "/game"}
    # python-socketio writes "data": nil where a packet has none.
    assert proto.receive_bytes(pack({"type": 1, "data": None, "nsp": "/game"})) == [
        Disconnected("io server disconnect", "/game")
    ]
    proto.connect_namespace("/chat")
    proto.data_to_send()
    proto.receive_bytes(pack({"type": 0, "data": {"sid": "c"}, "nsp": "/chat"}))
    assert [unpack(f) for f in proto.send_disconnect()] == [
        {"type": 1, "nsp": "/chat"},
        {"type": 1, "nsp": "/"},
    ]


def test_a_text_socketio_packet_says_the_server_is_not_msgpack() -> None:
    proto = MsgpackClientProtocol()
    proto.receive_text(OPEN)
    with pytest.raises(ProtocolError, match=r"socket\.io-msgpack-parser"):
        proto.receive_text('40{"sid":"abc"}')


def test_inbound_size_is_bounded() -> None:
    proto = connected(max_payload=100)
    with pytest.raises(ProtocolError, match="exceeds max_payload"):
        proto.receive_bytes(pack({"type": 2, "data": ["big", b"x" * 200], "nsp": "/"}))


def test_unserializable_arguments_raise_type_error_and_allocate_no_ack_id() -> None:
    proto = connected()
    for bad in ({1, 2}, 2**64, object()):
        with pytest.raises(TypeError, match="cannot serialize"):
            proto.send_event("x", [bad], True)
    _, ack_id = proto.send_event("x", [], True)
    assert ack_id == 0


def test_outbound_size_is_the_servers_max_payload() -> None:
    proto = connected()
    with pytest.raises(ValueError, match="maxPayload"):
        proto.send_event("big", [b"x" * 1_000_001], False)


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        (b"\xc1", "not MessagePack"),
        (b"\x92\x01\x02\x03", "not MessagePack"),  # trailing bytes
        (b"\x91", "not MessagePack"),  # truncated
        (b"\x81\x91\x01\x02", "not MessagePack"),  # an array as a map key
        (b"\x91" * 5000 + b"\xc0", "not MessagePack"),  # nested deeper than msgpack allows
        ([2, ["x"], "/"], "not a MessagePack map"),
        ({"type": 5, "data": ["x"], "nsp": "/"}, "packet type"),
        ({"type": -1, "data": ["x"], "nsp": "/"}, "packet type"),
        ({"type": True, "data": ["x"], "nsp": "/"}, "packet type"),
        ({"type": "2", "data": ["x"], "nsp": "/"}, "packet type"),
        ({"data": ["x"], "nsp": "/"}, "packet type"),
        ({"type": 2, "data": ["x"]}, "nsp"),
        ({"type": 2, "data": ["x"], "nsp": 1}, "nsp"),
        ({"type": 2, "data": ["x"], "nsp": "/", "id": -1}, "acknowledgement id"),
        ({"type": 2, "data": ["x"], "nsp": "/", "id": MAX_ACK_ID + 1}, "acknowledgement id"),
        ({"type": 2, "data": ["x"], "nsp": "/", "id": 1.0}, "acknowledgement id"),
        ({"type": 2, "data": ["x"], "nsp": "/", "id": "1"}, "acknowledgement id"),
        ({"type": 2, "data": [], "nsp": "/"}, "EVENT data"),
        ({"type": 2, "data": {"a": 1}, "nsp": "/"}, "EVENT data"),
        ({"type": 2, "data": [None], "nsp": "/"}, "EVENT data"),
        ({"type": 2, "nsp": "/"}, "EVENT data"),
        ({"type": 3, "data": [1], "nsp": "/"}, "ACK without an id"),
        ({"type": 3, "data": "x", "nsp": "/", "id": 1}, "ACK data"),
        ({"type": 1, "data": [1], "nsp": "/"}, "DISCONNECT has data"),
        ({"type": 0, "data": [1], "nsp": "/"}, "CONNECT data"),
    ],
)
def test_malformed_packets_are_protocol_errors(fields: Any, problem: str) -> None:
    data = fields if isinstance(fields, bytes) else pack(fields)
    with pytest.raises(ProtocolError, match=problem):
        decode_packet(data)
    with pytest.raises(ProtocolError, match=problem):
        connected().receive_bytes(data)


def test_binary_before_open_is_an_error_and_after_close_ignored() -> None:
    event = pack({"type": 2, "data": ["x"], "nsp": "/"})
    with pytest.raises(ProtocolError, match="before OPEN"):
        MsgpackClientProtocol().receive_bytes(event)
    proto = connected()
    proto.send_disconnect()
    assert proto.receive_bytes(event) == []


# --------------------------------------------------------------------------- properties

_leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.binary(max_size=40)
)
_values = st.recursive(
    _leaves,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children)
    ),
    max_leaves=25,
)


@settings(max_examples=150, deadline=None)
@given(
    name=st.text(max_size=15),
    args=st.lists(_values, max_size=5),
    ack=st.booleans(),
    nsp=st.sampled_from(["/", "/admin"]),
)
def test_event_round_trip(name: str, args: list[Any], ack: bool, nsp: str) -> None:
    sender, receiver = connected(), connected()
    for proto in (sender, receiver):
        if nsp != "/":
            proto.connect_namespace(nsp)
            proto.data_to_send()
            proto.receive_bytes(pack({"type": 0, "data": {"sid": "s"}, "nsp": nsp}))
    frames, ack_id = sender.send_event(name, args, ack, nsp)
    assert (ack_id is not None) == ack
    assert feed(receiver, frames) == [Event(name, args, ack_id, nsp)]
    assert feed(receiver, sender.send_ack(5, args, nsp)) == [Ack(5, args)]


@settings(max_examples=100, deadline=None)
@given(
    ptype=st.sampled_from(list(PacketType)),
    nsp=st.sampled_from(["/", "/chat", ""]),
    ack_id=st.none() | st.integers(min_value=0, max_value=MAX_ACK_ID),
    args=st.lists(_values, max_size=3),
)
def test_packet_round_trip(
    ptype: PacketType, nsp: str, ack_id: int | None, args: list[Any]
) -> None:
    data: Any
    if ptype in (PacketType.EVENT, PacketType.BINARY_EVENT):
        data = ["name", *args]
    elif ptype in (PacketType.ACK, PacketType.BINARY_ACK):
        data, ack_id = args, ack_id or 0
    elif ptype is PacketType.DISCONNECT:
        data = None
    else:
        data = {"args": args}
    encoded = encode_packet(Packet(ptype, data, ack_id, nsp), MsgpackCodec())
    # socket.io-msgpack-parser has no BINARY_* types: binary is native everywhere.
    plain = {PacketType.BINARY_EVENT: PacketType.EVENT, PacketType.BINARY_ACK: PacketType.ACK}
    assert decode_packet(encoded) == Packet(plain.get(ptype, ptype), data, ack_id, nsp)


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=64))
def test_any_bytes_decode_or_raise_protocol_error(data: bytes) -> None:
    try:
        events = connected().receive_bytes(data)
    except ProtocolError:
        return
    assert isinstance(events, list)


@settings(max_examples=300, deadline=None)
@given(
    fields=st.dictionaries(
        st.sampled_from(["type", "data", "nsp", "id", "other"]),
        st.integers(min_value=-2, max_value=2**64 - 1)
        | st.sampled_from([None, "/", "", "/admin", [], ["x"], ["x", 1], [1], {}, {"sid": "s"}])
        | _values,
        max_size=5,
    )
)
def test_any_map_decodes_or_raises_protocol_error(fields: dict[str, Any]) -> None:
    proto = connected()
    try:
        events = proto.receive_bytes(pack(fields))
    except ProtocolError:
        return
    for event in events:
        assert isinstance(event, (Event, Ack, Disconnected, Connected, ConnectError))


def general_path(proto: MsgpackClientProtocol, data: bytes) -> list[Any] | str:
    """What ClientProtocol's general path makes of a packet (or the error it raises)."""
    try:
        proto._parsed = parse_packet(data, MsgpackCodec())
        return proto._on_message(data)
    except ProtocolError as exc:
        return f"ProtocolError: {exc}"
    finally:
        proto._parsed = None


def fast_path(proto: MsgpackClientProtocol, data: bytes) -> list[Any] | str:
    try:
        return proto.receive_bytes(data)
    except ProtocolError as exc:
        return f"ProtocolError: {exc}"


@settings(max_examples=300, deadline=None)
@given(
    ptype=st.sampled_from([2, 3]),
    nsp=st.sampled_from(["/", "/admin", "/other"]),
    ack_id=st.none() | st.integers(min_value=0, max_value=10),
    data=st.sampled_from([[], ["e"], ["e", 1, b"x"], [1], [True], [None], {}, "x", None]),
    own=st.sampled_from(["/", "/admin"]),
)
def test_fast_path_agrees_with_the_general_path(
    ptype: int, nsp: str, ack_id: int | None, data: Any, own: str
) -> None:
    fields: dict[str, Any] = {"type": ptype, "nsp": nsp, "data": data}
    if ack_id is not None:
        fields["id"] = ack_id
    packet = pack(fields)
    own_nsp = {"namespace": own}
    assert fast_path(connected(**own_nsp), packet) == general_path(connected(**own_nsp), packet)


# --------------------------------------------------------------------------- the extra


def test_a_missing_msgpack_is_a_clear_error_at_construction(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    threads = threading.active_count()
    monkeypatch.setitem(sys.modules, "msgpack", None)
    with pytest.raises(jrt.ConfigurationError, match=r"jamsocket_rt\[msgpack\]") as info:
        jrt.Session(RESPONSE, parser="msgpack")
    assert str(info.value).startswith("parser:")
    with pytest.raises(jrt.ConfigurationError, match=r"jamsocket_rt\[msgpack\]"):
        jrt.SyncSession(RESPONSE, parser="msgpack")
    with pytest.raises(ValueError, match=r"jamsocket_rt\[msgpack\]"):
        jrt.SessionOptions(parser="msgpack")
    with pytest.raises(jrt.ConfigurationError, match=r"jamsocket_rt\[msgpack\]"):
        MsgpackClientProtocol()
    # JSON needs nothing of it.
    jrt.SessionOptions(parser="json")
    assert threading.active_count() == threads  # nothing was started


def test_the_wire_trace_describes_msgpack_packets() -> None:
    from jamsocket_rt.protocol.msgpack import describe_packet
    from jamsocket_rt.protocol.packets import Packet, PacketType
    from jamsocket_rt.protocol.trace import trace_line

    codec = MsgpackCodec()
    event = encode_packet(Packet(PacketType.EVENT, ["move", 1, b"\x00"], 7, "/game"), codec)
    line = trace_line("out", describe_packet(event))
    assert "EVENT" in line
    assert "nsp=/game" in line
    assert "event='move'" in line
    assert "ack=7" in line
    connect = encode_packet(Packet(PacketType.CONNECT, {"token": "s3cret"}), codec)
    assert "s3cret" not in trace_line("out", describe_packet(connect))
    assert describe_packet(b"\xc1 not msgpack").kind == "binary"
