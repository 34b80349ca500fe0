"""``python -m benchmarks`` (``./run bench``): Socket.IO round trips, side by side.

Clients: jamsocket_rt's Session (on uvloop where installed, and on stdlib asyncio's own loop,
with the same codec: every figure has an "asyncio ÷ uvloop" ratio), python-socketio's
AsyncClient (its defaults) and Node's socket.io-client 4; on the Node server also the Session
without its extras (asyncio, stdlib json) and with parser="msgpack" (against a twin of that
server with socket.io-msgpack-parser, where msgpack is installed). Servers: the Node
socket.io 4 server, python-socketio's AsyncServer, and the Node server behind the dev server's
token proxy. Suites:

- ``roundtrip``: sequential calls (p50, p99, msgs/s), pipelined calls (windows 1, 16, 64, 256)
  and event echo (``ping`` → ``pong``), with 64 B, 1 KiB and 16 KiB payloads, against the Node
  and the python-socketio servers;
- ``proxy``: the same through the dev server's proxy;
- ``many``: 100, 1,000 and 10,000 sessions in one process (10,000 for jamsocket_rt's clients
  only, unless ``--peers-up-to``): connects per second, resident memory per session, round
  trips at one call a second each. Each client raises its open-file soft limit to the hard
  limit when it needs to, or fails naming the limit.

Writes ``latest.json``, ``latest.md`` and ``latest.png`` into ``--out`` (default
``benchmarks/results``), and, for a full run into the default place, the summary on the docs'
benchmarks page (``docs/benchmarks.md``, between its markers; ``--no-readme`` leaves it
alone). ``--quick`` is the smoke run of the tests: every row, tiny counts.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import report, runner

RESULTS = Path(__file__).resolve().parent / "results"
# The page whose benchmark markers a full run fills (it was the README's until the docs site).
BENCHMARKS_PAGE = runner.ROOT / "docs" / "benchmarks.md"


def _csv(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument(
        "--quick", action="store_true", help="the smoke run: every row, tiny counts"
    )
    parser.add_argument(
        "--suites",
        type=_csv,
        default=("roundtrip", "proxy", "many"),
        help="comma-separated: roundtrip, proxy, many (default: all)",
    )
    parser.add_argument(
        "--clients",
        type=_csv,
        default=runner.CLIENTS,
        help="comma-separated: jamsocket_rt (on uvloop where installed), jamsocket_rt-asyncio "
        "(the same on stdlib asyncio's loop: the asyncio ÷ uvloop ratios), python-socketio, "
        "node, jamsocket_rt-plain (jamsocket_rt on the asyncio loop with stdlib json), "
        "jamsocket_rt-msgpack (parser msgpack, against the Node server with "
        "socket.io-msgpack-parser) (default: the first four)",
    )
    parser.add_argument(
        "--targets",
        type=_csv,
        default=runner.TARGETS,
        help="servers of the round trips: node, python, proxy (default: all)",
    )
    parser.add_argument(
        "--only", type=_csv, default=(), help="scenario ids only, e.g. seq-64,pipe64-64,echo-64"
    )
    parser.add_argument(
        "--reps",
        type=int,
        help="repetitions of each round-trip figure "
        "(default: 7 on the Node server, 5 on python-socketio's, 3 through the proxy)",
    )
    parser.add_argument("--duration", type=float, help="seconds per measurement (default 0.3)")
    parser.add_argument(
        "--sessions", type=_csv, help="sizes of the many suite (default 100,1000,10000)"
    )
    parser.add_argument(
        "--peers-up-to",
        type=int,
        metavar="N",
        help="the largest many-suite size python-socketio and Node's client are measured at "
        "(default 1000: above, jamsocket_rt's clients only)",
    )
    parser.add_argument("--many-reps", type=int, help="repetitions of the many suite (default 3)")
    parser.add_argument("--no-uvloop", action="store_true", help="jamsocket_rt on the asyncio loop")
    parser.add_argument(
        "--no-plain",
        action="store_true",
        help="skip jamsocket_rt on the asyncio loop with stdlib json (measured on the Node server)",
    )
    parser.add_argument(
        "--no-msgpack",
        action="store_true",
        help="skip jamsocket_rt with parser msgpack (measured on the Node server's msgpack twin)",
    )
    parser.add_argument(
        "--out", type=Path, default=RESULTS, help="where to write (default: %(default)s)"
    )
    parser.add_argument(
        "--no-readme",
        action="store_true",
        help="leave the docs' benchmarks page (docs/benchmarks.md) alone",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        help="another checkout of the project (e.g. `git worktree add /tmp/base HEAD~5`): its "
        "jamsocket_rt is measured as the client jamsocket_rt-baseline in the same run",
    )
    parser.add_argument(
        "--from-json",
        type=Path,
        help="measure nothing: write the report (and the docs' summary) again from a latest.json",
    )
    args = parser.parse_args(argv)

    unknown = set(args.suites) - {"roundtrip", "proxy", "many"}
    unknown |= set(args.targets) - set(runner.TARGETS)
    unknown |= set(args.clients) - set(runner.CLIENT_LABELS)
    if unknown:
        parser.error(f"unknown suite, target or client: {', '.join(sorted(unknown))}")
    clients = tuple(args.clients)
    if args.baseline is not None:
        if not (args.baseline / "jamsocket_rt" / "__init__.py").is_file():
            parser.error(f"--baseline: {args.baseline} holds no jamsocket_rt package")
        if "jamsocket_rt-baseline" not in clients:
            clients = (clients[0], "jamsocket_rt-baseline", *clients[1:])
    settings = runner.Settings(
        suites=args.suites,
        clients=clients,
        baseline=args.baseline.resolve() if args.baseline is not None else None,
        only=args.only,
        targets=args.targets,
        log=sys.stderr,
    )
    if args.quick:
        settings.quick = True
        settings.reps = {target: 1 for target in runner.TARGETS}
        settings.duration = 0.02
        settings.warmup = 0.005
        settings.warmup_first = 0.05
        settings.many_sizes = (20,)
        settings.many_reps = 1
        settings.call_seconds = 1.0
    if args.reps:
        settings.reps = {target: args.reps for target in runner.TARGETS}
    if args.duration:
        settings.duration = args.duration
    if args.sessions:
        settings.many_sizes = tuple(int(s) for s in args.sessions)
    if args.many_reps:
        settings.many_reps = args.many_reps
    if args.peers_up_to is not None:
        settings.peers_max_sessions = args.peers_up_to
    if args.no_uvloop:
        settings.uvloop = False
    if args.no_plain:
        settings.plain_targets = ()
    if args.no_msgpack:
        settings.msgpack_targets = ()

    if args.from_json is not None:
        raw = json.loads(args.from_json.read_text())
        summary = report.write(raw, args.out, readme=None if args.no_readme else BENCHMARKS_PAGE)
        print(report.markdown(raw, summary))
        return 1 if summary["errors"] else 0
    raw = runner.run(settings)
    full = (
        not args.quick
        and not args.only
        and set(args.targets) == set(runner.TARGETS)
        and set(args.suites) == {"roundtrip", "proxy", "many"}
        and args.out.resolve() == RESULTS
    )
    summary = report.write(
        raw, args.out, readme=BENCHMARKS_PAGE if full and not args.no_readme else None
    )
    print(report.markdown(raw, summary))
    print(f"\nwritten: {args.out / 'latest.md'}, latest.json, latest.png ({raw['seconds']} s)")
    return 1 if summary["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
