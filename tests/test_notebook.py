"""examples/notebook.ipynb runs in a real Jupyter kernel (nbclient + ipykernel)."""

from __future__ import annotations

import signal
from typing import Any

import pytest
from conftest import REPO_ROOT

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")


def outputs_text(cell: Any) -> str:
    parts = []
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream":
            parts.append(output["text"])
        elif "data" in output:
            parts.append(output["data"].get("text/plain", ""))
    return "".join(parts)


def test_the_example_notebook_runs_in_a_kernel() -> None:
    notebook = nbformat.read(REPO_ROOT / "examples" / "notebook.ipynb", as_version=4)
    handler = signal.getsignal(signal.SIGINT)
    client = nbclient.NotebookClient(notebook, timeout=120, kernel_name="python3")
    client.execute(cwd=str(REPO_ROOT))
    assert signal.getsignal(signal.SIGINT) is handler
    text = "\n".join(outputs_text(cell) for cell in notebook.cells if cell.cell_type == "code")
    for status in ("scheduled", "loading", "starting", "waiting", "ready"):
        assert f"status: {status}" in text
    assert "welcome, socket" in text
    assert "pong: {'hello': 'notebook'}" in text
    assert "echo: [1, 2, 3]" in text
    assert "p50 " in text
    assert "sync echo: from SyncSession" in text
    assert "closed" in text
    assert "Traceback" not in text
