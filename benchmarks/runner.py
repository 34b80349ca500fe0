"""Runs the benchmark suites: servers and clients in processes of their own, side by side.

The clients of one target (a server) are connected at the same time, each in its own process,
and take turns scenario by scenario (in a rotating order), so that the figures compared in a
ratio are measured seconds apart on the same, possibly noisy, machine. See ``__main__.py`` for
the command line and ``report.py`` for what is written.
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
NODE_DIR = Path(__file__).resolve().parent / "node"
NODE_MODULES = ROOT / "tests" / "node" / "node_modules"
DIRECT_PATH = "/bench/socket.io/"

PAYLOADS = (64, 1024, 16384)
WINDOWS = (1, 16, 64, 256)
ECHO_WINDOW = 64

#: The clients compared, in the order of the report's columns.
CLIENTS = ("jamsocket_rt", "python-socketio", "node")
CLIENT_LABELS = {
    "jamsocket_rt": "jamsocket_rt Session",
    "jamsocket_rt-plain": "jamsocket_rt Session (asyncio loop, stdlib json)",
    "jamsocket_rt-baseline": "jamsocket_rt Session of the baseline tree (--baseline)",
    "jamsocket_rt-msgpack": "jamsocket_rt Session, parser msgpack",
    "python-socketio": "python-socketio AsyncClient",
    "node": "Node socket.io-client",
}
#: The servers: the Node socket.io server and python-socketio's, directly, and the Node server
#: behind the dev server's token proxy.
TARGETS = ("node", "python", "proxy")
TARGET_LABELS = {
    "node": "Node socket.io server",
    "python": "python-socketio AsyncServer",
    "proxy": "Node socket.io server through the dev server's proxy",
}


class BenchError(RuntimeError):
    """A server or client could not be run."""


@dataclass
class Settings:
    """What to run and for how long (``__main__`` fills it from the command line)."""

    suites: tuple[str, ...] = ("roundtrip", "proxy", "many")
    clients: tuple[str, ...] = CLIENTS
    #: Repetitions per round-trip target: the Node server's rows carry the targets.
    reps: dict[str, int] = field(default_factory=lambda: {"node": 7, "python": 5, "proxy": 3})
    #: Also measure jamsocket_rt on the asyncio loop with stdlib json (no extras), on these.
    plain_targets: tuple[str, ...] = ("node",)
    #: Also measure jamsocket_rt with parser="msgpack" on these (against a twin of the target's
    #: server that speaks socket.io-msgpack-parser), where msgpack is installed.
    msgpack_targets: tuple[str, ...] = ("node",)
    duration: float = 0.3
    warmup: float = 0.05
    warmup_first: float = 0.5
    many_sizes: tuple[int, ...] = (100, 1000)
    many_reps: int = 3
    call_seconds: float = 5.0
    payloads: tuple[int, ...] = PAYLOADS
    windows: tuple[int, ...] = WINDOWS
    only: tuple[str, ...] = ()  # scenario ids to run (all when empty)
    targets: tuple[str, ...] = TARGETS
    uvloop: bool = True  # the runner's choice for jamsocket_rt (where installed)
    server_uvloop: bool = True  # the python-socketio server's loop (where installed)
    quick: bool = False
    #: Another checkout of jamsocket_rt (an earlier commit) measured as "jamsocket_rt-baseline"
    #: in the same run, to compare a change before and after.
    baseline: Path | None = None
    log: IO[str] | None = field(default=None, repr=False)

    def say(self, text: str) -> None:
        if self.log is not None:
            print(text, file=self.log, flush=True)


def scenarios(settings: Settings) -> list[dict[str, Any]]:
    """Every round-trip scenario, in the order of the report."""
    found = []
    for payload in settings.payloads:
        found.append({"id": f"seq-{payload}", "kind": "seq", "payload": payload, "window": 1})
        for window in settings.windows:
            found.append(
                {
                    "id": f"pipe{window}-{payload}",
                    "kind": "pipe",
                    "payload": payload,
                    "window": window,
                }
            )
        found.append(
            {"id": f"echo-{payload}", "kind": "echo", "payload": payload, "window": ECHO_WINDOW}
        )
    if settings.only:
        found = [s for s in found if s["id"] in settings.only]
    return found


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


#: The client measured against a target's msgpack twin.
MSGPACK_CLIENT = "jamsocket_rt-msgpack"


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

    def __init__(self, settings: Settings) -> None:
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


def client_argv(client: str, settings: Settings, spec: dict[str, Any]) -> list[str]:
    text = json.dumps(spec)
    if client == "node":
        return ["node", "--expose-gc", str(NODE_DIR / "bench_client.js"), text]
    argv = [sys.executable, "-m", "benchmarks.client"]
    if client == "jamsocket_rt-baseline":
        if settings.baseline is None:
            raise ValueError("the jamsocket_rt-baseline client needs --baseline PATH")
        # The baseline tree's own client and library, first on the path. Its client may not
        # trim the heap before reading the resident set (trim_heap); a hook after each full
        # collection does it for it (many mode calls gc.collect() right before each reading).
        boot = (
            "import ctypes, gc, json, runpy, sys; sys.path.insert(0, sys.argv.pop(1))\n"
            "if json.loads(sys.argv[-1]).get('mode') == 'many':\n"
            "    trim = ctypes.CDLL('libc.so.6').malloc_trim\n"
            "    gc.callbacks.append(lambda phase, info: phase == 'stop'"
            " and info['generation'] == 2 and trim(0))\n"
            "runpy.run_module('benchmarks.client', run_name='__main__', alter_sys=True)"
        )
        own = client_argv("jamsocket_rt", settings, spec)
        return [sys.executable, "-c", boot, str(settings.baseline), *own[3:]]
    if client == "jamsocket_rt":
        argv += [
            "--client",
            "session",
            "--loop",
            "uvloop" if settings.uvloop and have_uvloop() else "asyncio",
        ]
    elif client == MSGPACK_CLIENT:
        loop = "uvloop" if settings.uvloop and have_uvloop() else "asyncio"
        argv += ["--client", "session", "--loop", loop, "--parser", "msgpack"]
    elif client == "jamsocket_rt-plain":
        argv += ["--client", "session", "--loop", "asyncio", "--json", "stdlib"]
    elif client == "python-socketio":
        argv += ["--client", "raw", "--loop", "asyncio"]
    else:
        raise ValueError(f"unknown client {client!r}")
    return [*argv, text]


# --------------------------------------------------------------------------- suites


def rotated(items: Sequence[str], by: int) -> list[str]:
    by %= max(1, len(items))
    return [*items[by:], *items[:by]]


def run_roundtrip(
    settings: Settings, target: Target, clients: Sequence[str], versions: dict[str, Any]
) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Every scenario, ``reps`` times, for each client: ``{scenario: {client: [result]}}``."""
    spec = {"mode": "roundtrip", **target.spec(), "warmup_first": settings.warmup_first}
    msgpack_spec = spec if target.msgpack is None else {**spec, **target.msgpack.spec()}
    plan = scenarios(settings)
    results: dict[str, dict[str, list[dict[str, Any]]]] = {
        s["id"]: {c: [] for c in clients} for s in plan
    }
    children: dict[str, Child] = {}
    live: list[str] = []
    try:
        for client in clients:  # all at once: their start-ups overlap
            if client == MSGPACK_CLIENT and target.msgpack is None:
                continue  # reported below as not started
            own = msgpack_spec if client == MSGPACK_CLIENT else spec
            with contextlib.suppress(OSError):
                children[client] = Child(client, client_argv(client, settings, own))
        for client in clients:
            try:
                if client not in children:
                    raise BenchError(f"{client} could not be started")
                ready = children[client].read_json(60)
            except (BenchError, OSError) as exc:
                ready = {"error": str(exc)}
            if "error" in ready or not ready.get("ready"):
                settings.say(f"  {client} could not start: {ready.get('error')}")
                for row in results.values():
                    row[client].append({"error": f"could not connect: {ready.get('error')}"})
                continue
            versions[client] = ready.get("versions", {})
            live.append(client)
        step = 0
        reps = settings.reps.get(target.name, 3)
        for rep in range(reps):
            for scenario in plan:
                for client in rotated(live, step):
                    command = {
                        **scenario,
                        "duration": settings.duration,
                        "warmup": settings.warmup,
                    }
                    try:
                        children[client].send(command)
                        result = children[client].read_json(60 + 20 * settings.duration)
                    except (BenchError, OSError) as exc:
                        result = {"id": scenario["id"], "error": str(exc)}
                    result["rep"] = rep
                    results[scenario["id"]][client].append(result)
                step += 1
            settings.say(f"  {target.name}: repetition {rep + 1}/{reps} done")
    finally:
        for child in children.values():
            child.stop()
    return results


def run_many(
    settings: Settings, target: Target, clients: Sequence[str], versions: dict[str, Any]
) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """``{str(sessions): {client: [result]}}``: a fresh process per measurement."""
    results: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for size in settings.many_sizes:
        row: dict[str, list[dict[str, Any]]] = {c: [] for c in clients}
        results[str(size)] = row
        spec = {
            "mode": "many",
            **target.spec(),
            "sessions": size,
            "call_seconds": settings.call_seconds,
            "payload": 64,
        }
        # One round not counted: a server's first thousand connections pay for its own
        # warm-up (JIT, heap growth), which made whichever client came first look 30-40 %
        # slower than in its later repetitions.
        warmup = Child(clients[0], client_argv(clients[0], settings, {**spec, "call_seconds": 1}))
        try:
            warmup.read_json(120)
        except BenchError as exc:
            settings.say(f"  {size} sessions: the warm-up round failed ({exc})")
        finally:
            warmup.stop()
        for rep in range(settings.many_reps):
            for client in rotated(list(clients), rep):
                child = Child(client, client_argv(client, settings, spec))
                try:
                    result = child.read_json(120 + 2 * settings.call_seconds)
                except BenchError as exc:
                    result = {"error": str(exc)}
                finally:
                    child.stop()
                if "versions" in result:
                    versions.setdefault(client, result.pop("versions"))
                result["rep"] = rep
                row[client].append(result)
            settings.say(f"  {size} sessions: repetition {rep + 1}/{settings.many_reps} done")
    return results


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
def servers(settings: Settings) -> Iterator[Servers]:
    found = Servers(settings)
    try:
        yield found
    finally:
        found.close()


def run(settings: Settings) -> dict[str, Any]:
    """Runs the suites; returns the raw results (``report.summarize`` makes the figures)."""
    started = time.time()
    missing_node = node_missing()
    clients = [c for c in settings.clients if not (c == "node" and missing_node)]
    skipped: dict[str, str] = {}
    if missing_node:
        skipped["node"] = missing_node
    # jamsocket_rt with parser="msgpack" is a column of the round trips of msgpack_targets
    # (beside jamsocket_rt, or alone when asked for by name), never a client of its own.
    asked_msgpack = MSGPACK_CLIENT in clients
    if asked_msgpack:
        clients.remove(MSGPACK_CLIENT)
    missing_msgpack = missing_node or msgpack_missing()
    msgpack_targets = () if missing_msgpack else settings.msgpack_targets
    if missing_msgpack and settings.msgpack_targets:
        skipped[MSGPACK_CLIENT] = missing_msgpack
    raw: dict[str, Any] = {
        "settings": {
            "suites": list(settings.suites),
            "clients": clients,
            "reps": dict(settings.reps),
            "duration_s": settings.duration,
            "warmup_s": settings.warmup,
            "many_sizes": list(settings.many_sizes),
            "many_reps": settings.many_reps,
            "call_seconds": settings.call_seconds,
            "quick": settings.quick,
            "uvloop_for_jamsocket_rt": settings.uvloop and have_uvloop(),
            "uvloop_for_python_server": settings.server_uvloop and have_uvloop(),
        },
        "machine": machine_info(),
        "versions": {"servers": server_versions()},
        "skipped": skipped,
        "roundtrip": {},
        "roundtrip_clients": {},
        "many": {},
    }
    client_versions: dict[str, Any] = {}
    targets: list[str] = []
    if "roundtrip" in settings.suites:
        targets += ["python"] if missing_node else ["node", "python"]
    if "proxy" in settings.suites and not missing_node:
        targets.append("proxy")
    targets = [t for t in targets if t in settings.targets]
    if missing_node and ("proxy" in settings.suites or "roundtrip" in settings.suites):
        skipped["node server, proxy"] = missing_node
    with servers(settings) as found:
        found.start(
            [
                *targets,
                *(["node" if not missing_node else "python"] if "many" in settings.suites else []),
                *(f"{t}-msgpack" for t in targets if t in msgpack_targets),
            ]
        )
        for name in targets:
            settings.say(f"round trips against the {TARGET_LABELS[name]}")
            target_clients = list(clients)
            if name in settings.plain_targets and "jamsocket_rt" in clients:
                target_clients.insert(1, "jamsocket_rt-plain")
            if name in msgpack_targets and ("jamsocket_rt" in clients or asked_msgpack):
                after = target_clients.index("jamsocket_rt") + 1 if "jamsocket_rt" in clients else 0
                target_clients.insert(after, MSGPACK_CLIENT)
            raw["roundtrip_clients"][name] = target_clients
            raw["roundtrip"][name] = run_roundtrip(
                settings, found.target(name), target_clients, client_versions
            )
        if "many" in settings.suites:
            many_target = "python" if missing_node else "node"
            settings.say(f"many sessions against the {TARGET_LABELS[many_target]}")
            raw["many_target"] = many_target
            raw["many"] = run_many(settings, found.target(many_target), clients, client_versions)
    raw["versions"]["clients"] = client_versions
    with contextlib.suppress(OSError):
        raw["machine"]["loadavg_end"] = Path("/proc/loadavg").read_text().split()[:3]
    raw["seconds"] = round(time.time() - started, 1)
    return raw
