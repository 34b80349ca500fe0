"""The sans-I/O websocket (RFC 6455 framing and upgrade), and the transport against bad servers.

The parser is property-tested as the SSE parser is: any chunking of any valid frame sequence
gives the same messages, through :meth:`FrameParser.receive` (the short path the transport
uses) and through ``feed`` + ``next_message`` (the general path) alike; every invalid frame is a
ProtocolError carrying its close code. The transport tests use tiny asyncio servers on
127.0.0.1 that speak bad handshakes and frames.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import pickle
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jamsocket_rt import TokenExpired
from jamsocket_rt.protocol.engineio import MAX_PING_MS, ProtocolError, parse_open
from jamsocket_rt.protocol.packets import StdlibJsonCodec, default_json
from jamsocket_rt.protocol.websocket import (
    ClientHandshake,
    Close,
    FrameParser,
    Message,
    Ping,
    Pong,
    accept_value,
    close_payload,
    encode_frame,
    is_valid_close_code,
)
from jamsocket_rt.transport import wsconnection as connection_module
from jamsocket_rt.transport.base import ConnectTarget
from jamsocket_rt.transport.websocket import WebSocketTransport
from tests.helpers.transport_peers import (
    SIO_OPEN,
    TOKEN_PATH,
    Recorder,
    ScriptedPeer,
    scripted_ws_server,
    server_frame,
    text,
)

BIG = 1 << 20  # max_payload of the parsers fed valid streams
SMALL = 100  # max_payload of the parsers fed invalid frames (after a valid prefix)


def frame(
    opcode: int,
    payload: bytes,
    *,
    fin: bool = True,
    rsv: int = 0,
    width: int | None = None,
    length: int | None = None,
) -> bytes:
    """A server frame; ``width`` (7, 16, 64) forces a length encoding, ``length`` a length."""
    size = len(payload) if length is None else length
    width = width or (7 if size < 126 else 16 if size < 65536 else 64)
    head = bytes(((0x80 if fin else 0) | rsv << 4 | opcode,))
    if width == 7:
        head += bytes((size,))
    elif width == 16:
        head += bytes((126,)) + size.to_bytes(2, "big")
    else:
        head += bytes((127,)) + size.to_bytes(8, "big")
    return head + payload


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(data)) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


def by_receive(parser: FrameParser, chunks: list[bytes]) -> tuple[list[Message], Exception | None]:
    """Messages through receive() (the transport's way), then the error if any."""
    out: list[Message] = []
    try:
        for chunk in chunks:
            out += parser.receive(chunk)
        if parser.error is not None:
            out += parser.receive(b"")  # raises it
    except ProtocolError as exc:
        return out, exc if parser.error is exc else None
    return out, None


def by_steps(parser: FrameParser, chunks: list[bytes]) -> tuple[list[Message], Exception | None]:
    """Messages through feed() and next_message(), one at a time, then the error if any."""
    out: list[Message] = []
    try:
        for chunk in chunks:
            parser.feed(chunk)
            while (message := parser.next_message()) is not None:
                out.append(message)
    except ProtocolError as exc:
        return out, exc
    return out, None


# --------------------------------------------------------------------------- strategies

_widths = st.sampled_from([None, 7, 16, 64])
_codes = st.one_of(st.integers(1000, 1003), st.integers(1007, 1011), st.integers(3000, 4999))


def _width_for(size: int, choice: int | None) -> int | None:
    """``choice`` if it can encode ``size`` (a longer encoding than needed is valid too)."""
    too_small = (choice == 7 and size > 125) or (choice == 16 and size > 65535)
    return None if too_small else choice


@st.composite
def valid_streams(
    draw: st.DrawFn, small: bool = False, closing: bool = True
) -> tuple[bytes, list[Message]]:
    """A valid sequence of server frames and the messages it carries, in order."""
    size = 20 if small else 300  # 300: some payloads need a 16-bit length
    frames: list[bytes] = []
    expected: list[Message] = []

    def control() -> None:
        payload = draw(st.binary(max_size=125 if not small else 10))
        kind = draw(st.sampled_from([0x9, 0xA]))
        frames.append(frame(kind, payload, width=_width_for(len(payload), draw(_widths))))
        expected.append(Ping(payload) if kind == 0x9 else Pong(payload))

    for _ in range(draw(st.integers(0, 6))):
        if draw(st.integers(0, 3)) == 0:
            control()
            continue
        message: str | bytes = draw(st.one_of(st.text(max_size=size), st.binary(max_size=size)))
        data = message.encode() if isinstance(message, str) else message
        pieces = split_at(data, draw(st.lists(st.integers(0, len(data)), max_size=3)))
        for index, piece in enumerate(pieces):
            opcode = (0x1 if isinstance(message, str) else 0x2) if index == 0 else 0x0
            last = index == len(pieces) - 1
            width = _width_for(len(piece), draw(_widths))
            frames.append(frame(opcode, piece, fin=last, width=width))
            if not last and draw(st.booleans()):
                control()  # between the fragments of a message
        expected.append(message)
    if closing and draw(st.booleans()):
        code = draw(st.none() | _codes)
        reason = "" if code is None else draw(st.text(max_size=30))
        frames.append(frame(0x8, close_payload(code, reason)))
        expected.append(Close(code, reason))
        frames.append(draw(st.binary(max_size=20)))  # after a close frame: never read
    return b"".join(frames), expected


_bad_utf8 = st.sampled_from([b"\xff", b"\xc0\x80", b"\xed\xa0\x80", b"\xe2\x82", b"\x80abc"])


@st.composite
def invalid_frames(draw: st.DrawFn) -> tuple[bytes, int]:
    """Bytes that end in an invalid frame (for a parser of max_payload SMALL) and its code."""
    kind = draw(st.integers(0, 13))
    payload = draw(st.binary(max_size=20))
    if kind == 0:
        return frame(0x1, payload, rsv=draw(st.integers(1, 7))), 1002
    if kind == 1:
        opcode = draw(st.sampled_from([3, 4, 5, 6, 7, 11, 12, 13, 14, 15]))
        return frame(opcode, payload), 1002
    if kind == 2:  # a control frame over 125 bytes
        opcode = draw(st.sampled_from([0x8, 0x9, 0xA]))
        return frame(opcode, bytes(draw(st.integers(126, 300))), width=16), 1002
    if kind == 3:  # a fragmented control frame
        return frame(draw(st.sampled_from([0x8, 0x9, 0xA])), payload, fin=False), 1002
    if kind == 4:  # masked
        return bytes((0x81, 0x80 | len(payload))) + b"mask" + payload, 1002
    if kind == 5:  # a 64-bit length with its top bit set
        return frame(0x2, b"", width=64, length=draw(st.integers(1 << 63, (1 << 64) - 1))), 1002
    if kind == 6:  # a continuation with nothing to continue
        return frame(0x0, payload, fin=draw(st.booleans())), 1002
    if kind == 7:  # a new message before the fragmented one is complete
        return frame(0x1, b"a", fin=False) + frame(draw(st.sampled_from([1, 2])), payload), 1002
    if kind == 8:  # a frame over max_payload, whole or only announced
        opcode = draw(st.sampled_from([0, 1, 2]))
        if draw(st.booleans()):
            return frame(opcode, b"x" * draw(st.integers(SMALL + 1, 300))), 1009
        return frame(opcode, b"", length=draw(st.integers(SMALL + 1, 1 << 40))), 1009
    if kind == 9:  # fragments over max_payload together
        half = bytes(SMALL // 2 + 1)
        return frame(0x2, half, fin=False) + frame(0x0, half), 1009
    if kind == 10:  # text that is not UTF-8, perhaps fragmented
        data = draw(st.text(max_size=5)).encode() + draw(_bad_utf8)
        cut = draw(st.integers(0, len(data)))
        if draw(st.booleans()):
            return frame(0x1, data[:cut], fin=False) + frame(0x0, data[cut:]), 1007
        return frame(0x1, data), 1007
    if kind == 11:  # a close frame with a one-byte payload
        return frame(0x8, bytes([draw(st.integers(0, 255))])), 1002
    if kind == 12:  # a close code that may not be sent
        code = draw(st.integers(0, 65535).filter(lambda c: not is_valid_close_code(c)))
        return frame(0x8, code.to_bytes(2, "big") + payload[:10]), 1002
    # a close reason that is not UTF-8
    return frame(0x8, (1000).to_bytes(2, "big") + draw(_bad_utf8)), 1007


# --------------------------------------------------------------------------- the parser


@settings(max_examples=400, deadline=None)
@given(stream=valid_streams(), data=st.data())
def test_any_chunking_of_valid_frames_gives_the_same_messages(
    stream: tuple[bytes, list[Message]], data: st.DataObject
) -> None:
    raw, expected = stream
    chunks = split_at(raw, data.draw(st.lists(st.integers(0, len(raw)), max_size=12)))
    assert by_receive(FrameParser(BIG), chunks) == (expected, None)
    assert by_steps(FrameParser(BIG), chunks) == (expected, None)


@settings(max_examples=400, deadline=None)
@given(prefix=valid_streams(small=True, closing=False), bad=invalid_frames(), data=st.data())
def test_every_invalid_frame_is_a_protocol_error_with_its_close_code(
    prefix: tuple[bytes, list[Message]], bad: tuple[bytes, int], data: st.DataObject
) -> None:
    raw = prefix[0] + bad[0]
    chunks = split_at(raw, data.draw(st.lists(st.integers(0, len(raw)), max_size=8)))
    for read in (by_receive, by_steps):
        messages, error = read(FrameParser(SMALL), chunks)
        assert messages == prefix[1]  # what came before the invalid frame is delivered
        assert isinstance(error, ProtocolError)
        assert error.close_code == bad[1], str(error)


@pytest.mark.parametrize("width", [7, 16, 64])
@pytest.mark.parametrize("size", [0, 1, 2, 125, 126, 300])
def test_every_length_encoding_at_every_cut(width: int, size: int) -> None:
    if width == 7 and size > 125:
        return
    payload = bytes(range(48, 58)) * 30
    raw = frame(0x1, payload[:size], width=width) + frame(0x2, payload[:size], width=width)
    raw += frame(0x1, b"x" * 140)
    expected: list[Message] = [payload[:size].decode(), payload[:size], "x" * 140]
    for cut in range(len(raw) + 1):
        chunks = [raw[:cut], raw[cut:]]
        assert by_receive(FrameParser(BIG), chunks) == (expected, None), cut
        assert by_steps(FrameParser(BIG), chunks) == (expected, None), cut


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (frame(0x1, b"a", fin=False) + frame(0x1, b"hello"), 1002),
        (frame(0x2, b"ab", fin=False) + frame(0x1, b"hello"), 1002),
        (frame(0x1, b"x" * (SMALL + 1)), 1009),
        (frame(0x1, b"x" * (SMALL + 1), width=64), 1009),
        (frame(0x1, b"hello \xff"), 1007),
        (frame(0x1, b"\xe2\x82", fin=False) + frame(0x0, b"\xac") + frame(0x1, b"\xff!!"), 1007),
    ],
)
def test_invalid_frames_at_every_cut(raw: bytes, code: int) -> None:
    for cut in range(len(raw) + 1):
        for read in (by_receive, by_steps):
            messages, error = read(FrameParser(SMALL), [raw[:cut], raw[cut:]])
            assert isinstance(error, ProtocolError), (cut, messages)
            assert error.close_code == code


def test_a_reader_that_stops_early_and_feeds_more() -> None:
    parser = FrameParser(BIG)
    parser.feed(frame(0x1, b"one") + frame(0x1, b"two") + frame(0x2, b"thr"))
    assert parser.next_message() == "one"
    assert parser.buffered == 10
    parser.feed(b"\x81")  # half a frame, after two unread ones
    assert parser.next_message() == "two"
    parser.feed(b"\x04four")
    assert parser.next_message() == b"thr"
    assert parser.receive(frame(0x1, b"five")) == ["four", "five"]
    assert parser.buffered == 0
    big = frame(0x2, bytes(300))
    parser.feed(big[:50])  # kept until all 304 bytes are there
    assert parser.next_message() is None
    parser.feed(big[50:] + frame(0x1, b"six"))
    assert parser.next_message() == bytes(300)
    parser.feed(frame(0x1, b"seven"))  # while "six" is unread
    assert [parser.next_message(), parser.next_message(), parser.next_message()] == [
        "six",
        "seven",
        None,
    ]


@pytest.mark.parametrize("opcode", [0x1, 0x2])
def test_a_large_message_in_small_chunks(opcode: int) -> None:
    payload = b"y" * 70_000  # a 64-bit length
    raw = frame(opcode, payload) + frame(0x1, b"after")
    chunks = [raw[i : i + 999] for i in range(0, len(raw), 999)]
    message: Message = payload.decode() if opcode == 0x1 else payload
    assert by_receive(FrameParser(BIG), chunks) == ([message, "after"], None)
    parser = FrameParser(BIG)
    parser.feed(raw[:5000])
    assert parser.next_message() is None
    assert parser.buffered == 5000


def test_errors_stay_and_nothing_is_read_after_a_close() -> None:
    parser = FrameParser(BIG)
    assert parser.receive(frame(0x1, b"ok") + frame(0x3, b"")) == ["ok"]
    error = parser.error
    assert isinstance(error, ProtocolError)
    assert "unknown websocket opcode 3" in str(error)
    for _ in range(2):
        with pytest.raises(ProtocolError) as info:
            parser.receive(frame(0x1, b"more"))
        assert info.value is error
    closed = FrameParser(BIG)
    assert closed.receive(frame(0x8, b"") + frame(0x1, b"late")) == [Close(None)]
    assert closed.receive(frame(0x1, b"later")) == []
    closed.feed(frame(0x1, b"latest"))
    assert closed.next_message() is None
    assert closed.buffered == 0
    assert closed.error is None
    with pytest.raises(ValueError, match="negative"):
        FrameParser(-1)


def unmask(data: bytes) -> tuple[int, bytes]:
    """(opcode, payload) of one final, masked client frame."""
    assert data[0] & 0xF0 == 0x80
    assert data[1] & 0x80, "client frames are masked"
    size, start = data[1] & 0x7F, 2
    if size == 126:
        size, start = int.from_bytes(data[2:4], "big"), 4
    elif size == 127:
        size, start = int.from_bytes(data[2:10], "big"), 10
    mask, body = data[start : start + 4], data[start + 4 :]
    assert len(body) == size
    return data[0] & 0x0F, bytes(b ^ mask[i % 4] for i, b in enumerate(body))


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536])
def test_client_frames_are_masked_and_sized(size: int) -> None:
    payload = bytes(i % 251 for i in range(size))
    assert unmask(encode_frame(0x2, payload)) == (0x2, payload)


def test_close_codes() -> None:
    assert all(is_valid_close_code(c) for c in (1000, 1001, 1002, 1003, 1007, 1011, 3000, 4999))
    assert not any(is_valid_close_code(c) for c in (0, 999, 1004, 1005, 1006, 1012, 1015, 5000))
    assert close_payload(1000) == b"\x03\xe8"
    assert close_payload(4000, "bye") == b"\x0f\xa0bye"
    assert close_payload() == b""
    for code in (1005, 1006, 1015):
        with pytest.raises(ValueError, match="may not be sent"):
            close_payload(code)
    with pytest.raises(ValueError, match="123 bytes"):
        close_payload(1000, "x" * 124)
    with pytest.raises(ValueError, match="needs a close code"):
        close_payload(None, "why")


def test_protocol_errors_carry_their_close_code_everywhere() -> None:
    error = ProtocolError("too big", 1009)
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), str(copy), copy.close_code) == (ProtocolError, "too big", 1009)
    assert ProtocolError("bad").close_code == 1002
    assert isinstance(error, ValueError)


# --------------------------------------------------------------------------- the upgrade


def handshake(**headers: str) -> ClientHandshake:
    return ClientHandshake(
        host="h:81", resource="/T/socket.io/?EIO=4", where="h:81", headers=headers, key="k" * 24
    )


def answer(
    status: str = "101 Switching Protocols", *extra: str, accept: str | None = None
) -> bytes:
    lines = [f"HTTP/1.1 {status}", "Upgrade: websocket", "Connection: keep-alive, Upgrade"]
    lines.append(f"Sec-WebSocket-Accept: {accept or accept_value('k' * 24)}")
    return ("\r\n".join([*lines, *extra]) + "\r\n\r\n").encode()


def test_the_upgrade_request() -> None:
    request = handshake(**{"X-A": "1", "user-agent": "bot", "Upgrade": "no"}).request.decode()
    lines = request.split("\r\n")
    assert lines[0] == "GET /T/socket.io/?EIO=4 HTTP/1.1"
    assert "Host: h:81" in lines
    assert "Sec-WebSocket-Key: " + "k" * 24 in lines
    assert "Sec-WebSocket-Version: 13" in lines
    assert "X-A: 1" in lines
    assert "user-agent: bot" in lines
    assert "User-Agent: jamsocket_rt" not in lines
    assert "Upgrade: no" not in lines
    assert request.endswith("\r\n\r\n")
    for bad in ({"X": "a\r\nB: 1"}, {"X:Y": "1"}, {"X": "a\0"}):
        with pytest.raises(ValueError, match="line break"):
            handshake(**bad)
    assert len(ClientHandshake(host="h", resource="/", where="h").request) > 0


@settings(max_examples=100, deadline=None)
@given(tail=st.binary(max_size=30), data=st.data())
def test_any_chunking_of_an_accepting_answer_gives_the_frames_after_it(
    tail: bytes, data: st.DataObject
) -> None:
    raw = answer() + tail
    chunks = split_at(raw, data.draw(st.lists(st.integers(0, len(raw)), max_size=8)))
    upgrade = handshake()
    for index, chunk in enumerate(chunks):
        after = upgrade.receive_data(chunk)
        if after is not None:
            assert after + b"".join(chunks[index + 1 :]) == tail
            return
    pytest.fail("the answer was never complete")


@pytest.mark.parametrize(
    ("raw", "error", "problem"),
    [
        (answer("410 Gone"), TokenExpired, "410 Gone"),
        (answer("403 Forbidden"), ConnectionError, "refused the websocket: HTTP 403 Forbidden"),
        (answer("200 OK"), ConnectionError, "HTTP 200 OK"),
        (b"SSH-2.0-OpenSSH\r\n\r\n", ProtocolError, "did not answer with HTTP"),
        (answer("1" * 5000 + " Huge"), ProtocolError, "did not answer with HTTP"),
        (answer("10 Short"), ProtocolError, "did not answer with HTTP"),
        (answer(accept="wrong"), ProtocolError, "wrong Sec-WebSocket-Accept"),
        (answer("101 OK", "Sec-WebSocket-Extensions: x"), ProtocolError, "extension"),
        (answer("101 OK", "Sec-WebSocket-Protocol: x"), ProtocolError, "subprotocol"),
        (answer().replace(b"Upgrade: websocket", b"Upgrade: h2c"), ProtocolError, "Upgrade"),
        (answer().replace(b"keep-alive, Upgrade", b"close"), ProtocolError, "Connection"),
        (b"HTTP/1.1 101 OK\r\n" + b"X: y\r\n" * 20_000, ProtocolError, "endless"),
    ],
)
def test_answers_that_refuse_the_upgrade(raw: bytes, error: type[Exception], problem: str) -> None:
    with pytest.raises(error, match=problem):
        handshake().receive_data(raw)


# --------------------------------------------------------------------------- Engine.IO numbers


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ('{"sid":"a","pingInterval":1' + "0" * 400 + ',"pingTimeout":1}', "pingInterval"),
        (f'{{"sid":"a","pingInterval":1,"pingTimeout":{MAX_PING_MS + 1}}}', "pingTimeout"),
        ('{"sid":"a","pingInterval":1,"pingTimeout":1,"maxPayload":1' + "0" * 30 + "}", "max"),
    ],
)
def test_open_numbers_are_bounded(data: str, problem: str) -> None:
    with pytest.raises(ProtocolError, match=problem):  # the standard library parses any size
        parse_open(data, json.loads)
    with pytest.raises(ProtocolError):  # (orjson refuses integers over 64 bits as not JSON)
        parse_open(data, default_json().loads)
    limit = f'{{"sid":"a","pingInterval":{MAX_PING_MS},"pingTimeout":0}}'
    assert parse_open(limit, json.loads).ping_interval == MAX_PING_MS / 1000


# --------------------------------------------------------------------------- the transport


@contextlib.contextmanager
def loop_errors() -> Iterator[list[dict[str, Any]]]:
    """Whatever reaches the running loop's exception handler meanwhile."""
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _, context: reported.append(context))
    try:
        yield reported
    finally:
        loop.set_exception_handler(None)


def ws_target(origin: str, **kwargs: Any) -> ConnectTarget:
    kwargs.setdefault("connect_timeout", 5.0)
    return ConnectTarget(origin, socketio_path=TOKEN_PATH, **kwargs)


async def until_gone(peer: ScriptedPeer) -> None:
    """Reads until the client ends the connection (closed or dropped)."""
    with contextlib.suppress(ConnectionError):
        while await peer.reader.read(65536):
            pass


class Frames:
    """Frames the scripted server read from the client, awaitable as they arrive."""

    def __init__(self) -> None:
        self.frames: list[tuple[int, bytes]] = []
        self._arrived = asyncio.Event()

    async def read(self, peer: ScriptedPeer) -> None:
        self.frames.append(await peer.read_frame())
        self._arrived.set()

    async def wait(self, count: int = 1) -> list[tuple[int, bytes]]:
        while len(self.frames) < count:
            self._arrived.clear()
            await asyncio.wait_for(self._arrived.wait(), 5)
        return self.frames


_LONG_INTS = pytest.mark.skipif(
    not hasattr(sys, "get_int_max_str_digits"), reason="int() takes any length here"
)


@pytest.mark.parametrize(
    ("data", "code", "problem"),
    [
        (server_frame(0x1, b'42["x"]', mask=b"abcd"), 1002, "masked frame"),
        (frame(0x2, b"", width=64, length=1 << 63), 1002, "top bit"),
        (frame(0x1, b"", length=1 << 40), 1009, "max_payload"),
        (frame(0x1, b'42["\xff"]'), 1007, "not UTF-8"),
        (frame(0x8, b"\x03"), 1002, "one-byte payload"),
        (frame(0x8, (1005).to_bytes(2, "big")), 1002, "invalid close code 1005"),
        (text(SIO_OPEN), 1002, "second Engine.IO OPEN"),
        pytest.param(text("43" + "9" * 5000 + "[]"), 1002, "id out of range", marks=_LONG_INTS),
        pytest.param(
            text("451" + "9" * 5000 + '-["x",{"_placeholder":true,"num":0}]'),
            1002,
            "too many attachments",
            marks=_LONG_INTS,
        ),
    ],
)
async def test_a_malformed_message_of_any_kind_fails_only_its_connection(
    data: bytes, code: int, problem: str
) -> None:
    closes = Frames()

    async def script(peer: ScriptedPeer) -> None:
        await peer.handshake()
        peer.send(text('42["before"]') + data)
        await closes.read(peer)  # the client fails the websocket...
        # ...and waits for the server to end the TCP connection, as it does now

    async with scripted_ws_server(script) as origin:
        with loop_errors() as reported:
            recorder = Recorder()
            transport = WebSocketTransport()
            await transport.connect(ws_target(origin), recorder)
            try:
                error = await recorder.wait_lost()
                assert isinstance(error, ProtocolError)
                assert problem in str(error)
                assert recorder.received("before") == [[]]
                assert await closes.wait() == [(0x8, code.to_bytes(2, "big"))]
            finally:
                await transport.close()
        assert reported == []


@pytest.mark.parametrize(
    "packet",
    [
        '0{"sid":"a","upgrades":[],"pingInterval":1' + "0" * 400 + ',"pingTimeout":1}',
        '0{"sid":"a","upgrades":[],"pingInterval":1,"pingTimeout":1,"maxPayload":' + "9" * 30 + "}",
        "0" + "[" * 100_000,
    ],
)
async def test_an_open_packet_with_garbage_numbers_fails_the_connect(packet: str) -> None:
    closes = Frames()

    async def script(peer: ScriptedPeer) -> None:
        peer.send(text(packet))
        await closes.read(peer)

    async with scripted_ws_server(script) as origin:
        with loop_errors() as reported:
            transport = WebSocketTransport(json=StdlibJsonCodec())  # parses integers of any size
            with pytest.raises(ConnectionError, match="OPEN packet"):
                await transport.connect(ws_target(origin), Recorder())
            await transport.close()
        assert reported == []
        assert await closes.wait() == [(0x8, (1002).to_bytes(2, "big"))]  # failed the websocket


@contextlib.asynccontextmanager
async def http_server(answer: bytes) -> AsyncIterator[str]:
    """Answers every request head with ``answer``, then waits for the client to go."""
    tasks: set[asyncio.Task[None]] = set()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
                await reader.readuntil(b"\r\n\r\n")
                writer.write(answer)
                await writer.drain()
                await reader.read()
        finally:  # cancelled too: since Python 3.12, wait_closed() waits for every connection
            writer.close()

    def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.ensure_future(serve(reader, writer))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()


@pytest.mark.parametrize(
    ("raw", "error", "problem"),
    [
        (b"SSH-2.0-OpenSSH_9.6\r\n\r\n", ConnectionError, "did not answer with HTTP"),
        (b"HTTP/1.1 " + b"9" * 5000 + b" Huge\r\n\r\n", ConnectionError, "did not answer"),
        (b"HTTP/1.1 410 Gone\r\nContent-Length: 0\r\n\r\n", TokenExpired, "410 Gone"),
        (b"HTTP/1.1 503 Busy\r\n\r\n", ConnectionError, "HTTP 503 Busy"),
        (b"HTTP/1.1 101 OK\r\n" + b"X: y\r\n" * 20_000, ConnectionError, "endless HTTP head"),
    ],
)
async def test_a_garbage_answer_to_the_upgrade_fails_the_connect(
    raw: bytes, error: type[Exception], problem: str
) -> None:
    async with http_server(raw) as origin:
        with loop_errors() as reported:
            transport = WebSocketTransport()
            with pytest.raises(error, match=problem) as info:
                await transport.connect(ws_target(origin), Recorder())
            assert "SOMETOKEN" not in str(info.value)
            await transport.close()
        assert reported == []


@pytest.mark.parametrize("goodbye", ["41", "1"])  # Socket.IO DISCONNECT, Engine.IO CLOSE
async def test_a_server_that_ended_the_session_gets_a_close_frame_and_the_client_goes(
    goodbye: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The server said goodbye: the client answers and ends TCP itself, without waiting for
    # the server (python-engineio waits for the client to go).
    monkeypatch.setattr(connection_module, "CLOSE_TIMEOUT", 60.0)
    closes = Frames()
    gone = asyncio.Event()

    async def script(peer: ScriptedPeer) -> None:
        await peer.handshake()
        peer.send(text(goodbye))
        await closes.read(peer)
        await until_gone(peer)
        gone.set()

    async with scripted_ws_server(script) as origin:
        recorder = Recorder()
        transport = WebSocketTransport()
        await transport.connect(ws_target(origin), recorder)
        try:
            assert isinstance(await recorder.wait_lost(), ConnectionAbortedError)
            assert await closes.wait() == [(0x8, (1000).to_bytes(2, "big"))]
            await asyncio.wait_for(gone.wait(), 5)
        finally:
            await transport.close()


async def test_after_answering_a_close_the_client_waits_for_the_server_to_end_tcp() -> None:
    answered = Frames()
    end = asyncio.Event()

    async def script(peer: ScriptedPeer) -> None:
        await peer.handshake()
        peer.send(frame(0x8, close_payload(1001, "going away")))
        await answered.read(peer)
        await end.wait()  # then the script returns: the server ends the connection

    async with scripted_ws_server(script) as origin:
        recorder = Recorder()
        transport = WebSocketTransport()
        await transport.connect(ws_target(origin), recorder)
        error = await recorder.wait_lost()
        assert isinstance(error, ConnectionResetError)
        assert "websocket close code 1001" in str(error)
        assert await answered.wait() == [(0x8, (1001).to_bytes(2, "big"))]
        line = transport._tx
        closed = transport._closed
        assert line is not None
        assert closed is not None
        assert not line.is_closing(), "the client must leave ending TCP to the server"
        end.set()
        await asyncio.wait_for(closed, 5)  # the server ended it
        await transport.close()


@pytest.mark.parametrize("failure", ["protocol", "close"])
async def test_a_server_that_never_ends_tcp_is_dropped_after_a_bounded_wait(
    failure: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(connection_module, "CLOSE_TIMEOUT", 0.05)
    frames = Frames()
    gone = asyncio.Event()

    async def script(peer: ScriptedPeer) -> None:
        await peer.handshake()
        if failure == "protocol":
            peer.send(frame(0x4, b""))  # an unknown opcode
        await frames.read(peer)
        await until_gone(peer)  # never closing, never answering
        gone.set()

    async with scripted_ws_server(script) as origin:
        recorder = Recorder()
        transport = WebSocketTransport()
        await transport.connect(ws_target(origin), recorder)
        if failure == "protocol":
            assert isinstance(await recorder.wait_lost(), ProtocolError)
            await asyncio.wait_for(gone.wait(), 5)
            assert frames.frames == [(0x8, (1002).to_bytes(2, "big"))]
            await transport.close()
        else:
            await transport.close()  # DISCONNECT, then the close frame; no answer comes
            await asyncio.wait_for(gone.wait(), 5)
            assert frames.frames == [(0x1, b"41")]
