"""The dashboard's executions: a live, filtered list, and one execution (status,
progress, history, steps, output, files; cancel and retry)."""

from __future__ import annotations

import asyncio
import mimetypes
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import quote, urlencode

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse

from execd.api.dashboard.pages import page, render
from execd.api.dashboard.session import PREFIX, Posted, Signed, SignedIn, runtime_of
from execd.api.responses import Frame, file_chunks, sse_response
from execd.domain.access import Principal
from execd.domain.errors import InvalidInput, NotFound
from execd.domain.executions import MAX_ID, STREAMS, Execution, ExecutionFilter, Page
from execd.domain.flows import latest_attempts, numbered_steps, step_name
from execd.domain.states import PENDING, TERMINAL, parse_status
from execd.engine.streams import Done, Output, Reset

router = APIRouter(prefix=PREFIX, include_in_schema=False)
PER_PAGE = 50
SEARCHED = 20_000  # executions a search for text in the result reads per page


@dataclass(frozen=True)
class Node:
    name: str
    execution: Execution | None  # None: a step that has not run
    children: list[Node]


@router.get("/")
async def home() -> RedirectResponse:
    return RedirectResponse(f"{PREFIX}/executions", status_code=303)


def _when(value: str | None, name: str) -> float | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"{name}: expected a date and time such as 2026-12-04T10:00") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _filters(
    status: list[str], action: str, after: str, before: str, result: str, below: int | None
) -> ExecutionFilter:
    try:
        statuses = frozenset(parse_status(s) for s in status if s) or None
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    return ExecutionFilter(
        statuses=statuses,
        action_ref=action.strip() or None,
        result_contains=result or None,
        created_after=_when(after, "From"),
        created_before=_when(before, "To"),
        below_id=below,
    )


Text = Annotated[str, Query(max_length=300)]


@router.get("/executions")
async def executions(
    request: Request,
    signed: SignedIn,
    status: Annotated[list[str], Query(max_length=20)] = [],  # noqa: B006
    action: Text = "",
    after: Annotated[str, Query(max_length=40)] = "",
    before: Annotated[str, Query(max_length=40)] = "",
    result: Text = "",
    below: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    fragment: str = "",
) -> HTMLResponse:
    runtime = runtime_of(request)
    f = _filters(status, action, after, before, result, below)
    searched = None
    if result:
        # Text in the result has no index: a page reads at most SEARCHED executions,
        # and says where it stopped so the search can go on from there.
        searched = await runtime.executions.search_window(signed.caller, f, SEARCHED)
        f = replace(f, lowest_id=searched)
    items, _ = await runtime.executions.search(
        signed.caller, f, Page(1, PER_PAGE), with_total=False
    )
    query = {"status": status, "action": action, "after": after, "before": before}
    query["result"] = result
    kept = {k: v for k, v in query.items() if v}
    paged = {"below": below} if below else {}
    more = search_on = None
    if len(items) == PER_PAGE:
        more = "?" + urlencode({**kept, "below": items[-1].id}, doseq=True)
    elif searched is not None:
        search_on = "?" + urlencode({**kept, "below": searched}, doseq=True)
    context = {
        "items": items,
        "search_on": search_on,
        "searched": SEARCHED,
        "now": time.time(),
        "filters": {**query, "status": set(status)},
        "more": more,
        "first": "?" + urlencode(kept, doseq=True),
        "paged": below is not None,
        "live": f"{PREFIX}/executions?" + urlencode({**kept, **paged, "fragment": "rows"}, True),
    }
    if fragment == "rows":
        return render(request, "_rows.html", context)
    return await page(request, signed, "executions.html", **context)


async def _execution(request: Request, signed: Signed, execution_id: int) -> Execution:
    runtime = runtime_of(request)
    return await runtime.executions.get(signed.caller, execution_id)


@router.get("/executions/{execution_id}")
async def execution(
    request: Request,
    signed: SignedIn,
    execution_id: int,
    fragment: str = "",
) -> HTMLResponse:
    runtime = runtime_of(request)
    e = await _execution(request, signed, execution_id)
    history = await runtime.executions.history(signed.caller, e.id)
    children = await _tree(runtime, signed.caller, e) if e.is_flow or e.root_id is None else []
    files = await runtime.executions.artifacts_of(e) if e.status in TERMINAL else []
    now = time.time()
    context = {
        "e": e,
        "history": history,
        "children": children,
        "files": files,
        "now": now,
        "eta": e.estimated_end(now),
        "ended": e.status in TERMINAL,
        "pending": e.status in PENDING,
        "streams": STREAMS,
    }
    if fragment == "live":
        extra = {"csrf": signed.session.csrf, "can_operate": signed.caller.can("operator")}
        return render(request, "_execution.html", {**context, **extra})
    return await page(request, signed, "execution.html", **context)


MAX_TREE = 500  # executions shown in one tree of steps and sub-flows


async def _tree(runtime: Any, caller: Principal, top: Execution) -> list[Node]:
    """A flow's steps as planned, each with its latest run (a step not run yet has none),
    each sub-flow with its own steps below it; or an execution's children. At most
    MAX_TREE runs in all."""
    budget = [MAX_TREE]

    async def below(parent: Execution, depth: int) -> list[Node]:
        size = min(budget[0], 200)
        found, _ = await runtime.executions.search(
            caller, ExecutionFilter(parent_id=parent.id), Page(1, size), with_total=False
        )
        budget[0] -= len(found)
        if not parent.is_flow:
            return [Node(c.action_ref, c, []) for c in sorted(found, key=lambda c: c.id)]
        latest = latest_attempts(found)
        nodes = []
        for number, step in numbered_steps(parent.plan):
            run = latest.get(number)
            steps = []
            if run is not None and run.is_flow and depth < 8 and budget[0] > 0:
                steps = await below(run, depth + 1)
            nodes.append(Node(step_name(step), run, steps))
        return nodes

    return await below(top, 0)


@router.post("/executions/{execution_id}/cancel")
async def cancel(request: Request, signed: SignedIn, form: Posted, execution_id: int) -> Response:
    runtime = runtime_of(request)
    reason = "cancelled in the dashboard"
    await runtime.executions.cancel(signed.caller, execution_id, reason=reason)
    return RedirectResponse(f"{PREFIX}/executions/{execution_id}", status_code=303)


@router.post("/executions/{execution_id}/retry")
async def retry(request: Request, signed: SignedIn, form: Posted, execution_id: int) -> Response:
    runtime = runtime_of(request)
    overrides = None
    text = form.get("parameters", "").strip()
    if text:
        try:
            overrides = orjson.loads(text)
        except orjson.JSONDecodeError:
            raise InvalidInput("The parameter overrides must be a JSON object") from None
        if not isinstance(overrides, dict):
            raise InvalidInput("The parameter overrides must be a JSON object")
    new = await runtime.executions.retry(signed.caller, execution_id, overrides)
    return RedirectResponse(f"{PREFIX}/executions/{new.id}", status_code=303)


@router.get("/executions/{execution_id}/package")
async def package(request: Request, signed: SignedIn, execution_id: int) -> StreamingResponse:
    runtime = runtime_of(request)
    e = await _execution(request, signed, execution_id)
    parts = await runtime.jobs.parts(e) if e.flow_id else None
    chunks = await runtime.executions.package(signed.caller, e, parts)
    if chunks is None:
        raise NotFound(f"Execution {e.id} has no result package until it ends")
    return StreamingResponse(
        chunks,
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="execution-{e.id}.zip"'},
    )


@router.get("/executions/{execution_id}/files/{path:path}")
async def file(
    request: Request, signed: SignedIn, execution_id: int, path: str
) -> StreamingResponse:
    runtime = runtime_of(request)
    e = await _execution(request, signed, execution_id)
    handle = await asyncio.to_thread(runtime.executions.open_artifact, e, path)
    if handle is None:
        raise NotFound(f"Execution {e.id} has no file {path!r}")
    name = path.rsplit("/", 1)[-1]

    return StreamingResponse(
        file_chunks(handle),
        media_type=mimetypes.guess_type(name)[0] or "application/octet-stream",
        headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}"},
    )


@router.get("/executions/{execution_id}/output/{stream}")
async def output(
    request: Request,
    signed: SignedIn,
    execution_id: int,
    stream: str,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> StreamingResponse:
    runtime = runtime_of(request)
    if stream not in STREAMS:
        raise NotFound(f"No stream {stream!r}")
    resume = request.headers.get("last-event-id", "")
    start = int(resume) if resume.isdigit() and len(resume) < 19 else offset
    e = await _execution(request, signed, execution_id)

    async def frames() -> AsyncIterator[Frame]:
        async for item in runtime.streams.output(signed.caller, e.id, stream, start):
            if isinstance(item, Output):
                text = item.data.decode("utf-8", errors="replace")
                yield (str(item.end), "output", {"data": text})
            elif isinstance(item, Reset):
                yield ("0", "reset", {})
            elif isinstance(item, Done):
                yield (str(item.offset), "done", {"status": item.status.value})
            else:
                yield None

    return sse_response(frames())
