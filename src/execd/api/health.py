"""Liveness and readiness, without authentication: for load balancers and process
managers (docs/operations.md, "Health")."""

from __future__ import annotations

from fastapi import APIRouter

from execd import __version__
from execd.api.deps import RuntimeDep
from execd.api.responses import Json
from execd.domain.errors import StoreUnavailable

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Alive: the process answers and reaches its database")
async def healthz(runtime: RuntimeDep) -> Json:
    try:
        await runtime.db.ping()
    except Exception as exc:  # the reason only: anyone may ask
        reason = exc.reason if isinstance(exc, StoreUnavailable) else "database unreachable"
        return Json({"status": "unavailable", "error": reason}, status_code=503)
    return Json({"status": "ok", "version": __version__, "database": runtime.db.backend})


@router.get("/readyz", summary="Ready: database reachable, schema current, workers present")
async def readyz(runtime: RuntimeDep) -> Json:
    checks = await runtime.readiness()
    ready = all(finding == "ok" for finding in checks.values())
    body = {"status": "ready" if ready else "not ready", "checks": checks}
    return Json(body, status_code=200 if ready else 503)
