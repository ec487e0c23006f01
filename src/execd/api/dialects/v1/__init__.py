"""The v1 executions dialect (the v1 executions API): /api/v1/..., lowercase states,
`{"data": ...}` envelopes and `{"error": ..., "status": N}` errors."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from execd.api.dialects.v1 import (
    admin,
    catalog,
    enforcements,
    execution_control,
    execution_reports,
    execution_submit,
    executions,
    rules,
    streams,
    system,
    triggers,
    webhooks,
)
from execd.api.errors import ErrorInfo, ErrorShape, default_body

PREFIX = "/api/v1"

router = APIRouter(prefix=PREFIX)
router.include_router(streams.router)
router.include_router(executions.router)
router.include_router(execution_reports.router)
router.include_router(execution_submit.router)
router.include_router(execution_control.router)
router.include_router(catalog.router)
router.include_router(admin.router)
router.include_router(triggers.router)
router.include_router(rules.router)
router.include_router(enforcements.router)
router.include_router(webhooks.router)
router.include_router(system.router)


def error_body(status: int, info: ErrorInfo) -> dict[str, Any]:
    """`{"error", "status"}`, and for a refused batch `errors`: one per refused item."""
    body = default_body(status, info)
    if "errors" in info.details:
        body["errors"] = info.details["errors"]
    return body


ERRORS = ErrorShape(matches=lambda path: path.startswith(PREFIX + "/"), body=error_body)
