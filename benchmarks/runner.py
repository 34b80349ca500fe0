"""Runs the benchmark suites: servers and clients in processes of their own, side by side.

The clients of one target (a server) are connected at the same time, each in its own process,
and take turns scenario by scenario (in a rotating order), so that the figures compared in a
ratio are measured seconds apart on the same, possibly noisy, machine. jamsocket_rt's Session
is measured on uvloop (where installed) and, as "jamsocket_rt-asyncio", on asyncio's own loop.
See ``__main__.py`` for the command line, ``processes.py`` for the servers and the child
processes, and ``report.py`` for what is written.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from .limits import DescriptorLimitError, raise_open_file_limit
from .processes import (
    NODE_DIR,
    ROOT,
    BenchError,
    Child,
    Servers,
    Target,
    have_uvloop,
    machine_info,
    msgpack_missing,
    node_missing,
    server_versions,
    servers,
)

#: What the other modules (``__main__``, ``floor``) take from here.
__all__ = [
    "CLIENTS",
    "CLIENT_LABELS",
    "ROOT",
    "TARGETS",
    "TARGET_LABELS",
    "BenchError",
    "Child",
    "Servers",
    "Settings",
    "client_argv",
    "rotated",
    "run",
]

PAYLOADS = (64, 1024, 16384)
WINDOWS = (1, 16, 64, 256)
ECHO_WINDOW = 64

#: The clients compared, in the order of the report's columns.
CLIENTS = ("jamsocket_rt", "jamsocket_rt-asyncio", "python-socketio", "node")
CLIENT_LABELS = {
    "jamsocket_rt": "jamsocket_rt Session",
    "jamsocket_rt-asyncio": "jamsocket_rt Session (stdlib asyncio loop)",
    "jamsocket_rt-plain": "jamsocket_rt Session (asyncio loop, stdlib json)",
    "jamsocket_rt-baseline": "jamsocket_rt Session of the baseline tree (--baseline)",
    "jamsocket_rt-msgpack": "jamsocket_rt Session, parser msgpack",
    "python-socketio": "python-socketio AsyncClient",
    "node": "Node socket.io-client",
}
#: The same Session and codec as "jamsocket_rt", on asyncio's own loop: the report's
#: "asyncio ÷ uvloop" ratios divide its figures by jamsocket_rt's.
ASYNCIO_CLIENT = "jamsocket_rt-asyncio"
#: The client measured against a target's msgpack twin.
MSGPACK_CLIENT = "jamsocket_rt-msgpack"
#: The servers: the Node socket.io server and python-socketio's, directly, and the Node server
#: behind the dev server's token proxy.
TARGETS = ("node", "python", "proxy")
TARGET_LABELS = {
    "node": "Node socket.io server",
    "python": "python-socketio AsyncServer",
    "proxy": "Node socket.io server through the dev server's proxy",
}


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
    many_sizes: tuple[int, ...] = (100, 1000, 10000)
    many_reps: int = 3
    #: The largest many-suite size at which the peers (python-socketio, Node's client) are
    #: measured too; above it only jamsocket_rt's clients are, and the report says so.
    peers_max_sessions: int = 1000
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
    loop = "uvloop" if settings.uvloop and have_uvloop() else "asyncio"
    if client == "jamsocket_rt":
        argv += ["--client", "session", "--loop", loop]
    elif client == ASYNCIO_CLIENT:  # the codec stays the default, as for "jamsocket_rt"
        argv += ["--client", "session", "--loop", "asyncio"]
    elif client == MSGPACK_CLIENT:
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
    """``{str(sessions): {client: [result]}}``: a fresh process per measurement.

    Above ``settings.peers_max_sessions`` only jamsocket_rt's clients are measured.
    """
    results: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for size in settings.many_sizes:
        measured = [c for c in clients if size <= settings.peers_max_sessions or ours(c)]
        if not measured:
            continue
        row: dict[str, list[dict[str, Any]]] = {c: [] for c in measured}
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
        first = measured[0]
        warmup = Child(first, client_argv(first, settings, {**spec, "call_seconds": 1}))
        try:
            warmup.read_json(120)
        except BenchError as exc:
            settings.say(f"  {size} sessions: the warm-up round failed ({exc})")
        finally:
            warmup.stop()
        for rep in range(settings.many_reps):
            for client in rotated(measured, rep):
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


def ours(client: str) -> bool:
    """Whether a client is one of jamsocket_rt's (the many suite's largest sizes run only those)."""
    return client.startswith("jamsocket_rt")


def _many_limits(settings: Settings, clients: Sequence[str], skipped: dict[str, str]) -> None:
    """Raises this process's descriptor limit for the many suite; notes the peers left out.

    Every child may open a descriptor per session, the Node server as many: they inherit this
    process's soft limit (each Python client also raises its own, or says which limit stops it).
    """
    largest = max(settings.many_sizes, default=0)
    try:
        raise_open_file_limit(largest + 64, f"the many suite's {largest:,} sessions")
    except DescriptorLimitError as exc:
        settings.say(f"  {exc}")  # the clients that reach the limit report it as their error
    left_out = [c for c in clients if not ours(c)]
    above = [size for size in settings.many_sizes if size > settings.peers_max_sessions]
    if left_out and above:
        sizes = ", ".join(f"{size:,}" for size in above)
        skipped[f"{', '.join(left_out)} at {sizes} sessions"] = (
            f"optional: peers are measured up to {settings.peers_max_sessions:,} sessions "
            "(--peers-up-to N measures them further)"
        )


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
            "peers_max_sessions": settings.peers_max_sessions,
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
    if "many" in settings.suites:
        _many_limits(settings, clients, skipped)
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
                # Beside the other Sessions on asyncio's loop (after "jamsocket_rt-asyncio").
                after = target_clients.index("jamsocket_rt") + 1
                after += int(target_clients[after : after + 1] == [ASYNCIO_CLIENT])
                target_clients.insert(after, "jamsocket_rt-plain")
            if name in msgpack_targets and ("jamsocket_rt" in clients or asked_msgpack):
                # After the other Sessions: the peers' columns stay last.
                ours_at = [i for i, c in enumerate(target_clients) if ours(c)]
                target_clients.insert(ours_at[-1] + 1 if ours_at else 0, MSGPACK_CLIENT)
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
