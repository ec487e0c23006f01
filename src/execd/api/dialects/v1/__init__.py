"""The v1 executions dialect (seed 004): /api/v1/..., lowercase states,
`{"data": ...}` envelopes and `{"error": ..., "status": N}` errors."""

from __future__ import annotations

from fastapi import APIRouter

from execd.api.dialects.v1 import admin, catalog, executions, rules, streams, system
from execd.api.errors import ErrorShape, default_body

PREFIX = "/api/v1"

router = APIRouter(prefix=PREFIX)
router.include_router(streams.router)
router.include_router(executions.router)
router.include_router(catalog.router)
router.include_router(admin.router)
router.include_router(rules.router)
router.include_router(system.router)

ERRORS = ErrorShape(matches=lambda path: path.startswith(PREFIX + "/"), body=default_body)
