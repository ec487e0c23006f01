"""/api/v1/actions and /api/v1/packs."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from execd.api.deps import Caller, RuntimeDep
from execd.api.dialects.v1 import wire
from execd.api.dialects.v1.params import same_ref
from execd.api.openapi import (
    ACTION_PARAMETERS,
    NEW_ACTION_REF,
    RUNNER,
    action_rules,
    nullable,
    shown,
)
from execd.api.responses import Json
from execd.domain.actions import EMPTY_SCHEMA, MAX_SECONDS, ActionSpec, RetryPolicy
from execd.domain.errors import InvalidInput
from execd.domain.sandbox import Limits, SandboxOptions

router = APIRouter(tags=["v1 actions"])


class ActionBody(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra=action_rules("entry_point"))

    ref: Annotated[str, Field(max_length=300), shown(NEW_ACTION_REF)]
    runner: Annotated[str, shown(RUNNER)]
    entry_point: str | list[str] = Field(
        default="", description="Script, argv list, module:function or URL"
    )
    parameters: Annotated[dict[str, Any], shown(ACTION_PARAMETERS)] = Field(
        default_factory=lambda: dict(EMPTY_SCHEMA)
    )
    timeout: float | None = Field(default=None, gt=0, le=MAX_SECONDS)
    retry: Annotated[dict[str, Any] | None, shown(nullable(RetryPolicy.json_schema()))] = None
    enabled: bool = True
    description: str = Field(default="", max_length=10_000)
    network: bool = Field(default=True, description="Whether its processes reach the network")
    limits: Annotated[dict[str, Any] | None, shown(nullable(Limits.json_schema()))] = None

    def spec(self) -> ActionSpec:
        entry = self.entry_point
        try:
            retry = RetryPolicy.from_json(self.retry)
            sandbox = SandboxOptions(self.network, Limits.from_json(self.limits))
        except ValueError as exc:
            raise InvalidInput(str(exc)) from None
        return ActionSpec(
            ref=self.ref,
            runner=self.runner,
            entry_point=entry if isinstance(entry, str) else orjson.dumps(entry).decode(),
            parameters=self.parameters,
            timeout=self.timeout,
            retry=retry,
            enabled=self.enabled,
            description=self.description,
            sandbox=sandbox,
        )


@router.get("/actions", summary="Actions of the project, built-in ones included")
async def list_actions(runtime: RuntimeDep, caller: Caller, pack: str | None = None) -> Json:
    actions = await runtime.actions.available(caller, pack)
    return Json({"data": [wire.action(a) for a in actions]})


@router.post("/actions", status_code=201, summary="Define an action")
async def create_action(runtime: RuntimeDep, caller: Caller, body: ActionBody) -> Json:
    action = await runtime.actions.create(caller, body.spec())
    return Json({"data": wire.action(action)}, status_code=201)


@router.get("/actions/{ref}", summary="One action")
async def get_action(runtime: RuntimeDep, caller: Caller, ref: str) -> Json:
    return Json({"data": wire.action(await runtime.actions.get(caller, ref))})


@router.put("/actions/{ref}", summary="Replace an action's definition")
async def replace_action(runtime: RuntimeDep, caller: Caller, ref: str, body: ActionBody) -> Json:
    current = await runtime.actions.get(caller, ref)
    same_ref("action", current.ref, body.ref)
    return Json({"data": wire.action(await runtime.actions.update(caller, current, body.spec()))})


class ActionPatch(BaseModel):
    """What a PATCH changes: whether the action may run. The rest changes with PUT."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool


@router.patch("/actions/{ref}", summary="Enable or disable an action")
async def patch_action(runtime: RuntimeDep, caller: Caller, ref: str, body: ActionPatch) -> Json:
    current = await runtime.actions.get(caller, ref)
    return Json(
        {"data": wire.action(await runtime.actions.set_enabled(caller, current, body.enabled))}
    )


@router.delete("/actions/{ref}", status_code=204, summary="Delete an action")
async def delete_action(runtime: RuntimeDep, caller: Caller, ref: str) -> Response:
    await runtime.actions.delete(caller, await runtime.actions.get(caller, ref))
    return Response(status_code=204)


@router.get("/packs", summary="Packs (namespaces of actions) in the project")
async def list_packs(runtime: RuntimeDep, caller: Caller) -> Json:
    counts = await runtime.actions.packs(caller)
    packs = [
        {
            "ref": pack,
            "name": pack,
            "builtin": pack == "core",
            "action_count": count,
            "description": "Built-in actions" if pack == "core" else "",
        }
        for pack, count in sorted(counts.items())
    ]
    return Json({"data": packs})
