"""/api/v1/executions: the v1 executions API's reads: the list (filtered, paged by number
or by cursor), by status, by enforcement, one execution, its history and its output."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import PlainTextResponse

from execd.api.deps import Caller, RuntimeDep
from execd.api.dialects.v1 import wire
from execd.api.dialects.v1.params import PageNumber, PerPage
from execd.api.openapi import answers, nullable, one_of, shown
from execd.api.responses import Json
from execd.domain import times
from execd.domain.errors import InvalidInput
from execd.domain.executions import MAX_ID, STREAMS, Execution, ExecutionFilter, Page
from execd.domain.states import Status, parse_status

router = APIRouter(prefix="/executions", tags=["v1 executions"])

Id = Annotated[int | None, Query(ge=1, le=MAX_ID)]


def _status(value: str) -> Status:
    try:
        return parse_status(value)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None


def _statuses(value: str | None) -> frozenset[Status] | None:
    """One status, or several separated by commas (beyond the document)."""
    if value is None:
        return None
    return frozenset(_status(part) for part in value.split(","))


async def _list(
    runtime: RuntimeDep, caller: Caller, f: ExecutionFilter, page: int, per_page: int
) -> Json:
    items, total = await runtime.executions.search(caller, f, Page(page, per_page))
    return Json(wire.page([wire.summary(e) for e in items], page, per_page, total or 0))


Time = Annotated[datetime | None, Query(description="ISO 8601; UTC when no zone is given")]
_ONE_STATUS = "|".join(s.value for s in Status)
# One status, or several separated by commas (beyond the document).
STATUSES = nullable({"type": "string", "pattern": f"^({_ONE_STATUS})(,({_ONE_STATUS}))*$"})
StatusList = Annotated[
    str | None, Query(description="One status, or several separated by commas"), shown(STATUSES)
]


CURSOR = "e"  # executions' cursors: e and the id the next page starts below


def _next_cursor(items: list[Execution], size: int) -> str | None:
    return wire.cursor_below(items[-1].id, CURSOR) if len(items) == size else None


def execution_filter(
    status: str | None,
    action_ref: str | None,
    pack_name: str | None,
    result_contains: str | None,
    enforcement: int | None,
    parent: int | None,
    created_after: datetime | None,
    created_before: datetime | None,
    updated_after: datetime | None,
    updated_before: datetime | None,
) -> ExecutionFilter:
    """What the list, the export and the bulk actions select."""
    return ExecutionFilter(
        statuses=_statuses(status),
        action_ref=action_ref,
        pack=pack_name,
        result_contains=result_contains or None,
        enforcement_id=enforcement,
        parent_id=parent,
        created_after=times.seconds(created_after),
        created_before=times.seconds(created_before),
        updated_after=times.seconds(updated_after),
        updated_before=times.seconds(updated_before),
    )


async def listed(
    status: StatusList = None,
    action_ref: str | None = None,
    pack_name: str | None = None,
    result_contains: str | None = None,
    enforcement: Id = None,
    parent: Id = None,
    created_after: Time = None,
    created_before: Time = None,
    updated_after: Time = None,
    updated_before: Time = None,
) -> ExecutionFilter:
    """The list filters, shared by the list and the export."""
    return execution_filter(
        status, action_ref, pack_name, result_contains, enforcement, parent,
        created_after, created_before, updated_after, updated_before,
    )  # fmt: skip


Listed = Annotated[ExecutionFilter, Depends(listed)]


@router.get(
    "", summary="List executions, newest first", responses=answers(wire.paged(wire.SUMMARY), 200)
)
async def list_executions(
    runtime: RuntimeDep,
    caller: Caller,
    f: Listed,
    per_page: PerPage,
    page: PageNumber = 1,
    cursor: Annotated[str | None, Query(), shown(nullable(wire.cursor_schema(CURSOR)))] = None,
    include_total: bool = True,
) -> Json:
    below = wire.below(cursor, CURSOR)
    if below is not None:  # keyset paging: as fast on page 10,000 as on page 1
        f = replace(f, below_id=below)
        page = 1
    items, total = await runtime.executions.search(
        caller, f, Page(page, per_page), with_total=include_total and below is None
    )
    body = wire.page([wire.summary(e) for e in items], page, per_page, total or 0)
    if total is None:
        body["pagination"]["total_items"] = None
        body["pagination"]["total_pages"] = None
    if cursor is not None:  # cursor paging was asked for (cursor= to start)
        body["pagination"]["next_cursor"] = _next_cursor(items, per_page)
    return Json(body)


@router.get(
    "/status/{status}",
    summary="List executions in one status",
    responses=answers(wire.paged(wire.SUMMARY), 200),
)
async def by_status(
    runtime: RuntimeDep,
    caller: Caller,
    status: Annotated[str, shown(one_of(s.value for s in Status))],
    per_page: PerPage,
    page: PageNumber = 1,
) -> Json:
    f = ExecutionFilter(statuses=frozenset({_status(status)}))
    return await _list(runtime, caller, f, page, per_page)


@router.get(
    "/enforcement/{enforcement_id:id}",
    summary="Executions of one rule enforcement",
    responses=answers(wire.paged(wire.SUMMARY), 200),
)
async def by_enforcement(
    runtime: RuntimeDep,
    caller: Caller,
    enforcement_id: Annotated[int, Path(le=MAX_ID)],
    per_page: PerPage,
    page: PageNumber = 1,
) -> Json:
    return await _list(
        runtime, caller, ExecutionFilter(enforcement_id=enforcement_id), page, per_page
    )


@router.get(
    "/{execution_id:id}", summary="One execution", responses=answers(wire.data(wire.EXECUTION), 200)
)
async def get_execution(runtime: RuntimeDep, caller: Caller, execution_id: int) -> Json:
    return Json({"data": wire.execution(await runtime.executions.get(caller, execution_id))})


@router.get(
    "/{execution_id:id}/history",
    summary="Every status change, oldest first",
    responses=answers(wire.data({"type": "array", "items": wire.EVENT}), 200),
)
async def history(runtime: RuntimeDep, caller: Caller, execution_id: int) -> Json:
    events = await runtime.executions.history(caller, execution_id)
    return Json({"data": [wire.event(e) for e in events]})


@router.get(
    "/{execution_id:id}/output/{stream}",
    summary="What the execution wrote to stdout or stderr",
    response_class=PlainTextResponse,
)
async def output(
    runtime: RuntimeDep,
    caller: Caller,
    execution_id: int,
    stream: Annotated[str, shown(one_of(STREAMS))],
) -> PlainTextResponse:
    data = await runtime.executions.output(caller, execution_id, stream)
    return PlainTextResponse(data.decode("utf-8", errors="replace"))
