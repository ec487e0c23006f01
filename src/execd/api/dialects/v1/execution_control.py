"""/api/v1/executions: acting on executions: cancel or retry one, cancel or delete many."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from execd.api.deps import Caller, RuntimeDep
from execd.api.dialects.v1 import wire
from execd.api.dialects.v1.executions import STATUSES, execution_filter
from execd.api.openapi import PRIORITY, absent, answers, given, nullable, shown
from execd.api.responses import Json
from execd.domain.access import Principal
from execd.domain.errors import InvalidInput
from execd.domain.executions import MAX_ID
from execd.domain.states import Priority

router = APIRouter(prefix="/executions", tags=["v1 executions"])


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

    status: Annotated[str | None, shown(STATUSES)] = None
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


BULK_LIMIT = 1000


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
    f = execution_filter(
        spec.status, spec.action_ref, spec.pack_name, None, None, None,
        spec.created_after, spec.created_before, None, None,
    )  # fmt: skip
    ids = await runtime.executions.matching_ids(caller, f, BULK_LIMIT + 1)
    return ids[:BULK_LIMIT], len(ids) > BULK_LIMIT


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
