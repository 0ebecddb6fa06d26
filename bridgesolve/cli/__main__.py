"""``python -m bridgesolve.cli``: the ``bridgesolve`` command."""

from bridgesolve.cli import main

raise SystemExit(main())
