"""Dependencies shared by the dialects: the runtime and the authenticated caller."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from execd.domain.access import Principal
from execd.runtime import Runtime


async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def get_caller(
    request: Request,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Principal:
    runtime: Runtime = request.app.state.runtime
    return await runtime.accounts.authenticate(authorization)


Caller = Annotated[Principal, Depends(get_caller)]
