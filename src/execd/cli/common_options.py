"""Options that commands of several groups share, and reading `--param` pairs."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
import typer

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")]
ParamOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--param",
        "-p",
        metavar="KEY=VALUE",
        help="A parameter as key=value (repeatable); a value that is JSON (5, true, "
        '[1,2], {"a":1}, "quoted") is taken as such, anything else as text',
    ),
]
PackOpt = Annotated[str | None, typer.Option("--pack", help="Only actions of this pack")]


def parse_params(pairs: list[str] | None) -> dict[str, Any]:
    parameters: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{pair!r} is not key=value", param_hint="--param")
        try:
            parameters[key] = orjson.loads(text)
        except orjson.JSONDecodeError:
            parameters[key] = text
    return parameters
