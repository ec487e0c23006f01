"""Tenants, their projects, and the API tokens that act in them."""

from __future__ import annotations

from datetime import datetime

from execd.client.models import NewToken, Project, Tenant, Token
from execd.client.operations.base import V1, OperationsBase, data_of, when
from execd.client.protocol import Operation, Request, operation, params


class AccountOperations(OperationsBase):
    @operation
    def create_token(
        self,
        name: str,
        role: str = "operator",
        project_id: str | None = None,
        *,
        scope: str | None = None,
        expires_in: int | None = None,
        expires: datetime | str | None = None,
    ) -> Operation[NewToken]:
        """A new API token (admin). The answer is the only place its value appears.
        `scope="system"` (a system admin's own call) makes a system admin token; it
        lives `expires_in` seconds or until `expires` if given."""
        body = {
            "name": name,
            "role": role,
            "project_id": project_id,
            "scope": scope,
            "expires_in": expires_in,
            "expires": when(expires),
        }
        reply = yield Request(
            "POST", f"{V1}/tokens", json={k: v for k, v in body.items() if v is not None}
        )
        return NewToken.model_validate(data_of(reply))

    @operation
    def list_tokens(self, project_id: str | None = None) -> Operation[list[Token]]:
        """A project's tokens (admin; default: the token's own project), never their
        values: role, scope, expiry, last use."""
        reply = yield Request("GET", f"{V1}/tokens", params=params(project_id=project_id))
        return [Token.model_validate(t) for t in data_of(reply)]

    @operation
    def revoke_token(self, token_id: int) -> Operation[None]:
        """Revoke a token (admin); it stops working within the server's cache time."""
        yield Request("DELETE", f"{V1}/tokens/{int(token_id)}")

    @operation
    def create_tenant(self, name: str) -> Operation[Tenant]:
        """A new tenant (system admin)."""
        reply = yield Request("POST", f"{V1}/tenants", json={"name": name})
        return Tenant.model_validate(data_of(reply))

    @operation
    def list_tenants(self) -> Operation[list[Tenant]]:
        """Every tenant (system admin), or a tenant admin's own."""
        reply = yield Request("GET", f"{V1}/tenants")
        return [Tenant.model_validate(t) for t in data_of(reply)]

    @operation
    def create_project(self, tenant_id: str, name: str) -> Operation[Project]:
        """A new project in a tenant the token administers."""
        body = {"tenant_id": tenant_id, "name": name}
        reply = yield Request("POST", f"{V1}/projects", json=body)
        return Project.model_validate(data_of(reply))

    @operation
    def list_projects(self, tenant_id: str | None = None) -> Operation[list[Project]]:
        """The projects of the tenants the token administers (or of one of them)."""
        reply = yield Request("GET", f"{V1}/projects", params=params(tenant_id=tenant_id))
        return [Project.model_validate(p) for p in data_of(reply)]
