"""/api/flows: define flows and execute them (envelopes as in the history API)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from execd.api.deps import Caller, RuntimeDep
from execd.api.dialects.flows import params, wire
from execd.api.openapi import ACTION_REF, NOT_BLANK, PRIORITY, absent, given, nullable, shown
from execd.api.responses import Json
from execd.domain.actions import MAX_SECONDS
from execd.domain.errors import InvalidInput
from execd.domain.flows import MAX_NAME, MAX_STEPS, FlowSpec, FlowStep
from execd.domain.states import Priority
from execd.engine.executions import SubmitOptions

router = APIRouter(prefix="/flows", tags=["flows"])


# A step runs an action or a sub-flow, and a sub-flow step has no timeout of its own.
_ONE_KIND: list[Any] = [
    {"allOf": [given("action"), absent("flowId")]},
    {"allOf": [given("flowId"), absent("action", "timeout")]},
]


class StepBody(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"anyOf": _ONE_KIND})

    name: str | None = Field(default=None, max_length=MAX_NAME)
    action: Annotated[str | None, shown(nullable(ACTION_REF))] = None
    flowId: str | None = Field(default=None, min_length=1, max_length=36)
    parameters: dict[str, Any] = Field(default_factory=dict)
    timeout: float | None = Field(default=None, gt=0, le=MAX_SECONDS)
    continueOnFailure: bool = False


class FlowBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=MAX_NAME, json_schema_extra={"pattern": NOT_BLANK})
    description: str = Field(default="", max_length=10_000)
    parameters: dict[str, Any] = Field(default_factory=dict, description="Default values")
    steps: list[StepBody] = Field(min_length=1, max_length=MAX_STEPS)

    def spec(self) -> FlowSpec:
        return FlowSpec(
            name=self.name,
            description=self.description,
            parameters=self.parameters,
            steps=[
                FlowStep(
                    name=s.name,
                    action=s.action,
                    flow=s.flowId,
                    parameters=s.parameters,
                    timeout=s.timeout,
                    continue_on_failure=s.continueOnFailure,
                )
                for s in self.steps
            ],
        )


class FlowExecuteBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    parameters: dict[str, Any] = Field(default_factory=dict)
    deviceId: str | None = Field(default=None, min_length=1, max_length=255)
    priority: Annotated[str | int, shown(PRIORITY)] = "Normal"


@router.get("", summary="Flows of the project, newest first")
async def list_flows(
    runtime: RuntimeDep,
    caller: Caller,
    limit: params.Limit = None,
    offset: params.Offset = None,
) -> Json:
    size = params.limit(limit, 50)
    skip = params.offset(offset)
    items, total = await runtime.flows.page(caller, size, skip)
    return Json(
        wire.envelope(
            "Flows retrieved successfully",
            flows=[wire.flow(f) for f in items],
            pagination=wire.pagination(size, skip, total),
        )
    )


@router.post("", status_code=201, summary="Define a flow")
async def create_flow(runtime: RuntimeDep, caller: Caller, body: FlowBody) -> Json:
    flow = await runtime.flows.create(caller, body.spec())
    return Json(wire.envelope("Flow created successfully", flow=wire.flow(flow)), 201)


@router.get("/{flowId}", summary="One flow")
async def get_flow(runtime: RuntimeDep, caller: Caller, flowId: str) -> Json:
    flow = await runtime.flows.get(caller, flowId)
    return Json(wire.envelope("Flow retrieved successfully", flow=wire.flow(flow)))


@router.put("/{flowId}", summary="Replace a flow's definition")
async def update_flow(
    runtime: RuntimeDep,
    caller: Caller,
    flowId: str,
    body: FlowBody,
) -> Json:
    flow = await runtime.flows.update(caller, flowId, body.spec())
    return Json(wire.envelope("Flow updated successfully", flow=wire.flow(flow)))


@router.delete("/{flowId}", summary="Delete a flow (its executions stay)")
async def delete_flow(runtime: RuntimeDep, caller: Caller, flowId: str) -> Json:
    await runtime.flows.delete(caller, flowId)
    return Json(wire.envelope(f"Flow {flowId} deleted successfully", flowId=flowId))


@router.post("/executions/{executionId}/cancel", summary="Cancel a flow execution")
async def cancel_execution(
    runtime: RuntimeDep,
    caller: Caller,
    executionId: str,
) -> Json:
    execution = await runtime.flows.cancel(caller, executionId.strip())
    steps = await runtime.flows.steps_of([execution])
    rendered = wire.execution(execution, steps.get(execution.id, []))
    return Json(wire.envelope("Cancellation requested", execution=rendered))


@router.post("/{flowId}/execute", status_code=201, summary="Execute a flow")
async def execute_flow(
    runtime: RuntimeDep,
    caller: Caller,
    flowId: str,
    body: FlowExecuteBody | None = None,
) -> Json:
    body = body or FlowExecuteBody()
    try:
        priority = Priority.parse(body.priority)
    except ValueError as exc:
        raise InvalidInput(str(exc), code="INVALID_PRIORITY") from None
    execution = await runtime.flows.execute(
        caller, flowId, body.parameters, body.deviceId, SubmitOptions(priority=priority)
    )
    steps = await runtime.flows.steps_of([execution])
    rendered = wire.execution(execution, steps.get(execution.id, []))
    return Json(wire.envelope("Flow execution started", execution=rendered), 201)
