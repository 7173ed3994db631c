"""``python -m graphnet`` and the ``graphnet`` command (see graphnet.cli).

This module imports nothing heavy before it can handle Ctrl-C and SIGTERM, so
that even during start-up they end the command with "interrupted" (exit 130,
or 143 for SIGTERM) and no traceback.
"""

import sys


def main():
    """The ``graphnet`` command's entry point."""
    try:
        from .errors import on_sigint, on_sigterm
        on_sigint()
        on_sigterm()
        from .cli import main as run
        return run()
    except KeyboardInterrupt as exc:  # start-up, before the command's own handler
        terminated = type(exc).__name__ == "Terminated"  # by name: it may not be imported yet
        print(f"graphnet: interrupted{' (SIGTERM)' if terminated else ''}", file=sys.stderr)
        return 143 if terminated else 130


if __name__ == "__main__":
    raise SystemExit(main())
