"""``python -m jamsocket_rt``: the same as the ``jamsocket-rt`` command."""

import sys

from .cli import main

sys.exit(main())
