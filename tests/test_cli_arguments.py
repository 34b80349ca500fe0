"""jamsocket-rt connect one-shots: --send/--call EVENT [ARG ...], bad JSON, no acknowledgement."""

from __future__ import annotations

import json
import subprocess
import sys

from jamsocket_rt.dev import BackgroundDevServer

CLI = [sys.executable, "-m", "jamsocket_rt"]


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout)


def test_call_takes_zero_or_more_json_arguments(jamsocket_dev_server: BackgroundDevServer) -> None:
    url = jamsocket_dev_server.api_url
    two = run("connect", "--api-url", url, "--key", "cli-args", "--call", "echo", "2", "3")
    assert two.returncode == 0, two.stderr
    assert json.loads(two.stdout) == [2, 3]  # echo acknowledges with its arguments
    one = run("connect", "--api-url", url, "--key", "cli-args", "--call", "echo", "[2, 3]")
    assert json.loads(one.stdout) == [2, 3]  # one argument: the list itself
    sent = run("connect", "--api-url", url, "--key", "cli-args", "--send", "record", '"a"', "7")
    assert sent.returncode == 0, sent.stderr
    records = run("connect", "--api-url", url, "--key", "cli-args", "--call", "records")
    assert json.loads(records.stdout) == ["a"]  # record keeps its first argument; records none


def test_invalid_json_is_a_usage_error_naming_the_argument() -> None:
    done = run("connect", "--dev", "--send", "chat", "not json")
    assert done.returncode == 2
    assert "--send" in done.stderr
    assert "argument 1 ('not json') is not valid JSON" in done.stderr
    assert "Traceback" not in done.stderr
    done = run("connect", "--dev", "--call", "add", "1", "{")
    assert done.returncode == 2
    assert "argument 2 ('{')" in done.stderr


def test_a_call_without_acknowledgement_says_why(jamsocket_dev_server: BackgroundDevServer) -> None:
    url = jamsocket_dev_server.api_url
    done = run("connect", "--api-url", url, "--call", "sleep", "30", "--timeout", "0.5")
    assert done.returncode == 1
    assert "no acknowledgement of 'sleep' within 0.5 s" in done.stderr
    assert "no handler for that event" in done.stderr
    assert "Traceback" not in done.stderr
