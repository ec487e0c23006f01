"""`execd login` and `execd logout`: the URL and token later commands use, checked
against the server and kept in the user's config directory (execd.client.config)."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from execd.cli import output
from execd.cli.app import CLIENT, app, options
from execd.cli.common_options import JsonOpt
from execd.cli.output import Exit, out
from execd.client import Client, ClientError
from execd.client import config as client_config


@app.command(rich_help_panel=CLIENT)
def login(
    url: Annotated[
        str | None,
        typer.Option(help="Server URL (default: --url, EXECD_URL or http://127.0.0.1:8080)"),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            help="API token [EXECD_TOKEN; else asked for, or read from stdin if not a terminal]"
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Check a URL and token against the server and keep them for later commands.

    They are kept in the user's config directory, readable only by the user."""
    chosen = url or options.url or os.environ.get("EXECD_URL")
    if not chosen:
        try:
            chosen = client_config.resolve().url
        except ClientError:  # a damaged file: logging in writes a new one
            chosen = client_config.DEFAULT_URL
    if token is None:
        token = options.token or os.environ.get("EXECD_TOKEN") or ask_token()
    with output.errors(logging_in=True), Client(chosen, token) as client:
        me = client.me()
        path = client_config.save(client.url, token)

    def render() -> None:
        out.print(
            f"logged in to {client.url} as {me.token_name} ({me.role}) in project {me.project_id}"
        )
        out.print(f"saved to {path}")

    output.show({"url": client.url, "me": me, "saved": str(path)}, as_json, render)


def ask_token() -> str:
    """The token, typed at a hidden prompt on a terminal, else one line of stdin."""
    if sys.stdin.isatty():
        try:
            return str(typer.prompt("Token", hide_input=True, err=True))
        except typer.Abort:  # Ctrl-D or Ctrl-C at the prompt
            output.fail("no token given: nothing was saved", Exit.USAGE)
    token = sys.stdin.readline().strip()
    if not token:
        output.fail(
            "no token on stdin (one line); or give it with --token or EXECD_TOKEN", Exit.USAGE
        )
    return token


@app.command(rich_help_panel=CLIENT)
def logout(as_json: JsonOpt = False) -> None:
    """Forget what `execd login` saved."""
    path = client_config.config_path()
    path.unlink(missing_ok=True)
    output.show({"removed": str(path)}, as_json, lambda: out.print(f"removed {path}"))
