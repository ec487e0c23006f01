"""The OpenAPI document, as the server really answers.

FastAPI documents what a route declares: its success answer, and a 422 that execd never
sends (invalid input is a 400 in the dialect's own shape, api/errors.py). This module
rewrites each operation's answers: the 422 goes, and every error status the operation
can answer is listed with the error body of the dialect its path belongs to. The
bearer scheme, which the authenticating dependency declares (api/deps.py), gives
Swagger UI its Authorize button."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

# The error body of each dialect, by the first path prefix that matches (api/errors.py
# and each dialect's `error_body`).
ERROR_SCHEMAS: dict[str, dict[str, Any]] = {
    "V1Error": {
        "type": "object",
        "required": ["error", "status"],
        "properties": {
            "error": {"type": "string", "description": "What is wrong, in a sentence"},
            "status": {"type": "integer", "description": "The HTTP status, again"},
            "errors": {
                "type": "array",
                "description": "A refused batch: each refused item's index, status, error",
                "items": {
                    "type": "object",
                    "required": ["index", "status", "error"],
                    "properties": {
                        "index": {"type": "integer"},
                        "status": {"type": "integer"},
                        "error": {"type": "string"},
                    },
                },
            },
        },
    },
    "TenantError": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {"type": "string"},
            "actionId": {"type": "string"},
            "executionId": {"type": "string"},
            "jobId": {"type": "string"},
            "reason": {"type": "string"},
        },
    },
    "FlowError": {
        "type": "object",
        "required": ["success", "error", "code", "message"],
        "properties": {
            "success": {"type": "boolean", "enum": [False]},
            "error": {"type": "string", "description": "A title: Invalid request, Not found"},
            "code": {"type": "string", "description": "INVALID_INPUT, NOT_FOUND, ..."},
            "message": {"type": "string"},
        },
    },
    "Error": {
        "type": "object",
        "required": ["error", "status"],
        "properties": {"error": {"type": "string"}, "status": {"type": "integer"}},
    },
}

_TENANT = ("/api/{tenantId}/",)
_FLOWS = ("/api/flows", "/api/history", "/api/devices")


def _error_schema(path: str) -> str:
    if path.startswith("/api/v1/"):
        return "V1Error"
    if path.startswith(_FLOWS):
        return "FlowError"
    if path.startswith(_TENANT):
        return "TenantError"
    return "Error"


_WHY = {
    400: "The request is malformed or refused as it stands (the message says what)",
    401: "No token, or one that is not valid (expired, revoked, unknown)",
    403: "The token's role or scope does not allow this",
    404: "What the path or the request names does not exist (or is not the token's)",
    408: "The request body was not sent in time",
    409: "It conflicts with the state of what it names",
    413: "The request body is larger than this route takes",
    429: "A rate limit was reached: Retry-After says when to try again",
    503: "The store is out of reach for a moment: Retry-After says when to try again",
}
_LIMITED = {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds"}}


def _statuses(method: str, operation: dict[str, Any]) -> list[int]:
    """The error statuses an operation can answer."""
    secured = bool(operation.get("security"))
    parameters = operation.get("parameters", [])
    body = "requestBody" in operation
    statuses = [400] if parameters or body else []
    if secured:
        statuses += [401, 403, 429]
    if any(p["in"] == "path" for p in parameters) or body or secured:
        statuses.append(404)
    if method != "get":
        statuses.append(409)
    if body:
        statuses += [408, 413]
    return sorted([*statuses, 503])


def document(app: FastAPI) -> dict[str, Any]:
    spec = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
    )
    components = spec.setdefault("components", {})
    components.setdefault("schemas", {}).update(ERROR_SCHEMAS)
    for path, item in spec.get("paths", {}).items():
        schema = {"$ref": f"#/components/schemas/{_error_schema(path)}"}
        for method, operation in item.items():
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            for status in _statuses(method, operation):
                answer: dict[str, Any] = {
                    "description": _WHY[status],
                    "content": {"application/json": {"schema": schema}},
                }
                if status in (429, 503):
                    answer["headers"] = _LIMITED
                responses.setdefault(str(status), answer)
    schemas = components["schemas"]
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    return spec


def install(app: FastAPI) -> None:
    """Serve `document(app)` at /openapi.json (built once, at the first request)."""
    built: dict[str, Any] = {}

    def openapi() -> dict[str, Any]:
        if not built:
            built.update(document(app))
        return built

    app.openapi = openapi  # type: ignore[method-assign]
