"""/api/v1/triggers, /api/v1/rules, /api/v1/enforcements and /api/v1/webhooks."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any
from zoneinfo import available_timezones

import orjson
from fastapi import APIRouter, Header, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from execd.api.deps import Caller, RuntimeDep, authenticated
from execd.api.dialects.v1 import wire
from execd.api.dialects.v1.params import PageNumber, PerPage, same_ref
from execd.api.openapi import (
    ACTION_REF,
    JSON_VALUE,
    absent,
    component,
    nullable,
    one_of,
    shown,
)
from execd.api.responses import Json
from execd.domain import jsonsafe
from execd.domain.errors import InvalidInput
from execd.domain.executions import MAX_ID
from execd.domain.rules import (
    CATCH_UP,
    EXECUTION,
    HMAC,
    MAX_INTERVAL,
    MIN_INTERVAL,
    REF,
    TIMER,
    TOKEN,
    TRIGGER_TYPES,
    WEBHOOK,
    Enforcement,
    Rule,
    RuleSpec,
    Trigger,
    TriggerSpec,
)
from execd.domain.states import Status
from execd.engine.rules import MIN_SECRET, SIGNATURE_HEADER

router = APIRouter(tags=["v1 rules"])

Ref = Annotated[str, Path(min_length=1, max_length=200)]

# -- What the document shows of triggers and rules (domain/rules.py checks them) --------

_REF = {"type": "string", "pattern": f"^{REF.pattern}$", "maxLength": 200}
_CATCH_UP = {"enum": list(CATCH_UP), "description": "What a timer does about missed times"}
_STATUSES = {"type": "array", "minItems": 1, "items": {"enum": [s.value for s in Status]}}


def _settings(required: list[str], **properties: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "required": required,
        "properties": properties,
    }


_CONFIG = {
    WEBHOOK: _settings([], auth={"enum": [TOKEN, HMAC], "description": "How calls sign in"}),
    TIMER: {
        "anyOf": [
            _settings(
                ["cron"],
                cron={"type": "string", "format": "cron", "description": "Five fields"},
                timezone={"enum": sorted(available_timezones()), "description": "IANA name"},
                catch_up=_CATCH_UP,
            ),
            _settings(
                ["interval"],
                interval={"type": "number", "minimum": MIN_INTERVAL, "maximum": MAX_INTERVAL},
                catch_up=_CATCH_UP,
            ),
        ]
    },
    EXECUTION: _settings(
        [],
        action_ref={"type": ["string", "null"], "minLength": 1, "maxLength": 300},
        statuses=_STATUSES,
    ),
}
# A trigger's config is that of its type (a timer's is not optional); only an HMAC
# webhook has a secret.
_HMAC = {
    "required": ["config"],
    "properties": {"config": {"required": ["auth"], "properties": {"auth": {"const": HMAC}}}},
}
_TRIGGER_RULES: dict[str, Any] = {
    "anyOf": [
        {
            "properties": {"type": {"const": kind}, "config": config},
            "required": ["config"] if kind == TIMER else [],
            "anyOf": [_HMAC, absent("secret")] if kind == WEBHOOK else [absent("secret")],
        }
        for kind, config in _CONFIG.items()
    ]
}


def _comparison(ops: list[str], value: dict[str, Any], needed: bool) -> dict[str, Any]:
    text = {"type": "string", "minLength": 1, "maxLength": 500}
    return _settings(
        ["field", "op", "value"] if needed else ["field", "op"],
        field={**text, "description": "A dotted path into the event: payload.severity"},
        op={"enum": ops},
        value=value,
    )


_CRITERION_REF = {"$ref": "#/components/schemas/Criterion"}
CRITERIA = component(
    "Criterion",
    {
        "description": "A comparison, or and/or/not over criteria",
        "anyOf": [
            *(
                _settings(
                    [word], **{word: {"type": "array", "minItems": 1, "items": _CRITERION_REF}}
                )
                for word in ("and", "or")
            ),
            _settings(["not"], **{"not": _CRITERION_REF}),
            _comparison(["exists"], {"type": ["boolean", "null"]}, needed=False),
            _comparison(["regex"], {"type": "string", "format": "regex"}, needed=True),
            _comparison(["gt", "gte", "lt", "lte"], {"type": ["number", "string"]}, needed=True),
            _comparison(["equals", "not_equals", "contains"], JSON_VALUE, needed=True),
        ],
    },
)


class TriggerBody(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra=_TRIGGER_RULES)

    ref: Annotated[str, Field(min_length=1, max_length=200), shown(_REF)]
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


def _trigger(t: Trigger, secret: str | None = None) -> dict[str, Any]:
    body = {
        "id": t.id,
        "ref": t.ref,
        "type": t.type,
        "description": t.description,
        "config": t.config,
        "enabled": t.enabled,
        "next_fire": wire.iso(t.next_fire),
        "has_secret": t.has_secret,
        "webhook_url": f"/api/v1/webhooks/{t.ref}" if t.type == "webhook" else None,
        "created": wire.iso(t.created),
        "updated": wire.iso(t.updated),
    }
    if secret is not None:
        body["secret"] = secret  # only in the answer that made it
    return body


@router.get("/triggers", summary="Every trigger of the project")
async def list_triggers(runtime: RuntimeDep, caller: Caller) -> Json:
    return Json({"data": [_trigger(t) for t in await runtime.rules.triggers(caller)]})


@router.post("/triggers", status_code=201, summary="Create a webhook, timer or execution trigger")
async def create_trigger(runtime: RuntimeDep, caller: Caller, body: TriggerBody) -> Json:
    trigger, secret = await runtime.rules.create_trigger(caller, body.spec(), body.secret)
    return Json({"data": _trigger(trigger, secret)}, status_code=201)


@router.get("/triggers/{ref}", summary="One trigger")
async def get_trigger(runtime: RuntimeDep, caller: Caller, ref: Ref) -> Json:
    return Json({"data": _trigger(await runtime.rules.trigger(caller, ref))})


@router.put("/triggers/{ref}", summary="Replace a trigger (its type stays)")
async def put_trigger(runtime: RuntimeDep, caller: Caller, ref: Ref, body: TriggerBody) -> Json:
    same_ref("trigger", (await runtime.rules.trigger(caller, ref)).ref, body.ref)
    trigger, secret = await runtime.rules.update_trigger(caller, ref, body.spec(), body.secret)
    return Json({"data": _trigger(trigger, secret)})


class TriggerPatch(BaseModel):
    """What a PATCH changes; the config and the secret change with PUT."""

    model_config = ConfigDict(extra="forbid")

    description: str | None = Field(default=None, max_length=10_000)
    enabled: bool | None = None


@router.patch("/triggers/{ref}", summary="Enable or disable a trigger, or describe it")
async def patch_trigger(runtime: RuntimeDep, caller: Caller, ref: Ref, body: TriggerPatch) -> Json:
    trigger = await runtime.rules.patch_trigger(
        caller, ref, description=body.description, enabled=body.enabled
    )
    return Json({"data": _trigger(trigger)})


@router.delete("/triggers/{ref}", status_code=204, summary="Delete a trigger no rule uses")
async def delete_trigger(runtime: RuntimeDep, caller: Caller, ref: Ref) -> Response:
    await runtime.rules.delete_trigger(caller, ref)
    return Response(status_code=204)


class RuleBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ref: Annotated[str, Field(min_length=1, max_length=200), shown({**_REF, "maxLength": 190})]
    trigger: Annotated[str, Field(min_length=1, max_length=200), shown(_REF)]
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

    trigger: Annotated[str | None, Field(min_length=1, max_length=200), shown(nullable(_REF))] = (
        None
    )
    action_ref: Annotated[
        str | None, Field(min_length=1, max_length=300), shown(nullable(ACTION_REF))
    ] = None
    description: str | None = Field(default=None, max_length=10_000)
    criteria: Annotated[dict[str, Any] | None, shown(nullable(CRITERIA))] = None
    parameters: dict[str, Any] | None = None
    enabled: bool | None = None


def _rule(r: Rule) -> dict[str, Any]:
    return {
        "id": r.id,
        "ref": r.ref,
        "description": r.description,
        "trigger": r.trigger_ref,
        "criteria": r.criteria,
        "action_ref": r.action_ref,
        "parameters": r.parameters,
        "enabled": r.enabled,
        "created": wire.iso(r.created),
        "updated": wire.iso(r.updated),
        "created_by": r.created_by,
    }


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
    return Json(wire.page([_rule(r) for r in found], page, per_page, total))


@router.post("/rules", status_code=201, summary="Create a rule")
async def create_rule(runtime: RuntimeDep, caller: Caller, body: RuleBody) -> Json:
    return Json({"data": _rule(await runtime.rules.create_rule(caller, body.spec()))}, 201)


@router.get("/rules/{ref}", summary="One rule")
async def get_rule(runtime: RuntimeDep, caller: Caller, ref: Ref) -> Json:
    return Json({"data": _rule(await runtime.rules.rule(caller, ref))})


@router.put("/rules/{ref}", summary="Replace a rule")
async def put_rule(runtime: RuntimeDep, caller: Caller, ref: Ref, body: RuleBody) -> Json:
    same_ref("rule", (await runtime.rules.rule(caller, ref)).ref, body.ref)
    return Json({"data": _rule(await runtime.rules.update_rule(caller, ref, body.spec()))})


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
    return Json({"data": _rule(await runtime.rules.update_rule(caller, ref, spec))})


def _or(given: dict[str, Any], key: str, default: Any) -> Any:
    value = given.get(key)
    return default if value is None else value


@router.delete("/rules/{ref}", status_code=204, summary="Delete a rule (its enforcements stay)")
async def delete_rule(runtime: RuntimeDep, caller: Caller, ref: Ref) -> Response:
    await runtime.rules.delete_rule(caller, ref)
    return Response(status_code=204)


def _enforcement(e: Enforcement) -> dict[str, Any]:
    return {
        "id": e.id,
        "rule": e.rule_id,
        "rule_ref": e.rule_ref,
        "trigger": e.trigger_id,
        "trigger_ref": e.trigger_ref,
        "trigger_type": e.trigger_type,
        "payload": e.payload,
        "status": e.status,
        "error": e.error,
        "depth": e.depth,
        "executions": e.execution_ids,
        "created": wire.iso(e.created),
    }


@router.get("/enforcements", summary="Rule firings, newest first")
async def list_enforcements(
    runtime: RuntimeDep,
    caller: Caller,
    per_page: PerPage,
    rule: str | None = None,
    status: Annotated[str | None, Query(pattern="^(succeeded|failed)$")] = None,
    page: PageNumber = 1,
) -> Json:
    found, total = await runtime.rules.enforcements(
        caller, rule_ref=rule, status=status, limit=per_page, offset=(page - 1) * per_page
    )
    return Json(wire.page([_enforcement(e) for e in found], page, per_page, total))


@router.get("/enforcements/{enforcement_id:id}", summary="One rule firing")
async def get_enforcement(
    runtime: RuntimeDep, caller: Caller, enforcement_id: Annotated[int, Path(ge=1, le=MAX_ID)]
) -> Json:
    return Json({"data": _enforcement(await runtime.rules.enforcement(caller, enforcement_id))})


@router.post("/webhooks/{trigger_ref}", status_code=202, summary="Fire a webhook trigger")
async def webhook(
    runtime: RuntimeDep,
    request: Request,
    trigger_ref: Ref,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
    signature: Annotated[str | None, Header(alias=SIGNATURE_HEADER)] = None,
    project: Annotated[str | None, Query(max_length=36, description="Signed calls")] = None,
) -> Json:
    body = await request.body()  # at most EXECD_MAX_WEBHOOK_BYTES (api/limits.py)
    try:
        payload = orjson.loads(body) if body.strip() else {}
    except orjson.JSONDecodeError:
        raise InvalidInput("The webhook payload must be JSON") from None
    if problem := jsonsafe.problem(payload, "the payload"):
        raise InvalidInput(problem[0].upper() + problem[1:])
    caller = await authenticated(request, authorization) if authorization else None
    trigger, fired = await runtime.rules.webhook(
        caller, trigger_ref, body, signature, payload, project
    )
    data = {"trigger": trigger.ref, "enforcements": [_enforcement(e) for e in fired]}
    return Json({"data": data}, status_code=202)
