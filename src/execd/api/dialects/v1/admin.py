"""Tenants, projects, tokens, workers, and who am I."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from execd.api.deps import Caller, RuntimeDep
from execd.api.dialects.v1 import params, wire
from execd.api.openapi import NOT_BLANK, nullable, one_of, shown
from execd.api.responses import Json
from execd.domain import times
from execd.domain.access import MAX_TOKEN_LIFETIME, ROLES, SCOPES
from execd.domain.accounts import Project, Tenant, TokenRecord
from execd.domain.audit import AuditEntry, AuditFilter
from execd.domain.executions import MAX_ID

router = APIRouter(tags=["v1 administration"])


Name = Annotated[str, Field(min_length=1, max_length=200, json_schema_extra={"pattern": NOT_BLANK})]


class NameBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name


class ProjectBody(NameBody):
    tenant_id: str


# An admin token reaches its tenant or the system, any other token its project; it lives
# `expires_in` seconds or until `expires`, not both (domain/access.py).
_TOKEN_RULES: list[Any] = [
    {
        "anyOf": [
            {
                "required": ["role"],
                "properties": {"role": {"const": "admin"}, "scope": {"not": {"const": "project"}}},
            },
            {
                "properties": {
                    "role": {"not": {"const": "admin"}},
                    "scope": {"enum": ["project", None]},
                }
            },
        ]
    },
    {"not": {"required": ["expires_in", "expires"]}},
]


class TokenBody(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"allOf": _TOKEN_RULES})
    name: Name
    role: Annotated[str, shown(one_of(ROLES))] = "operator"
    project_id: str | None = None
    scope: Annotated[
        str | None,
        shown(nullable(one_of(SCOPES, "Admin tokens: tenant (the default), or system"))),
    ] = None
    expires_in: int | None = Field(
        default=None, ge=1, le=MAX_TOKEN_LIFETIME, description="Seconds it lives"
    )
    expires: datetime | None = Field(
        default=None, description="When it stops working (ISO 8601; UTC when no zone is given)"
    )


def _tenant(t: Tenant) -> dict[str, object]:
    return {"id": t.id, "name": t.name, "created": wire.iso(t.created)}


def _project(p: Project) -> dict[str, object]:
    return {"id": p.id, "tenant_id": p.tenant_id, "name": p.name, "created": wire.iso(p.created)}


def _token(t: TokenRecord) -> dict[str, object]:
    return {
        "id": t.id,
        "name": t.name,
        "role": t.role,
        "tenant_id": t.tenant_id,
        "project_id": t.project_id,
        "scope": t.scope,
        "startup": t.startup,
        "created": wire.iso(t.created),
        "expires": wire.iso(t.expires),
        "last_used": wire.iso(t.last_used),
        "revoked": wire.iso(t.revoked),
    }


@router.get("/me", summary="The caller: tenant, project, role and scope of the token")
async def me(caller: Caller) -> Json:
    return Json(
        {
            "data": {
                "tenant_id": caller.tenant_id,
                "project_id": caller.project_id,
                "role": caller.role,
                "scope": caller.scope,
                "token_name": caller.name,
            }
        }
    )


@router.post("/tenants", status_code=201, summary="Create a tenant (system admin)")
async def create_tenant(runtime: RuntimeDep, caller: Caller, body: NameBody) -> Json:
    tenant = await runtime.accounts.create_tenant(caller, body.name)
    return Json({"data": _tenant(tenant)}, status_code=201)


@router.get("/tenants", summary="List tenants (admin: a tenant admin sees its own)")
async def list_tenants(runtime: RuntimeDep, caller: Caller) -> Json:
    return Json({"data": [_tenant(t) for t in await runtime.accounts.list_tenants(caller)]})


@router.post("/projects", status_code=201, summary="Create a project in a tenant it administers")
async def create_project(runtime: RuntimeDep, caller: Caller, body: ProjectBody) -> Json:
    project = await runtime.accounts.create_project(caller, body.tenant_id, body.name)
    return Json({"data": _project(project)}, status_code=201)


@router.get("/projects", summary="List the projects of the tenants it administers (admin)")
async def list_projects(runtime: RuntimeDep, caller: Caller, tenant_id: str | None = None) -> Json:
    projects = await runtime.accounts.list_projects(caller, tenant_id)
    return Json({"data": [_project(p) for p in projects]})


@router.post("/tokens", status_code=201, summary="Create a token; its value is shown only here")
async def create_token(runtime: RuntimeDep, caller: Caller, body: TokenBody) -> Json:
    record, token = await runtime.accounts.create_token(
        caller,
        name=body.name,
        role=body.role,
        project_id=body.project_id,
        scope=body.scope,
        expires_in=body.expires_in,
        expires=times.seconds(body.expires),
    )
    return Json({"data": {**_token(record), "token": token}}, status_code=201)


@router.get("/tokens", summary="List a project's tokens (admin; values are never shown)")
async def list_tokens(runtime: RuntimeDep, caller: Caller, project_id: str | None = None) -> Json:
    tokens = await runtime.accounts.list_tokens(caller, project_id)
    return Json({"data": [_token(t) for t in tokens]})


@router.delete(
    "/tokens/{token_id:id}",
    status_code=204,
    summary="Revoke a token (admin; the startup token cannot be revoked: 409)",
)
async def revoke_token(runtime: RuntimeDep, caller: Caller, token_id: int) -> Response:
    await runtime.accounts.revoke_token(caller, token_id)
    return Response(status_code=204)


@router.get("/workers", summary="Worker nodes: capacity, load, last heartbeat")
async def list_workers(runtime: RuntimeDep, caller: Caller) -> Json:
    return Json({"data": [wire.worker(w) for w in await runtime.executions.workers(caller)]})


def _entry(e: AuditEntry) -> dict[str, object]:
    return {
        "id": e.id,
        "at": wire.iso(e.at),
        "tenant_id": e.tenant_id,
        "project_id": e.project_id,
        # Anonymous access (EXECD_ANONYMOUS_ROLE) has a name and a role but no token id.
        "token": None
        if e.token_name is None
        else {"id": e.token_id, "name": e.token_name, "role": e.role},
        "method": e.method,
        "route": e.route,
        "path": e.path,
        "objects": e.objects,
        "address": e.address,
        "status": e.status,
        "outcome": e.outcome,
        "error": e.error,
    }


AUDIT_CURSOR = "a"


@router.get(
    "/audit",
    summary="The audit log, newest first (admin: a tenant admin reads its own tenant's)",
)
async def audit_log(
    runtime: RuntimeDep,
    caller: Caller,
    per_page: Annotated[int, params.per_page(50, 500)],
    tenant_id: Annotated[str | None, Query(max_length=36)] = None,
    project_id: Annotated[str | None, Query(max_length=36)] = None,
    token_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    method: Literal["POST", "PUT", "PATCH", "DELETE"] | None = None,
    route: Annotated[str | None, Query(max_length=300, description="A route template")] = None,
    outcome: Literal["done", "refused", "unchanged"] | None = None,
    status_code: Annotated[int | None, Query(ge=100, le=599, description="HTTP")] = None,
    since: Annotated[datetime | None, Query(description="ISO 8601; UTC when no zone")] = None,
    until: Annotated[datetime | None, Query(description="ISO 8601; UTC when no zone")] = None,
    cursor: Annotated[
        str | None, Query(), shown(nullable(wire.cursor_schema(AUDIT_CURSOR)))
    ] = None,
) -> Json:
    f = AuditFilter(
        tenant_id=tenant_id,
        project_id=project_id,
        token_id=token_id,
        method=method,
        route=route,
        outcome=outcome,
        status=status_code,
        since=times.seconds(since),
        until=times.seconds(until),
        below_id=wire.below(cursor, AUDIT_CURSOR),
    )
    entries = await runtime.audit.search(caller, f, per_page)
    more = len(entries) == per_page
    next_cursor = wire.cursor_below(entries[-1].id, AUDIT_CURSOR) if more else None
    return Json(
        {
            "data": [_entry(e) for e in entries],
            "pagination": {"per_page": per_page, "next_cursor": next_cursor},
        }
    )
