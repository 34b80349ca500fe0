"""``python -m benchmarks.features``: what each feature costs, against the plain JSON row.

Each configuration (``benchmarks/feature_client.py``: the Session's defaults, two namespaces on
one connection, connection state recovery on, ``parser="msgpack"``, the wire trace on) runs in
a client process of its own, on stdlib asyncio and on uvloop: every process is connected at
once and they take turns scenario by scenario, in a rotating order, so that a feature and the
plain row it is divided by are measured seconds apart. A second process of the plain
configuration is the noise reference: what two identical processes differ by. One Node
socket.io server process serves every configuration (``benchmarks/node/bench_server.js`` with
its feature flags: a second namespace, a server with recovery on and one speaking
socket.io-msgpack-parser, each on a path of its own).

Scenarios, as in ``python -m benchmarks``: a sequential call (p50), pipelined calls (window 64)
and event echo (``ping`` → ``pong``, 64 in flight), with 64 B for every configuration; plain
and msgpack also with 1 KiB, 16 KiB and 1 KiB of bytes (with JSON: a binary attachment).
Ratios are taken repetition by repetition (feature ÷ plain on the same loop; asyncio ÷ uvloop
for the same configuration), then their median with min and max.

Writes ``features.md`` and ``features.json`` into ``--out`` (default ``benchmarks/results``;
the figures and claims are ``feature_report.py``'s). ``--quick`` is the smoke run of the
tests: every row, tiny counts.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from . import feature_report
from .feature_report import PLAIN
from .processes import (
    NODE_DIR,
    have_uvloop,
    machine_info,
    msgpack_missing,
    node_missing,
    server_versions,
)
from .runner import BenchError, Child, rotated

RESULTS = Path(__file__).resolve().parent / "results"
SECOND_NAMESPACE = "/second"
#: The Socket.IO path of each server of the one Node process (the url of its ConnectResponse
#: is the path without ``socket.io/``).
SERVER_PATHS = {
    "json": "/bench/socket.io/",
    "recovery": "/recovery/socket.io/",
    "msgpack": "/msgpack/socket.io/",
}


@dataclass(frozen=True)
class Feature:
    """A row of the report: a configuration of feature_client.py against one of the servers."""

    label: str
    config: str
    server: str


FEATURES = {
    "plain": Feature(
        "plain: the defaults (JSON, one namespace, recovery off, trace off)", "plain", "json"
    ),
    "plain-again": Feature("plain again, another process (the noise reference)", "plain", "json"),
    "namespaces": Feature("two namespaces on one connection, the load split", "namespaces", "json"),
    "recovery": Feature("connection state recovery on", "recovery", "recovery"),
    "msgpack": Feature('parser="msgpack"', "msgpack", "msgpack"),
    "trace": Feature("wire trace on (DEBUG, every record formatted)", "trace", "json"),
}
LOOPS = ("uvloop", "asyncio")
WINDOW = 64
#: (payload bytes, binary) measured for plain and msgpack only, beside 64 B for every row.
PAYLOAD_ROWS = ((1024, False), (16384, False), (1024, True))


@dataclass
class Settings:
    """What to run and for how long (:func:`main` fills it from the command line)."""

    reps: int = 5
    duration: float = 0.3
    warmup: float = 0.05
    warmup_first: float = 0.5
    loops: tuple[str, ...] = LOOPS
    features: tuple[str, ...] = tuple(FEATURES)
    quick: bool = False
    log: IO[str] | None = field(default=None, repr=False)

    def say(self, text: str) -> None:
        if self.log is not None:
            print(text, file=self.log, flush=True)


def scenario_id(kind: str, payload: int, binary: bool) -> str:
    """``seq-64``, ``pipe64-1024``, ``echo-bin1024``: the ids of ``python -m benchmarks``."""
    name = f"pipe{WINDOW}" if kind == "pipe" else kind
    return f"{name}-{'bin' if binary else ''}{payload}"


def plan(features: Sequence[str]) -> list[dict[str, Any]]:
    """Every scenario, in the order of the report, with the features that run it."""
    found = [
        {
            "id": scenario_id(kind, 64, False),
            "kind": kind,
            "payload": 64,
            "binary": False,
            "window": 1 if kind == "seq" else WINDOW,
            "features": list(features),
        }
        for kind in ("seq", "pipe", "echo")
    ]
    for payload, binary in PAYLOAD_ROWS:
        for kind in ("pipe", "echo"):
            found.append(
                {
                    "id": scenario_id(kind, payload, binary),
                    "kind": kind,
                    "payload": payload,
                    "binary": binary,
                    "window": WINDOW,
                    "features": [f for f in features if f in (PLAIN, "msgpack")],
                }
            )
    return found


# --------------------------------------------------------------------------- processes


def _port_of(child: Child) -> int:
    line = child.readline(30)
    if not line.startswith("listening on "):
        raise BenchError(f"{child.name} did not start: {line!r}")
    return int(line.split()[-1])


@contextlib.contextmanager
def node_server(msgpack: bool) -> Iterator[dict[str, dict[str, Any]]]:
    """The Node server (with the status stand-in a Session needs): a ConnectResponse per server
    path of :data:`SERVER_PATHS`."""
    env = {
        "PORT": "0",
        "BENCH_PATH": SERVER_PATHS["json"],
        "BENCH_NAMESPACES": SECOND_NAMESPACE,
        "BENCH_RECOVERY_PATH": SERVER_PATHS["recovery"],
    }
    if msgpack:
        env["BENCH_MSGPACK_PATH"] = SERVER_PATHS["msgpack"]
    status = Child("the status stand-in", [sys.executable, "-m", "benchmarks.servers", "status"])
    children = [status]
    try:
        node = Child(
            "the Node server", ["node", str(NODE_DIR / "bench_server.js"), "--watch-stdin"], env
        )
        children.append(node)
        status_port, port = _port_of(status), _port_of(node)
        responses = {}
        for name, path in SERVER_PATHS.items():
            backend_id = f"bench-{name}"
            responses[name] = {
                "backend_id": backend_id,
                "spawned": False,
                "status": "ready",
                "token": "bench",
                "url": f"http://127.0.0.1:{port}{path.removesuffix('socket.io/')}",
                "status_url": f"http://127.0.0.1:{status_port}/v2/backend/{backend_id}/status",
            }
        yield responses
    finally:
        for child in reversed(children):
            child.stop()


def _start_clients(settings: Settings, responses: Mapping[str, dict[str, Any]]) -> dict[str, Child]:
    children: dict[str, Child] = {}
    for loop in settings.loops:
        for name in settings.features:
            feature = FEATURES[name]
            spec = {
                "response": responses[feature.server],
                "namespace": SECOND_NAMESPACE,
                "warmup_first": settings.warmup_first,
            }
            argv = [sys.executable, "-m", "benchmarks.feature_client", "--config", feature.config]
            key = f"{name}@{loop}"
            with contextlib.suppress(OSError):
                children[key] = Child(key, [*argv, "--loop", loop, json.dumps(spec)])
    return children


def run(settings: Settings) -> dict[str, Any]:
    """Measures every row; returns the raw results (``summarize`` makes the figures).

    Raises:
        BenchError: Node or its modules are missing.
    """
    started = time.time()
    missing = node_missing()
    if missing:
        raise BenchError(missing)
    skipped: dict[str, str] = {}
    features = list(settings.features)
    if "msgpack" in features and (why := msgpack_missing()):
        features.remove("msgpack")
        skipped["msgpack"] = why
    loops = list(settings.loops)
    if "uvloop" in loops and not have_uvloop():
        loops.remove("uvloop")
        skipped["uvloop"] = "uvloop is not installed"
    settings.features, settings.loops = tuple(features), tuple(loops)
    scenarios = plan(features)
    results: dict[str, dict[str, dict[str, list[dict[str, Any]]]]] = {
        loop: {f: {s["id"]: [] for s in scenarios if f in s["features"]} for f in features}
        for loop in loops
    }
    raw: dict[str, Any] = {
        "settings": {
            "reps": settings.reps,
            "duration_s": settings.duration,
            "warmup_s": settings.warmup,
            "loops": loops,
            "features": features,
            "quick": settings.quick,
        },
        "machine": machine_info(),
        "versions": {"servers": server_versions(), "clients": {}},
        "skipped": skipped,
        "scenarios": scenarios,
        "ready": {},
        "not_started": {},
        "labels": {name: FEATURES[name].label for name in features},
        "results": results,
    }
    with node_server("msgpack" in features) as responses:
        children = _start_clients(settings, responses)
        live: list[str] = []
        try:
            for key in (f"{f}@{loop}" for loop in loops for f in features):
                try:
                    if key not in children:
                        raise BenchError(f"{key} could not be started")
                    ready = children[key].read_json(60)
                except (BenchError, OSError) as exc:
                    ready = {"error": str(exc)}
                if not ready.get("ready"):
                    settings.say(f"  {key} could not start: {ready.get('error')}")
                    raw["not_started"][key] = str(ready.get("error"))
                    continue
                raw["versions"]["clients"][key] = ready.pop("versions", {})
                raw["ready"][key] = ready  # what the client says of its configuration
                live.append(key)
            _take_turns(settings, scenarios, children, live, results)
        finally:
            for child in children.values():
                child.stop()
    with contextlib.suppress(OSError):
        raw["machine"]["loadavg_end"] = Path("/proc/loadavg").read_text().split()[:3]
    raw["finished"] = time.time()
    raw["seconds"] = round(raw["finished"] - started, 1)
    return raw


def _take_turns(
    settings: Settings,
    scenarios: Sequence[dict[str, Any]],
    children: Mapping[str, Child],
    live: Sequence[str],
    results: dict[str, dict[str, dict[str, list[dict[str, Any]]]]],
) -> None:
    step = 0
    for rep in range(settings.reps):
        for scenario in scenarios:
            turns = [key for key in live if key.split("@")[0] in scenario["features"]]
            command = {key: scenario[key] for key in ("id", "kind", "payload", "binary", "window")}
            command.update(duration=settings.duration, warmup=settings.warmup)
            for key in rotated(turns, step):
                try:
                    children[key].send(command)
                    result = children[key].read_json(60 + 20 * settings.duration)
                except (BenchError, OSError) as exc:
                    result = {"id": scenario["id"], "error": str(exc)}
                result["rep"] = rep
                name, loop = key.split("@")
                results[loop][name][scenario["id"]].append(result)
            step += 1
        settings.say(f"  repetition {rep + 1}/{settings.reps} done")


# --------------------------------------------------------------------------- command line


def _csv(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.features``: measures, writes the report, prints it.

    Returns:
        The exit status: 0, 1 when a row has errors, 2 when nothing could be measured.
    """
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.features", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument(
        "--quick", action="store_true", help="the smoke run: every row, tiny counts"
    )
    parser.add_argument("--reps", type=int, help="repetitions of every row (default 5)")
    parser.add_argument("--duration", type=float, help="seconds per measurement (default 0.3)")
    parser.add_argument(
        "--loops", type=_csv, default=LOOPS, help="comma-separated: asyncio, uvloop (default: both)"
    )
    parser.add_argument(
        "--features",
        type=_csv,
        default=tuple(FEATURES),
        help=f"comma-separated, among {', '.join(FEATURES)} (plain is always measured)",
    )
    parser.add_argument(
        "--out", type=Path, default=RESULTS, help="where to write (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    unknown = (set(args.loops) - set(LOOPS)) | (set(args.features) - set(FEATURES))
    if unknown or not args.loops:
        parser.error(f"unknown loop or feature: {', '.join(sorted(unknown)) or '(none given)'}")
    settings = Settings(
        loops=tuple(args.loops),
        features=(PLAIN, *(f for f in FEATURES if f in args.features and f != PLAIN)),
        log=sys.stderr,
    )
    if args.quick:
        settings.quick = True
        settings.reps, settings.duration, settings.warmup = 1, 0.02, 0.005
        settings.warmup_first = 0.05
    if args.reps:
        settings.reps = args.reps
    if args.duration:
        settings.duration = args.duration
    try:
        raw = run(settings)
    except BenchError as exc:
        print(f"python -m benchmarks.features: {exc}", file=sys.stderr)
        return 2
    summary = feature_report.write(raw, args.out)
    print(feature_report.markdown(raw, summary))
    print(f"written: {args.out / 'features.md'}, features.json ({raw['seconds']} s)")
    return 1 if summary["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
