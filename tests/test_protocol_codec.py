"""The sans-I/O Engine.IO / Socket.IO codecs, without any network."""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jamsocket_rt import JamsocketError
from jamsocket_rt.protocol.engineio import OpenInfo, ProtocolError, parse_open
from jamsocket_rt.protocol.packets import (
    OP_BINARY,
    OP_TEXT,
    Frame,
    JsonCodec,
    OrjsonCodec,
    Packet,
    PacketType,
    StdlibJsonCodec,
    decode_packet,
    default_json,
    encode_packet,
)
from jamsocket_rt.protocol.socketio import (
    Ack,
    ClientProtocol,
    Connected,
    ConnectError,
    Disconnected,
    Event,
    State,
)

#: Sans-I/O: no process, socket or server (`pytest -m pure` runs these alone in seconds).
pytestmark = pytest.mark.pure

OPEN = '0{"sid":"eio","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}'

CODECS: list[Any] = [StdlibJsonCodec]
if importlib.util.find_spec("orjson") is not None:
    CODECS.append(OrjsonCodec)


@pytest.fixture(params=CODECS, ids=lambda c: c.__name__)
def codec(request: pytest.FixtureRequest) -> JsonCodec:
    factory: Any = request.param
    result: JsonCodec = factory()
    return result


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def connected(codec: JsonCodec | None = None, **kwargs: Any) -> ClientProtocol:
    proto = ClientProtocol(json=codec, **kwargs)
    assert proto.receive_text(OPEN) == []
    proto.data_to_send()
    assert proto.receive_text('40{"sid":"abc"}') == [Connected("abc")]
    return proto


def feed(proto: ClientProtocol, frames: list[Frame]) -> list[Any]:
    events: list[Any] = []
    for opcode, payload in frames:
        if opcode == OP_TEXT:
            events += proto.receive_text(payload.decode())
        else:
            events += proto.receive_bytes(payload)
    return events


def normalized(value: Any) -> Any:
    """What a value looks like after a JSON round trip (binary as bytes, sequences as lists)."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, (list, tuple)):
        return [normalized(v) for v in value]
    if isinstance(value, dict):
        return {k: normalized(v) for k, v in value.items()}
    return value


# --------------------------------------------------------------------------- handshake


def state_of(proto: ClientProtocol) -> State:
    """``proto.state`` read afresh (mypy keeps an ``is`` narrowing across method calls)."""
    return proto.state


def test_open_sends_connect_with_auth(codec: JsonCodec) -> None:
    proto = ClientProtocol(auth={"token": "t", "n": 1}, json=codec)
    assert state_of(proto) is State.OPENING
    assert proto.receive_text(OPEN) == []
    assert state_of(proto) is State.CONNECTING
    assert proto.open_info == OpenInfo("eio", (), 25.0, 20.0, 1_000_000)
    [(opcode, payload)] = proto.data_to_send()
    assert opcode == OP_TEXT
    assert payload.startswith(b"40")
    assert codec.loads(payload[2:]) == {"token": "t", "n": 1}
    assert proto.data_to_send() == []
    assert proto.receive_text('40{"sid":"abc"}') == [Connected("abc")]
    assert proto.state is State.CONNECTED
    assert proto.sid == "abc"


def test_connect_without_auth_sends_bare_connect() -> None:
    proto = ClientProtocol()
    proto.receive_text(OPEN)
    assert proto.data_to_send() == [(OP_TEXT, b"40")]


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ('44{"message":"not allowed","data":{"code":4}}', "not allowed"),
        ('44"plain text"', "plain text"),
        ("44", "connection refused by the server"),
    ],
)
def test_connect_error(answer: str, message: str) -> None:
    proto = ClientProtocol()
    proto.receive_text(OPEN)
    [event] = proto.receive_text(answer)
    assert isinstance(event, ConnectError)
    assert event.message == message
    assert proto.state is State.CLOSED


@pytest.mark.parametrize(
    ("open_data", "problem"),
    [
        ("0not json", "not JSON"),
        ("0[]", "not a JSON object"),
        ('0{"pingInterval":1,"pingTimeout":1}', "sid"),
        ('0{"sid":"a","pingInterval":"1","pingTimeout":1}', "pingInterval"),
        ('0{"sid":"a","pingInterval":1,"pingTimeout":-1}', "pingTimeout"),
        ('0{"sid":"a","pingInterval":1,"pingTimeout":1,"maxPayload":0}', "maxPayload"),
        ('0{"sid":"a","pingInterval":true,"pingTimeout":1}', "pingInterval"),
        ('0{"sid":"a","pingInterval":1,"pingTimeout":1,"upgrades":"x"}', "upgrades"),
    ],
)
def test_malformed_open(open_data: str, problem: str) -> None:
    with pytest.raises(ProtocolError, match=problem):
        ClientProtocol().receive_text(open_data)


def test_open_defaults_max_payload() -> None:
    info = parse_open('{"sid":"a","pingInterval":300,"pingTimeout":200}', default_json().loads)
    assert info == OpenInfo("a", (), 0.3, 0.2, 1_000_000)


@pytest.mark.parametrize(
    ("before_connected", "problem"),
    [
        ("40", "sid"),
        ('40{"nosid":1}', "sid"),
        (OPEN, "second Engine.IO OPEN"),
    ],
)
def test_out_of_place_before_connected(before_connected: str, problem: str) -> None:
    proto = ClientProtocol()
    proto.receive_text(OPEN)
    with pytest.raises(ProtocolError, match=problem):
        proto.receive_text(before_connected)


def test_events_before_the_connect_answer_are_delivered_after_it() -> None:
    # python-socketio sends what its connect handler emits before the CONNECT answer.
    proto = ClientProtocol()
    proto.receive_text(OPEN)
    assert proto.receive_text('42["early",1]') == []
    events = proto.receive_text('40{"sid":"s1"}')
    assert [type(e).__name__ for e in events] == ["Connected", "Event"]
    assert events[1] == Event("early", [1], None)
    proto2 = ClientProtocol()
    proto2.receive_text(OPEN)
    with pytest.raises(ProtocolError, match="before the CONNECT answer"):
        proto2.receive_text('431["ack before connecting"]')


def test_message_before_open() -> None:
    with pytest.raises(ProtocolError, match="before OPEN"):
        ClientProtocol().receive_text('40{"sid":"a"}')


def test_protocol_error_is_a_jamsocket_error_and_value_error() -> None:
    assert issubclass(ProtocolError, JamsocketError)
    assert issubclass(ProtocolError, ValueError)


# --------------------------------------------------------------------------- ping and liveness


def test_ping_is_answered_with_pong() -> None:
    proto = connected()
    assert proto.receive_text("2") == []
    assert proto.data_to_send() == [(OP_TEXT, b"3")]
    proto.receive_text("2probe")
    assert proto.data_to_send() == [(OP_TEXT, b"3probe")]
    # Pongs, noops and upgrades are no events.
    assert proto.receive_text("3") == proto.receive_text("6") == proto.receive_text("5") == []


def test_liveness_deadline_moves_with_every_message() -> None:
    clock = FakeClock()
    proto = ClientProtocol(clock=clock)
    assert proto.deadline is None
    assert not proto.expired(1e9)
    proto.receive_text(OPEN)
    assert proto.deadline == pytest.approx(145.0)  # 100 + 25 + 20
    clock.now = 140.0
    proto.receive_text('40{"sid":"a"}')
    assert proto.deadline == pytest.approx(185.0)
    assert not proto.expired(184.9)
    assert proto.expired(185.0)
    clock.now = 180.0
    proto.receive_text("2")
    assert proto.deadline == pytest.approx(225.0)
    clock.now = 200.0
    proto.receive_text('451-["b",{"_placeholder":true,"num":0}]')
    clock.now = 210.0
    proto.receive_bytes(b"x")
    assert proto.deadline == pytest.approx(255.0)


# --------------------------------------------------------------------------- events and acks


def test_events_acks_and_ack_ids() -> None:
    proto = connected()
    assert proto.receive_text('42["hi",1,{"b":[2]}]') == [Event("hi", [1, {"b": [2]}], None)]
    assert proto.receive_text('42123["q"]') == [Event("q", [], 123)]
    assert proto.receive_text('4317[1,"x"]') == [Ack(17, [1, "x"])]
    assert proto.receive_text("430[]") == [Ack(0, [])]
    # socket.io-parser accepts numeric event names.
    assert proto.receive_text("42[7,true]") == [Event("7", [True], None)]


def test_send_event_allocates_increasing_ack_ids(codec: JsonCodec) -> None:
    proto = connected(codec)
    frames, ack_id = proto.send_event("a", [], ack=True)
    assert (frames, ack_id) == ([(OP_TEXT, b'420["a"]')], 0)
    frames, ack_id = proto.send_event("b", [1, "é"], ack=False)
    assert ack_id is None
    assert frames == [(OP_TEXT, '42["b",1,"é"]'.encode())]
    assert proto.send_event("c", (), ack=True)[1] == 1


def test_send_ack_and_disconnect() -> None:
    proto = connected()
    assert proto.send_ack(9, ["ok", 2]) == [(OP_TEXT, b'439["ok",2]')]
    assert proto.send_ack(10, [b"\x01"]) == [
        (OP_TEXT, b'461-10[{"_placeholder":true,"num":0}]'),
        (OP_BINARY, b"\x01"),
    ]
    assert proto.send_disconnect() == [(OP_TEXT, b"41")]
    assert proto.state is State.CLOSED
    assert proto.send_disconnect() == []
    with pytest.raises(RuntimeError):
        proto.send_event("late", [], ack=False)
    with pytest.raises(RuntimeError):
        proto.send_ack(1, [])


def test_binary_event_reassembly() -> None:
    proto = connected()
    header = '452-7["file",{"a":{"_placeholder":true,"num":1}},[{"_placeholder":true,"num":0}]]'
    assert proto.receive_text(header) == []
    assert proto.receive_bytes(b"first") == []
    assert proto.receive_bytes(b"second") == [Event("file", [{"a": b"second"}, [b"first"]], 7)]
    assert proto.receive_text('461-3[{"_placeholder":true,"num":0}]') == []
    assert proto.receive_bytes(b"") == [Ack(3, [b""])]
    # A binary packet without attachments is an ordinary one.
    assert proto.receive_text('450-["none"]') == [Event("none", [], None)]


def test_server_disconnects() -> None:
    proto = connected()
    assert proto.receive_text("41") == [Disconnected("io server disconnect")]
    assert proto.state is State.CLOSED
    # Whatever trails the disconnect is ignored.
    assert proto.receive_text('42["late"]') == []
    assert proto.receive_text("1") == []
    proto = connected()
    assert proto.receive_text("1") == [Disconnected("transport close")]


def test_other_namespaces_are_ignored_but_parsed() -> None:
    proto = connected()
    assert proto.receive_text('42/chat,["x"]') == []
    assert proto.receive_text("41/chat,") == []
    assert proto.state is State.CONNECTED
    assert decode_packet('2/chat,15["x",1]') == Packet(PacketType.EVENT, ["x", 1], 15, "/chat")
    assert decode_packet("1/admin") == Packet(PacketType.DISCONNECT, None, None, "/admin")
    assert decode_packet('51-/up,["f",{"_placeholder":true,"num":0}]') == Packet(
        PacketType.BINARY_EVENT, ["f", {"_placeholder": True, "num": 0}], None, "/up", 1
    )
    assert decode_packet("0/x,") == Packet(PacketType.CONNECT, None, None, "/x")


# --------------------------------------------------------------------------- malformed input


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "unknown Engine.IO packet"),
        ("9", "unknown Engine.IO packet"),
        ("4", "empty Socket.IO packet"),
        ("47[]", "unknown Socket.IO packet type"),
        ("4x", "unknown Socket.IO packet type"),
        ('42["a"', "not JSON"),
        ("42{}", "EVENT data is not"),
        ("42[]", "EVENT data is not"),
        ("42[null]", "EVENT data is not"),
        ('42"x"', "EVENT data is not"),
        ("42", "EVENT data is not"),
        ("43[]", "ACK without an id"),
        ('431{"a":1}', "ACK data is not a list"),
        ("41[]", "DISCONNECT has data"),
        ('45["x"]', "attachment count"),
        ('45-["x"]', "attachment count"),
        ('45a-["x"]', "attachment count"),
        ('452-["x",{"_placeholder":true,"num":0}]', "announces 2 attachments but has 1"),
        ('40{"sid":"again"}', "unexpected CONNECT"),
        ('44{"message":"x"}', "unexpected CONNECT_ERROR"),
        ("44[1]", "CONNECT_ERROR data"),
        ("42" + "[" * 100_000 + "]" * 100_000, "not JSON"),
    ],
)
def test_malformed_packets_raise_clear_errors(text: str, problem: str) -> None:
    proto = connected()
    with pytest.raises(ProtocolError, match=problem):
        proto.receive_text(text)


@pytest.mark.parametrize(
    "header",
    [
        '451-["b",{"_placeholder":true,"num":1}]',
        '451-["b",{"_placeholder":true,"num":-1}]',
        '451-["b",{"_placeholder":true,"num":"0"}]',
        '451-["b",{"_placeholder":true,"num":0.0}]',
    ],
)
def test_invalid_placeholder(header: str) -> None:
    proto = connected()
    proto.receive_text(header)
    with pytest.raises(ProtocolError, match="placeholder"):
        proto.receive_bytes(b"x")


def test_binary_out_of_place() -> None:
    proto = connected()
    with pytest.raises(ProtocolError, match="without a binary packet"):
        proto.receive_bytes(b"stray")
    proto.receive_text('452-["b",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]')
    proto.receive_bytes(b"one")
    with pytest.raises(ProtocolError, match="text message while binary attachments"):
        proto.receive_text('42["x"]')


def test_inbound_max_payload() -> None:
    proto = connected(max_payload=100)
    assert proto.receive_text('42["x","' + "a" * 80 + '"]')
    with pytest.raises(ProtocolError, match="exceeds max_payload"):
        proto.receive_text('42["x","' + "a" * 100 + '"]')
    proto = connected(max_payload=100)
    proto.receive_text('452-["b",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]')
    proto.receive_bytes(b"x" * 20)
    with pytest.raises(ProtocolError, match="exceeds max_payload"):
        proto.receive_bytes(b"x" * 20)


def test_outbound_limits_and_serialization_errors(codec: JsonCodec) -> None:
    proto = connected(codec)
    with pytest.raises(ValueError, match="maxPayload"):
        proto.send_event("big", ["x" * 1_000_001], ack=True)
    with pytest.raises(TypeError, match="cannot serialize"):
        proto.send_event("bad", [{1, 2}], ack=True)
    with pytest.raises(TypeError, match="cannot serialize"):
        proto.send_event("bad", [b"bin", object()], ack=True)
    # Nothing was consumed by the failures.
    assert proto.send_event("ok", [], ack=True)[1] == 0


def test_stdlib_refuses_nan_and_circular_structures() -> None:
    proto = connected(StdlibJsonCodec())
    with pytest.raises(TypeError, match="cannot serialize"):
        proto.send_event("nan", [float("nan")], ack=False)
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(TypeError, match="cannot serialize"):
        proto.send_event("loop", [loop], ack=False)


# --------------------------------------------------------------------------- round trips

_json_leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
_binary: st.SearchStrategy[bytes | bytearray | memoryview[int]]
_binary = st.binary(max_size=40) | st.binary(max_size=40).map(bytearray)
_binary |= st.binary(max_size=40).map(lambda data: memoryview(data))
# A user dict that looks like a placeholder is ambiguous on the wire (for every Socket.IO).
_keys = st.text(max_size=8).filter(lambda k: k != "_placeholder")
_values = st.recursive(
    _json_leaves | _binary,
    lambda children: (
        st.lists(children, max_size=4)
        | st.tuples(children, children)
        | st.dictionaries(_keys, children, max_size=4)
    ),
    max_leaves=25,
)


@settings(max_examples=150, deadline=None)
@given(
    name=st.text(min_size=0, max_size=15),
    args=st.lists(_values, max_size=5),
    ack=st.booleans(),
    codec_index=st.sampled_from(range(len(CODECS))),
)
def test_event_round_trip(name: str, args: list[Any], ack: bool, codec_index: int) -> None:
    codec: JsonCodec = CODECS[codec_index]()
    sender, receiver = connected(codec), connected(codec)
    frames, ack_id = sender.send_event(name, args, ack)
    assert (ack_id is not None) == ack
    has_binary = any(opcode == OP_BINARY for opcode, _ in frames)
    assert frames[0][1][:2] == (b"45" if has_binary else b"42")
    assert feed(receiver, frames) == [Event(name, normalized(args), ack_id)]


@settings(max_examples=100, deadline=None)
@given(ack_id=st.integers(min_value=0, max_value=2**53), args=st.lists(_values, max_size=4))
def test_ack_round_trip(ack_id: int, args: list[Any]) -> None:
    sender, receiver = connected(), connected()
    assert feed(receiver, sender.send_ack(ack_id, args)) == [Ack(ack_id, normalized(args))]


@settings(max_examples=100, deadline=None)
@given(
    ptype=st.sampled_from(list(PacketType)),
    namespace=st.sampled_from(["/", "/chat", "/a/b"]),
    ack_id=st.none() | st.integers(min_value=0, max_value=10**12),
    args=st.lists(_json_leaves, max_size=3),
)
def test_packet_round_trip(
    ptype: PacketType, namespace: str, ack_id: int | None, args: list[Any]
) -> None:
    data: Any
    if ptype in (PacketType.EVENT, PacketType.BINARY_EVENT):
        data = ["name", *args]
    elif ptype in (PacketType.ACK, PacketType.BINARY_ACK):
        data = args
        ack_id = ack_id or 0
    elif ptype is PacketType.DISCONNECT:
        data = None
    else:
        data = {"args": args}
    [(opcode, text)] = encode_packet(Packet(ptype, data, ack_id, namespace))
    assert opcode == OP_TEXT
    assert text[:1] == b"4"
    # Without binary data a BINARY_* packet is sent as its plain twin.
    plain = {PacketType.BINARY_EVENT: PacketType.EVENT, PacketType.BINARY_ACK: PacketType.ACK}
    assert decode_packet(text[1:].decode()) == Packet(
        plain.get(ptype, ptype), data, ack_id, namespace
    )


# --------------------------------------------------------------------------- fast paths


def general_path(proto: ClientProtocol, text: str) -> list[Any] | str:
    """What the general parser makes of a MESSAGE packet (or the error it raises)."""
    try:
        return proto._on_message(text)
    except ProtocolError as exc:
        return f"ProtocolError: {exc}"


def fast_path(proto: ClientProtocol, text: str) -> list[Any] | str:
    try:
        return proto.receive_text(text)
    except ProtocolError as exc:
        return f"ProtocolError: {exc}"


@pytest.mark.parametrize(
    "text",
    [
        '430["x"]',
        "4317[]",
        '43007["leading zeros"]',
        '42["name"]',
        '42["name",1,{"a":[2]}]',
        '4212["asks",null]',
        "43²[1]",  # a digit, but not an ASCII one
        "43 1[1]",
        "43+1[1]",
        "431_0[1]",
        "43-1[1]",
        '42 ["x"]',
        '42["x"] ',
        '42["x"]]',
        "42[1]",  # a number as event name: the general path converts it
        "42[true]",
        '42{"a":[1]}',
        '43/nsp,1["other namespace"]',
        '42/nsp,["x"]',
        "43[]",
        '43["no id"]',
        '431{"a":[1]}',
        '45["x"]',
        '451-["b",{"_placeholder":true,"num":0}]',
    ],
)
def test_fast_path_agrees_with_the_general_parser(codec: JsonCodec, text: str) -> None:
    assert fast_path(connected(codec), text) == general_path(connected(codec), text)


@settings(max_examples=300, deadline=None)
@given(
    kind=st.sampled_from(["2", "3"]),
    middle=st.text(alphabet="0123456789 +-_²/,ab", max_size=5),
    body=st.sampled_from(["[]", '["e"]', '["e",1]', "[1]", "{}", '"x"', "[", "[null]", ""]),
)
def test_fast_path_agrees_on_arbitrary_packets(kind: str, middle: str, body: str) -> None:
    text = "4" + kind + middle + body
    for codec in (StdlibJsonCodec(), default_json()):
        assert fast_path(connected(codec), text) == general_path(connected(codec), text)


def with_namespaces(codec: JsonCodec, own: str, recovering: bool) -> ClientProtocol:
    """Connected on ``own``, with /nsp connected (with or without recovery's offsets) and
    /waiting still waiting for its CONNECT answer."""
    from jamsocket_rt.protocol.recovery import Recovery

    proto = ClientProtocol(json=codec, namespace=own, recovery=Recovery() if recovering else None)
    proto.receive_text(OPEN)
    own_prefix = "" if own == "/" else own + ","
    pid = ',"pid":"p1"' if recovering else ""
    proto.receive_text("40" + own_prefix + '{"sid":"abc"' + pid + "}")
    proto.connect_namespace("/nsp", recovery=Recovery() if recovering else None)
    proto.connect_namespace("/waiting")
    proto.receive_text('40/nsp,{"sid":"def"' + pid + "}")
    proto.data_to_send()
    return proto


@settings(max_examples=400, deadline=None)
@given(
    kind=st.sampled_from(["2", "3"]),
    nsp=st.sampled_from(["/nsp", "/game", "/waiting", "/unknown", "/", "/ns[p", ""]),
    comma=st.sampled_from([",", ""]),
    middle=st.text(alphabet="0123456789 +-_²/,ab", max_size=4),
    body=st.sampled_from(["[]", '["e"]', '["e",1]', '["e","off"]', "[1]", "{}", "[", ""]),
    own=st.sampled_from(["/", "/game"]),
    recovering=st.booleans(),
)
def test_fast_path_agrees_on_namespaced_packets(
    kind: str, nsp: str, comma: str, middle: str, body: str, own: str, recovering: bool
) -> None:
    # Packets of a namespace other than the root take a fast path of their own since issue 15
    # (two namespaces on one connection cost 14-20 % more CPU per message without it).
    text = "4" + kind + nsp + comma + middle + body
    for codec in (StdlibJsonCodec(), default_json()):
        fast = with_namespaces(codec, own, recovering)
        general = with_namespaces(codec, own, recovering)
        assert fast_path(fast, text) == general_path(general, text), text
        assert fast.dropped == general.dropped


@pytest.mark.parametrize(
    "document",
    ['["x"]', ' ["x"]', '["x"] ', "\n[1]\n", "NaN", "[Infinity]", '{"a":1}', "1", '"s"', "null"],
)
def test_stdlib_codec_parses_as_json_loads(document: str) -> None:
    import json

    codec = StdlibJsonCodec()
    assert json.dumps(codec.loads(document)) == json.dumps(json.loads(document))
    assert json.dumps(codec.loads(document.encode())) == json.dumps(json.loads(document))


@pytest.mark.parametrize("document", ["", "[", '["x"] x', "[1,]", "{'a': 1}", "   "])
def test_stdlib_codec_refuses_what_json_loads_refuses(document: str) -> None:
    with pytest.raises(ValueError):
        StdlibJsonCodec().loads(document)


def test_stdlib_codec_encodes_compactly_and_calls_default() -> None:
    codec = StdlibJsonCodec()
    assert (
        codec.dumps(["é", {"k": [1, 2.5, None, True]}]) == '["é",{"k":[1,2.5,null,true]}]'.encode()
    )
    assert codec.dumps([b"x"], lambda value: {"bytes": len(value)}) == b'[{"bytes":1}]'
    with pytest.raises(TypeError):
        codec.dumps([b"x"])
    with pytest.raises(ValueError):
        codec.dumps([float("inf")])
