"""/api/v1/rules: when a trigger fires, which action runs, with what parameters."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from execd.api.deps import Caller, RuntimeDep
from execd.api.dialects.v1 import wire
from execd.api.dialects.v1.params import PageNumber, PerPage, Ref, same_ref
from execd.api.dialects.v1.rule_schemas import CRITERIA, REF_SCHEMA
from execd.api.openapi import ACTION_REF, nullable, shown
from execd.api.responses import Json
from execd.domain.rules import RuleSpec

router = APIRouter(tags=["v1 rules"])


class RuleBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ref: Annotated[
        str, Field(min_length=1, max_length=200), shown({**REF_SCHEMA, "maxLength": 190})
    ]
    trigger: Annotated[str, Field(min_length=1, max_length=200), shown(REF_SCHEMA)]
    action_ref: Annotated[str, Field(min_length=1, max_length=300), shown(ACTION_REF)]
    description: str = Field(default="", max_length=10_000)
    criteria: Annotated[dict[str, Any] | None, shown(nullable(CRITERIA))] = None
    parameters: dict[str, Any] = Field(
        default_factory=dict, description="Template: {{ payload.x }} placeholders"
    )
    enabled: bool = True

    def spec(self) -> RuleSpec:
        return RuleSpec(
            ref=self.ref,
            trigger_ref=self.trigger,
            action_ref=self.action_ref,
            description=self.description,
            criteria=self.criteria,
            parameters=self.parameters,
            enabled=self.enabled,
        )


class RulePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    trigger: Annotated[
        str | None, Field(min_length=1, max_length=200), shown(nullable(REF_SCHEMA))
    ] = None
    action_ref: Annotated[
        str | None, Field(min_length=1, max_length=300), shown(nullable(ACTION_REF))
    ] = None
    description: str | None = Field(default=None, max_length=10_000)
    criteria: Annotated[dict[str, Any] | None, shown(nullable(CRITERIA))] = None
    parameters: dict[str, Any] | None = None
    enabled: bool | None = None


@router.get("/rules", summary="Rules of the project, by ref")
async def list_rules(
    runtime: RuntimeDep,
    caller: Caller,
    per_page: PerPage,
    trigger: str | None = None,
    action_ref: str | None = None,
    enabled: bool | None = None,
    page: PageNumber = 1,
) -> Json:
    found, total = await runtime.rules.rules(
        caller,
        trigger_ref=trigger,
        action_ref=action_ref,
        enabled=enabled,
        limit=per_page,
        offset=(page - 1) * per_page,
    )
    return Json(wire.page([wire.rule(r) for r in found], page, per_page, total))


@router.post("/rules", status_code=201, summary="Create a rule")
async def create_rule(runtime: RuntimeDep, caller: Caller, body: RuleBody) -> Json:
    return Json({"data": wire.rule(await runtime.rules.create_rule(caller, body.spec()))}, 201)


@router.get("/rules/{ref}", summary="One rule")
async def get_rule(runtime: RuntimeDep, caller: Caller, ref: Ref) -> Json:
    return Json({"data": wire.rule(await runtime.rules.rule(caller, ref))})


@router.put("/rules/{ref}", summary="Replace a rule")
async def put_rule(runtime: RuntimeDep, caller: Caller, ref: Ref, body: RuleBody) -> Json:
    same_ref("rule", (await runtime.rules.rule(caller, ref)).ref, body.ref)
    return Json({"data": wire.rule(await runtime.rules.update_rule(caller, ref, body.spec()))})


@router.patch("/rules/{ref}", summary="Change some fields of a rule (enable or disable it, ...)")
async def patch_rule(runtime: RuntimeDep, caller: Caller, ref: Ref, body: RulePatch) -> Json:
    current = await runtime.rules.rule(caller, ref)
    given = body.model_dump(exclude_unset=True)
    spec = replace(
        RuleSpec.of(current),
        trigger_ref=given.get("trigger") or current.trigger_ref,
        action_ref=given.get("action_ref") or current.action_ref,
        description=_or(given, "description", current.description),
        criteria=given.get("criteria", current.criteria),
        parameters=_or(given, "parameters", current.parameters),
        enabled=_or(given, "enabled", current.enabled),
    )
    return Json({"data": wire.rule(await runtime.rules.update_rule(caller, ref, spec))})


def _or(given: dict[str, Any], key: str, default: Any) -> Any:
    value = given.get(key)
    return default if value is None else value


@router.delete("/rules/{ref}", status_code=204, summary="Delete a rule (its enforcements stay)")
async def delete_rule(runtime: RuntimeDep, caller: Caller, ref: Ref) -> Response:
    await runtime.rules.delete_rule(caller, ref)
    return Response(status_code=204)
