"""/api/history: the execution history of flows, exactly as the flow history API describes it."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Query

from execd.api.deps import Caller, RuntimeDep
from execd.api.dialects.flows import params, wire
from execd.api.responses import Json
from execd.domain.errors import InvalidInput
from execd.domain.executions import Execution, ExecutionFilter

router = APIRouter(prefix="/history", tags=["flow history"])

Text = Annotated[str | None, Query()]


def _missing_execution_id() -> InvalidInput:
    return InvalidInput(
        "Execution ID is required to delete execution",
        code="MISSING_EXECUTION_ID",
        title="executionId is required",
    )


def _missing_flow_id(purpose: str) -> InvalidInput:
    return InvalidInput(
        f"Flow ID is required to {purpose}", code="MISSING_FLOW_ID", title="flowId is required"
    )


async def _render(
    runtime: RuntimeDep, executions: list[Execution], *, lite: bool = False, detail: bool = False
) -> list[dict[str, object]]:
    # `lite` leaves the steps out of the answer; the step summary still counts them.
    steps = await runtime.flows.steps_of(executions, light=lite)
    parents = await runtime.flows.parent_uuids(executions)
    return [
        wire.execution(
            e, steps.get(e.id, []), parent_uuid=parents.get(e.id), detail=detail, lite=lite
        )
        for e in executions
    ]


@router.get("/executions", summary="Executions of all flows, newest first")
@router.get("/executions/", include_in_schema=False)
async def list_executions(
    runtime: RuntimeDep,
    caller: Caller,
    status: params.Status = None,
    flowId: Text = None,
    deviceId: Text = None,
    limit: params.Limit = None,
    offset: params.Offset = None,
    startDate: params.Date = None,
    endDate: params.Date = None,
    executionType: params.ExecutionType = None,
    lite: params.Flag = None,
) -> Json:
    size = params.limit(limit, 50)
    skip = params.offset(offset)
    since = params.date(startDate, "startDate")
    until = params.date(endDate, "endDate", end_of_day=True)
    params.check_range(since, until)
    light = params.boolean(lite, "lite")
    f = ExecutionFilter(
        statuses=wire.parse_status(status) if status else None,
        flow_id=flowId or None,
        device_id=deviceId or None,
        created_after=since,
        created_until=until,
        top_level=params.execution_type(executionType),
    )
    items, total = await runtime.flows.history(caller, f, size, skip)
    return Json(
        wire.envelope(
            "Executions retrieved successfully",
            executions=await _render(runtime, items, lite=light),
            pagination=wire.pagination(size, skip, total),
            filters={
                "status": status.strip().upper() if status else None,
                "flowId": flowId or None,
                "deviceId": deviceId or None,
                "startDate": startDate or None,
                "endDate": endDate or None,
                "executionType": executionType.strip().upper() if executionType else None,
                "lite": light,
            },
        )
    )


@router.get("/executions/flows", include_in_schema=False)
@router.get("/executions/flows/", include_in_schema=False)
async def flow_executions_without_id(caller: Caller) -> Json:
    raise _missing_flow_id("list its executions")


@router.get("/executions/flows/{flowId}", summary="Executions of one flow, newest first")
async def flow_executions(
    runtime: RuntimeDep,
    caller: Caller,
    flowId: params.PathId,
    status: params.Status = None,
    limit: params.Limit = None,
) -> Json:
    if not flowId.strip():
        raise _missing_flow_id("list its executions")
    size = params.limit(limit, 20)
    f = ExecutionFilter(
        statuses=wire.parse_status(status) if status else None, flow_id=flowId.strip()
    )
    items, _ = await runtime.flows.history(caller, f, size, 0)
    return Json(
        wire.envelope(
            "Flow executions retrieved successfully",
            executions=await _render(runtime, items),
            count=len(items),
            flowId=flowId.strip(),
        )
    )


@router.get("/executions/{executionId}", summary="One flow execution with its steps")
async def get_execution(
    runtime: RuntimeDep,
    caller: Caller,
    executionId: str,
) -> Json:
    execution = await runtime.flows.history_item(caller, executionId.strip())
    (body,) = await _render(runtime, [execution], detail=True)
    return Json(wire.envelope("Flow execution details retrieved successfully", execution=body))


@router.get("/execution-stats", summary="Statistics of flow executions, computed in the database")
async def execution_stats(
    runtime: RuntimeDep,
    caller: Caller,
    flowId: Text = None,
    deviceId: Text = None,
    days: params.Days = None,
    startDate: params.Date = None,
    endDate: params.Date = None,
    executionType: params.ExecutionType = None,
    status: params.Status = None,
) -> Json:
    window = params.integer(days, "days", 30, 1, params.MAX_DAYS, "INVALID_DAYS")
    since = params.date(startDate, "startDate")
    until = params.date(endDate, "endDate", end_of_day=True)
    params.check_range(since, until)
    if since is None:  # an explicit startDate replaces the look-back window
        since = (until if until is not None else time.time()) - window * params.DAY
    f = ExecutionFilter(
        statuses=wire.parse_status(status) if status else None,
        flow_id=flowId or None,
        device_id=deviceId or None,
        created_after=since,
        created_until=until,
        top_level=params.execution_type(executionType),
    )
    s = await runtime.flows.stats(caller, f)
    breakdown: dict[str, int] = {}
    for state, count in s.by_status.items():
        spelled = wire.SPELLING[state]
        breakdown[spelled] = breakdown.get(spelled, 0) + count
    passed = breakdown.get("PASSED", 0)
    completed = passed + breakdown.get("FAILED", 0)
    average = round(s.average_seconds * 1000) if s.average_seconds is not None else 0
    return Json(
        wire.envelope(
            "Execution statistics retrieved successfully",
            stats={
                "totalExecutions": s.total,
                "statusBreakdown": breakdown,
                "averageExecutionTimeMs": average,
                "averageExecutionTimeFormatted": wire.format_duration(average),
                "successRate": f"{(passed / completed * 100) if completed else 0.0:.1f}%",
                "completedCount": completed,
            },
            filters={
                "flowId": flowId or None,
                "deviceId": deviceId or None,
                "days": window,
                "startDate": startDate or None,
                "endDate": endDate or None,
                "executionType": executionType.strip().upper() if executionType else None,
                "status": status.strip().upper() if status else None,
            },
        )
    )


@router.delete("/executions", include_in_schema=False)
@router.delete("/executions/", include_in_schema=False)
async def delete_without_id(caller: Caller) -> Json:
    raise _missing_execution_id()


@router.delete("/executions/flows", include_in_schema=False)
@router.delete("/executions/flows/", include_in_schema=False)
async def delete_flow_without_id(caller: Caller) -> Json:
    raise _missing_flow_id("delete execution history")


@router.delete(
    "/executions/flows/{flowId}", summary="Delete every execution of a flow, permanently"
)
async def delete_flow_executions(
    runtime: RuntimeDep,
    caller: Caller,
    flowId: params.PathId,
) -> Json:
    flow_id = flowId.strip()
    if not flow_id:
        raise _missing_flow_id("delete execution history")
    count = await runtime.flows.delete_flow_history(caller, flow_id)
    return Json(
        wire.envelope(
            f"Successfully deleted {count} execution records for flow {flow_id}",
            flowId=flow_id,
            deletedCount=count,
        )
    )


@router.delete("/executions/{executionId}", summary="Delete one flow execution, permanently")
async def delete_execution(
    runtime: RuntimeDep,
    caller: Caller,
    executionId: params.PathId,
) -> Json:
    execution_id = executionId.strip()
    if not execution_id:
        raise _missing_execution_id()
    await runtime.flows.delete_execution(caller, execution_id)
    return Json(
        wire.envelope(f"Successfully deleted execution {execution_id}", executionId=execution_id)
    )
