"""`execd triggers ...`, `execd rules ...` and `execd enforcements ...`: what fires
rules, the rules that run an action on a trigger's event, and each firing of a rule
(docs/rules.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from execd.cli import output
from execd.cli.app import enforcements_app, rules_app, triggers_app
from execd.cli.common_options import JsonOpt
from execd.cli.connection import ask, connect
from execd.cli.definitions import FileOpt, deleted, load_definition, said, switched
from execd.cli.input_files import load_yaml, parse_json
from execd.cli.output import Exit, out
from execd.client import Enforcement, Trigger

TriggerRef = Annotated[str, typer.Argument(metavar="REF", help="The trigger's ref")]
RuleRef = Annotated[str, typer.Argument(metavar="REF", help="The rule's ref")]
# What `show` prints of each (--json: everything).
TRIGGER_FIELDS = "ref type config enabled next_fire webhook_url has_secret description"
RULE_FIELDS = "ref trigger criteria action_ref parameters enabled description"
ENFORCEMENT_FIELDS = "id rule_ref trigger_ref trigger_type status executions payload error created"


# --- triggers ---------------------------------------------------------------------------


@triggers_app.command("list")
def triggers_list(as_json: JsonOpt = False) -> None:
    """The project's triggers."""
    found = ask(lambda c: c.list_triggers())
    columns = output.columns("ref", "type", "enabled", "next_fire", "description")
    output.listing(found, as_json, columns)


@triggers_app.command("show")
def triggers_show(ref: TriggerRef, as_json: JsonOpt = False) -> None:
    """One trigger (never its secret: only whether it has one)."""
    output.record(ask(lambda c: c.get_trigger(ref)), as_json, TRIGGER_FIELDS.split())


def said_trigger(trigger: Trigger, as_json: bool, verb: str) -> None:
    secret = [f"webhook secret (shown once): {trigger.secret}"] if trigger.secret else []
    said(trigger, as_json, f"trigger {trigger.ref} {verb}", *secret)


@triggers_app.command("create")
def triggers_create(file: FileOpt, as_json: JsonOpt = False) -> None:
    """Create a trigger (webhook, timer or execution).

    The file holds what POST /api/v1/triggers takes (ref, type, config, ...;
    docs/rules.md). An HMAC webhook's secret is printed, once."""
    definition = load_definition(file)
    said_trigger(ask(lambda c: c.create_trigger(definition)), as_json, "created")


@triggers_app.command("update")
def triggers_update(ref: TriggerRef, file: FileOpt, as_json: JsonOpt = False) -> None:
    """Replace a trigger's definition with the file's (PUT; its type stays; the ref
    defaults to REF)."""
    definition = load_definition(file, ref=ref)
    with connect() as client:
        if "type" not in definition:
            definition["type"] = client.get_trigger(ref).type
        changed = client.update_trigger(ref, definition)
    said_trigger(changed, as_json, "updated")


@triggers_app.command("enable")
def triggers_enable(ref: TriggerRef, as_json: JsonOpt = False) -> None:
    """Enable a trigger: it fires its rules again."""
    switched("trigger", ask(lambda c: c.enable_trigger(ref, True)), as_json)


@triggers_app.command("disable")
def triggers_disable(ref: TriggerRef, as_json: JsonOpt = False) -> None:
    """Disable a trigger: it fires no rule until it is enabled again.

    A call to a disabled webhook is refused (409)."""
    switched("trigger", ask(lambda c: c.enable_trigger(ref, False)), as_json)


@triggers_app.command("delete")
def triggers_delete(ref: TriggerRef, as_json: JsonOpt = False) -> None:
    """Delete a trigger that no rule uses."""
    ask(lambda c: c.delete_trigger(ref))
    deleted("trigger", ref, as_json)


@triggers_app.command("fire")
def triggers_fire(
    ref: TriggerRef,
    data: Annotated[
        str | None, typer.Option("--data", "-d", metavar="JSON", help="The payload, as JSON")
    ] = None,
    file: Annotated[
        Path | None,
        typer.Option("--file", "-f", help="The payload from a YAML or JSON file; - for stdin"),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Fire a webhook trigger, and list the enforcements it made.

    POST /api/v1/webhooks/REF with the token: one enforcement per enabled rule that
    matched the payload."""
    if data is not None and file is not None:
        output.fail("give the payload with --data or --file, not both", Exit.USAGE)
    payload = parse_json(data, "--data") if data is not None else None
    if file is not None:
        payload = load_yaml(file)
    fired = ask(lambda c: c.fire_webhook(ref, payload))
    made = [Enforcement.model_validate(e) for e in fired["enforcements"]]

    def render() -> None:
        if not made:
            out.print(f"trigger {fired['trigger']} fired: no rule matched")
            return
        show_enforcements(made)

    output.show(fired, as_json, render)


# --- rules ------------------------------------------------------------------------------


@rules_app.command("list")
def rules_list(
    trigger: Annotated[str | None, typer.Option(help="Only rules on this trigger")] = None,
    as_json: JsonOpt = False,
) -> None:
    """The project's rules."""
    found = ask(lambda c: c.list_rules(trigger=trigger))
    output.listing(found, as_json, output.columns("ref", "trigger", "action_ref", "enabled"))


@rules_app.command("show")
def rules_show(ref: RuleRef, as_json: JsonOpt = False) -> None:
    """One rule: its trigger, criteria, action and parameters."""
    output.record(ask(lambda c: c.get_rule(ref)), as_json, RULE_FIELDS.split())


@rules_app.command("create")
def rules_create(file: FileOpt, as_json: JsonOpt = False) -> None:
    """Create a rule.

    The file holds what POST /api/v1/rules takes (ref, trigger, action_ref, criteria,
    parameters, ...; docs/rules.md)."""
    definition = load_definition(file)
    made = ask(lambda c: c.create_rule(definition))
    said(made, as_json, f"rule {made.ref} created")


@rules_app.command("update")
def rules_update(ref: RuleRef, file: FileOpt, as_json: JsonOpt = False) -> None:
    """Replace a rule's definition with the file's (PUT; the ref defaults to REF)."""
    definition = load_definition(file, ref=ref)
    changed = ask(lambda c: c.update_rule(ref, definition))
    said(changed, as_json, f"rule {changed.ref} updated")


@rules_app.command("enable")
def rules_enable(ref: RuleRef, as_json: JsonOpt = False) -> None:
    """Enable a rule: its trigger's events run its action again."""
    switched("rule", ask(lambda c: c.enable_rule(ref, True)), as_json)


@rules_app.command("disable")
def rules_disable(ref: RuleRef, as_json: JsonOpt = False) -> None:
    """Disable a rule: its trigger's events no longer run its action."""
    switched("rule", ask(lambda c: c.enable_rule(ref, False)), as_json)


@rules_app.command("delete")
def rules_delete(ref: RuleRef, as_json: JsonOpt = False) -> None:
    """Delete a rule (its enforcements stay)."""
    ask(lambda c: c.delete_rule(ref))
    deleted("rule", ref, as_json)


# --- enforcements -----------------------------------------------------------------------


def show_enforcements(found: list[Enforcement]) -> None:
    output.table(
        ("ID", "RULE", "TRIGGER", "STATUS", "EXECUTIONS", "CREATED"),
        (
            (
                str(e.id),
                e.rule_ref or "-",
                e.trigger_ref or "-",
                output.status(e.status),
                ",".join(str(i) for i in e.executions) or "-",
                output.when(e.created),
            )
            for e in found
        ),
    )


@enforcements_app.command("list")
def enforcements_list(
    rule: Annotated[str | None, typer.Option(help="Only this rule's firings")] = None,
    status: Annotated[str | None, typer.Option(help="succeeded or failed")] = None,
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=1, max=100, help="At most this many")
    ] = 20,
    page: Annotated[int, typer.Option(min=1, help="The page of --limit of them")] = 1,
    as_json: JsonOpt = False,
) -> None:
    """Rule firings, newest first: the rule, what it ran, and how that went."""
    found = ask(lambda c: c.list_enforcements(rule=rule, status=status, page=page, per_page=limit))
    output.show(found.items, as_json, lambda: show_enforcements(found.items))


@enforcements_app.command("show")
def enforcements_show(
    enforcement_id: Annotated[int, typer.Argument(metavar="ID", help="Enforcement id")],
    as_json: JsonOpt = False,
) -> None:
    """One firing of a rule: the event's payload, its outcome, the executions it made."""
    output.record(
        ask(lambda c: c.get_enforcement(enforcement_id)), as_json, ENFORCEMENT_FIELDS.split()
    )
