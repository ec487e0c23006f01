"""/api/v1/enforcements: rule firings, each with what it ran or why it did not."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from execd.api.deps import Caller, RuntimeDep
from execd.api.dialects.v1 import wire
from execd.api.dialects.v1.params import PageNumber, PerPage
from execd.api.responses import Json
from execd.domain.executions import MAX_ID

router = APIRouter(tags=["v1 rules"])


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
    return Json(wire.page([wire.enforcement(e) for e in found], page, per_page, total))


@router.get("/enforcements/{enforcement_id:id}", summary="One rule firing")
async def get_enforcement(
    runtime: RuntimeDep, caller: Caller, enforcement_id: Annotated[int, Path(ge=1, le=MAX_ID)]
) -> Json:
    enforcement = await runtime.rules.enforcement(caller, enforcement_id)
    return Json({"data": wire.enforcement(enforcement)})
