"""The commands that drive a server: each is a thin layer over the SDK (execd.client).

Every command prints a table or a record for people and, with `--json`, the SDK's
model as JSON for scripts. Errors are one line on stderr and an exit code
(output.Exit); nothing prints a traceback for a server that is down, a bad token or an
unknown id.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import logging
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

from execd.cli import output
from execd.cli.app import CLIENT, app, executions_app, options, system_app
from execd.cli.output import Exit, out
from execd.client import (
    ApiError,
    AsyncClient,
    BatchItem,
    Client,
    ClientError,
    Execution,
)
from execd.client.operations import ExecutionFilters

BULK_LIMIT = 1000  # what the server cancels in one request
BATCH_LIMIT = 1000  # what the server takes in one batch
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
StatusOpt = Annotated[
    list[str] | None,
    typer.Option("--status", "-s", metavar="STATUS", help="Only these statuses (repeatable)"),
]
ActionOpt = Annotated[str | None, typer.Option("--action", "-a", help="Only this action ref")]
PackOpt = Annotated[str | None, typer.Option("--pack", help="Only actions of this pack")]
SinceOpt = Annotated[
    datetime | None, typer.Option("--since", help="Created at or after (ISO 8601, UTC if no zone)")
]
UntilOpt = Annotated[
    datetime | None, typer.Option("--until", help="Created before (ISO 8601, UTC if no zone)")
]


def _say_waits() -> None:
    """What the client waits for (a read the server could not answer for now, sent
    again) on stderr, one line each."""
    notes = logging.getLogger("execd.client")
    if not notes.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("execd: %(message)s"))
        notes.addHandler(handler)
        notes.propagate = False


@contextmanager
def connect() -> Iterator[Client]:
    _say_waits()
    with output.errors(), Client(options.url, options.token) as client:
        yield client


def run_async(work: Callable[[AsyncClient], Any]) -> Any:
    _say_waits()

    async def main() -> Any:
        async with AsyncClient(options.url, options.token) as client:
            return await work(client)

    with output.errors():
        return asyncio.run(main())


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


# --- following one execution --------------------------------------------------------


async def follow(
    client: AsyncClient,
    execution_id: int,
    *,
    log: bool,
    wait_timeout: float | None,
    log_to_stderr: bool = False,
) -> Execution:
    """Show an execution's progress until it ends: a bar on a terminal, a line per
    change otherwise (both on stderr); with `log`, its stdout as it is written (to
    stdout, or to stderr when stdout is for JSON)."""
    started = time.monotonic()
    bar = None if output.plain() else output.execution_bar()
    task = None

    def report(execution: Execution) -> None:
        nonlocal task
        if bar is None:
            output.err.print(f"execution {execution.id}: {output.progress_line(execution)}")
            return
        p = execution.progress
        percent = p.percent if p is not None else None
        if execution.status == "completed":
            percent = 100
        fields: dict[str, Any] = {
            "status": execution.status,
            "stage": (p.stage or "") if p is not None else "",
            "eta": output.eta(execution, time.monotonic() - started),
        }
        total = 100 if percent is not None else None
        if task is None:
            task = bar.add_task("", total=total, **fields)
        bar.update(task, completed=percent or 0, total=total, **fields)

    async def stream_log() -> None:
        target = sys.stderr if log_to_stderr else sys.stdout
        async for chunk in client.follow_output(execution_id):
            target.write(chunk)
            target.flush()

    async def wait() -> Execution:
        return await client.wait(execution_id, on_progress=report, timeout=wait_timeout)

    if bar is not None:
        bar.start()
    try:
        if log:
            done, _ = await asyncio.gather(wait(), stream_log())
        else:
            done = await wait()
        if bar is not None:
            report(done)  # the bar ends showing how it ended, not the last report before
    finally:
        if bar is not None:
            bar.stop()
    return done


def summary(execution: Execution) -> None:
    output.fields(
        [
            ("id", str(execution.id)),
            ("action", execution.action_ref),
            ("status", output.status(execution.status)),
            ("duration", output.duration(execution)),
            ("result", output.cell(execution.result)),
            *([("error", execution.error)] if execution.error else []),
        ]
    )


def finish(execution: Execution, as_json: bool) -> None:
    output.show(execution, as_json, lambda: summary(execution))
    raise typer.Exit(output.BY_STATUS.get(execution.status, Exit.OK))


def watch_one(execution_id: int, *, log: bool, wait_timeout: float | None, as_json: bool) -> None:
    try:
        done = run_async(
            lambda c: follow(
                c, execution_id, log=log, wait_timeout=wait_timeout, log_to_stderr=as_json
            )
        )
    except KeyboardInterrupt:
        output.err.print(
            f"stopped watching; execution {execution_id} goes on "
            f"(`execd executions cancel {execution_id}` stops it)"
        )
        raise typer.Exit(130) from None
    finish(done, as_json)


WaitTimeoutOpt = Annotated[
    float | None,
    typer.Option(help="Give up waiting after this many seconds (exit 8); the execution goes on"),
]


@app.command(rich_help_panel=CLIENT)
def run(
    action_ref: Annotated[str, typer.Argument(help="The action to run, e.g. core.shell")],
    param: ParamOpt = None,
    wait: Annotated[
        bool, typer.Option("--wait", "-w", help="Wait for it, with a progress bar")
    ] = False,
    follow_log: Annotated[
        bool, typer.Option("--follow", "-f", help="Print its output as it runs (implies --wait)")
    ] = False,
    priority: Annotated[str | None, typer.Option(help="low, normal, high or critical")] = None,
    timeout: Annotated[float | None, typer.Option(help="Its time limit in seconds")] = None,
    delay: Annotated[
        float | None, typer.Option(help="Start no sooner than this many seconds")
    ] = None,
    idempotency_key: Annotated[
        str | None, typer.Option(help="Submitting twice with one key runs it once")
    ] = None,
    wait_timeout: WaitTimeoutOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Run an action.

    With --wait, the exit code tells how it ended: 0 completed, 1 failed, 3 timeout,
    4 cancelled, 5 abandoned."""
    parameters = parse_params(param)
    with connect() as client:
        execution = client.execute(
            action_ref,
            parameters,
            priority=priority,
            timeout=timeout,
            delay=delay,
            idempotency_key=idempotency_key,
        )
    if not (wait or follow_log):
        output.show(
            execution,
            as_json,
            lambda: out.print(
                f"execution {execution.id} {execution.status} ({execution.action_ref})"
            ),
        )
        return
    if not as_json:
        output.err.print(f"execution {execution.id} submitted ({execution.action_ref})")
    watch_one(execution.id, log=follow_log, wait_timeout=wait_timeout, as_json=as_json)


def read_input(path: Path) -> str:
    """A file's text, or stdin's for `-`; exit 2 when it cannot be read."""
    try:
        return sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
    except OSError as exc:
        output.fail(f"cannot read {path}: {exc.strerror}", Exit.USAGE)
    except UnicodeDecodeError:
        output.fail(f"{path} is not UTF-8 text", Exit.USAGE)


def load_executions(path: Path) -> list[dict[str, Any]]:
    """The executions of a file: a JSON array, or JSON lines (blank lines skipped)."""
    text = read_input(path)
    if text.lstrip().startswith("["):
        items = parse_json(text, str(path))
    else:
        lines = enumerate(text.splitlines(), 1)
        items = [parse_json(line, str(path), n) for n, line in lines if line.strip()]
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            output.fail(
                f"{path}: execution {index} is not a JSON object (action_ref, parameters, ...)",
                Exit.USAGE,
            )
    return list(items)


def parse_json(text: str, where: str, line: int = 1) -> Any:
    """JSON text (`where` names it; `line`: the file's line it starts on); exit 2 when
    it is not JSON, with one line saying where."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        at = f"line {line + exc.lineno - 1}, column {exc.colno}: {exc.msg}"
        output.fail(f"{where}: not valid JSON ({at})", Exit.USAGE)


@app.command("run-batch", rich_help_panel=CLIENT)
def run_batch(
    file: Annotated[
        Path,
        typer.Argument(
            help="JSON lines or a JSON array of executions, each as POST "
            "/api/v1/executions/execute takes it (action_ref, parameters, priority, timeout, "
            "delay, not_before, idempotency_key, parent); - for stdin"
        ),
    ],
    atomic: Annotated[
        bool,
        typer.Option(
            "--atomic/--no-atomic",
            help="A batch is stored whole or not at all, and a refused one stops the "
            "command; --no-atomic stores the valid executions and reports the others",
        ),
    ] = True,
    batch_size: Annotated[
        int, typer.Option(min=1, max=BATCH_LIMIT, help="Executions per request (transaction)")
    ] = BATCH_LIMIT,
    as_json: JsonOpt = False,
) -> None:
    """Submit many executions from a file.

    One request, and one transaction, per --batch-size of them. Prints each one's id,
    or why it was refused (ITEM counts the file's executions from 0). Exit code 6 if
    any was refused; with --atomic, the batches before a refused one are stored and
    nothing from it on is."""
    executions = load_executions(file)
    answered: list[BatchItem] = []
    refusal: ApiError | None = None
    with connect() as client:
        for start in range(0, len(executions), batch_size):
            try:
                batch = client.execute_batch(executions[start : start + batch_size], atomic=atomic)
            except ApiError as exc:
                if not isinstance(exc.body, dict) or "errors" not in exc.body:
                    raise
                refusal = exc
                answered += [
                    BatchItem.model_validate({**e, "index": start + e["index"]})
                    for e in exc.body["errors"]
                ]
                break
            answered += [i.model_copy(update={"index": start + i.index}) for i in batch.items]
    created = sum(1 for i in answered if i.status == 201)
    replayed = sum(1 for i in answered if i.status == 200)
    refused = len(answered) - created - replayed
    summary = {
        "total": len(executions),
        "created": created,
        "replayed": replayed,
        "refused": refused,
        "not_stored": len(executions) - created - replayed,
    }

    def render() -> None:
        output.table(
            ("ITEM", "ID", "RESULT"),
            (
                (
                    str(i.index),
                    str(i.execution.id) if i.execution else "-",
                    {201: "created", 200: "replayed"}.get(i.status, f"{i.status}: {i.error}"),
                )
                for i in answered
            ),
        )

    output.show({"data": answered, "summary": summary}, as_json, render)
    if refusal is not None:
        # The server's message says what happened to the refused batch; the batches
        # before it were stored.
        before = created + replayed
        output.fail(
            f"{refusal.message} ({refusal.status})"
            + (f"; the {before} executions of the batches before it were stored" if before else "")
        )
    if refused:
        output.fail(f"{refused} of the {len(executions)} executions were refused")


# --- executions -------------------------------------------------------------------------


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


# --- the system ---------------------------------------------------------------------------


@app.command(rich_help_panel=CLIENT)
def stats(
    group_by: Annotated[str | None, typer.Option(help="action: one row per action")] = None,
    bucket: Annotated[str | None, typer.Option(help="hour or day: one row per bucket")] = None,
    since: Annotated[
        datetime | None, typer.Option(help="Window start (default: a day ago)")
    ] = None,
    until: Annotated[datetime | None, typer.Option(help="Window end (default: now)")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Counts of executions by status, and how they went.

    With --group-by, --bucket, --since or --until, also what ended in the window:
    failure rate, throughput, run time percentiles."""
    with connect() as client:
        figures = client.stats(group_by=group_by, bucket=bucket, since=since, until=until)

    def render() -> None:
        names = (
            "total",
            "completed",
            "failed",
            "timeout",
            "cancelled",
            "abandoned",
            "running",
            "pending",
        )
        output.table([n.upper() for n in names], [[str(getattr(figures, n)) for n in names]])
        if figures.groups is not None:
            out.print()
            output.table(
                (
                    "ACTION",
                    "BUCKET",
                    "ENDED",
                    "FAILURE RATE",
                    "PER HOUR",
                    "P50 MS",
                    "P95 MS",
                    "P99 MS",
                ),
                (
                    (
                        g.get("action_ref", "*"),
                        g.get("bucket", "*"),
                        str(g["ended"]),
                        f"{g['failure_rate'] * 100:.1f}%"
                        if g.get("failure_rate") is not None
                        else "-",
                        str(g["throughput_per_hour"]),
                        *(output.cell(g["duration_ms"].get(k)) for k in ("p50", "p95", "p99")),
                    )
                    for g in figures.groups
                ),
            )

    output.show(figures, as_json, render)


@app.command(rich_help_panel=CLIENT)
def queue(as_json: JsonOpt = False) -> None:
    """What waits for a worker in this project, in queue order, and free capacity."""
    with connect() as client:
        waiting = client.queue()

    def render() -> None:
        c = waiting.capacity
        workers = c.get("workers")
        out.print(
            f"{waiting.total_queued} queued; {workers} worker{'' if workers == 1 else 's'}, "
            f"{c.get('busySlots')}/{c.get('totalSlots')} slots busy"
        )
        if waiting.queued_jobs:
            keys = ("queuePosition", "jobId", "jobName", "priority", "status", "dateSubmitted")
            output.table(
                ("POS", "ID", "NAME", "PRIORITY", "STATUS", "SUBMITTED", "ESTIMATED START"),
                ([j.get(k) for k in (*keys, "estimatedStartTime")] for j in waiting.queued_jobs),
            )

    output.show(waiting, as_json, render)


@app.command(rich_help_panel=CLIENT)
def workers(as_json: JsonOpt = False) -> None:
    """The worker nodes and how busy they are."""
    with connect() as client:
        nodes = client.workers()
    output.listing(
        nodes,
        as_json,
        {
            "ID": lambda w: w.id,
            "NAME": lambda w: w.name,
            "STATE": lambda w: w.state,
            "ACTIVE": lambda w: w.active,
            "CAPACITY": lambda w: w.capacity,
            "LABELS": lambda w: ",".join(w.labels) or "-",
            "DEVICES": lambda w: ",".join(w.devices) or "-",
            "SANDBOX": lambda w: w.sandbox or "-",
            "LAST HEARTBEAT": lambda w: w.last_heartbeat,
        },
    )


@system_app.command("status")
def system_status(as_json: JsonOpt = False) -> None:
    """Health of the system: workers, the shared queue, recent performance."""
    with connect() as client:
        health = client.health()
        status = client.system_status()

    def render() -> None:
        queue = status.get("queueStatistics") or {}
        nodes = status.get("executionNodes") or []
        output.fields(
            [
                ("server", f"{client.url} ({health.get('status', '?')})"),
                ("system", output.cell(status.get("systemStatus"))),
                ("workers", str(len(nodes))),
                ("sandbox", output.cell(status.get("sandbox"))),
                ("queued", output.cell(queue.get("totalQueuedJobs"))),
                ("estimated processing", output.cell(queue.get("estimatedProcessingTime"))),
                *(("warning", str(w)) for w in status.get("warnings") or []),
            ]
        )

    output.show({"health": health, **status}, as_json, render)


__all__ = ["ClientError", "app"]
