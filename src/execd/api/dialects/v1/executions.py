"""/api/v1/executions: the seed's read API, plus execute, cancel, history and output."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query
from fastapi.responses import PlainTextResponse
from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from execd.api.deps import Caller, RuntimeDep
from execd.api.dialects.v1 import wire
from execd.api.responses import Json
from execd.domain.actions import MAX_SECONDS
from execd.domain.executions import MAX_ID, ExecutionFilter, Page
from execd.domain.states import PENDING, Priority, Status, parse_status
from execd.engine.service import SubmitOptions
from execd.errors import InvalidInput

router = APIRouter(prefix="/executions", tags=["v1 executions"])

PageNumber = Annotated[int, Query(ge=1, le=10**9, description="Page number, from 1")]
Id = Annotated[int | None, Query(ge=1, le=MAX_ID)]
PerPage = Annotated[int, Query(ge=1, le=100, description="Items per page (max 100)")]


def _status(value: str) -> Status:
    try:
        return parse_status(value)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None


async def _list(
    runtime: RuntimeDep, caller: Caller, f: ExecutionFilter, page: int, per_page: int
) -> Json:
    items, total = await runtime.executions.search(caller, f, Page(page, per_page))
    return Json(wire.page([wire.summary(e) for e in items], page, per_page, total or 0))


@router.get("", summary="List executions, newest first")
async def list_executions(
    runtime: RuntimeDep,
    caller: Caller,
    page: PageNumber = 1,
    per_page: PerPage = 20,
    status: str | None = None,
    action_ref: str | None = None,
    pack_name: str | None = None,
    result_contains: str | None = None,
    enforcement: Id = None,
    parent: Id = None,
) -> Json:
    f = ExecutionFilter(
        statuses=frozenset({_status(status)}) if status is not None else None,
        action_ref=action_ref,
        pack=pack_name,
        result_contains=result_contains or None,
        enforcement_id=enforcement,
        parent_id=parent,
    )
    return await _list(runtime, caller, f, page, per_page)


@router.get("/stats", summary="Counts by status over every visible execution")
async def stats(runtime: RuntimeDep, caller: Caller) -> Json:
    s = await runtime.executions.stats(caller)
    return Json(
        {
            "data": {
                "total": s.total,
                "completed": s.count(Status.COMPLETED),
                "failed": s.count(Status.FAILED),
                "running": s.count(Status.RUNNING, Status.CANCELING),
                "pending": s.count(*PENDING),
                "cancelled": s.count(Status.CANCELLED),
                "timeout": s.count(Status.TIMEOUT),
                "abandoned": s.count(Status.ABANDONED),
            }
        }
    )


@router.get("/status/{status}", summary="List executions in one status")
async def by_status(
    runtime: RuntimeDep, caller: Caller, status: str, page: PageNumber = 1, per_page: PerPage = 20
) -> Json:
    f = ExecutionFilter(statuses=frozenset({_status(status)}))
    return await _list(runtime, caller, f, page, per_page)


@router.get("/enforcement/{enforcement_id:int}", summary="Executions of one rule enforcement")
async def by_enforcement(
    runtime: RuntimeDep,
    caller: Caller,
    enforcement_id: Annotated[int, Path(le=MAX_ID)],
    page: PageNumber = 1,
    per_page: PerPage = 20,
) -> Json:
    return await _list(
        runtime, caller, ExecutionFilter(enforcement_id=enforcement_id), page, per_page
    )


class ExecuteBody(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    action_ref: str = Field(min_length=1, max_length=300)
    parameters: dict[str, Any] = Field(
        default_factory=dict, validation_alias=AliasChoices("parameters", "config")
    )
    priority: str | int = "normal"
    timeout: float | None = Field(default=None, gt=0, le=MAX_SECONDS, description="Seconds")
    not_before: datetime | None = Field(default=None, description="Do not start before")
    delay: float | None = Field(default=None, ge=0, le=MAX_SECONDS, description="Seconds from now")
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=255)
    parent: int | None = Field(default=None, ge=1, le=MAX_ID)


@router.post("/execute", status_code=201, summary="Submit an execution")
async def execute(
    runtime: RuntimeDep,
    caller: Caller,
    body: ExecuteBody,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> Json:
    try:
        priority = Priority.parse(body.priority)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    if body.not_before is not None and body.not_before.tzinfo is None:
        raise InvalidInput("not_before needs a time zone (e.g. 2024-01-13T10:00:00Z)")
    options = SubmitOptions(
        priority=priority,
        timeout=body.timeout,
        not_before=body.not_before.timestamp() if body.not_before else None,
        delay=body.delay or 0.0,
        idempotency_key=body.idempotency_key or idempotency_key,
        parent_id=body.parent,
    )
    submitted = await runtime.executions.submit(caller, body.action_ref, body.parameters, options)
    if submitted.replayed:
        return Json(
            {"data": wire.execution(submitted.execution)},
            status_code=200,
            headers={"Idempotent-Replayed": "true"},
        )
    return Json({"data": wire.execution(submitted.execution)}, status_code=201)


@router.get("/{execution_id:int}", summary="One execution")
async def get_execution(runtime: RuntimeDep, caller: Caller, execution_id: int) -> Json:
    return Json({"data": wire.execution(await runtime.executions.get(caller, execution_id))})


@router.post("/{execution_id:int}/cancel", summary="Cancel an execution and its children")
async def cancel(runtime: RuntimeDep, caller: Caller, execution_id: int) -> Json:
    return Json({"data": wire.execution(await runtime.executions.cancel(caller, execution_id))})


@router.get("/{execution_id:int}/history", summary="Every status change, oldest first")
async def history(runtime: RuntimeDep, caller: Caller, execution_id: int) -> Json:
    events = await runtime.executions.history(caller, execution_id)
    return Json({"data": [wire.event(e) for e in events]})


@router.get(
    "/{execution_id:int}/output/{stream}",
    summary="What the execution wrote to stdout or stderr",
    response_class=PlainTextResponse,
)
async def output(
    runtime: RuntimeDep, caller: Caller, execution_id: int, stream: str
) -> PlainTextResponse:
    data = await runtime.executions.output(caller, execution_id, stream)
    return PlainTextResponse(data.decode("utf-8", errors="replace"))
