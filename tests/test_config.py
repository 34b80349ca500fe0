"""One configuration path: the platform flags and JAMSOCKET_* variables, the same everywhere.

Parse-level tests check that connect, status, terminate and load accept the same flags and
resolve them (with the environment) to the same platform; the end-to-end tests run status,
connect and load through the dev server with every spelling that names it.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import json
import os
from pathlib import Path

import pytest

import jamsocket_rt as jrt
from jamsocket_rt.cli import build_parser, main
from jamsocket_rt.dev import BackgroundDevServer
from jamsocket_rt.load._cli import config_from_args
from jamsocket_rt.load.config import DevTarget, FixedTarget, JamsocketTarget, PlaneTarget
from jamsocket_rt.platform.config import (
    DevPlatform,
    FixedPlatform,
    FlagError,
    JamsocketPlatform,
    PlanePlatform,
    Platform,
    platform_from_env,
    resolve_platform,
)
from tests.helpers.plane_stub import PlaneStub

SECRET = "s3cret-value-never-shown"
#: The positional arguments each platform subcommand needs.
SUBCOMMANDS: dict[str, list[str]] = {
    "connect": [],
    "status": ["b-1"],
    "terminate": ["b-1"],
    "load": [],
}
RESPONSE = {
    "backend_id": "b-1",
    "spawned": True,
    "status": "ready",
    "token": "backend-token",
    "url": "http://127.0.0.1:9/b-1/",
    "status_url": "http://127.0.0.1:9/v2/backend/b-1/status",
}
#: Every platform flag with a value it accepts, and where argparse puts it.
FLAGS: list[tuple[list[str], str, object]] = [
    (["--dev"], "dev", True),
    (["--jamsocket"], "jamsocket", True),
    (["--plane", "http://plane.test:8080"], "plane", "http://plane.test:8080"),
    (["--connect-response", json.dumps(RESPONSE)], "connect_response", json.dumps(RESPONSE)),
    (["--dev-port", "9000"], "dev_port", 9000),
    (["--api-url", "http://127.0.0.1:1/"], "api_url", "http://127.0.0.1:1"),
    (["--account", "acme"], "account", "acme"),
    (["--service", "chat/prod"], "service", "chat/prod"),
    (["--token", "tok"], "token", "tok"),
    (["--image", "app:1"], "image", "app:1"),
]


def parse(command: str, *flags: str) -> argparse.Namespace:
    return build_parser().parse_args([command, *SUBCOMMANDS[command], *flags])


def resolve(command: str, *flags: str, env: dict[str, str] | None = None) -> Platform | None:
    return resolve_platform(parse(command, *flags), env or {}, default_jamsocket=command != "load")


# -- parse level: the same flags everywhere ------------------------------------------------------


@pytest.mark.parametrize("command", list(SUBCOMMANDS))
@pytest.mark.parametrize(("flag", "dest", "value"), FLAGS, ids=[f[0][0] for f in FLAGS])
def test_every_subcommand_accepts_every_platform_flag(
    command: str, flag: list[str], dest: str, value: object
) -> None:
    assert getattr(parse(command, *flag), dest) == value


@pytest.mark.parametrize("command", list(SUBCOMMANDS))
def test_the_platform_help_is_the_same_everywhere(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = capsys.readouterr().out
    for flag, _, _ in FLAGS:
        assert flag[0] in text
    for variable in ("JAMSOCKET_DEV_PORT", "JAMSOCKET_ACCOUNT", "JAMSOCKET_TOKEN", "PLANE_TOKEN"):
        assert variable in text


@pytest.mark.parametrize("command", list(SUBCOMMANDS))
def test_one_selector_at_most(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        parse(command, "--dev", "--plane", "http://plane.test")
    assert exited.value.code == 2
    assert "--plane: not allowed with argument --dev" in capsys.readouterr().err


@pytest.mark.parametrize("command", list(SUBCOMMANDS))
@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--dev-port", "70000"], "argument --dev-port: expected a port number"),
        (["--dev-port", "http"], "argument --dev-port: expected a port number"),
        (["--api-url", "ftp://x"], "argument --api-url: expected an absolute http"),
        (["--plane", "plane.test"], "argument --plane: expected an absolute http"),
    ],
)
def test_a_bad_flag_value_names_the_flag(
    command: str, flags: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        parse(command, *flags)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


# -- resolution: precedence ----------------------------------------------------------------------

ENVIRONMENTS: list[dict[str, str]] = [
    {"JAMSOCKET_DEV": "true"},
    {"JAMSOCKET_DEV": "Yes", "JAMSOCKET_DEV_PORT": "9000"},
    {"JAMSOCKET_ACCOUNT": "acme", "JAMSOCKET_SERVICE": "chat", "JAMSOCKET_TOKEN": SECRET},
    {
        "JAMSOCKET_DEV": "0",
        "JAMSOCKET_ACCOUNT": "acme",
        "JAMSOCKET_SERVICE": "chat/prod",
        "JAMSOCKET_TOKEN": SECRET,
        "JAMSOCKET_API_URL": "http://127.0.0.1:7/",
    },
]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_the_cli_default_is_what_from_env_reads(env: dict[str, str]) -> None:
    expected = platform_from_env(env)
    for command in ("connect", "status", "terminate"):
        assert resolve(command, env=env) == expected
        assert resolve(command, "--jamsocket", env=env) == expected
    assert resolve("load", "--jamsocket", env=env) == expected
    assert resolve("load", env=env) is None, "load's default is a dev server of its own"


@pytest.mark.parametrize("command", list(SUBCOMMANDS))
def test_a_flag_beats_its_variable(command: str) -> None:
    env = {
        "JAMSOCKET_ACCOUNT": "env-account",
        "JAMSOCKET_SERVICE": "env-service",
        "JAMSOCKET_TOKEN": "env-token",
        "JAMSOCKET_API_URL": "http://env.test",
        "JAMSOCKET_DEV_PORT": "not-a-port",  # never read: the flag says where
        "PLANE_TOKEN": "env-plane-token",
    }
    assert resolve(command, "--jamsocket", "--account", "flag-account", env=env) == (
        JamsocketPlatform("flag-account", "env-service", "env-token", "http://env.test")
    )
    flags = ["--service", "s", "--token", "t", "--api-url", "http://flag.test"]
    assert resolve(command, "--jamsocket", *flags, env=env) == (
        JamsocketPlatform("env-account", "s", "t", "http://flag.test")
    )
    assert resolve(command, "--dev", "--dev-port", "9001", env=env) == (
        DevPlatform("http://localhost:9001")
    )
    assert resolve(command, "--plane", "http://plane.test", env=env) == (
        PlanePlatform("http://plane.test", token="env-plane-token")
    )
    assert resolve(command, "--plane", "http://plane.test", "--token", "t", env=env) == (
        PlanePlatform("http://plane.test", token="t")
    )


@pytest.mark.parametrize("command", list(SUBCOMMANDS))
def test_jamsocket_dev_gives_way_to_jamsocket_flags(command: str) -> None:
    env = {
        "JAMSOCKET_DEV": "true",
        "JAMSOCKET_DEV_PORT": "9002",
        "JAMSOCKET_SERVICE": "chat",
        "JAMSOCKET_TOKEN": SECRET,
    }
    assert resolve(command, "--jamsocket", env=env) == DevPlatform("http://localhost:9002")
    assert resolve(command, "--jamsocket", "--dev-port", "9003", env=env) == (
        DevPlatform("http://localhost:9003")
    )
    platform = resolve(command, "--jamsocket", "--account", "acme", env=env)
    assert platform == JamsocketPlatform("acme", "chat", SECRET)
    assert SECRET not in repr(platform)


@pytest.mark.parametrize("command", list(SUBCOMMANDS))
def test_flags_that_imply_a_platform(command: str) -> None:
    url = "http://127.0.0.1:5"
    assert resolve(command, "--api-url", url) == DevPlatform(url)
    assert resolve(command, "--dev", "--api-url", url) == DevPlatform(url)
    assert resolve(command, "--dev-port", "9004") == DevPlatform("http://localhost:9004")
    assert resolve(command, "--dev") == DevPlatform("http://localhost:8080")
    fixed = resolve(command, "--connect-response", json.dumps(RESPONSE))
    assert isinstance(fixed, FixedPlatform)
    assert fixed.connect_response().backend_id == "b-1"
    plane = resolve(command, "--plane", "http://TOKEN@plane.test", "--image", "app:1")
    assert plane == PlanePlatform("http://TOKEN@plane.test", image="app:1")
    assert "TOKEN" not in repr(plane)
    jamsocket = ["--account", "a", "--service", "s", "--token", "t", "--api-url", url]
    if command == "load":  # load's default is its own dev server: Jamsocket needs --jamsocket
        with pytest.raises(FlagError, match="--account: only with --jamsocket"):
            resolve(command, *jamsocket)
    else:
        assert resolve(command, *jamsocket) == JamsocketPlatform("a", "s", "t", url)


# -- resolution: errors name the flag or the variable ------------------------------------------


@pytest.mark.parametrize("command", list(SUBCOMMANDS))
@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--image", "x"], "--image: only with --plane"),
        (["--dev", "--account", "a"], "--account: only with --jamsocket"),
        (["--plane", "http://p.test", "--service", "s"], "--service: only with --jamsocket"),
        (["--dev", "--token", "t"], "--token: only with --jamsocket or --plane"),
        (["--plane", "http://p.test", "--dev-port", "1"], "--dev-port: only with --dev"),
        (["--dev-port", "1", "--api-url", "http://a.test"], "--dev-port: not with --api-url"),
        (["--connect-response", "{"], "--connect-response: not valid JSON"),
        (["--connect-response", "[]"], "--connect-response: expected a JSON object"),
        (["--connect-response", "{}"], "--connect-response: invalid ConnectResponse"),
        (["--connect-response", "@/no/such/file"], "--connect-response: cannot read"),
        (
            ["--jamsocket", "--service", "s"],
            "--jamsocket: missing --account, JAMSOCKET_TOKEN (give --account or "
            "JAMSOCKET_ACCOUNT, JAMSOCKET_TOKEN or --token)",
        ),
    ],
)
def test_bad_flags_are_named(command: str, flags: list[str], message: str) -> None:
    with pytest.raises(FlagError) as raised:
        resolve(command, *flags)
    assert message in str(raised.value)


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"JAMSOCKET_DEV": SECRET}, "JAMSOCKET_DEV must be true or false"),
        ({"JAMSOCKET_DEV": "on", "JAMSOCKET_DEV_PORT": SECRET}, "JAMSOCKET_DEV_PORT must be"),
        ({"JAMSOCKET_DEV": "1", "JAMSOCKET_DEV_PORT": "0"}, "JAMSOCKET_DEV_PORT must be"),
        (
            {
                "JAMSOCKET_ACCOUNT": "a",
                "JAMSOCKET_SERVICE": "s",
                "JAMSOCKET_TOKEN": "t",
                "JAMSOCKET_API_URL": SECRET,
            },
            "JAMSOCKET_API_URL must be an absolute",
        ),
    ],
)
def test_a_bad_variable_is_named_never_quoted(env: dict[str, str], variable: str) -> None:
    for resolving in (
        lambda: platform_from_env(env),
        lambda: jrt.Jamsocket.from_env(env),
        lambda: resolve("status", env=env),
        lambda: resolve("load", "--jamsocket", env=env),
    ):
        with pytest.raises(jrt.ConfigurationError) as raised:
            resolving()
        assert not isinstance(raised.value, FlagError), "a variable is not a usage error"
        assert variable in str(raised.value)
        assert SECRET not in str(raised.value)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.startswith("JAMSOCKET_") or name == "PLANE_TOKEN":
            monkeypatch.delenv(name)
    return monkeypatch


@pytest.mark.parametrize(("command", "status"), [("status", 1), ("terminate", 1), ("load", 2)])
def test_the_command_line_names_what_is_missing(
    command: str, status: int, clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([command, *SUBCOMMANDS[command], "--jamsocket", "--account", "a"]) == status
    err = capsys.readouterr().err
    assert f"jamsocket-rt {command}: --jamsocket: missing --service, JAMSOCKET_TOKEN" in err


@pytest.mark.parametrize("command", ["status", "load"])
def test_a_bad_variable_exits_with_status_1(
    command: str, clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clean_env.setenv("JAMSOCKET_DEV", "true")
    clean_env.setenv("JAMSOCKET_DEV_PORT", SECRET)
    assert main([command, *SUBCOMMANDS[command], "--jamsocket"]) == 1
    err = capsys.readouterr().err
    assert "JAMSOCKET_DEV_PORT must be a port number" in err
    assert SECRET not in err


def test_terminate_needs_a_platform_api(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["terminate", "b-1", "--connect-response", json.dumps(RESPONSE)]) == 1
    assert "--connect-response: terminate needs a platform API" in capsys.readouterr().err


def test_connect_response_positional_is_an_alias(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "response.json"
    path.write_text(json.dumps(RESPONSE))
    assert main(["connect", str(path), "--dev"]) == 1
    assert "--dev: not with RESPONSE" in capsys.readouterr().err
    assert main(["connect", str(tmp_path / "missing.json")]) == 1
    assert "RESPONSE: cannot read" in capsys.readouterr().err
    assert main(["connect", "--connect-response", f"@{path}", "--key", "k"]) == 1
    assert "--key: not with a given ConnectResponse" in capsys.readouterr().err


# -- load: the platform as a load target ---------------------------------------------------------


def test_load_targets_of_each_platform(clean_env: pytest.MonkeyPatch) -> None:
    def target(*flags: str) -> object:
        return config_from_args(parse("load", *flags)).target

    assert target() == DevTarget()
    assert target("--dev-backend", "node b.js") == DevTarget("node b.js")
    placeholder = "-"
    dev = JamsocketTarget(placeholder, placeholder, placeholder, "http://localhost:9005")
    assert target("--dev-port", "9005") == dev
    assert target("--dev", "--dev-port", "9005") == dev
    clean_env.setenv("JAMSOCKET_DEV", "true")
    clean_env.setenv("JAMSOCKET_DEV_PORT", "9005")
    assert target("--jamsocket") == dev
    flags = ["--jamsocket", "--account", "a", "--service", "s", "--token", "t"]
    assert target(*flags) == JamsocketTarget("a", "t", "s", "https://api.jamsocket.com")
    assert target("--plane", "http://p.test", "--image", "i") == PlaneTarget("http://p.test", "i")
    assert target("--connect-response", json.dumps(RESPONSE)) == FixedTarget(RESPONSE)
    with pytest.raises(FlagError, match="--api-url: not with --dev-backend"):
        target("--dev-backend", "x", "--api-url", "http://a.test")


# -- end to end, through the dev server ------------------------------------------------------------


def spellings(api_url: str) -> list[tuple[list[str], dict[str, str]]]:
    """Every way of naming the dev server at ``api_url``: flags, and the variables they read."""
    port = api_url.rsplit(":", 1)[1]
    names = {"JAMSOCKET_ACCOUNT": "acme", "JAMSOCKET_SERVICE": "chat", "JAMSOCKET_TOKEN": "t"}
    return [
        (["--api-url", api_url], {}),
        (["--dev", "--api-url", api_url], {}),
        (["--dev", "--dev-port", port], {}),
        (["--dev-port", port], {}),
        (["--dev"], {"JAMSOCKET_DEV_PORT": port}),
        ([], {"JAMSOCKET_DEV": "true", "JAMSOCKET_DEV_PORT": port}),
        (["--jamsocket"], {"JAMSOCKET_DEV": "1", "JAMSOCKET_DEV_PORT": port}),
        (["--jamsocket"], {**names, "JAMSOCKET_API_URL": api_url}),
        ([], {**names, "JAMSOCKET_API_URL": api_url}),
        (["--account", "acme", "--service", "chat", "--token", "t", "--api-url", api_url], {}),
        (["--service", "chat/prod", "--api-url", api_url], names),
    ]


def set_env(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)


def test_status_through_the_dev_server_with_every_spelling(
    jamsocket_dev_server: BackgroundDevServer,
    clean_env: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    response = jamsocket_dev_server.connect(key="config-status")
    path = tmp_path / "response.json"
    path.write_text(response.to_json())
    cases = spellings(jamsocket_dev_server.api_url)
    cases.append((["--connect-response", f"@{path}"], {}))
    cases.append((["--connect-response", response.to_json()], {}))
    for flags, env in cases:
        with clean_env.context() as patch:
            set_env(patch, env)
            code = main(["status", response.backend_id, *flags])
        out, err = capsys.readouterr()
        assert code == 0, (flags, env, err)
        assert isinstance(json.loads(out)["status"], str)


def test_connect_through_the_dev_server_with_every_spelling(
    jamsocket_dev_server: BackgroundDevServer,
    clean_env: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    response = jamsocket_dev_server.connect(key="config-connect")
    path = tmp_path / "response.json"
    path.write_text(response.to_json())
    cases = spellings(jamsocket_dev_server.api_url)
    cases.append(([str(path)], {}))
    cases.append((["--connect-response", f"@{path}"], {}))
    for flags, env in cases:
        with clean_env.context() as patch:
            set_env(patch, env)
            fixed = bool(flags) and flags[0] in (str(path), "--connect-response")
            key = [] if fixed else ["--key", "config-connect"]
            code = main(["connect", *flags, *key, "--call", "echo", json.dumps(flags)])
        out, err = capsys.readouterr()
        assert code == 0, (flags, env, err)
        assert json.loads(out) == flags
        assert f"backend    {response.backend_id}" in err


def test_load_through_the_running_dev_server(
    jamsocket_dev_server: BackgroundDevServer,
    clean_env: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    port = jamsocket_dev_server.api_url.rsplit(":", 1)[1]
    report = tmp_path / "report.json"
    run = ["--sessions", "2", "--iterations", "2", "--loop", "asyncio", "--quiet"]
    assert main(["load", "--dev-port", port, *run, "--json", str(report)]) == 0, (
        capsys.readouterr().err
    )
    data = json.loads(report.read_text())
    assert data["operations"]["echo"]["count"] == 4
    assert data["phases"]["connect_api"]["count"] == 2


async def test_status_and_terminate_through_plane_with_either_token_spelling(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async with PlaneStub(token="ctl-token") as stub:
        backend = stub.new_backend("room")
        status = ["status", backend.id, "--plane", stub.url]
        assert await asyncio.to_thread(main, status) == 0, capsys.readouterr().err
        assert json.loads(capsys.readouterr().out)["status"] == backend.status
        terminate = ["terminate", backend.id, "--plane", stub.url]
        assert await asyncio.to_thread(main, terminate) == 1
        assert "401" in capsys.readouterr().err
        assert await asyncio.to_thread(main, [*terminate, "--token", "ctl-token"]) == 0
        clean_env.setenv("PLANE_TOKEN", "ctl-token")
        assert await asyncio.to_thread(main, [*terminate, "--hard"]) == 0
    sent = stub.requests_to("terminate")
    assert [r.headers.get("Authorization") for r in sent] == [None] + ["Bearer ctl-token"] * 2
    assert "ctl-token" not in capsys.readouterr().err


# -- the split modules -------------------------------------------------------------------------


def test_protocol_stays_sans_io() -> None:
    root = Path(jrt.__file__).parent / "protocol"
    for module in sorted(root.glob("*.py")):
        tree = ast.parse(module.read_text())
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                if (module.name, name) == ("websocket.py", "aiohttp._websocket.helpers"):
                    continue  # its compiled masking: a pure function (see pyproject's contract)
                top = name.split(".")[0]
                assert top not in ("aiohttp", "asyncio"), f"{module.name} imports {name}"


def test_old_module_paths_keep_their_names() -> None:
    from jamsocket_rt import _api
    from jamsocket_rt.protocol import api

    for module in (_api, api):
        for name in module.__all__:
            assert getattr(module, name) is not None
    assert _api.Jamsocket is jrt.Jamsocket
    assert _api.StatusStream is jrt.StatusStream
