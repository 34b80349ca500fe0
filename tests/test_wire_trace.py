"""The wire trace: every frame in and out at DEBUG on ``jamsocket_rt.wire``, no token.

The describing of frames (jamsocket_rt/protocol/trace.py) is tested pure; the transports'
logging against the dev server's example backends (python-socketio and Node) on both
transports; ``jamsocket-rt connect --trace`` end to end.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import attrs
import pytest

import jamsocket_rt as jrt
from jamsocket_rt.dev import BackgroundDevServer
from jamsocket_rt.protocol.options import TransportName
from jamsocket_rt.protocol.trace import (
    FrameSummary,
    describe_binary,
    describe_frame,
    trace_line,
)

WIRE = "jamsocket_rt.wire"

# --------------------------------------------------------------------------- describing (pure)


@pytest.mark.pure
@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        ('42["move",1,2]', FrameSummary("EVENT", 14, "/", "move", excerpt='["move",1,2]')),
        ('42/admin,7["a\\"b"]', FrameSummary("EVENT", 17, "/admin", 'a"b', 7, excerpt='["a\\"b"]')),
        ("43/admin,7[1]", FrameSummary("ACK", 13, "/admin", None, 7, excerpt="[1]")),
        (
            '452-/x,3["up",{"_placeholder":true,"num":0}]',
            FrameSummary(
                "BINARY_EVENT", 44, "/x", "up", 3, 2, '["up",{"_placeholder":true,"num":0}]'
            ),
        ),
        ("461-9[{}]", FrameSummary("BINARY_ACK", 9, "/", None, 9, 1, "[{}]")),
        ('40{"token":"s3cret"}', FrameSummary("CONNECT", 20, "/", excerpt="<redacted>")),
        ('40/x,{"sid":"abc"}', FrameSummary("CONNECT", 18, "/x", excerpt="<redacted>")),
        ("40", FrameSummary("CONNECT", 2, "/")),
        ("41/x,", FrameSummary("DISCONNECT", 5, "/x")),
        ('44{"message":"no"}', FrameSummary("CONNECT_ERROR", 18, "/", excerpt='{"message":"no"}')),
        ("2", FrameSummary("PING", 1)),
        ("3probe", FrameSummary("PONG", 6, excerpt="probe")),
        ('0{"sid":"x"}', FrameSummary("OPEN", 12, excerpt='{"sid":"x"}')),
        ("1", FrameSummary("CLOSE", 1)),
        ("6", FrameSummary("NOOP", 1)),
        ("49", FrameSummary("MESSAGE", 2, excerpt="9")),
        ("x", FrameSummary("unknown", 1, excerpt="x")),
        ("", FrameSummary("empty", 0)),
        ('42[ "spaced" ]', FrameSummary("EVENT", 14, "/", "spaced", excerpt='[ "spaced" ]')),
        ("42[1]", FrameSummary("EVENT", 5, "/", None, excerpt="[1]")),
        ('42["unterminated', FrameSummary("EVENT", 16, "/", None, excerpt='["unterminated')),
        ('42["é"]', FrameSummary("EVENT", 8, "/", "é", excerpt='["é"]')),
    ],
)
def test_describe_frame(frame: str, expected: FrameSummary) -> None:
    # (the size is in bytes, UTF-8)
    expected = attrs.evolve(expected, size=len(frame.encode()))
    assert describe_frame(frame) == expected
    assert describe_frame(frame.encode()) == expected


@pytest.mark.pure
def test_long_payloads_are_abbreviated_and_say_how_much_was_cut() -> None:
    summary = describe_frame('42["big","' + "x" * 500 + '"]', limit=20)
    assert summary.event == "big"
    assert summary.excerpt == '["big","xxxxxxxxxxxx…(+490)'
    assert summary.size == 512


@pytest.mark.pure
def test_trace_lines() -> None:
    assert (
        trace_line("out", describe_frame('42/x,12["move",1]'))
        == "out EVENT nsp=/x event='move' ack=12 size=17 [\"move\",1]"
    )
    assert trace_line("in", describe_frame("2")) == "in PING size=1"
    assert trace_line("in", describe_binary(1024)) == "in binary, 1024 bytes"
    assert trace_line("out", describe_binary(3, "WS_PONG")) == "out WS_PONG size=3"


# --------------------------------------------------------------------------- against peers


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_every_frame_is_traced_without_the_token(
    api: jrt.Jamsocket, caplog: pytest.LogCaptureFixture, transport: TransportName
) -> None:
    caplog.set_level(logging.DEBUG, logger=WIRE)
    response = await api.connect()
    async with jrt.Session(
        response,
        transports=(transport,),
        auth={"secret": "auth-secret"},
        query={"room": "query-secret"},
    ) as session:
        assert await session.call("echo", {"hello": 1}) == {"hello": 1}
        await session.send("record", "x" * 300)
        assert await session.call("echo", 2) == 2
    lines = [record.getMessage() for record in caplog.records if record.name == WIRE]
    assert all(record.levelno == logging.DEBUG for record in caplog.records if record.name == WIRE)
    text = "\n".join(lines)
    assert lines[0].startswith("connect ")
    assert "query keys: room" in lines[0]
    assert any(line.startswith("out CONNECT nsp=/") and "<redacted>" in line for line in lines)
    assert any(line.startswith("in CONNECT nsp=/") for line in lines)
    calls = [line for line in lines if line.startswith("out EVENT nsp=/ event='echo' ack=")]
    assert len(calls) == 2
    ack_ids = [line.split("ack=")[1].split()[0] for line in calls]
    for ack_id in ack_ids:
        assert any(line.startswith(f"in ACK nsp=/ ack={ack_id} ") for line in lines), text
    record = next(line for line in lines if "event='record'" in line)
    assert record.startswith("out EVENT nsp=/ event='record' size=")
    assert "…(+" in record
    if transport == "websocket":
        assert any(line.startswith("in OPEN") for line in lines)
        assert any(line.startswith("out WS_CLOSE") for line in lines)
    for secret in (response.token, "auth-secret", "query-secret"):
        assert secret not in caplog.text


async def test_nothing_is_described_when_the_logger_is_off(
    api: jrt.Jamsocket, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jamsocket_rt.transport import _trace

    described: list[object] = []

    def counting(*args: object) -> str:
        described.append(args)
        return ""

    monkeypatch.setattr(_trace, "trace_line", counting)
    caplog.set_level(logging.INFO, logger=WIRE)
    async with jrt.Session(await api.connect()) as session:
        assert await session.call("echo", 1) == 1
    assert described == []
    assert not [record for record in caplog.records if record.name == WIRE]


def test_cli_connect_trace_prints_the_wire(
    jamsocket_dev_server: BackgroundDevServer, tmp_path: Path
) -> None:
    response = jamsocket_dev_server.connect()
    path = tmp_path / "response.json"
    path.write_text(response.to_json())
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "jamsocket_rt",
            "connect",
            str(path),
            "--trace",
            "--call",
            "echo",
            '{"a": 1}',
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    wire = [line.split(None, 1)[1] for line in done.stderr.splitlines() if line.startswith("wire")]
    assert any(line.startswith("out EVENT nsp=/ event='echo' ack=") for line in wire), wire
    assert any(line.startswith("in ACK nsp=/ ack=") for line in wire), wire
    assert done.stdout.strip() == '{"a": 1}'
    assert response.token not in done.stderr
    # Without the flag: no trace.
    quiet = subprocess.run(
        [sys.executable, "-m", "jamsocket_rt", "connect", str(path), "--call", "echo", "1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert quiet.returncode == 0, quiet.stderr
    assert not [line for line in quiet.stderr.splitlines() if line.startswith("wire")]
