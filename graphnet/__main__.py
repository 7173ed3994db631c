"""``python -m graphnet``: the graphnet command (see graphnet.cli)."""

from .cli import main

raise SystemExit(main())
