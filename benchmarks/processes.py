"""The processes of a benchmark run: servers and clients as children read line by line.

:class:`Child` runs a program and reads its standard output with timeouts; :class:`Servers`
starts the servers a run needs (the Node socket.io server, python-socketio's, the dev server's
proxy) and says where each listens (a :class:`Target`). Also what the machine and the servers
are, for the report. ``runner.py`` drives the suites with them.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import platform
import select
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
NODE_DIR = Path(__file__).resolve().parent / "node"
NODE_MODULES = ROOT / "tests" / "node" / "node_modules"
DIRECT_PATH = "/bench/socket.io/"


class BenchError(RuntimeError):
    """A server or client could not be run."""


class ServerChoices(Protocol):
    """What :class:`Servers` reads of the run's settings."""

    server_uvloop: bool  # the python-socketio server's loop (where installed)


def have_uvloop() -> bool:
    return importlib.util.find_spec("uvloop") is not None


def node_missing() -> str | None:
    """Why the Node server and client cannot run here, or None."""
    if shutil.which("node") is None:
        return "node is not installed"
    for package in ("socket.io", "socket.io-client"):
        if not (NODE_MODULES / package / "package.json").is_file():
            return f"{NODE_MODULES} lacks {package} (./run test installs it)"
    return None


def msgpack_missing() -> str | None:
    """Why jamsocket_rt cannot be measured with parser="msgpack" here, or None."""
    if importlib.util.find_spec("msgpack") is None:
        return "msgpack is not installed (pip install 'jamsocket_rt[msgpack]')"
    if not (NODE_MODULES / "socket.io-msgpack-parser" / "package.json").is_file():
        return f"{NODE_MODULES} lacks socket.io-msgpack-parser (./run test installs it)"
    return None


# --------------------------------------------------------------------------- processes


class Child:
    """A child process whose standard output is read line by line, with timeouts."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        env: dict[str, str] | None = None,
        cwd: Path = ROOT,
    ) -> None:
        self.name = name
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed in stop())
        try:
            self.proc = subprocess.Popen(
                list(argv),
                cwd=cwd,
                env={**os.environ, **(env or {})},
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
            )
        except BaseException:
            self._stderr.close()
            raise
        self._buffer = b""

    def stderr(self) -> str:
        fd = self._stderr.fileno()
        return os.pread(fd, os.fstat(fd).st_size, 0).decode(errors="replace")[-2000:]

    def readline(self, timeout: float) -> str:
        """The next line of output (without its newline).

        Raises:
            BenchError: the process ended, or said nothing within ``timeout``.
        """
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BenchError(f"{self.name} said nothing for {timeout:g} s: {self.stderr()}")
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    self.proc.wait(5)
                    raise BenchError(
                        f"{self.name} exited with {self.proc.returncode}: {self.stderr()}"
                    )
                self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode()

    def read_json(self, timeout: float) -> dict[str, Any]:
        while True:
            line = self.readline(timeout).strip()
            if line.startswith("{"):
                result: dict[str, Any] = json.loads(line)
                return result

    def send(self, obj: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(obj).encode() + b"\n")
        self.proc.stdin.flush()

    def stop(self, timeout: float = 10.0) -> None:
        with contextlib.suppress(OSError):
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._stderr.close()


def _port_of(line: str, name: str) -> int:
    if not line.startswith("listening on "):
        raise BenchError(f"{name} did not start: {line!r}")
    return int(line.split()[-1])


@dataclass
class Target:
    """Where the clients connect: a server, with what each kind of client needs."""

    name: str
    url: str  # the origin
    path: str  # the Socket.IO path
    response: dict[str, Any]  # a ConnectResponse for the Session
    #: The same server speaking socket.io-msgpack-parser, for MSGPACK_CLIENT (when started).
    msgpack: Target | None = None

    def spec(self) -> dict[str, Any]:
        return {"url": self.url, "path": self.path, "response": self.response}


class Servers:
    """Starts the servers a run needs (all at once: their start-ups overlap) and stops them."""

    def __init__(self, settings: ServerChoices) -> None:
        self.settings = settings
        self._children: list[Child] = []
        self._started: dict[str, Child] = {}
        self.targets: dict[str, Target] = {}

    def _start(self, name: str, argv: Sequence[str], env: dict[str, str] | None = None) -> Child:
        child = Child(name, argv, env)
        self._children.append(child)
        return child

    def start(self, names: Sequence[str]) -> None:
        """Launches the servers of these targets without waiting for them."""
        started = self._started
        if any(name in ("node", "python") for name in names) and "status" not in started:
            started["status"] = self._start(
                "the status stand-in", [sys.executable, "-m", "benchmarks.servers", "status"]
            )
        if "node" in names and "node" not in started:
            started["node"] = self._start(
                "the Node server",
                ["node", str(NODE_DIR / "bench_server.js"), "--watch-stdin"],
                {"PORT": "0", "BENCH_PATH": DIRECT_PATH},
            )
        if "node-msgpack" in names and "node-msgpack" not in started:
            started["node-msgpack"] = self._start(
                "the Node server with socket.io-msgpack-parser",
                ["node", str(NODE_DIR / "bench_server.js"), "--watch-stdin"],
                {"PORT": "0", "BENCH_PATH": DIRECT_PATH, "BENCH_PARSER": "msgpack"},
            )
        if "python" in names and "python" not in started:
            argv = [sys.executable, "-m", "benchmarks.servers", "socketio", "--path", DIRECT_PATH]
            if self.settings.server_uvloop and have_uvloop():
                argv.append("--uvloop")
            started["python"] = self._start("the python-socketio server", argv)
        if "proxy" in names and "proxy" not in started:
            backend = ["node", str(NODE_DIR / "bench_server.js")]
            started["proxy"] = self._start(
                "the dev server",
                [sys.executable, "-m", "benchmarks.servers", "devserver", *backend],
            )

    def _status_port(self) -> int:
        if "status" not in self.targets:
            child = self._started["status"]
            port = _port_of(child.readline(30), child.name)
            self.targets["status"] = Target("status", f"http://127.0.0.1:{port}", "", {})
        return int(self.targets["status"].url.rsplit(":", 1)[1])

    def _direct(self, name: str, port: int) -> Target:
        origin = f"http://127.0.0.1:{port}"
        backend_id = f"bench-{name}"
        response = {
            "backend_id": backend_id,
            "spawned": False,
            "status": "ready",
            "token": "bench",
            "url": f"{origin}/bench/",
            "status_url": f"http://127.0.0.1:{self._status_port()}/v2/backend/{backend_id}/status",
        }
        return Target(name, origin, DIRECT_PATH, response)

    def target(self, name: str) -> Target:
        """The target, once its server listens (started now if :meth:`start` was not called)."""
        if name in self.targets:
            return self.targets[name]
        if name not in ("node", "python", "proxy"):
            raise ValueError(f"unknown target {name!r}")
        self.start([name])
        child = self._started[name]
        if name == "proxy":
            target = self._proxy(child)
        else:
            target = self._direct(name, _port_of(child.readline(30), child.name))
        twin = self._started.get(f"{name}-msgpack")
        if twin is not None:
            target.msgpack = self._direct(twin.name, _port_of(twin.readline(30), twin.name))
        self.targets[name] = target
        return target

    def _proxy(self, child: Child) -> Target:
        api_url = json.loads(child.readline(60))["api_url"]
        request = urllib.request.Request(
            f"{api_url}/v2/service/bench/bench/connect",
            data=json.dumps({"key": "bench"}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            response: dict[str, Any] = json.loads(answer.read())
        deadline = time.monotonic() + 60
        while True:  # the clients other than the Session do not wait for ready themselves
            with urllib.request.urlopen(response["status_url"], timeout=10) as answer:
                if json.loads(answer.read())["status"] == "ready":
                    break
            if time.monotonic() > deadline:
                raise BenchError("the dev server's backend was not ready within 60 s")
            time.sleep(0.05)
        parts = urlsplit(response["url"])
        path = parts.path.rstrip("/") + "/socket.io/"
        return Target("proxy", f"{parts.scheme}://{parts.netloc}", path, response)

    def close(self) -> None:
        for child in reversed(self._children):
            child.stop()
        self._children.clear()


# --------------------------------------------------------------------------- machine


def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
    }
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                info["memory_gib"] = round(int(line.split()[1]) / 1024 / 1024, 1)
    with contextlib.suppress(OSError):
        info["loadavg_start"] = Path("/proc/loadavg").read_text().split()[:3]
    return info


def server_versions() -> dict[str, str]:
    import importlib.metadata

    found: dict[str, str] = {}
    for name in ("python-socketio", "python-engineio", "aiohttp", "uvloop"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found[name] = importlib.metadata.version(name)
    with contextlib.suppress(OSError, KeyError, ValueError):
        package = json.loads((NODE_MODULES / "socket.io" / "package.json").read_text())
        found["socket.io"] = package["version"]
    node = shutil.which("node")
    if node is not None:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            found["node"] = subprocess.run(
                [node, "--version"], capture_output=True, text=True, timeout=10
            ).stdout.strip()
    return found


@contextlib.contextmanager
def servers(settings: ServerChoices) -> Iterator[Servers]:
    found = Servers(settings)
    try:
        yield found
    finally:
        found.close()
