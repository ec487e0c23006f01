"""What the commands over a project's definitions share (actions, flows, triggers,
rules): a definition read from a file, and saying what changed.

A definition file (`-f`, YAML or JSON) holds the body the v1 API (flows: the flow
dialect) takes. Each command prints the outcome in a line or a few for people, or with
`--json` the SDK's model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from execd.cli import output
from execd.cli.input_files import load_yaml
from execd.cli.output import Exit, out
from execd.client import Action, Rule, Trigger

FileOpt = Annotated[
    Path,
    typer.Option(
        "--file", "-f", help="The definition, as the API takes it: YAML or JSON; - for stdin"
    ),
]


def load_definition(path: Path, **defaults: str) -> dict[str, Any]:
    """One definition from a file: a mapping of the API's fields (`defaults` for those
    it leaves out)."""
    document = load_yaml(path)
    if not isinstance(document, dict):
        output.fail(f"{path} does not hold a definition (a mapping of fields)", Exit.USAGE)
    return {**defaults, **document}


def said(answer: Any, as_json: bool, line: str, *more: str) -> None:
    """A change's outcome: a line or a few for people, the SDK's model for scripts."""

    def render() -> None:
        for text in (line, *more):
            out.print(text)

    output.show(answer, as_json, render)


def deleted(kind: str, name: str, as_json: bool) -> None:
    said({"kind": kind, "name": name, "deleted": True}, as_json, f"{kind} {name} deleted")


def switched(kind: str, changed: Action | Trigger | Rule, as_json: bool) -> None:
    state = "enabled" if changed.enabled else "disabled"
    said(changed, as_json, f"{kind} {changed.ref} {state}")
