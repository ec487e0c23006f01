"""Liveness and readiness, without authentication."""

from __future__ import annotations

from fastapi import APIRouter

from execd import __version__
from execd.api.deps import RuntimeDep
from execd.api.responses import Json

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz(runtime: RuntimeDep) -> Json:
    try:
        await runtime.db.ping()
    except Exception as exc:
        return Json({"status": "unavailable", "error": str(exc)}, status_code=503)
    return Json({"status": "ok", "version": __version__, "database": runtime.db.backend})
