"""The commands over a project's definitions: actions (and pack files), flows, triggers,
rules and the rules' enforcements.

Thin, like client.py: each calls the SDK and prints what it answers, a record or a
table, or with `--json` the SDK's model. A definition comes from a file (`-f`, YAML or
JSON) holding the body the v1 API (flows: the flow dialect) takes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
import yaml

from execd.cli import output
from execd.cli.app import actions_app, enforcements_app, flows_app, rules_app, triggers_app
from execd.cli.client import (
    JsonOpt,
    PackOpt,
    ParamOpt,
    connect,
    parse_json,
    parse_params,
    read_input,
)
from execd.cli.output import Exit, out
from execd.client import (
    Action,
    Client,
    Enforcement,
    Flow,
    FlowExecution,
    Rule,
    Trigger,
)
from execd.client.operations import PartlyApplied

T = TypeVar("T")
FileOpt = Annotated[
    Path,
    typer.Option(
        "--file", "-f", help="The definition, as the API takes it: YAML or JSON; - for stdin"
    ),
]
ActionRef = Annotated[str, typer.Argument(metavar="REF", help="The action's ref")]
FlowArg = Annotated[str, typer.Argument(metavar="FLOW", help="The flow's id or name")]
TriggerRef = Annotated[str, typer.Argument(metavar="REF", help="The trigger's ref")]
RuleRef = Annotated[str, typer.Argument(metavar="REF", help="The rule's ref")]
# What `show` prints of each (--json: everything).
ACTION_FIELDS = "ref runner entry_point parameters timeout retry enabled builtin description"
TRIGGER_FIELDS = "ref type config enabled next_fire webhook_url has_secret description"
RULE_FIELDS = "ref trigger criteria action_ref parameters enabled description"
ENFORCEMENT_FIELDS = "id rule_ref trigger_ref trigger_type status executions payload error created"


class _PackLoader(yaml.SafeLoader):
    """YAML without its implicit dates: `2024-01-01` stays the text it is in JSON."""


_PackLoader.yaml_implicit_resolvers = {
    first: [r for r in resolvers if r[0] != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_yaml(path: Path) -> Any:
    """A YAML (or JSON, which is YAML) file, or stdin for `-`; exit 2 when it is not."""
    text = read_input(path)
    try:
        return yaml.load(text, Loader=_PackLoader)
    except yaml.YAMLError as exc:
        output.fail(f"{path}: not valid YAML ({yaml_problem(exc)})", Exit.USAGE)


def yaml_problem(exc: yaml.YAMLError) -> str:
    """What PyYAML says is wrong, on one line: where (line and column, from 1), then what."""
    if not isinstance(exc, yaml.MarkedYAMLError):
        return " ".join(str(exc).split())
    what = ", ".join(filter(None, (exc.context, exc.problem))) or "invalid"
    mark, problem = exc.context_mark or exc.problem_mark, exc.problem_mark
    if mark is None:
        return what
    if problem is not None and problem.line != mark.line:
        what += f" on line {problem.line + 1}"
    return f"line {mark.line + 1}, column {mark.column + 1}: {what}"


def load_definition(path: Path, **defaults: str) -> dict[str, Any]:
    """One definition from a file: a mapping of the API's fields (`defaults` for those
    it leaves out)."""
    document = load_yaml(path)
    if not isinstance(document, dict):
        output.fail(f"{path} does not hold a definition (a mapping of fields)", Exit.USAGE)
    return {**defaults, **document}


def ask(call: Callable[[Client], T]) -> T:
    """What one SDK call answers (errors as output.errors reports them)."""
    with connect() as client:
        return call(client)


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


# --- actions and pack files --------------------------------------------------------------


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


# --- flows ------------------------------------------------------------------------------


@flows_app.command("list")
def flows_list(as_json: JsonOpt = False) -> None:
    """The project's flows."""
    found = ask(lambda c: c.list_flows())
    output.listing(
        found,
        as_json,
        {
            "ID": lambda f: f.id,
            "NAME": lambda f: f.name,
            "STEPS": lambda f: len(f.steps),
            "DESCRIPTION": lambda f: f.description or "",
        },
    )


def show_flow(flow: Flow) -> None:
    output.fields(
        [
            ("id", flow.id),
            ("name", flow.name),
            ("description", output.cell(flow.description)),
            ("parameters", output.cell(flow.parameters)),
        ]
    )
    out.print()
    output.table(
        ("STEP", "NAME", "RUNS", "PARAMETERS"),
        (
            (
                str(n),
                s.get("name") or "-",
                s.get("action") or (f"flow {s['flowId']}" if s.get("flowId") else "-"),
                output.cell(s.get("parameters") or {}),
            )
            for n, s in enumerate(flow.steps, 1)
        ),
    )


@flows_app.command("show")
def flows_show(flow: FlowArg, as_json: JsonOpt = False) -> None:
    """One flow: its parameters and steps."""
    found = ask(lambda c: c.get_flow(flow))
    output.show(found, as_json, lambda: show_flow(found))


@flows_app.command("create")
def flows_create(file: FileOpt, as_json: JsonOpt = False) -> None:
    """Define a flow.

    The file holds what POST /api/flows takes (name, description, parameters, steps;
    docs/flows.md). Flows have no enabled state: delete one to stop it being run."""
    definition = load_definition(file)
    made = ask(lambda c: c.create_flow(definition))
    said(made, as_json, f"flow {made.name} created: {made.id}")


@flows_app.command("update")
def flows_update(flow: FlowArg, file: FileOpt, as_json: JsonOpt = False) -> None:
    """Replace a flow's definition with the file's (PUT /api/flows/ID)."""
    definition = load_definition(file)
    with connect() as client:
        changed = client.update_flow(client.get_flow(flow).id, definition)
    said(changed, as_json, f"flow {changed.name} updated: {changed.id}")


@flows_app.command("delete")
def flows_delete(flow: FlowArg, as_json: JsonOpt = False) -> None:
    """Delete a flow (its runs stay in the history)."""
    with connect() as client:
        client.delete_flow(client.get_flow(flow).id)
    deleted("flow", flow, as_json)


@flows_app.command("run")
def flows_run(
    flow: FlowArg,
    param: ParamOpt = None,
    device: Annotated[str | None, typer.Option(help="Run on this device's worker")] = None,
    priority: Annotated[str | None, typer.Option(help="low, normal, high or critical")] = None,
    wait: Annotated[bool, typer.Option("--wait", "-w", help="Wait until it ends")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Run a flow.

    With --wait, exit 0 when it PASSED, 1 FAILED, 4 CANCELLED."""
    with connect() as client:
        started = client.run_flow(flow, parse_params(param), device_id=device, priority=priority)
        if not wait:
            said(started, as_json, f"flow execution {started.id} {started.status}")
            return

        def report(e: FlowExecution) -> None:
            s = e.step_summary or {}
            done = sum(int(s.get(k) or 0) for k in ("passed", "failed", "skipped"))
            output.err.print(
                f"flow execution {e.id}: {e.status} ({done}/{s.get('total', '?')} steps)"
            )

        ended = client.wait_flow(started.id, on_progress=report)

    def render() -> None:
        output.table(
            ("STEP", "ACTION", "STATUS", "DURATION"),
            (
                (
                    str(s.get("sequenceNumber")),
                    s.get("action") or "-",
                    output.status(s.get("status")),
                    s.get("durationFormatted") or "-",
                )
                for s in ended.steps
            ),
        )
        out.print("flow execution", ended.id, output.status(ended.status))

    output.show(ended, as_json, render)
    raise typer.Exit(output.FLOW_BY_STATUS.get(ended.status, Exit.OK))


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
