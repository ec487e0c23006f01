"""The dashboard's pages of what can run: actions (run one from a form made from its
parameter schema; enable or disable it), flows (run one), rules and triggers (a page
each; enable or disable them)."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from execd.api.dashboard import forms
from execd.api.dashboard.pages import page
from execd.api.dashboard.session import PREFIX, Posted, Signed, SignedIn, runtime_of
from execd.domain.actions import Action
from execd.domain.errors import InvalidInput
from execd.domain.executions import ExecutionFilter, Page

router = APIRouter(prefix=PREFIX, include_in_schema=False)


@router.get("/actions")
async def actions(request: Request, signed: SignedIn) -> HTMLResponse:
    found = await runtime_of(request).actions.available(signed.caller)
    return await page(request, signed, "actions.html", section="actions", actions=found)


async def _action_page(
    request: Request,
    signed: Signed,
    action: Action,
    sent: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> HTMLResponse:
    runtime = runtime_of(request)
    recent, _ = await runtime.executions.search(
        signed.caller, ExecutionFilter(action_ref=action.ref), Page(1, 10), with_total=False
    )
    response = await page(
        request,
        signed,
        "action.html",
        section="actions",
        action=action,
        fields=forms.fields(action.parameters),
        sent=sent,
        errors=errors or {},
        recent=recent,
        schema=_json(action.parameters),
    )
    response.status_code = status
    return response


@router.get("/actions/{ref}")
async def action(request: Request, signed: SignedIn, ref: str) -> HTMLResponse:
    found = await runtime_of(request).actions.get(signed.caller, ref)
    return await _action_page(request, signed, found)


@router.post("/actions/{ref}/run")
async def run_action(request: Request, signed: SignedIn, form: Posted, ref: str) -> Response:
    runtime = runtime_of(request)
    found = await runtime.actions.get(signed.caller, ref)
    fields = forms.fields(found.parameters)
    parameters, errors = forms.values(fields, form)
    if not errors:
        try:
            submitted = await runtime.executions.submit_action(signed.caller, found, parameters)
        except InvalidInput as exc:
            name = forms.field_of(exc.message, {f.name for f in fields})
            errors = {name or "": exc.message}
        else:
            target = f"{PREFIX}/executions/{submitted.execution.id}"
            return RedirectResponse(target, status_code=303)
    return await _action_page(request, signed, found, form, errors, 400)


@router.post("/actions/{ref}/enabled")
async def enable_action(request: Request, signed: SignedIn, form: Posted, ref: str) -> Response:
    runtime = runtime_of(request)
    found = await runtime.actions.get(signed.caller, ref)
    await runtime.actions.set_enabled(signed.caller, found, form.get("enabled") == "true")
    return RedirectResponse(f"{PREFIX}/actions/{ref}", status_code=303)


# -- flows ---------------------------------------------------------------------------------


@router.get("/flows")
async def flows(request: Request, signed: SignedIn) -> HTMLResponse:
    found, total = await runtime_of(request).flows.page(signed.caller, 200, 0)
    return await page(request, signed, "flows.html", section="flows", flows=found, total=total)


@router.get("/flows/{flow_id}")
async def flow(request: Request, signed: SignedIn, flow_id: str) -> HTMLResponse:
    found = await runtime_of(request).flows.get(signed.caller, flow_id)
    return await _flow_page(request, signed, found)


async def _flow_page(
    request: Request,
    signed: Signed,
    found: Any,
    sent: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> HTMLResponse:
    defaults = {k: orjson.dumps(v).decode() for k, v in found.parameters.items()}
    response = await page(
        request,
        signed,
        "flow.html",
        section="flows",
        flow=found,
        defaults=defaults,
        sent=sent or {},
        errors=errors or {},
    )
    response.status_code = status
    return response


@router.post("/flows/{flow_id}/run")
async def run_flow(request: Request, signed: SignedIn, form: Posted, flow_id: str) -> Response:
    runtime = runtime_of(request)
    found = await runtime.flows.get(signed.caller, flow_id)
    parameters, errors = {}, {}
    for name in found.parameters:
        text = form.get(f"p:{name}", "")
        if text:
            try:
                parameters[name] = orjson.loads(text)
            except orjson.JSONDecodeError:
                errors[name] = 'JSON is expected (text in double quotes: "like this")'
    if not errors:
        device = form.get("device", "").strip() or None
        try:
            execution = await runtime.flows.execute(signed.caller, found.id, parameters, device)
        except InvalidInput as exc:
            errors = {forms.field_of(exc.message, set(found.parameters)) or "": exc.message}
        else:
            return RedirectResponse(f"{PREFIX}/executions/{execution.id}", status_code=303)
    return await _flow_page(request, signed, found, form, errors, 400)


# -- rules and triggers -------------------------------------------------------------------


@router.get("/rules")
async def rules(request: Request, signed: SignedIn) -> HTMLResponse:
    runtime = runtime_of(request)
    found, total = await runtime.rules.rules(
        signed.caller, trigger_ref=None, action_ref=None, enabled=None, limit=200, offset=0
    )
    triggers = await runtime.rules.triggers(signed.caller)
    return await page(
        request, signed, "rules.html", section="rules", rules=found, total=total, triggers=triggers
    )


@router.get("/rules/{ref}")
async def rule(request: Request, signed: SignedIn, ref: str) -> HTMLResponse:
    runtime = runtime_of(request)
    found = await runtime.rules.rule(signed.caller, ref)
    enforcements, total = await runtime.rules.enforcements(
        signed.caller, rule_ref=found.ref, status=None, limit=20, offset=0
    )
    return await page(
        request,
        signed,
        "rule.html",
        section="rules",
        rule=found,
        criteria=_json(found.criteria) if found.criteria else None,
        template=_json(found.parameters),
        enforcements=enforcements,
        enforced=total,
    )


@router.get("/triggers/{ref}")
async def trigger(request: Request, signed: SignedIn, ref: str) -> HTMLResponse:
    runtime = runtime_of(request)
    found = await runtime.rules.trigger(signed.caller, ref)
    using, using_total = await runtime.rules.rules(
        signed.caller, trigger_ref=found.ref, action_ref=None, enabled=None, limit=200, offset=0
    )
    return await page(
        request,
        signed,
        "trigger.html",
        section="rules",
        trigger=found,
        config=_json(found.config),
        rules=using,
        rules_total=using_total,
    )


def _json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()


def _back(form: dict[str, str], detail: str) -> str:
    """Where a change was asked from: the list, or the thing's own page."""
    return detail if form.get("back") == "detail" else f"{PREFIX}/rules"


@router.post("/rules/{ref}/enabled")
async def enable_rule(request: Request, signed: SignedIn, form: Posted, ref: str) -> Response:
    enabled = form.get("enabled") == "true"
    await runtime_of(request).rules.set_rule_enabled(signed.caller, ref, enabled)
    return RedirectResponse(_back(form, f"{PREFIX}/rules/{ref}"), status_code=303)


@router.post("/triggers/{ref}/enabled")
async def enable_trigger(request: Request, signed: SignedIn, form: Posted, ref: str) -> Response:
    enabled = form.get("enabled") == "true"
    await runtime_of(request).rules.set_trigger_enabled(signed.caller, ref, enabled)
    return RedirectResponse(_back(form, f"{PREFIX}/triggers/{ref}"), status_code=303)
