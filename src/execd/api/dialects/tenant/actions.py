"""/api/{tenantId}/{projectId}/action: the project's actions, and executing one (the tenant API)."""

from __future__ import annotations

import time
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from execd.api.deps import RuntimeDep
from execd.api.dialects.tenant import wire
from execd.api.dialects.tenant.access import TenantCaller
from execd.api.openapi import (
    ACTION_PARAMETERS,
    NEW_ACTION_REF,
    RUNNER,
    action_rules,
    nullable,
    shown,
)
from execd.api.responses import Json
from execd.domain.access import Principal
from execd.domain.actions import (
    EMPTY_SCHEMA,
    MAX_SECONDS,
    REF_PATTERN,
    Action,
    ActionSpec,
    RetryPolicy,
)
from execd.domain.errors import Conflict, InvalidInput, NotFound
from execd.domain.sandbox import Limits, SandboxOptions
from execd.runtime import Runtime

router = APIRouter(prefix="/action", tags=["tenant actions"])

DEFAULT_PACK = "actions"


# A name, or pack.name; a name alone goes in the pack "actions".
_NAME = {
    "type": "string",
    "pattern": f"^({REF_PATTERN}|[A-Za-z0-9_][A-Za-z0-9_-]{{0,199}})$",
    "not": NEW_ACTION_REF["not"],
    "maxLength": 300,
    "description": "name, or pack.name",
}


class TenantActionBody(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra=action_rules("entryPoint"))

    name: Annotated[str, Field(min_length=1, max_length=300), shown(_NAME)]
    description: str = Field(default="", max_length=10_000)
    runner: Annotated[str, shown(RUNNER)]
    entryPoint: str | list[str] = ""
    parameters: Annotated[dict[str, Any], shown(ACTION_PARAMETERS)] = Field(
        default_factory=lambda: dict(EMPTY_SCHEMA)
    )
    maxRunTime: float | None = Field(default=None, gt=0, le=MAX_SECONDS)
    retry: Annotated[dict[str, Any] | None, shown(nullable(RetryPolicy.json_schema()))] = None
    isEnabled: bool = True
    network: bool = True
    limits: Annotated[dict[str, Any] | None, shown(nullable(Limits.json_schema()))] = None

    def spec(self) -> ActionSpec:
        try:
            retry = RetryPolicy.from_json(self.retry)
            sandbox = SandboxOptions(self.network, Limits.from_json(self.limits))
        except ValueError as exc:
            raise InvalidInput(str(exc)) from None
        entry = self.entryPoint
        return ActionSpec(
            ref=self.name if "." in self.name else f"{DEFAULT_PACK}.{self.name}",
            runner=self.runner,
            entry_point=entry if isinstance(entry, str) else orjson.dumps(entry).decode(),
            parameters=self.parameters,
            timeout=self.maxRunTime,
            retry=retry,
            enabled=self.isEnabled,
            description=self.description,
            sandbox=sandbox,
        )


class ExecuteBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    parameters: dict[str, Any] = Field(default_factory=dict)


def not_found(action_id: str) -> NotFound:
    return NotFound("Action not found", actionId=action_id)


async def find(runtime: Runtime, caller: Principal, action_id: str) -> Action:
    try:
        return await runtime.actions.get_by_uuid(caller, action_id.lower())
    except NotFound:
        raise not_found(action_id) from None


async def _shown(
    runtime: Runtime, caller: Principal, actions: list[Action]
) -> list[dict[str, Any]]:
    last = await runtime.executions.latest_by_ref(caller, [a.ref for a in actions])
    return [wire.action(a, last.get(a.ref)) for a in actions]


@router.get("/ping", summary="Check the token and the service")
async def ping(caller: TenantCaller) -> Json:
    return Json(
        {
            "status": "ok",
            "tenantId": caller.tenant_id,
            "projectId": caller.project_id,
            "timestamp": wire.iso(time.time()),
        }
    )


@router.get("/unauthorized-ping", summary="Check the service, no token needed")
async def unauthorized_ping(tenantId: str, projectId: str) -> Json:
    return Json({"status": "ok", "timestamp": wire.iso(time.time())})


@router.get("", summary="The project's actions, built-in ones included")
async def list_actions(runtime: RuntimeDep, caller: TenantCaller) -> Json:
    actions = await runtime.actions.available(caller)
    return Json({"actions": await _shown(runtime, caller, actions), "totalCount": len(actions)})


@router.post("", status_code=201, summary="Define an action")
async def create_action(runtime: RuntimeDep, caller: TenantCaller, body: TenantActionBody) -> Json:
    action = await runtime.actions.create(caller, body.spec())
    return Json((await _shown(runtime, caller, [action]))[0], status_code=201)


@router.get("/execute/{actionId}", summary="Queue an execution of an action")
async def execute_action(runtime: RuntimeDep, caller: TenantCaller, actionId: str) -> Json:
    return await _execute(runtime, caller, actionId, {})


@router.post(
    "/execute/{actionId}",
    summary="Queue an execution of an action, with parameters",
    openapi_extra={
        "requestBody": {
            "required": False,
            "content": {"application/json": {"schema": ExecuteBody.model_json_schema()}},
        }
    },
)
async def execute_action_with(
    request: Request, runtime: RuntimeDep, caller: TenantCaller, actionId: str
) -> Json:
    parameters: dict[str, Any] = {}
    if await request.body():
        try:
            parameters = ExecuteBody.model_validate_json(await request.body()).parameters
        except ValueError as exc:
            raise InvalidInput(f"Invalid request body: {exc}") from None
    return await _execute(runtime, caller, actionId, parameters)


async def _execute(
    runtime: Runtime, caller: Principal, action_id: str, parameters: dict[str, Any]
) -> Json:
    action = await find(runtime, caller, action_id)
    try:
        submitted = await runtime.executions.submit_action(caller, action, parameters)
    except (Conflict, InvalidInput) as exc:  # disabled, or its parameters do not validate
        raise NotFound(
            "Action can't create execution", actionId=action.uuid, reason=exc.message
        ) from None
    return Json(wire.execution(submitted.execution, action.uuid))


@router.get("/{actionId}", summary="One action")
async def get_action(runtime: RuntimeDep, caller: TenantCaller, actionId: str) -> Json:
    action = await find(runtime, caller, actionId)
    return Json((await _shown(runtime, caller, [action]))[0])


@router.put("/{actionId}", summary="Replace an action's definition")
async def update_action(
    runtime: RuntimeDep,
    caller: TenantCaller,
    actionId: str,
    body: TenantActionBody,
) -> Json:
    action = await find(runtime, caller, actionId)
    updated = await runtime.actions.update(caller, action, body.spec())
    return Json((await _shown(runtime, caller, [updated]))[0])


@router.delete("/{actionId}", summary="Delete an action (its executions stay)")
async def delete_action(runtime: RuntimeDep, caller: TenantCaller, actionId: str) -> Json:
    action = await find(runtime, caller, actionId)
    await runtime.actions.delete(caller, action)
    return Json({"actionId": action.uuid, "message": "Action deleted"})


async def _set_enabled(runtime: Runtime, caller: Principal, action_id: str, enabled: bool) -> Json:
    action = await find(runtime, caller, action_id)
    updated = await runtime.actions.set_enabled(caller, action, enabled)
    return Json((await _shown(runtime, caller, [updated]))[0])


@router.post("/{actionId}/enable", summary="Enable an action")
async def enable_action(runtime: RuntimeDep, caller: TenantCaller, actionId: str) -> Json:
    return await _set_enabled(runtime, caller, actionId, True)


@router.post("/{actionId}/disable", summary="Disable an action: it cannot be executed")
async def disable_action(runtime: RuntimeDep, caller: TenantCaller, actionId: str) -> Json:
    return await _set_enabled(runtime, caller, actionId, False)
