"""/api/v1/system: what this deployment is and how safely it runs actions."""

from __future__ import annotations

from fastapi import APIRouter

from execd import __version__
from execd.api.deps import Caller, RuntimeDep
from execd.api.responses import Json
from execd.domain.workers import OFFLINE

router = APIRouter(tags=["v1 administration"])


@router.get("/system", summary="Version, database, and the action sandbox of live workers")
async def system(runtime: RuntimeDep, caller: Caller) -> Json:
    nodes = [n for n in await runtime.executions.workers(caller) if n.state != OFFLINE]
    sandbox, warnings = runtime.status_warnings([n.sandbox for n in nodes])
    return Json(
        {
            "data": {
                "version": __version__,
                "database": "postgresql" if runtime.db.is_postgres else "sqlite",
                "sandbox": sandbox,
                "workers": [
                    {"name": n.name, "state": n.state, "sandbox": n.sandbox or "unknown"}
                    for n in nodes
                ],
                "warnings": warnings,
            }
        }
    )
