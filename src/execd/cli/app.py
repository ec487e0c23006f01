"""The `execd` command's Typer apps and its global options.

Server-side commands (serve, worker, migrate, gc, rollup) are in server.py; the
commands that talk to a server through the SDK are in client.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import typer

app = typer.Typer(
    name="execd",
    help="execd: a multi-tenant action and job execution service.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
executions_app = typer.Typer(
    help="Executions: list, inspect, follow, cancel, retry.", no_args_is_help=True
)
actions_app = typer.Typer(help="Actions, and packs of definitions.", no_args_is_help=True)
flows_app = typer.Typer(help="Flows of steps.", no_args_is_help=True)
rules_app = typer.Typer(help="Rules and their firings.", no_args_is_help=True)
system_app = typer.Typer(help="The system as a whole.", no_args_is_help=True)
token_app = typer.Typer(help="API tokens.", no_args_is_help=True)
secrets_app = typer.Typer(help="The keys that seal secrets at rest.", no_args_is_help=True)
app.add_typer(executions_app, name="executions")
app.add_typer(actions_app, name="actions")
app.add_typer(flows_app, name="flows")
app.add_typer(rules_app, name="rules")
app.add_typer(system_app, name="system")
app.add_typer(token_app, name="token")
app.add_typer(secrets_app, name="secrets")


@dataclass
class Options:
    url: str | None = None
    token: str | None = None


options = Options()


@app.callback()
def _global(
    url: Annotated[
        str | None, typer.Option(help="Server URL [EXECD_URL, else `execd login`'s]")
    ] = None,
    token: Annotated[
        str | None, typer.Option(help="API token [EXECD_TOKEN, else `execd login`'s]")
    ] = None,
) -> None:
    """execd: a multi-tenant action and job execution service."""
    options.url, options.token = url, token
