"""The flow dialect (the flow history API): flows, their execution history and devices under
/api/flows, /api/history and /api/devices; `{"success": false, "error", "code",
"message"}` errors."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from execd.api.dialects.flows import devices, flows, history
from execd.api.errors import ErrorInfo, ErrorShape

PREFIXES = ("/api/flows", "/api/history", "/api/devices")

router = APIRouter(prefix="/api")
router.include_router(flows.router)
router.include_router(history.router)
router.include_router(devices.router)

_TITLES = {
    400: "Invalid request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    500: "Internal server error",
    503: "Service unavailable",
}


def error_body(status: int, info: ErrorInfo) -> dict[str, Any]:
    title = info.details.get("title") or _TITLES.get(status, "Error")
    return {"success": False, "error": title, "code": info.code, "message": info.message}


def _owns(path: str) -> bool:
    return any(path == p or path.startswith(p + "/") for p in PREFIXES)


ERRORS = ErrorShape(matches=_owns, body=error_body)
