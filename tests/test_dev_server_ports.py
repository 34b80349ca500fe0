"""A backend whose port another program took is not ready (the stranger does not get its
sessions)."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pytest

import jamsocket_rt as jrt
from jamsocket_rt import BackendStatus, TerminationReason
from jamsocket_rt.dev import DevServer

pytestmark = pytest.mark.skipif(
    not Path("/proc/net/tcp").exists(), reason="ownership of a port is read from Linux's /proc"
)

# The backend hands its PORT to a stranger (another session, so another process group) that
# listens there for a few seconds, and never listens itself.
STRANGER = (
    "import os, socket, time; s = socket.socket(); "
    "s.bind(('127.0.0.1', int(os.environ['PORT']))); s.listen(); time.sleep(8)"
)
BACKEND = (
    "import subprocess, sys, time; "
    f"subprocess.Popen([sys.executable, '-c', {STRANGER!r}], start_new_session=True); "
    "time.sleep(30)"
)


@pytest.mark.slow
async def test_a_stranger_on_the_port_is_not_the_backend() -> None:
    command = shlex.join([sys.executable, "-c", BACKEND])
    async with (
        DevServer(backend=command, startup_timeout=2.0, quiet=True) as dev,
        jrt.Jamsocket.dev_server(dev.api_url) as api,
    ):
        response = await api.connect()
        statuses = []
        async with api.status_stream(response.backend_id) as stream:
            async for state in stream:
                statuses.append(state)
        assert BackendStatus.READY not in [state.status for state in statuses]
        assert statuses[-1].termination_reason is TerminationReason.STARTUP_TIMEOUT
