"""`execd executions ...`: the project's executions listed, inspected, followed,
cancelled, retried, downloaded and exported."""

from __future__ import annotations

import contextlib
import csv
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from execd.cli import output
from execd.cli.app import executions_app
from execd.cli.common_options import JsonOpt, PackOpt, ParamOpt, parse_params
from execd.cli.connection import connect
from execd.cli.following import WaitTimeoutOpt, watch_one
from execd.cli.output import Exit, out
from execd.client.operations import ExecutionFilters

BULK_LIMIT = 1000  # what the server cancels in one request
StatusOpt = Annotated[
    list[str] | None,
    typer.Option("--status", "-s", metavar="STATUS", help="Only these statuses (repeatable)"),
]
ActionOpt = Annotated[str | None, typer.Option("--action", "-a", help="Only this action ref")]
SinceOpt = Annotated[
    datetime | None, typer.Option("--since", help="Created at or after (ISO 8601, UTC if no zone)")
]
UntilOpt = Annotated[
    datetime | None, typer.Option("--until", help="Created before (ISO 8601, UTC if no zone)")
]


def filters(
    status: list[str] | None,
    action: str | None,
    pack: str | None,
    since: datetime | None,
    until: datetime | None,
    result_contains: str | None = None,
) -> ExecutionFilters:
    """The SDK's execution filters from the options every listing command shares."""
    return ExecutionFilters(
        status=status,
        action_ref=action,
        pack=pack,
        created_after=since,
        created_before=until,
        result_contains=result_contains,
    )


@executions_app.command("list")
def executions_list(
    status: StatusOpt = None,
    action: ActionOpt = None,
    pack: PackOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    result_contains: Annotated[str | None, typer.Option(help="Text in the result")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="At most this many")] = 20,
    as_json: JsonOpt = False,
) -> None:
    """Executions, newest first (the history of the project)."""
    with connect() as client:
        found = list(
            client.iter_executions(
                **filters(status, action, pack, since, until, result_contains), limit=limit
            )
        )
    output.listing(
        found,
        as_json,
        {
            "ID": lambda e: e.id,
            "ACTION": lambda e: e.action_ref,
            "STATUS": lambda e: output.status(e.status),
            "CREATED": lambda e: e.created,
            "UPDATED": lambda e: e.updated,
        },
    )


@executions_app.command("get")
def executions_get(
    execution_id: Annotated[int, typer.Argument(help="Execution id")], as_json: JsonOpt = False
) -> None:
    """One execution in full."""
    with connect() as client:
        e = client.get_execution(execution_id)

    def render() -> None:
        p = e.progress
        output.fields(
            [
                ("id", str(e.id)),
                ("uuid", e.uuid),
                ("action", e.action_ref),
                ("status", output.status(e.status)),
                ("priority", e.priority),
                ("attempt", f"{e.attempt} of {e.max_attempts}"),
                ("parameters", output.cell(e.config)),
                ("created", output.when(e.created)),
                ("started", output.when(e.started)),
                ("ended", output.when(e.ended_at)),
                ("duration", output.duration(e)),
                ("progress", output.progress_line(e) if p is not None else "-"),
                ("exit code", output.cell(e.exit_code)),
                ("result", output.cell(e.result)),
                ("error", output.cell(e.error)),
                ("submitted by", output.cell(e.submitted_by)),
                *([("parent", str(e.parent))] if e.parent else []),
                *([("retry of", str(e.retry_of))] if e.retry_of else []),
            ]
        )

    output.show(e, as_json, render)


@executions_app.command("history")
def executions_history(
    execution_id: Annotated[int, typer.Argument(help="Execution id")], as_json: JsonOpt = False
) -> None:
    """Every status change of one execution, oldest first."""
    with connect() as client:
        changes = client.history(execution_id)
    output.listing(
        changes,
        as_json,
        {
            "AT": lambda c: c.at,
            "FROM": lambda c: c.from_status,
            "TO": lambda c: output.status(c.to_status),
            "ATTEMPT": lambda c: c.attempt,
            "MESSAGE": lambda c: c.message,
        },
    )


@executions_app.command("watch")
def executions_watch(
    execution_id: Annotated[
        int | None, typer.Argument(help="One execution (without: every event of the project)")
    ] = None,
    status: StatusOpt = None,
    action: ActionOpt = None,
    last_event_id: Annotated[
        str | None,
        typer.Option(help="Every event: start after this event id (0-0: the oldest kept)"),
    ] = None,
    wait_timeout: WaitTimeoutOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Follow one execution's progress until it ends (exit code as for `run --wait`), or
    every execution event of the project as it happens (Ctrl-C to stop)."""
    if execution_id is not None:
        watch_one(execution_id, log=False, wait_timeout=wait_timeout, as_json=as_json)
        return
    try:
        with connect() as client:
            for event in client.events(
                status=status, action_ref=action, last_event_id=last_event_id
            ):
                if as_json:
                    output.print_json_line(event)
                    continue
                line = output.status(event.status)
                if event.kind == "progress" and event.progress is not None:
                    p = event.progress
                    line += f" {p.percent:.0f}%" if p.percent is not None else ""
                    line += f" {p.stage}" if p.stage else ""
                where = f"{event.execution:>8}  {event.action_ref or '-'}"
                out.print(f"{output.when(event.at)}  {where}  {event.kind}: {line}")
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


@executions_app.command("logs")
def executions_logs(
    execution_id: Annotated[int, typer.Argument(help="Execution id")],
    follow_log: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing until the execution ends")
    ] = False,
    stderr: Annotated[bool, typer.Option("--stderr", help="Its stderr instead of stdout")] = False,
) -> None:
    """What an execution wrote (stdout, or stderr with --stderr)."""
    stream = "stderr" if stderr else "stdout"
    try:
        with connect() as client:
            if follow_log:
                for chunk in client.follow_output(execution_id, stream):
                    sys.stdout.write(chunk)
                    sys.stdout.flush()
            else:
                sys.stdout.write(client.output(execution_id, stream))
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


@executions_app.command("cancel")
def executions_cancel(
    ids: Annotated[list[int] | None, typer.Argument(metavar="ID", help="Execution ids")] = None,
    status: StatusOpt = None,
    action: ActionOpt = None,
    pack: PackOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    reason: Annotated[str | None, typer.Option(help="Why (kept in their history)")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Cancel executions, by id or by a filter (up to 1,000 at once); asks first
    unless --yes."""
    filtered = any(v for v in (status, action, pack, since, until))
    if bool(ids) == filtered:
        output.fail(
            "give execution ids or a filter (--status, --action, --pack, --since, --until)",
            Exit.USAGE,
        )
    with connect() as client:
        if ids:
            targets = list(ids)
        else:
            active = status or ["requested", "scheduling", "scheduled", "running"]
            targets = [
                e.id
                for e in client.iter_executions(
                    **filters(active, action, pack, since, until), limit=BULK_LIMIT + 1
                )
            ]
            if len(targets) > BULK_LIMIT:
                targets = targets[:BULK_LIMIT]
                output.err.print(
                    f"more than {BULK_LIMIT} match: only the newest {BULK_LIMIT} are cancelled now"
                )
        if not targets:
            output.err.print("nothing matches: nothing to cancel")
            return
        if not yes:
            shown = ", ".join(str(i) for i in targets[:10]) + (" ..." if len(targets) > 10 else "")
            confirmed: bool | None
            try:
                confirmed = typer.confirm(f"Cancel {len(targets)} execution(s): {shown}?", err=True)
            except typer.Abort:  # no answer (end of input, Ctrl-C)
                confirmed = None
            if confirmed is None or not sys.stdin.isatty():  # the answer was not echoed
                output.err.print()
            if not confirmed:
                output.fail("not confirmed: nothing was cancelled", Exit.USAGE)
        answer = client.bulk_cancel(targets, reason=reason)
    output.show(
        answer,
        as_json,
        lambda: output.table(
            ("ID", "RESULT"), ((str(r["id"]), r["result"]) for r in answer["data"])
        ),
    )
    unknown = [str(r["id"]) for r in answer["data"] if r["result"] == "not_found"]
    if unknown:
        kind = "execution" if len(unknown) == 1 else "executions"
        output.fail(f"{kind} {', '.join(unknown)} not found")


@executions_app.command("retry")
def executions_retry(
    execution_id: Annotated[int, typer.Argument(help="An ended execution")],
    param: ParamOpt = None,
    priority: Annotated[str | None, typer.Option(help="low, normal, high or critical")] = None,
    wait: Annotated[bool, typer.Option("--wait", "-w", help="Wait for the new one")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Run an ended execution again (parameters given here override the old ones)."""
    with connect() as client:
        again = client.retry(execution_id, parse_params(param), priority)
    if wait:
        watch_one(again.id, log=False, wait_timeout=None, as_json=as_json)
    output.show(
        again,
        as_json,
        lambda: out.print(f"execution {again.id} {again.status} (retry of {execution_id})"),
    )


@executions_app.command("download")
def executions_download(
    execution_id: Annotated[int, typer.Argument(help="An ended execution")],
    output_path: Annotated[
        str,
        typer.Option("--output", "-o", help="File, or directory (existing, or ending in /)"),
    ] = ".",
    as_json: JsonOpt = False,
) -> None:
    """Download an execution's ZIP result package (record, result, logs, artifacts,
    manifest)."""
    with connect() as client, output.download_bar() as bar:
        task = bar.add_task(f"execution {execution_id}", total=None)
        saved = client.download_package(
            execution_id,
            output_path,
            on_progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    size = saved.stat().st_size
    output.show(
        {"path": str(saved), "bytes": size}, as_json, lambda: out.print(f"{saved} ({size} bytes)")
    )


@executions_app.command("export")
def executions_export(
    format: Annotated[str, typer.Option("--format", help="jsonl or csv")] = "jsonl",
    output_path: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout")
    ] = None,
    status: StatusOpt = None,
    action: ActionOpt = None,
    pack: PackOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
) -> None:
    """Every matching execution, streamed: one JSON object per line, or CSV."""
    if format not in ("jsonl", "csv"):
        output.fail("--format is jsonl or csv", Exit.USAGE)
    count = 0
    with connect() as client, contextlib.ExitStack() as files:
        target = (
            files.enter_context(output_path.open("w", encoding="utf-8"))
            if output_path
            else sys.stdout
        )
        lines = client.export(format=format, **filters(status, action, pack, since, until))
        for line in lines:
            target.write(line + "\n")
            count += 1
    if output_path:
        if format == "csv":  # a field may hold a line break: count records, not lines
            with output_path.open(encoding="utf-8", newline="") as written:
                count = max(0, sum(1 for _ in csv.reader(written)) - 1)
        output.err.print(f"wrote {count} executions to {output_path}")
