"""/api/v1/executions: the v1 executions API's reads, plus execute (one or a batch), cancel,
history and output."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Iterable
from dataclasses import replace
from datetime import datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Header, Path, Query
from fastapi.responses import PlainTextResponse, StreamingResponse
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, WithJsonSchema

from execd.api.deps import Caller, RuntimeDep
from execd.api.dialects.v1 import wire
from execd.api.dialects.v1.params import PageNumber, PerPage
from execd.api.errors import describe_validation
from execd.api.openapi import (
    ACTION_REF,
    PRIORITY,
    absent,
    answers,
    given,
    nullable,
    one_of,
    shown,
)
from execd.api.responses import Json
from execd.domain import times
from execd.domain.access import Principal
from execd.domain.actions import MAX_SECONDS
from execd.domain.analytics import BUCKETS
from execd.domain.errors import ExecdError, InvalidInput, item_error
from execd.domain.executions import MAX_ID, Execution, ExecutionFilter, Page
from execd.domain.states import PENDING, Priority, Status, parse_status
from execd.engine.service import MAX_BATCH, MAX_IDEMPOTENCY_KEY, Submission, SubmitOptions
from execd.store.artifacts import STREAMS

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
_STATUSES = nullable({"type": "string", "pattern": f"^({_ONE_STATUS})(,({_ONE_STATUS}))*$"})
StatusList = Annotated[
    str | None, Query(description="One status, or several separated by commas"), shown(_STATUSES)
]


_IDEMPOTENCY_KEY = {"type": "string", "minLength": 1, "maxLength": MAX_IDEMPOTENCY_KEY}
CURSOR = "e"  # executions' cursors: e and the id the next page starts below


def _next_cursor(items: list[Execution], size: int) -> str | None:
    return wire.cursor_below(items[-1].id, CURSOR) if len(items) == size else None


def _filter(
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
    return _filter(
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


EXPORT_FIELDS = (
    "id", "uuid", "action_ref", "status", "priority", "parent", "attempt", "created",
    "started", "ended", "duration_ms", "exit_code", "error", "submitted_by",
)  # fmt: skip


@router.get(
    "/export",
    summary="Every matching execution, streamed as CSV or JSON lines",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "One execution per line: a JSON object (jsonl) or a CSV row",
            "content": {
                "application/x-ndjson": {"schema": {"type": "string"}},
                "text/csv": {"schema": {"type": "string"}},
            },
        }
    },
)
async def export(
    runtime: RuntimeDep,
    caller: Caller,
    f: Listed,
    format: Annotated[str, Query(pattern="^(csv|jsonl)$")] = "jsonl",
) -> StreamingResponse:
    async def lines() -> AsyncIterator[bytes]:
        if format == "csv":
            yield (",".join(EXPORT_FIELDS) + "\r\n").encode()
        async for batch in runtime.executions.export(caller, f):
            chunk = io.StringIO()
            writer = csv.writer(chunk) if format == "csv" else None
            for execution in batch:
                record = wire.execution(execution)
                row = {k: record[k] for k in EXPORT_FIELDS}
                if writer is not None:
                    writer.writerow(["" if row[k] is None else row[k] for k in EXPORT_FIELDS])
                else:
                    chunk.write(orjson.dumps(record).decode() + "\n")
            yield chunk.getvalue().encode()

    media = "text/csv; charset=utf-8" if format == "csv" else "application/x-ndjson"
    return StreamingResponse(
        lines(),
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="executions.{format}"'},
    )


@router.get("/stats", summary="Counts by status; optionally analytics per action and time")
async def stats(
    runtime: RuntimeDep,
    caller: Caller,
    group_by: Annotated[str | None, Query(pattern="^action$")] = None,
    bucket: Annotated[str | None, Query(pattern="^(hour|day)$")] = None,
    since: Time = None,
    until: Time = None,
) -> Json:
    s = await runtime.executions.stats(caller)
    data: dict[str, Any] = {
        "total": s.total,
        "completed": s.count(Status.COMPLETED),
        "failed": s.count(Status.FAILED),
        "running": s.count(Status.RUNNING, Status.CANCELING),
        "pending": s.count(*PENDING),
        "cancelled": s.count(Status.CANCELLED),
        "timeout": s.count(Status.TIMEOUT),
        "abandoned": s.count(Status.ABANDONED),
    }
    if group_by or bucket or since or until:  # without them: exactly the document's body
        start, end, groups = await runtime.executions.analytics(
            caller,
            times.seconds(since),
            times.seconds(until),
            by_action=group_by == "action",
            bucket=bucket,
        )
        width = BUCKETS[bucket] if bucket else None
        data["window"] = {"since": wire.iso(start), "until": wire.iso(end)}
        data["groups"] = [wire.aggregate(g, start, end, width) for g in groups]
    return Json({"data": data})


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


class ExecuteBody(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    action_ref: Annotated[str, Field(max_length=300), shown(ACTION_REF)]
    parameters: dict[str, Any] = Field(
        default_factory=dict, validation_alias=AliasChoices("parameters", "config")
    )
    priority: Annotated[str | int, shown(PRIORITY)] = "normal"
    timeout: float | None = Field(default=None, gt=0, le=MAX_SECONDS, description="Seconds")
    not_before: datetime | None = Field(default=None, description="Do not start before")
    delay: float | None = Field(default=None, ge=0, le=MAX_SECONDS, description="Seconds from now")
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=MAX_IDEMPOTENCY_KEY)
    parent: int | None = Field(default=None, ge=1, le=MAX_ID)


def _options(body: ExecuteBody, idempotency_key: str | None = None) -> SubmitOptions:
    """How to run what `body` submits (the header's key when the body has none)."""
    try:
        priority = Priority.parse(body.priority)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    if body.not_before is not None and body.not_before.tzinfo is None:
        raise InvalidInput("not_before needs a time zone (e.g. 2024-01-13T10:00:00Z)")
    return SubmitOptions(
        priority=priority,
        timeout=body.timeout,
        not_before=body.not_before.timestamp() if body.not_before else None,
        delay=body.delay or 0.0,
        idempotency_key=body.idempotency_key or idempotency_key,
        parent_id=body.parent,
    )


@router.post(
    "/execute",
    status_code=201,
    summary="Submit an execution",
    responses=answers(
        wire.data(wire.EXECUTION), 201, {200: "A replay: what this idempotency key made before"}
    ),
)
async def execute(
    runtime: RuntimeDep,
    caller: Caller,
    body: ExecuteBody,
    idempotency_key: Annotated[
        str | None, Header(alias="Idempotency-Key"), shown(nullable(_IDEMPOTENCY_KEY))
    ] = None,
) -> Json:
    options = _options(body, idempotency_key)
    submitted = await runtime.executions.submit(caller, body.action_ref, body.parameters, options)
    if submitted.replayed:
        return Json(
            {"data": wire.execution(submitted.execution)},
            status_code=200,
            headers={"Idempotent-Replayed": "true"},
        )
    return Json({"data": wire.execution(submitted.execution)}, status_code=201)


# Items are read one by one (below), so that a bad one is refused on its own.
BatchItem = Annotated[Any, WithJsonSchema(ExecuteBody.model_json_schema())]


class BatchBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    executions: list[BatchItem] = Field(
        min_length=1, max_length=MAX_BATCH, description="Each as the body of /execute"
    )
    atomic: bool = Field(default=True, description="All stored or none; false: the valid ones")


def _submission(item: Any) -> Submission | ExecdError:
    """One item of a batch as the service takes it, or why it cannot be read."""
    if not isinstance(item, dict):
        return InvalidInput("An execution is a JSON object, as the body of /execute")
    try:
        body = ExecuteBody.model_validate(item)
        return Submission(body.action_ref, body.parameters, _options(body))
    except ValidationError as exc:
        return InvalidInput(describe_validation(exc.errors(), "Invalid execution"))
    except InvalidInput as exc:
        return exc


@router.post(
    "/batch",
    status_code=201,
    summary="Submit up to 1,000 executions at once",
    responses={
        200: {"description": "Nothing new: every item was a replay of an idempotency key"},
        207: {"description": "Some items were stored, some refused: each item's outcome"},
    },
)
async def execute_batch(runtime: RuntimeDep, caller: Caller, body: BatchBody) -> Json:
    items = [_submission(item) for item in body.executions]
    results = await runtime.executions.submit_batch(caller, items, atomic=body.atomic)
    data = [
        item_error(index, outcome)
        if isinstance(outcome, ExecdError)
        else {
            "index": index,
            "status": 200 if outcome.replayed else 201,
            "execution": wire.execution(outcome.execution),
        }
        for index, outcome in enumerate(results)
    ]
    statuses = [item["status"] for item in data]
    summary = {
        "total": len(data),
        "created": statuses.count(201),
        "replayed": statuses.count(200),
        "refused": len(data) - statuses.count(201) - statuses.count(200),
    }
    status = 207 if summary["refused"] else 201 if summary["created"] else 200
    return Json({"data": data, "summary": summary}, status_code=status)


@router.get(
    "/{execution_id:id}", summary="One execution", responses=answers(wire.data(wire.EXECUTION), 200)
)
async def get_execution(runtime: RuntimeDep, caller: Caller, execution_id: int) -> Json:
    return Json({"data": wire.execution(await runtime.executions.get(caller, execution_id))})


@router.post(
    "/{execution_id:id}/cancel",
    summary="Cancel an execution and its children",
    responses=answers(wire.data(wire.EXECUTION), 200),
)
async def cancel(runtime: RuntimeDep, caller: Caller, execution_id: int) -> Json:
    return Json({"data": wire.execution(await runtime.executions.cancel(caller, execution_id))})


class RetryBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    parameters: dict[str, Any] = Field(default_factory=dict, description="Overrides")
    priority: Annotated[str | int | None, shown(nullable(PRIORITY))] = None


@router.post(
    "/{execution_id:id}/retry",
    status_code=201,
    summary="Run it again, linked",
    responses=answers(wire.data(wire.EXECUTION), 201),
)
async def retry(
    runtime: RuntimeDep, caller: Caller, execution_id: int, body: RetryBody | None = None
) -> Json:
    body = body or RetryBody()
    priority = None
    if body.priority is not None:
        try:
            priority = Priority.parse(body.priority)
        except ValueError as exc:
            raise InvalidInput(str(exc)) from None
    execution = await runtime.executions.retry(caller, execution_id, body.parameters, priority)
    return Json({"data": wire.execution(execution)}, status_code=201)


class BulkFilter(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Annotated[str | None, shown(_STATUSES)] = None
    action_ref: str | None = Field(default=None, max_length=300)
    pack_name: str | None = Field(default=None, max_length=100)
    created_before: datetime | None = None
    created_after: datetime | None = None


# Either ids or a filter.
_IDS_OR_FILTER: list[Any] = [
    {"allOf": [given("ids"), absent("filter")]},
    {"allOf": [given("filter"), absent("ids")]},
]


class BulkBody(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"anyOf": _IDS_OR_FILTER})

    ids: list[Annotated[int, Field(ge=1, le=MAX_ID)]] | None = Field(default=None, max_length=1000)
    filter: BulkFilter | None = None
    reason: str | None = Field(default=None, max_length=2000)


async def _targets(
    runtime: RuntimeDep, caller: Principal, body: BulkBody
) -> tuple[list[int], bool]:
    """The ids to act on, and whether more match the filter than one request handles."""
    if (body.ids is None) == (body.filter is None):
        raise InvalidInput("Give either ids (up to 1000) or a filter")
    if body.ids is not None:
        return list(dict.fromkeys(body.ids)), False
    assert body.filter is not None
    spec = body.filter
    f = _filter(
        spec.status, spec.action_ref, spec.pack_name, None, None, None,
        spec.created_after, spec.created_before, None, None,
    )  # fmt: skip
    ids = await runtime.executions.matching_ids(caller, f, BULK_LIMIT + 1)
    return ids[:BULK_LIMIT], len(ids) > BULK_LIMIT


BULK_LIMIT = 1000


@router.post("/bulk/cancel", summary="Cancel many executions: by ids or by a filter")
async def bulk_cancel(runtime: RuntimeDep, caller: Caller, body: BulkBody) -> Json:
    ids, more = await _targets(runtime, caller, body)
    results = await runtime.executions.cancel_many(caller, ids, body.reason)
    data = [{"id": i, "result": outcome} for i, (outcome, _) in results.items()]
    summary = _summary(o for o, _ in results.values())
    return Json({"data": data, "summary": summary, "more": more})


@router.post("/bulk/delete", summary="Delete many ended executions: by ids or by a filter")
async def bulk_delete(runtime: RuntimeDep, caller: Caller, body: BulkBody) -> Json:
    ids, more = await _targets(runtime, caller, body)
    results = await runtime.executions.delete_many(caller, ids)
    data = [{"id": i, "result": outcome} for i, outcome in results.items()]
    return Json({"data": data, "summary": _summary(results.values()), "more": more})


def _summary(outcomes: Iterable[str]) -> dict[str, int]:
    counted: dict[str, int] = {}
    for outcome in outcomes:
        counted[outcome] = counted.get(outcome, 0) + 1
    return counted


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
