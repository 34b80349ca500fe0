"""The package's metadata: one version, and every direct dependency declared with bounds."""

from __future__ import annotations

import ast
import importlib.metadata
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

import jamsocket_rt

tomllib = pytest.importorskip("tomllib")  # (Python 3.11+; 3.10 has no TOML reader)

ROOT = Path(__file__).resolve().parent.parent

#: The distribution of each top-level module the library imports.
DISTRIBUTIONS = {
    "aiohttp": "aiohttp",
    "aiohappyeyeballs": "aiohappyeyeballs",
    "attrs": "attrs",
    "attr": "attrs",
    "cattrs": "cattrs",
    "engineio": "python-engineio",
    "socketio": "python-socketio",
    "yarl": "yarl",
}
#: Bounded below the next major version: their majors have broken their users before.
BOUNDED = {"aiohttp", "python-engineio", "python-socketio", "yarl"}


def _requirements() -> dict[str, Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    found = [Requirement(text) for text in project["dependencies"]]
    return {requirement.name: requirement for requirement in found}


def _module_level_imports() -> set[str]:
    """Top-level modules imported unconditionally at module level (not in try, not in a def)."""
    names: set[str] = set()
    for path in (ROOT / "jamsocket_rt").rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for node in tree.body:
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"jamsocket_rt"}


@pytest.mark.pure
def test_the_version_has_one_place() -> None:
    assert importlib.metadata.version("jamsocket_rt") == jamsocket_rt.__version__
    assert "version =" not in (ROOT / "pyproject.toml").read_text().split("[project]")[1].split(
        "[tool."
    )[0].replace("dynamic", "")


@pytest.mark.pure
def test_every_direct_import_is_a_declared_dependency() -> None:
    declared = _requirements()
    # Optional extras are imported lazily or under try (orjson, uvloop, msgpack, locust...);
    # the pytest plugin is loaded by pytest itself.
    optional = {"orjson", "uvloop", "msgpack", "locust", "gevent", "matplotlib", "ipywidgets"}
    optional.add("pytest")
    for module in sorted(_module_level_imports() - optional):
        assert module in DISTRIBUTIONS, f"{module}: which distribution provides it?"
        assert DISTRIBUTIONS[module] in declared, f"{module} is imported but not declared"


@pytest.mark.pure
def test_majors_that_break_are_bounded() -> None:
    declared = _requirements()
    for name in BOUNDED:
        assert any(spec.operator == "<" for spec in declared[name].specifier), name


@pytest.mark.pure
def test_the_license_ships() -> None:
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")


def test_the_development_install_is_visible_to_mypy_outside_the_repository(
    tmp_path: Path,
) -> None:
    # ./run installs in setuptools' "compat" editable mode (a path entry, not an import hook),
    # which type checkers and IDEs follow.
    import subprocess

    probe = tmp_path / "probe.py"
    probe.write_text("import jamsocket_rt\n\nwrong: int = jamsocket_rt.Session\n")
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--python-executable", sys.executable, str(probe)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert 'has type "type[Session]"' in done.stdout, done.stdout + done.stderr
