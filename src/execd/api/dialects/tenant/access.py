"""Who may use a tenant path: a token reaches its own tenant and project only."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from execd.api.deps import Caller
from execd.domain.access import Principal
from execd.domain.errors import Unauthorized


async def tenant_caller(tenantId: str, projectId: str, caller: Caller) -> Principal:
    # The same answer whether or not that tenant or project exists: nothing leaks.
    if tenantId.lower() != caller.tenant_id or projectId.lower() != caller.project_id:
        raise Unauthorized("The access token is not valid for this tenant and project")
    return caller


TenantCaller = Annotated[Principal, Depends(tenant_caller)]
