"""What this process serves itself, and on which event loop.

A :class:`~jamsocket_rt.dev.DevServer` records the origins it serves here while it runs. A
blocking :class:`~jamsocket_rt.SyncSession` blocks its caller's thread while it waits, and with
it any event loop that thread runs (a notebook kernel's): a ConnectResponse whose status or
backend is served on that very loop could never be answered. The SyncSession looks here first
and says so at once, instead of timing out a minute later.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

__all__ = ["blocked_origin", "serve", "unserve"]

#: origin (scheme://host:port) -> the loop that serves it.
_SERVED: dict[str, asyncio.AbstractEventLoop] = {}


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def serve(url: str, loop: asyncio.AbstractEventLoop) -> None:
    """Records that ``loop`` serves the origin of ``url``."""
    _SERVED[_origin(url)] = loop


def unserve(url: str) -> None:
    """Forgets the origin of ``url`` (its server stopped)."""
    _SERVED.pop(_origin(url), None)


def blocked_origin(urls: list[str], loop: asyncio.AbstractEventLoop | None) -> str | None:
    """The first of ``urls`` whose origin ``loop`` serves in this process, else None."""
    if loop is None:
        return None
    for url in urls:
        if url and _SERVED.get(_origin(url)) is loop:
            return _origin(url)
    return None
