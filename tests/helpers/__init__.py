"""Helpers shared by the tests; ``tests/conftest.py`` holds only fixtures and hooks.

Import them by their full module path, e.g. ``from tests.helpers.polling import eventually``
(``tests`` is a package, so this works with ``pytest``, ``python -m pytest`` and xdist alike).

- :mod:`~tests.helpers.paths`: ``REPO_ROOT``, ``EXAMPLES_DIR``, ``NODE_DIR``, ``NODE_MODULES``.
- :mod:`~tests.helpers.polling`: :func:`eventually` / :func:`eventually_sync`, the one way to
  wait for a condition that nothing signals.
- :mod:`~tests.helpers.net`: :func:`free_port`.
- :mod:`~tests.helpers.sessions`: :func:`reached_backend`, a barrier for calls in flight.
- :mod:`~tests.helpers.tasks`: :func:`client_tasks`, to check that nothing is left running.
- :mod:`~tests.helpers.node`: whether the Node peers (tests/node) can run here.
- :mod:`~tests.helpers.backends`: the example backends (Python or Node) as processes.
- :mod:`~tests.helpers.peers`: recording Socket.IO clients, python-socketio's and Node's.
- :mod:`~tests.helpers.faultproxy`: a TCP proxy that breaks connections on demand.
- :mod:`~tests.helpers.transport_peers`: real and scripted servers for the transport tests.
- :mod:`~tests.helpers.plane_stub`: stub Plane and Jamsocket API servers.
"""
