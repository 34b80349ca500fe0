"""Runs the README's quickstart with an installed jamsocket_rt, against its own dev server.

``./run test`` runs it with the Python of a fresh environment into which the built wheel was
installed (not the repository's editable install): ``python wheel_quickstart.py README.md``.
It imports nothing from the repository, and exits non-zero if the quickstart fails.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import jamsocket_rt
from jamsocket_rt.dev import BackgroundDevServer


def main(readme: Path) -> int:
    if "site-packages" not in (jamsocket_rt.__file__ or ""):
        print(f"jamsocket_rt comes from {jamsocket_rt.__file__}, not an installed wheel")
        return 1
    quickstart = re.findall(r"```python\n(.*?)```", readme.read_text(), re.DOTALL)[0]
    with BackgroundDevServer(quiet=True) as dev:
        port = dev.api_url.rsplit(":", 1)[1]
        env = {**os.environ, "JAMSOCKET_DEV": "true", "JAMSOCKET_DEV_PORT": port}
        done = subprocess.run(
            [sys.executable, "-c", quickstart], env=env, capture_output=True, text=True, timeout=60
        )
    print(done.stdout, end="")
    print(done.stderr, end="", file=sys.stderr)
    return done.returncode


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
