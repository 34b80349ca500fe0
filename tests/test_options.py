"""SessionOptions: one validated class of every Session option, shared by every front end."""

from __future__ import annotations

import inspect
import subprocess
import sys
from typing import Any

import pytest

import jamsocket_rt as jrt
from jamsocket_rt.load.config import LoadConfig


def parameters(fn: Any) -> list[tuple[str, Any, Any]]:
    return [
        (p.name, p.default, p.kind)
        for p in inspect.signature(fn).parameters.values()
        if p.name != "self"
    ]


def test_sync_session_has_the_signature_of_session() -> None:
    assert parameters(jrt.SyncSession.__init__) == parameters(jrt.Session.__init__)
    assert inspect.signature(jrt.SyncSession.__init__).parameters.keys() == (
        inspect.signature(jrt.Session.__init__).parameters.keys()
    )


def test_every_keyword_option_is_a_field_of_session_options() -> None:
    keywords = {
        name
        for name, _, kind in parameters(jrt.Session.__init__)
        if kind is inspect.Parameter.KEYWORD_ONLY and name != "connect"
    }
    fields = {field.name for field in jrt.SessionOptions.__attrs_attrs__}
    assert keywords == fields
    defaults = jrt.SessionOptions()
    for name, default, _ in parameters(jrt.Session.__init__):
        if name in fields and name not in ("headers", "query", "transports"):
            assert getattr(defaults, name) == default, name


@pytest.mark.parametrize(
    ("options", "error", "named"),
    [
        ({"no_such_option": 1}, TypeError, "no_such_option"),
        ({"ready_timeout": 0}, ValueError, "ready_timeout"),
        ({"call_timeout": -1}, ValueError, "call_timeout"),
        ({"connect_timeout": None}, ValueError, "connect_timeout"),
        ({"transports": "websocket"}, ValueError, "transports"),
        ({"transports": ()}, ValueError, "transports"),
        ({"max_queue": 0}, ValueError, "max_queue"),
        ({"max_backlog": 1}, ValueError, "max_backlog"),
        ({"stream_maxsize": True}, ValueError, "stream_maxsize"),
        ({"reconnect_delay": (0, 1)}, ValueError, "reconnect_delay[0]"),
        ({"disconnect_grace": -1}, ValueError, "disconnect_grace"),
        ({"latency_probe": ""}, ValueError, "event"),
        ({"namespace": "admin"}, ValueError, "namespace"),
    ],
)
def test_a_bad_option_is_refused_by_name(
    options: dict[str, Any], error: type[Exception], named: str
) -> None:
    with pytest.raises(error, match=named.replace("[", r"\[")):
        jrt.SessionOptions(**options)


def test_options_are_frozen_copies() -> None:
    headers = {"x-a": "1"}
    options = jrt.SessionOptions(headers=headers, transports=["polling", "websocket"])
    headers["x-a"] = "2"
    assert options.headers == {"x-a": "1"}
    assert options.transports == ("polling", "websocket")
    assert options.evolve(max_queue=5).max_queue == 5
    with pytest.raises(AttributeError):
        options.max_queue = 3  # type: ignore[misc]
    with pytest.raises(ValueError, match="max_queue"):
        options.evolve(max_queue=0)


def test_from_options_builds_a_session_and_a_sync_session() -> None:
    response = jrt.ConnectResponse.from_dict(
        {
            "backend_id": "b",
            "spawned": True,
            "status": "ready",
            "token": "t",
            "url": "http://h/t/",
            "status_url": "http://h/s",
        }
    )
    options = jrt.SessionOptions(call_timeout=3.0, namespace="/game")
    session = jrt.Session.from_options(response, options=options)
    assert session.options is options
    assert session.name == "/game"
    assert session.state is jrt.SessionState.IDLE
    sync = jrt.SyncSession.from_options(response, options=options)
    assert sync.session.options is options
    with pytest.raises(TypeError, match="ConnectResponse"):
        jrt.Session.from_options(options=options)


#: Run in a process of its own: importing Locust monkey-patches the process for gevent.
LOCUST_CHECK = """
import pytest
from jamsocket_rt.locust import SessionUser

class Tuned(SessionUser):
    abstract = True
    session_options = {"call_timeout": 2.5}

first = Tuned._options()
assert first.call_timeout == 2.5
assert Tuned._options() is first  # once per user class

class Broken(SessionUser):
    abstract = True
    session_options = {"max_queue": 0}

with pytest.raises(ValueError, match="max_queue"):
    Broken._options()
print("ok")
"""


def test_the_load_runner_and_the_locust_user_validate_once() -> None:
    config = LoadConfig(sessions=2, call_timeout=4.0, transports=("polling",))
    built = config.session_options()
    assert (built.call_timeout, built.transports) == (4.0, ("polling",))
    run = subprocess.run(
        [sys.executable, "-c", LOCUST_CHECK], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.strip().endswith("ok")


async def test_the_state_follows_the_lifecycle(api: jrt.Jamsocket) -> None:
    session = jrt.Session(await api.connect())
    seen = [session.state]
    await session.connect()
    seen.append(session.state)
    await session.close()
    seen.append(session.state)
    state = jrt.SessionState
    assert seen == [state.IDLE, state.CONNECTED, state.CLOSED]
    with pytest.raises(RuntimeError, match="already"):
        await session.connect()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ((5, 1), r"reconnect_delay: the initial delay \(5 s\) is above the maximum \(1 s\)"),
        ((1, 2, 3), r"reconnect_delay: expected \(initial, maximum\)"),
        (1.0, r"reconnect_delay: expected \(initial, maximum\)"),
        ((0, 1), r"reconnect_delay\[0\]: expected a positive number"),
    ],
)
def test_delays_that_cannot_work_are_refused(value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        jrt.SessionOptions(reconnect_delay=value)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=message):
        jrt.Session({}, reconnect_delay=value)  # type: ignore[arg-type]


def test_an_unknown_parser_is_named_and_nothing_starts() -> None:
    import threading

    before = set(threading.enumerate())
    with pytest.raises(ValueError, match=r"parser: expected one of \('json', 'msgpack'\)"):
        jrt.Session({}, parser="xml")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="parser"):
        jrt.SyncSession({}, parser="xml")  # type: ignore[arg-type]
    assert set(threading.enumerate()) <= before
