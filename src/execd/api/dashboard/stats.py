"""The dashboard's statistics: executions ended per hour or day (completed, failed,
other), the failure rate, run-time percentiles per action, and the flows' success rate
and average duration, over a chosen window. The figures come from the same analytics
as the v1 stats API and the flow history API's execution stats."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from execd.api.dashboard.charts import Bar, bars
from execd.api.dashboard.pages import page
from execd.api.dashboard.session import PREFIX, SignedIn, runtime_of
from execd.domain.analytics import BUCKETS, FAILURES, Aggregate
from execd.domain.executions import ExecutionFilter
from execd.domain.states import Status

router = APIRouter(prefix=PREFIX, include_in_schema=False)

# The windows offered: span in seconds, and the bucket of the charts.
WINDOWS = {"24h": (86400, "hour"), "7d": (7 * 86400, "hour"), "30d": (30 * 86400, "day")}


def _label(start: float, bucket: str) -> str:
    moment = datetime.fromtimestamp(start, UTC)
    return moment.strftime("%H:00" if bucket == "hour" else "%d %b")


def _buckets(groups: list[Aggregate], since: float, until: float, width: int) -> list[Any]:
    """Every bucket of the window, those where nothing ended included."""
    found = {g.bucket: g for g in groups if g.bucket is not None}
    first = since - since % width
    return [
        (start, found.get(start) or Aggregate(None, start))
        for start in range(int(first), int(until), width)
    ]


@router.get("/stats")
async def stats(
    request: Request,
    signed: SignedIn,
    window: Annotated[str, Query(pattern="^(24h|7d|30d)$")] = "24h",
) -> HTMLResponse:
    runtime = runtime_of(request)
    span, bucket = WINDOWS[window]
    width = BUCKETS[bucket]
    until = time.time()
    # Whole buckets, the current one last: the charts' bars are alike, and the window
    # reads whole days from the daily rollups and whole hours from the hourly ones.
    start = until - until % width + width - span
    # Three reads of their own, side by side.
    flow_runs = ExecutionFilter(created_after=start, created_until=until, top_level=True)
    (since, until, by_time), (_, _, by_action), flows = await asyncio.gather(
        runtime.executions.analytics(
            signed.caller, start, until, by_action=False, bucket=bucket, durations=False
        ),
        runtime.executions.analytics(signed.caller, start, until, by_action=True, bucket=None),
        runtime.flows.stats(signed.caller, flow_runs),
    )
    series = _buckets(by_time, since, until, width)
    throughput = [
        Bar(
            _label(start, bucket),
            [
                (g.by_status.get(Status.COMPLETED, 0), "ok"),
                (g.failures, "bad"),
                (g.ended - g.by_status.get(Status.COMPLETED, 0) - g.failures, "other"),
            ],
        )
        for start, g in series
    ]
    failure = [
        Bar(_label(start, bucket), [(round((g.failure_rate or 0) * 100, 1), "bad")])
        for start, g in series
    ]
    actions = sorted(by_action, key=lambda g: -g.ended)[:30]
    runtimes = []
    for g in actions:
        p50, p95, p99 = (p or 0.0 for p in g.percentiles())
        tip = f"{g.action_ref}: p50 {p50:.3g} s, p95 {p95:.3g} s, p99 {p99:.3g} s"
        parts = [(p50, "p50"), (max(0.0, p95 - p50), "p95"), (max(0.0, p99 - p95), "p99")]
        runtimes.append(Bar(g.action_ref or "", parts, tip))
    finished = flows.by_status.get(Status.COMPLETED, 0)
    failed = sum(n for s, n in flows.by_status.items() if s in FAILURES)
    per = "hour" if bucket == "hour" else "day"
    return await page(
        request,
        signed,
        "stats.html",
        section="stats",
        window=window,
        windows=list(WINDOWS),
        since=since,
        until=until,
        actions=actions,
        throughput=bars(f"Executions ended per {per}", throughput),
        failure=bars(f"Failure rate per {per}", failure, "%", top=100),
        runtimes=bars("Run time per action: p50, p95 and p99", runtimes, " s") if runtimes else "",
        ended=sum(g.ended for _, g in series),
        flows=flows,
        flow_success=round(finished / (finished + failed) * 100, 1) if finished + failed else None,
    )
