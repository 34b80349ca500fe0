"""The docs site: it builds in strict mode, its links hold, and its guarantees name real tests."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import report
from tests.helpers.paths import REPO_ROOT

DOCS = REPO_ROOT / "docs"
PAGES = sorted(DOCS.rglob("*.md"))
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
SNIPPET = re.compile(r'^--8<-- "([^":]+)(?::[0-9:]*)?"$', re.MULTILINE)
FENCE = re.compile(r"^```.*?^```", re.DOTALL | re.MULTILINE)
INLINE_CODE = re.compile(r"`[^`\n]*`")


def prose(text: str) -> str:
    """The text without code blocks and inline code, where a "link" is only an example."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def relative_links(page: Path) -> list[str]:
    return [
        target
        for target in LINK.findall(prose(page.read_text()))
        if not re.match(r"[a-z][a-z0-9+.-]*:", target) and not target.startswith("#")
    ]


@pytest.mark.slow  # a few seconds of mkdocs and griffe; `./run test` builds it first anyway
def test_the_site_builds_in_strict_mode(tmp_path: Path) -> None:
    mkdocs = shutil.which("mkdocs", path=str(Path(sys.executable).parent))
    assert mkdocs is not None, "mkdocs is in the dev extra: pip install -e '.[dev]'"
    done = subprocess.run(
        [mkdocs, "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=REPO_ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "WARNING" not in done.stderr, done.stderr
    site = tmp_path / "site"
    for page in ("guarantees", "protocol", "benchmarks", "changelog", "reference"):
        assert (site / page / "index.html").is_file(), page
    reference = (site / "reference" / "index.html").read_text()
    for name in ("jamsocket_rt.Session.call", "jamsocket_rt.SyncJamsocket", "jamsocket_rt.Plane"):
        assert f'id="{name}"' in reference, f"{name} is missing from the API reference"
    # The snippets are included, not left as text.
    changelog = (site / "changelog" / "index.html").read_text()
    assert "Unreleased" in changelog
    assert "--8&lt;--" not in (site / "benchmarks" / "index.html").read_text()


@pytest.mark.parametrize(
    "page", [REPO_ROOT / "README.md", *PAGES], ids=lambda p: str(p.relative_to(REPO_ROOT))
)
def test_every_relative_link_points_at_a_file(page: Path) -> None:
    missing = [
        target
        for target in relative_links(page)
        if not (page.parent / target.split("#")[0]).resolve().exists()
    ]
    assert not missing, f"{page.relative_to(REPO_ROOT)}: links to nothing: {missing}"


def test_every_included_file_exists() -> None:
    included = [name for page in PAGES for name in SNIPPET.findall(page.read_text())]
    assert "CHANGELOG.md" in included
    assert "benchmarks/results/latest.md" in included
    missing = [name for name in included if not (REPO_ROOT / name).is_file()]
    assert not missing, f"snippets of missing files: {missing}"


def test_the_readme_links_into_every_guide() -> None:
    linked = {target.split("#")[0] for target in relative_links(REPO_ROOT / "README.md")}
    guides = {f"docs/{page.relative_to(DOCS)}" for page in (DOCS / "guides").glob("*.md")}
    pages = {"docs/getting-started.md", "docs/guarantees.md", "docs/protocol.md"}
    pages |= {"docs/benchmarks.md", "docs/reference/index.md", "CHANGELOG.md"}
    assert guides | pages <= linked, f"not linked from the README: {(guides | pages) - linked}"


def test_the_benchmark_runner_writes_the_docs_page_not_the_readme(tmp_path: Path) -> None:
    assert report.README_BEGIN not in (REPO_ROOT / "README.md").read_text()
    page = tmp_path / "benchmarks.md"
    page.write_text((DOCS / "benchmarks.md").read_text())
    assert report.update_readme(page, "NEW TABLE")
    text = page.read_text()
    assert f"{report.README_BEGIN}\nNEW TABLE\n{report.README_END}" in text
    assert '--8<-- "benchmarks/results/latest.md' in text, "the rest of the page is kept"


def test_every_guarantee_names_tests_that_exist() -> None:
    text = (DOCS / "guarantees.md").read_text()
    sources = {path: path.read_text() for path in (REPO_ROOT / "tests").glob("test_*.py")}
    defined = {
        name for source in sources.values() for name in re.findall(r"def (test_\w+)", source)
    }
    sections = re.split(r"^## ", text, flags=re.MULTILINE)[1:]
    assert len(sections) >= 10, "the guarantees are the page's sections"
    for section in sections:
        title = section.split("\n", 1)[0]
        files = re.findall(r"`(tests/[\w/]+\.py)`", section)
        names = re.findall(r"`(test_\w+)`", section)
        assert files or names, f"the guarantee {title!r} names no test"
        for path in files:
            assert (REPO_ROOT / path).is_file(), f"{title!r}: {path} does not exist"
        for name in names:
            assert name in defined, f"{title!r}: no test is called {name}"
