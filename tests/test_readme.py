"""The README's examples run as written, against the dev server; the docs' snippets compile."""

from __future__ import annotations

import ast
import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

from jamsocket_rt.dev import DevServer
from tests.helpers.paths import REPO_ROOT

README = (REPO_ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", README, re.DOTALL)
DOCS = REPO_ROOT / "docs"


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


def test_every_python_snippet_of_the_docs_compiles() -> None:
    pages = sorted(DOCS.rglob("*.md"))
    assert len(pages) >= 10, "the docs pages are where the README's details went"
    count = 0
    for page in pages:
        name = str(page.relative_to(REPO_ROOT))
        for block in re.findall(r"```python\n(.*?)```", page.read_text(), re.DOTALL):
            compile(block, name, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
            count += 1
    assert count >= 8, f"only {count} python snippets found in docs/"


def test_the_docs_quickstart_is_the_readmes() -> None:
    started = (DOCS / "getting-started.md").read_text()
    for block in BLOCKS[:2]:
        assert f"```python\n{block}```" in started, "getting-started.md has the same quickstart"


async def test_readme_quickstart_examples_run(tmp_path: Path) -> None:
    quickstart, blocking = BLOCKS[:2]
    assert "asyncio.run(main())" in quickstart, "the Quickstart comes first in the README"
    assert "jrt.SyncJamsocket" in blocking, "the blocking example gets its own ConnectResponse"
    async with DevServer(quiet=True) as dev:
        env = {"JAMSOCKET_DEV": "true", "JAMSOCKET_DEV_PORT": str(dev.port)}
        # Each example runs in a subprocess; this loop keeps serving meanwhile.
        out = await asyncio.to_thread(run_example, quickstart, tmp_path, env)
        assert "pong: {'hello': 'world'}" in out
        assert "echo: 42" in out

        out = await asyncio.to_thread(run_example, blocking, tmp_path, env)
        assert "echo: hi" in out
