"""What a test leaves running in its event loop."""

from __future__ import annotations

import asyncio
from typing import Any

#: Where the code of a server-side task lives: the dev server, aiohttp's server, the fault
#: proxy. They run in the test's loop too, and are not the client's to clean up.
SERVER_SIDE = ("/jamsocket_rt/dev/", "/aiohttp/web_", "/faultproxy.py")


def client_tasks(tasks: set[asyncio.Task[Any]]) -> list[asyncio.Task[Any]]:
    """The tasks among ``tasks`` that are not a server's (see :data:`SERVER_SIDE`)."""
    return [task for task in tasks if not any(part in _code_file(task) for part in SERVER_SIDE)]


def _code_file(task: asyncio.Task[Any]) -> str:
    code = getattr(task.get_coro(), "cr_code", None)
    return code.co_filename if code is not None else ""
