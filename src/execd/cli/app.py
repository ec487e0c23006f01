"""The `execd` command's Typer apps and its global options.

Server-side commands (serve, worker, migrate, gc, rollup, secrets) are in server.py;
the commands that talk to a server through the SDK have a module per group (run.py,
executions.py, system.py, login.py, accounts.py, actions.py, flows.py, rules.py).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

from execd import __version__

if TYPE_CHECKING:
    from typer._click import Context, HelpFormatter  # the copy of Click that Typer ships

SERVER = "Server commands (run the service, on its database)"
CLIENT = "Client commands (talk to a server: --url, --token)"


class Group(TyperGroup):
    """Click's help with the commands under their `rich_help_panel` headings, each with
    its whole first paragraph (Click would cut it at about 45 characters). Typer shows
    panels only with rich help on, which reads `[...]` in help texts as markup."""

    def format_commands(self, ctx: Context, formatter: HelpFormatter) -> None:
        panels: dict[str, list[tuple[str, str]]] = {}
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is None or command.hidden:
                continue
            panel = getattr(command, "rich_help_panel", None) or "Commands"
            summary = inspect.cleandoc(command.short_help or command.help or "")
            panels.setdefault(panel, []).append((name, " ".join(summary.split("\n\n")[0].split())))
        for panel, rows in panels.items():
            with formatter.section(panel):
                formatter.write_dl(rows)


def group(help: str, **settings: Any) -> typer.Typer:
    return typer.Typer(cls=Group, help=help, no_args_is_help=True, **settings)


app = group(
    "execd: a multi-tenant action and job execution service.",
    name="execd",
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
executions_app = group("Executions: list, inspect, follow, cancel, retry.")
actions_app = group("Actions, and packs of definitions.")
flows_app = group("Flows of steps.")
triggers_app = group("Triggers (webhook, timer, execution): what fires rules.")
rules_app = group("Rules: on a trigger's event, run an action.")
enforcements_app = group("Enforcements: each firing of a rule and what it ran.")
system_app = group("The system as a whole.")
token_app = group("API tokens (create --direct: straight into the database).")
tenants_app = group("Tenants (system admin; a tenant admin sees its own).")
projects_app = group("Projects of the tenants a token administers.")
secrets_app = group("The keys that seal secrets at rest.")
for name, typer_app in {
    "executions": executions_app,
    "actions": actions_app,
    "flows": flows_app,
    "triggers": triggers_app,
    "rules": rules_app,
    "enforcements": enforcements_app,
    "system": system_app,
    "token": token_app,
    "tenants": tenants_app,
    "projects": projects_app,
}.items():
    app.add_typer(typer_app, name=name, rich_help_panel=CLIENT)
app.add_typer(secrets_app, name="secrets", rich_help_panel=SERVER)


@dataclass
class Options:
    url: str | None = None
    token: str | None = None


options = Options()


def _print_version(given: bool) -> None:
    if given:
        typer.echo(__version__)
        raise typer.Exit()


@app.callback()
def _global(
    url: Annotated[
        str | None, typer.Option(help="Server URL [EXECD_URL, else `execd login`'s]")
    ] = None,
    token: Annotated[
        str | None, typer.Option(help="API token [EXECD_TOKEN, else `execd login`'s]")
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            is_eager=True,
            callback=_print_version,
            help="Print the version (as `execd version`) and exit",
        ),
    ] = False,
) -> None:
    """execd: a multi-tenant action and job execution service."""
    options.url, options.token = url, token
