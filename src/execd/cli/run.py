"""`execd run` and `execd run-batch`: submitting executions, one from the command line
or many from a file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from execd.cli import output
from execd.cli.app import CLIENT, app
from execd.cli.common_options import JsonOpt, ParamOpt, parse_params
from execd.cli.connection import connect
from execd.cli.following import WaitTimeoutOpt, watch_one
from execd.cli.input_files import parse_json, read_input
from execd.cli.output import Exit, out
from execd.client import ApiError, BatchItem

BATCH_LIMIT = 1000  # what the server takes in one batch


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
