"""The commands about the system rather than one execution: counts and how executions
went, the queue, the workers and the system's health."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer

from execd.cli import output
from execd.cli.app import CLIENT, app, system_app
from execd.cli.common_options import JsonOpt
from execd.cli.connection import connect
from execd.cli.output import out


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
