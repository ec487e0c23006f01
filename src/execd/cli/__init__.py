"""The `execd` command (Typer): server-side commands and a client over the SDK."""

import os
import sys

# Importing a module registers its commands; `execd --help` lists them in this order.
# isort: off
from execd.cli import (  # noqa: F401
    run,
    executions,
    system,
    login,
    accounts,
    actions,
    flows,
    rules,
    server,
    maintenance,
)

# isort: on
from execd.cli.app import app


def main() -> None:
    try:
        app()
    except Exception as exc:
        # Errors people make are answered before this; what reaches here is a bug.
        if os.environ.get("EXECD_DEBUG"):
            raise
        sys.stderr.write(
            f"error: execd failed unexpectedly ({type(exc).__name__}: {exc}); "
            "EXECD_DEBUG=1 shows the traceback\n"
        )
        raise SystemExit(70) from None


__all__ = ["app", "main"]
