"""A Locust load test of a session backend (the bundled example backend's events).

On one machine, against a dev server::

    jamsocket-rt dev --port 8080 --quiet &
    locust -f examples/locustfile.py --host http://127.0.0.1:8080 \\
        --headless --users 200 --spawn-rate 50 --run-time 1m --csv results

Across machines, with Locust's distributed mode (the master aggregates; each worker runs
users, so the load grows with the number of worker machines)::

    # on the master host
    locust -f examples/locustfile.py --master --expect-workers 4 --headless \\
        --users 20000 --spawn-rate 500 --run-time 10m --csv results
    # on each worker host (one worker process per core: --processes -1)
    locust -f examples/locustfile.py --worker --master-host MASTER_IP --processes -1

Against Jamsocket, leave out ``--host`` and set ``JAMSOCKET_ACCOUNT``, ``JAMSOCKET_TOKEN`` and
``JAMSOCKET_SERVICE`` on every worker.

Each user connects on start (reported as ``session`` / ``connect_api``, ``ready``,
``socket_connect``), then runs its tasks once a second on an evenly spread schedule.
``LOCUST_PERIOD`` (seconds between tasks, default 1) and ``LOCUST_KEYS`` (``shared``, ``new``
or a number of keys, default 4) tune it without editing the file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, ClassVar

from locust import task

from jamsocket_rt.locust import SessionUser, spread_pacing

PAYLOAD = "x" * 64


def _keys(text: str) -> str | int:
    return int(text) if text.isdigit() else text


class BackendUser(SessionUser):
    """A client of the example backend: echo calls, ping / pong, broadcasts."""

    keys = _keys(os.environ.get("LOCUST_KEYS", "4"))
    key_prefix = os.environ.get("LOCUST_KEY_PREFIX", "locust-example")
    session_options: ClassVar[Mapping[str, Any]] = {"call_timeout": 10.0}
    wait_time = spread_pacing(float(os.environ.get("LOCUST_PERIOD", "1")))

    @task(8)
    def echo(self) -> None:
        """An acknowledged call: reported as ``call`` / ``echo``."""
        self.session.call("echo", PAYLOAD)

    @task(1)
    def ping(self) -> None:
        """A send answered by an event: ``send`` / ``ping`` and ``wait`` / ``pong``."""
        pong = self.session.expect("pong", timeout=10.0)
        self.session.send("ping", PAYLOAD)
        pong.get()

    @task(1)
    def broadcast(self) -> None:
        """A broadcast to every user of the backend: ``send`` / ``broadcast``."""
        self.session.send("broadcast", {"from": self.number})
