"""/api/v1/triggers: what fires rules (webhooks, timers, executions ending)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from execd.api.deps import Caller, RuntimeDep
from execd.api.dialects.v1 import wire
from execd.api.dialects.v1.params import Ref, same_ref
from execd.api.dialects.v1.rule_schemas import REF_SCHEMA, TRIGGER_RULES
from execd.api.openapi import one_of, shown
from execd.api.responses import Json
from execd.domain.rules import TRIGGER_TYPES, TriggerSpec
from execd.engine.rules import MIN_SECRET

router = APIRouter(tags=["v1 rules"])


class TriggerBody(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra=TRIGGER_RULES)

    ref: Annotated[str, Field(min_length=1, max_length=200), shown(REF_SCHEMA)]
    type: Annotated[str, shown(one_of(TRIGGER_TYPES))]
    description: str = Field(default="", max_length=10_000)
    enabled: bool = True
    config: dict[str, Any] = Field(default_factory=dict)
    secret: str | None = Field(
        default=None,
        max_length=500,
        description="HMAC webhooks: made for you if left out",
        json_schema_extra={"minLength": MIN_SECRET},
    )

    def spec(self) -> TriggerSpec:
        return TriggerSpec(self.ref, self.type, self.description, self.enabled, self.config)


class TriggerPatch(BaseModel):
    """What a PATCH changes; the config and the secret change with PUT."""

    model_config = ConfigDict(extra="forbid")

    description: str | None = Field(default=None, max_length=10_000)
    enabled: bool | None = None


@router.get("/triggers", summary="Every trigger of the project")
async def list_triggers(runtime: RuntimeDep, caller: Caller) -> Json:
    return Json({"data": [wire.trigger(t) for t in await runtime.rules.triggers(caller)]})


@router.post("/triggers", status_code=201, summary="Create a webhook, timer or execution trigger")
async def create_trigger(runtime: RuntimeDep, caller: Caller, body: TriggerBody) -> Json:
    trigger, secret = await runtime.rules.create_trigger(caller, body.spec(), body.secret)
    return Json({"data": wire.trigger(trigger, secret)}, status_code=201)


@router.get("/triggers/{ref}", summary="One trigger")
async def get_trigger(runtime: RuntimeDep, caller: Caller, ref: Ref) -> Json:
    return Json({"data": wire.trigger(await runtime.rules.trigger(caller, ref))})


@router.put("/triggers/{ref}", summary="Replace a trigger (its type stays)")
async def put_trigger(runtime: RuntimeDep, caller: Caller, ref: Ref, body: TriggerBody) -> Json:
    same_ref("trigger", (await runtime.rules.trigger(caller, ref)).ref, body.ref)
    trigger, secret = await runtime.rules.update_trigger(caller, ref, body.spec(), body.secret)
    return Json({"data": wire.trigger(trigger, secret)})


@router.patch("/triggers/{ref}", summary="Enable or disable a trigger, or describe it")
async def patch_trigger(runtime: RuntimeDep, caller: Caller, ref: Ref, body: TriggerPatch) -> Json:
    trigger = await runtime.rules.patch_trigger(
        caller, ref, description=body.description, enabled=body.enabled
    )
    return Json({"data": wire.trigger(trigger)})


@router.delete("/triggers/{ref}", status_code=204, summary="Delete a trigger no rule uses")
async def delete_trigger(runtime: RuntimeDep, caller: Caller, ref: Ref) -> Response:
    await runtime.rules.delete_trigger(caller, ref)
    return Response(status_code=204)
