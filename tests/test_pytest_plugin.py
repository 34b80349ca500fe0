"""The pytest plugin, as a user of the library would use it in their own project."""

from __future__ import annotations

import sys

import pytest

pytest_plugins = ["pytester"]

BACKEND = '''
"""A user's own session backend: answers "shout" with the text in capitals."""
import os
import socketio
from aiohttp import web

sio = socketio.AsyncServer(async_mode="aiohttp")
app = web.Application()
sio.attach(app)


@sio.on("shout")
async def shout(sid, text):
    return text.upper()


web.run_app(app, host="127.0.0.1", port=int(os.environ["PORT"]), print=None)
'''

TESTS = """
import pytest
import jamsocket_rt as jrt


def test_sync_session_on_my_backend(jamsocket_session):
    session = jamsocket_session()
    assert session.call("shout", "hello") == "HELLO"


def test_two_sessions_share_a_room(jamsocket_session):
    first = jamsocket_session(key="room")
    second = jamsocket_session(key="room")
    assert first.backend_id == second.backend_id


@pytest.mark.jamsocket_backend("{example}")
def test_marker_picks_another_backend(jamsocket_session, jamsocket_dev_server):
    assert "example_backend" in jamsocket_dev_server.command
    assert jamsocket_session().call("echo", 1) == 1


def test_async_use(jamsocket_dev_server):
    import asyncio

    async def main():
        async with jrt.Session(jamsocket_dev_server.connect(key="a")) as s:
            return await s.call("shout", "async")

    assert asyncio.run(main()) == "ASYNC"
"""


@pytest.mark.slow
def test_a_user_tests_their_backend_in_a_few_lines(pytester: pytest.Pytester) -> None:
    pytester.makefile(".py", my_backend=BACKEND)
    pytester.makeini(f"[pytest]\njamsocket_backend = {sys.executable} my_backend.py\n")
    example = f"{sys.executable} -m jamsocket_rt.dev.example_backend"
    pytester.makepyfile(test_mine=TESTS.replace("{example}", example))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=4)


def test_the_plugin_is_off_unless_used(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_plain="def test_nothing():\n    assert True\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=1)
    result.stdout.no_fnmatch_line("*jamsocket*")
