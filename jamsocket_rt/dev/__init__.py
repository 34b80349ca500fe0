"""The local dev server: Jamsocket's v2 API and token proxy on one machine, no account needed.

:class:`DevServer` runs each session backend as a local process of a command you choose (by
default the bundled :mod:`jamsocket_rt.dev.example_backend`), and serves the same endpoints
as the official ``jamsocket dev`` server, so clients written for Jamsocket work against it.
"""

from ._background import BackgroundDevServer
from ._server import EXAMPLE_BACKEND, DevServer

__all__ = ["EXAMPLE_BACKEND", "BackgroundDevServer", "DevServer"]
