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


ISOLATION = """
SEEN = {}


def test_first(jamsocket_session):
    SEEN["room"] = jamsocket_session(key="room").backend_id
    SEEN["shared"] = jamsocket_session(key="lobby", shared=True).backend_id


def test_second(jamsocket_session):
    again = jamsocket_session(key="room")
    assert again.backend_id != SEEN["room"], "a key is scoped to its test"
    assert jamsocket_session(key="room").backend_id == again.backend_id, "...within it, shared"
    assert jamsocket_session(key="lobby", shared=True).backend_id == SEEN["shared"]
"""


@pytest.mark.slow
def test_commands_run_in_the_ini_folder_and_keys_are_per_test(pytester: pytest.Pytester) -> None:
    project = pytester.mkdir("project")
    (project / "backends").mkdir()
    (project / "backends" / "my_backend.py").write_text(BACKEND)
    # A bare "python": the interpreter running pytest (PATH may have none, or another one).
    (project / "pytest.ini").write_text(
        "[pytest]\njamsocket_backend = python backends/my_backend.py\n"
    )
    (project / "tests").mkdir()
    (project / "tests" / "test_isolation.py").write_text(ISOLATION)
    # Run from outside the project: the backend's relative path is the ini file's.
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q", "project/tests")
    result.assert_outcomes(passed=2)


def test_a_bare_python_is_the_running_interpreter() -> None:
    from jamsocket_rt.pytest_plugin import scoped_key, with_this_python

    assert with_this_python("python x.py").endswith(" x.py")
    assert with_this_python("python3 -m app").startswith(sys.executable.replace("'", ""))
    assert with_this_python("node server.js") == "node server.js"
    assert with_this_python("pythonista") == "pythonista"
    assert scoped_key("t.py::a", "room") != scoped_key("t.py::b", "room")
