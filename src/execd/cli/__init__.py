"""The `execd` command (Typer): server-side commands and a client over the SDK."""

from execd.cli import client, server  # noqa: F401 - they register their commands
from execd.cli.app import app


def main() -> None:
    app()


__all__ = ["app", "main"]
