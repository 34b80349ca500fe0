"""examples/notebook.ipynb runs in a real Jupyter kernel (nbclient + ipykernel)."""

from __future__ import annotations

import signal
from typing import Any

import pytest

from tests.helpers.paths import REPO_ROOT

pytestmark = pytest.mark.slow

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


def test_interrupting_a_blocked_cell_leaves_the_kernel_usable() -> None:
    """A SyncSession call blocked in a cell; Ctrl-C (interrupt); the kernel carries on."""
    jupyter_client = pytest.importorskip("jupyter_client")
    manager = jupyter_client.KernelManager(kernel_name="python3")
    manager.start_kernel(cwd=str(REPO_ROOT))
    client = manager.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=60)

        def run(code: str, timeout: float = 60) -> tuple[str, str]:
            """Execute; returns (status, text printed)."""
            msg_id = client.execute(code)
            printed = []
            while True:
                msg = client.get_iopub_msg(timeout=timeout)
                if msg["parent_header"].get("msg_id") != msg_id:
                    continue
                kind = msg["msg_type"]
                if kind == "stream":
                    printed.append(msg["content"]["text"])
                elif kind == "error":
                    printed.append(msg["content"]["ename"])
                elif kind == "status" and msg["content"]["execution_state"] == "idle":
                    break
            reply = client.get_shell_msg(timeout=timeout)
            return reply["content"]["status"], "".join(printed)

        status, _ = run(
            "import jamsocket_rt as jrt\n"
            "from jamsocket_rt.dev import BackgroundDevServer\n"
            "dev = BackgroundDevServer(quiet=True)\n"
            "s = jrt.SyncSession(dev.connect())\n"
            "s.connect()\n"
        )
        assert status == "ok"
        msg_id = client.execute('print("calling", flush=True)\ns.call("sleep", 30, timeout=None)')
        # Wait until the cell is making the call, then interrupt it as the Stop button does.
        while True:
            msg = client.get_iopub_msg(timeout=30)
            if (
                msg["parent_header"].get("msg_id") == msg_id
                and msg["msg_type"] == "stream"
                and "calling" in msg["content"]["text"]
            ):
                break
        manager.interrupt_kernel()
        reply = client.get_shell_msg(timeout=30)
        assert reply["content"]["status"] == "error"
        assert reply["content"]["ename"] == "KeyboardInterrupt"
        status, printed = run('print("after:", s.call("echo", "alive", timeout=10))')
        assert status == "ok", printed
        assert "after: alive" in printed
        status, printed = run("s.close(); dev.close(); print('closed')")
        assert "closed" in printed
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
