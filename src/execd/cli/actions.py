"""`execd actions ...`: the project's actions, and pack files of definitions applied at
once (docs/actions.md)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from execd.cli import output
from execd.cli.app import actions_app
from execd.cli.common_options import JsonOpt, PackOpt
from execd.cli.connection import ask, connect
from execd.cli.definitions import FileOpt, deleted, load_definition, said, switched
from execd.cli.input_files import load_yaml
from execd.cli.output import out
from execd.client.operations import PartlyApplied

ActionRef = Annotated[str, typer.Argument(metavar="REF", help="The action's ref")]
# What `show` prints of each action (--json: everything).
ACTION_FIELDS = "ref runner entry_point parameters timeout retry enabled builtin description"


@actions_app.command("list")
def actions_list(pack: PackOpt = None, as_json: JsonOpt = False) -> None:
    """The project's actions, built-ins included."""
    found = ask(lambda c: c.list_actions(pack))
    output.listing(found, as_json, output.columns("ref", "runner", "enabled", "description"))


@actions_app.command("show")
def actions_show(ref: ActionRef, as_json: JsonOpt = False) -> None:
    """One action's definition."""
    output.record(ask(lambda c: c.get_action(ref)), as_json, ACTION_FIELDS.split())


actions_app.command("get", help="One action's definition (the same as `actions show`).")(
    actions_show
)


@actions_app.command("create")
def actions_create(file: FileOpt, as_json: JsonOpt = False) -> None:
    """Define an action.

    The file holds what POST /api/v1/actions takes (ref, runner, entry_point,
    parameters, ...; docs/actions.md)."""
    definition = load_definition(file)
    made = ask(lambda c: c.create_action(definition))
    said(made, as_json, f"action {made.ref} created")


@actions_app.command("update")
def actions_update(ref: ActionRef, file: FileOpt, as_json: JsonOpt = False) -> None:
    """Replace an action's definition with the file's.

    PUT: a field the file leaves out gets its default; the ref defaults to REF."""
    definition = load_definition(file, ref=ref)
    changed = ask(lambda c: c.update_action(ref, definition))
    said(changed, as_json, f"action {changed.ref} updated")


@actions_app.command("enable")
def actions_enable(ref: ActionRef, as_json: JsonOpt = False) -> None:
    """Enable an action: it can be run again."""
    switched("action", ask(lambda c: c.enable_action(ref, True)), as_json)


@actions_app.command("disable")
def actions_disable(ref: ActionRef, as_json: JsonOpt = False) -> None:
    """Disable an action: running it is refused (409) until it is enabled again."""
    switched("action", ask(lambda c: c.enable_action(ref, False)), as_json)


@actions_app.command("delete")
def actions_delete(ref: ActionRef, as_json: JsonOpt = False) -> None:
    """Delete an action (its executions stay)."""
    ask(lambda c: c.delete_action(ref))
    deleted("action", ref, as_json)


@actions_app.command("apply")
def actions_apply(
    file: Annotated[
        Path, typer.Option("--file", "-f", help="A YAML (or JSON) pack file; - for stdin")
    ],
    as_json: JsonOpt = False,
) -> None:
    """Create or update the actions, flows, triggers and rules a pack file defines.

    Applying the same file again changes nothing."""
    document = load_yaml(file)
    stopped: output.Problem | None = None
    with connect() as client:
        try:
            applied = client.apply_pack(document)
        except PartlyApplied as exc:
            if not exc.applied:  # nothing was: an error like any other command's
                raise exc.cause from None
            applied, stopped = exc.applied, output.problem(exc.cause)

    def render() -> None:
        output.table(("KIND", "NAME", "OUTCOME"), ((a.kind, a.ref, a.outcome) for a in applied))
        for a in applied:
            if a.secret:
                out.print(f"webhook secret of {a.ref} (shown once): {a.secret}")

    output.show(applied, as_json, render)
    if stopped is not None:
        message = f"stopped: {stopped.message}; what is above was applied"
        output.give_up(replace(stopped, message=message))
