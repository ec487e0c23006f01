"""The dashboard's live updates: the event stream that tells a page to refresh."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from execd.api.dashboard.session import PREFIX, SignedIn, runtime_of
from execd.api.responses import Frame, sse_response
from execd.domain.executions import MAX_ID
from execd.engine.streams import EventFilter, position

router = APIRouter(prefix=PREFIX, include_in_schema=False)


@router.get("/events")
async def events(
    request: Request,
    signed: SignedIn,
    execution: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
) -> StreamingResponse:
    """That something changed (an execution's id and status): the page then fetches the
    parts it shows again. A reconnect starts from now: the page refreshes as it opens."""
    runtime = runtime_of(request)

    async def frames() -> AsyncIterator[Frame]:
        f = EventFilter(execution, None, None)
        async for batch in runtime.streams.events(signed.caller, f, position(None)):
            if not batch:
                yield None
            for e in batch:
                data = {"execution": e.execution_id, "status": e.to_status, "kind": e.kind}
                yield (None, "change", data)

    return sse_response(frames())
