"""`execd flows ...`: the project's flows of steps, defined and run (docs/flows.md)."""

from __future__ import annotations

from typing import Annotated

import typer

from execd.cli import output
from execd.cli.app import flows_app
from execd.cli.common_options import JsonOpt, ParamOpt, parse_params
from execd.cli.connection import ask, connect
from execd.cli.definitions import FileOpt, deleted, load_definition, said
from execd.cli.output import Exit, out
from execd.client import Flow, FlowExecution

FlowArg = Annotated[str, typer.Argument(metavar="FLOW", help="The flow's id or name")]


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
