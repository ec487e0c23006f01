"""The tenant dialect (the tenant API: action execution history, execute action, job
execution): everything under /api/{tenantId}/{projectId}/..., `{"error": "...",
"<id field>": ...}` errors and the Queued/Running/Completed/Failed/Cancelled spelling."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter

from execd.api.dialects.tenant import actions, history, jobs, system
from execd.api.errors import ErrorInfo, ErrorShape

router = APIRouter(prefix="/api/{tenantId}/{projectId}")
router.include_router(actions.router)
router.include_router(history.router)
router.include_router(jobs.router)
# /api/{tenantId}/execution/system/status has no project in its path.
system_router = system.router

_PATHS = re.compile(
    r"^/api/[^/]+/([^/]+/(action|actionexecution|execution)(/|$)|execution/system/status$)"
)
# Detail fields the documents show beside "error".
_FIELDS = ("actionId", "executionId", "jobId", "reason")


def error_body(status: int, info: ErrorInfo) -> dict[str, Any]:
    return {"error": info.message, **{k: info.details[k] for k in _FIELDS if k in info.details}}


ERRORS = ErrorShape(matches=lambda path: bool(_PATHS.match(path)), body=error_body)
