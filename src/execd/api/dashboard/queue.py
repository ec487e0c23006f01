"""The dashboard's queue: what waits and what runs, and the workers."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from execd.api.dashboard.pages import page, render
from execd.api.dashboard.session import PREFIX, SignedIn, runtime_of
from execd.domain.executions import ExecutionFilter, Page
from execd.domain.states import Status

router = APIRouter(prefix=PREFIX, include_in_schema=False)


@router.get("/queue")
async def queue(request: Request, signed: SignedIn, fragment: str = "") -> HTMLResponse:
    """What waits (by priority, with its place and likely start), what runs, the
    workers that run it, and the devices they serve to flows."""
    runtime = runtime_of(request)
    waiting = await runtime.jobs.queue(signed.caller, limit=100)
    running, _ = await runtime.executions.search(
        signed.caller,
        ExecutionFilter(statuses=frozenset({Status.RUNNING, Status.CANCELING})),
        Page(1, 100),
        with_total=False,
    )
    context = {
        "waiting": waiting,
        "running": running,
        "workers": await runtime.executions.workers(signed.caller),
        "devices": await runtime.flows.devices(signed.caller),
        "now": time.time(),
    }
    if fragment == "live":
        return render(request, "_queue.html", context)
    return await page(request, signed, "queue.html", **context)
