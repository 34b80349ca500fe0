"""jamsocket-rt connect / status / terminate, run as a user would run them."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
from pathlib import Path

from jamsocket_rt.dev import BackgroundDevServer
from tests.helpers.polling import eventually_sync

CLI = [sys.executable, "-m", "jamsocket_rt"]


def run(
    *args: str, stdin: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], input=stdin, capture_output=True, text=True, timeout=timeout
    )


def test_call_prints_the_acknowledgement_as_json(jamsocket_dev_server: BackgroundDevServer) -> None:
    done = run("connect", "--api-url", jamsocket_dev_server.api_url, "--call", "echo", '{"a": [1]}')
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"a": [1]}
    assert "status     ready" in done.stderr
    assert "\033[" not in done.stderr, "no colours when stderr is not a terminal"


def test_send_then_the_event_stream_from_a_response_file(
    jamsocket_dev_server: BackgroundDevServer, tmp_path: Path
) -> None:
    response = jamsocket_dev_server.connect(key="cli-room")
    path = tmp_path / "response.json"
    path.write_text(response.to_json())
    listener = subprocess.Popen(
        [*CLI, "connect", str(path)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert listener.stdout is not None
        first = json.loads(listener.stdout.readline())
        assert first["event"] == "welcome"
        done = run("connect", str(path), "--send", "broadcast", '"from the cli"')
        assert done.returncode == 0, done.stderr
        line = json.loads(listener.stdout.readline())
        assert line == {"event": "broadcast", "args": ["from the cli"]}
        jamsocket_dev_server.terminate(response.backend_id)
        assert listener.wait(15) == 0, "the listener ends with its backend"
    finally:
        listener.kill()
        listener.wait()
        assert listener.stdout is not None
        assert listener.stderr is not None
        stderr = listener.stderr.read()
        listener.stdout.close()
        listener.stderr.close()
    assert "terminated" in stderr


def test_status_and_terminate(jamsocket_dev_server: BackgroundDevServer) -> None:
    response = jamsocket_dev_server.connect()
    url = jamsocket_dev_server.api_url
    status: list[subprocess.CompletedProcess[str]] = []

    def ready() -> bool:
        status.append(run("status", response.backend_id, "--api-url", url))
        done = status[-1]
        return done.returncode == 0 and json.loads(done.stdout)["status"] == "ready"

    eventually_sync(
        ready, timeout=20, interval=0.2, message=lambda: status[-1].stdout + status[-1].stderr
    )
    done = run("terminate", response.backend_id, "--api-url", url, "--hard")
    assert done.returncode == 0, done.stderr
    assert "hard terminate sent" in done.stderr
    missing = run("status", "no-such-backend", "--api-url", url)
    assert missing.returncode == 1
    assert "404" in missing.stderr


def test_missing_platform_settings_are_named() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAMSOCKET_")}
    done = subprocess.run(
        [*CLI, "status", "x", "--service", "s"], capture_output=True, text=True, env=env
    )
    assert done.returncode == 1
    assert "--account" in done.stderr
    assert "--token" in done.stderr


def test_interactive_prompt_on_a_terminal(jamsocket_dev_server: BackgroundDevServer) -> None:
    # A pty under a loaded machine is slow to settle: a new process is tried, at most thrice.
    failures = []
    for _ in range(3):
        try:
            run_prompt_session(jamsocket_dev_server.api_url)
            return
        except AssertionError as exc:
            failures.append(str(exc))
    raise AssertionError("\n---\n".join(failures))


def run_prompt_session(api_url: str) -> None:
    main, child = pty.openpty()
    proc = subprocess.Popen(
        [*CLI, "connect", "--api-url", api_url],
        stdin=child,
        stdout=child,
        stderr=child,
        close_fds=True,
    )
    os.close(child)
    seen = b""
    position = 0  # where the last marker found ended

    def read_until(marker: bytes, timeout: float = 20) -> None:
        """Read until ``marker`` appears after the previous marker (a read may hold both)."""
        nonlocal position

        def arrived() -> bool:
            """Whether the marker is there, after reading what comes within 0.2 s."""
            nonlocal seen
            if marker in seen[position:]:
                return True
            ready, _, _ = select.select([main], [], [], 0.2)
            if ready:
                try:
                    seen += os.read(main, 4096)
                except OSError:
                    return True  # the terminal is closed: nothing more will come
            return marker in seen[position:]

        eventually_sync(
            arrived, timeout=timeout, interval=0, message=lambda: seen.decode(errors="replace")
        )
        position = seen.index(marker, position) + len(marker)

    try:
        read_until(b"type 'help'")
        assert b"\033[" in seen, "colours on a terminal"
        read_until(b"> ")  # readline owns the terminal from here
        os.write(main, b'call echo {"x": 5}\n')
        read_until(b'{"x": 5}', timeout=10)
        read_until(b"> ")
        os.write(main, b"quit\n")
        assert proc.wait(30) == 0
    finally:
        proc.kill()
        proc.wait()
        os.close(main)


def test_tab_completion_of_commands_and_seen_events() -> None:
    from jamsocket_rt._cli_session import completer

    line = ""
    complete = completer({"welcome", "pong", "broadcast"}, lambda: line)
    line = "ca"
    assert complete("ca", 0) == "call"
    assert complete("ca", 1) is None
    line = "call "
    assert [complete("", i) for i in range(4)] == ["broadcast", "pong", "welcome", None]
    line = "send po"
    assert complete("po", 0) == "pong"
