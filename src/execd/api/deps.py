"""Dependencies shared by the dialects: the runtime and the authenticated caller."""

from __future__ import annotations

import json
import re
from typing import Annotated

from fastapi import Depends, Header, Request

from execd.domain import jsonsafe
from execd.domain.access import Principal
from execd.errors import InvalidInput
from execd.runtime import Runtime

# A JSON body can only hold what the store cannot keep if it has an escaped NUL or
# surrogate, a number of 19 digits or more, or many brackets; only then is it parsed a
# second time to look closer.
_SUSPECT_BODY = re.compile(rb"\\u0000|\\u[dD][89a-fA-F]|\d{19,}")


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


async def screen_request(request: Request) -> None:
    """Refuse, in the dialect's error shape, input that neither database can store."""
    if jsonsafe.NUL in request.url.path:
        raise InvalidInput("The path must not contain NUL characters")
    for name, value in request.query_params.multi_items():
        if jsonsafe.NUL in name or jsonsafe.NUL in value:
            raise InvalidInput(f"Query parameter '{name}' must not contain NUL characters")
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    body = await request.body()
    deep = body.count(b"[") + body.count(b"{") > jsonsafe.MAX_DEPTH
    if not deep and not _SUSPECT_BODY.search(body):
        return
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        return  # not JSON: the route's own validation answers
    if problem := jsonsafe.problem(value, "the request body"):
        raise InvalidInput(problem[0].upper() + problem[1:])
