"""The README's examples run as written, against the dev server."""

from __future__ import annotations

import ast
import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

import jamsocket_rt as jrt
from jamsocket_rt.dev import DevServer
from tests.helpers.paths import REPO_ROOT

README = (REPO_ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", README, re.DOTALL)


def run_example(code: str, cwd: Path, env: dict[str, str]) -> str:
    script = cwd / "example.py"
    script.write_text(code)
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    return done.stdout


def test_every_python_snippet_compiles() -> None:
    for block in BLOCKS:  # snippets may await at top level, as in a notebook
        compile(block, "README.md", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)


async def test_readme_quickstart_examples_run(tmp_path: Path) -> None:
    quickstart, blocking = BLOCKS[:2]
    assert "asyncio.run(main())" in quickstart, "the Quickstart comes first in the README"
    async with DevServer(quiet=True) as dev, jrt.Jamsocket.dev_server(dev.api_url) as api:
        env = {"JAMSOCKET_DEV": "true", "JAMSOCKET_DEV_PORT": str(dev.port)}
        # Each example runs in a subprocess; this loop keeps serving meanwhile.
        out = await asyncio.to_thread(run_example, quickstart, tmp_path, env)
        assert "pong: {'hello': 'world'}" in out
        assert "echo: 42" in out

        response = await api.connect()
        (tmp_path / "connect-response.json").write_text(response.to_json())
        out = await asyncio.to_thread(run_example, blocking, tmp_path, env)
        assert "echo: hi" in out
