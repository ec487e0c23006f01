"""Following one execution until it ends: a progress bar on a terminal (a line per
change otherwise), its log as it is written, and an exit code telling how it ended."""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Annotated, Any

import typer

from execd.cli import output
from execd.cli.connection import run_async
from execd.cli.output import Exit
from execd.client import AsyncClient, Execution

WaitTimeoutOpt = Annotated[
    float | None,
    typer.Option(help="Give up waiting after this many seconds (exit 8); the execution goes on"),
]


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
