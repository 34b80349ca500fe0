"""Whether the Node peers (tests/node: node, socket.io and socket.io-client) can run here."""

from __future__ import annotations

import shutil

from tests.helpers.paths import NODE_MODULES

NODE_PACKAGES = ("socket.io", "socket.io-client")


def node_missing_reason() -> str | None:
    """Why the Node peers cannot run here, or None when they can."""
    if shutil.which("node") is None:
        return "node is not installed: the Node peers (tests/node) are skipped"
    for package in NODE_PACKAGES:
        if not (NODE_MODULES / package / "package.json").is_file():
            return f"{NODE_MODULES} lacks {package}: run `npm ci` in tests/node (./run test does)"
    return None
