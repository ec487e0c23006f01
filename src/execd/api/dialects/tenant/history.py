"""/api/{tenantId}/{projectId}/actionexecution: execution history per action, one
execution, and its result package (the tenant API)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from execd.api.deps import RuntimeDep
from execd.api.dialects.tenant import wire
from execd.api.dialects.tenant.access import TenantCaller
from execd.api.responses import Json
from execd.domain.access import Principal
from execd.domain.actions import Action
from execd.domain.errors import NotFound
from execd.domain.executions import Brief, Execution, ExecutionFilter, Page
from execd.runtime import Runtime

router = APIRouter(prefix="/actionexecution", tags=["tenant action executions"])

MAX_ITEMS = 10_000


async def _action(runtime: Runtime, caller: Principal, action_id: str) -> Action:
    try:
        return await runtime.actions.get_by_uuid(caller, action_id.lower())
    except NotFound:
        raise NotFound("Can't find action", actionId=action_id) from None


async def _execution(runtime: Runtime, caller: Principal, execution_id: str) -> Execution:
    try:
        return await runtime.executions.get_by_uuid(caller, execution_id.lower())
    except NotFound:
        raise NotFound("Can't find action", executionId=execution_id) from None


async def _shown(
    runtime: Runtime, caller: Principal, executions: list[Execution]
) -> list[dict[str, Any]]:
    action_ids = await runtime.actions.uuids_of(caller, executions)
    return [wire.execution(e, action_ids.get(e.id)) for e in executions]


async def _history(
    runtime: Runtime, caller: Principal, action_id: str, limit: int, offset: int
) -> tuple[str, Sequence[Execution | Brief]]:
    """The executions of an action, newest first, and its id; the id a Pipeline job's
    records carry as their actionId (a flow's) reaches the flow's executions."""
    try:
        action = await _action(runtime, caller, action_id)
    except NotFound:
        try:
            flow = await runtime.flows.get(caller, action_id.lower())
        except NotFound:
            raise NotFound("Can't find action", actionId=action_id) from None
        top = ExecutionFilter(flow_id=flow.id, top_level=True)
        return flow.id, (await runtime.flows.history(caller, top, limit, offset))[0]
    page = Page(size=limit, start=offset)
    return action.uuid, await runtime.executions.of_action(caller, action, page)


@router.get("/action/{actionId}", summary="Executions of one action (or pipeline), newest first")
async def action_history(
    runtime: RuntimeDep,
    caller: TenantCaller,
    actionId: str,
    limit: Annotated[int, Query(ge=1, le=MAX_ITEMS)] = 1000,
    offset: Annotated[int, Query(ge=0, le=10**12)] = 0,
) -> Json:
    owner, items = await _history(runtime, caller, actionId, limit, offset)
    return Json({"items": [wire.execution(e, owner) for e in items]})


@router.get("/lastaction/{actionId}", summary="The latest execution of one action (or pipeline)")
async def last_execution(runtime: RuntimeDep, caller: TenantCaller, actionId: str) -> Json:
    owner, items = await _history(runtime, caller, actionId, 1, 0)
    if not items:
        raise NotFound("Can't find action", actionId=actionId)
    return Json(wire.execution(items[0], owner))


@router.get("/downloadpackage/{executionId}", summary="The result package (ZIP) of an execution")
async def download_package(
    runtime: RuntimeDep,
    caller: TenantCaller,
    executionId: str,
) -> StreamingResponse:
    try:
        execution = await runtime.executions.get_by_uuid(caller, executionId.lower())
    except NotFound:
        raise NotFound("Execution not found", executionId=executionId) from None
    # A flow execution's package holds its steps' files too, under step-N/.
    parts = await runtime.jobs.parts(execution) if execution.flow_id else None
    chunks = await runtime.executions.package(caller, execution, parts)
    if chunks is None:
        raise NotFound("Zip file not found", executionId=executionId)
    return StreamingResponse(
        chunks,
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{execution.uuid}.zip"'},
    )


@router.get("/{executionId}", summary="One execution")
async def get_execution(runtime: RuntimeDep, caller: TenantCaller, executionId: str) -> Json:
    execution = await _execution(runtime, caller, executionId)
    return Json((await _shown(runtime, caller, [execution]))[0])
