"""/api/v1/executions/export and /stats: every matching execution as a file, and counts
and analytics."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from execd.api.deps import Caller, RuntimeDep
from execd.api.dialects.v1 import wire
from execd.api.dialects.v1.executions import Listed, Time
from execd.api.responses import Json
from execd.domain import times
from execd.domain.analytics import BUCKETS
from execd.domain.states import PENDING, Status

router = APIRouter(prefix="/executions", tags=["v1 executions"])


EXPORT_FIELDS = (
    "id", "uuid", "action_ref", "status", "priority", "parent", "attempt", "created",
    "started", "ended", "duration_ms", "exit_code", "error", "submitted_by",
)  # fmt: skip


@router.get(
    "/export",
    summary="Every matching execution, streamed as CSV or JSON lines",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "One execution per line: a JSON object (jsonl) or a CSV row",
            "content": {
                "application/x-ndjson": {"schema": {"type": "string"}},
                "text/csv": {"schema": {"type": "string"}},
            },
        }
    },
)
async def export(
    runtime: RuntimeDep,
    caller: Caller,
    f: Listed,
    format: Annotated[str, Query(pattern="^(csv|jsonl)$")] = "jsonl",
) -> StreamingResponse:
    async def lines() -> AsyncIterator[bytes]:
        if format == "csv":
            yield (",".join(EXPORT_FIELDS) + "\r\n").encode()
        async for batch in runtime.executions.export(caller, f):
            chunk = io.StringIO()
            writer = csv.writer(chunk) if format == "csv" else None
            for execution in batch:
                record = wire.execution(execution)
                row = {k: record[k] for k in EXPORT_FIELDS}
                if writer is not None:
                    writer.writerow(["" if row[k] is None else row[k] for k in EXPORT_FIELDS])
                else:
                    chunk.write(orjson.dumps(record).decode() + "\n")
            yield chunk.getvalue().encode()

    media = "text/csv; charset=utf-8" if format == "csv" else "application/x-ndjson"
    return StreamingResponse(
        lines(),
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="executions.{format}"'},
    )


@router.get("/stats", summary="Counts by status; optionally analytics per action and time")
async def stats(
    runtime: RuntimeDep,
    caller: Caller,
    group_by: Annotated[str | None, Query(pattern="^action$")] = None,
    bucket: Annotated[str | None, Query(pattern="^(hour|day)$")] = None,
    since: Time = None,
    until: Time = None,
) -> Json:
    s = await runtime.executions.stats(caller)
    data: dict[str, Any] = {
        "total": s.total,
        "completed": s.count(Status.COMPLETED),
        "failed": s.count(Status.FAILED),
        "running": s.count(Status.RUNNING, Status.CANCELING),
        "pending": s.count(*PENDING),
        "cancelled": s.count(Status.CANCELLED),
        "timeout": s.count(Status.TIMEOUT),
        "abandoned": s.count(Status.ABANDONED),
    }
    if group_by or bucket or since or until:  # without them: exactly the document's body
        start, end, groups = await runtime.executions.analytics(
            caller,
            times.seconds(since),
            times.seconds(until),
            by_action=group_by == "action",
            bucket=bucket,
        )
        width = BUCKETS[bucket] if bucket else None
        data["window"] = {"since": wire.iso(start), "until": wire.iso(end)}
        data["groups"] = [wire.aggregate(g, start, end, width) for g in groups]
    return Json({"data": data})
