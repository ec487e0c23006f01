"""Every error leaves in the shape of the dialect whose path was called; nothing
escapes as a bare 500 page or a FastAPI 422."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from execd.api.metrics import count_unavailable
from execd.api.responses import Json
from execd.domain.errors import ExecdError, StoreUnavailable

log = structlog.get_logger(__name__)

ErrorBody = Callable[[int, "ErrorInfo"], dict[str, Any]]


@dataclass(frozen=True)
class ErrorInfo:
    message: str
    code: str
    details: dict[str, Any]


@dataclass(frozen=True)
class ErrorShape:
    """How one dialect spells errors, for the paths it owns."""

    matches: Callable[[str], bool]
    body: ErrorBody
    # For paths whose errors are not JSON (the dashboard's pages): the whole response.
    respond: Callable[[Request, int, ErrorInfo], Response] | None = None


def default_body(status: int, info: ErrorInfo) -> dict[str, Any]:
    return {"error": info.message, "status": status}


_CODES = {
    400: "INVALID_INPUT",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    408: "REQUEST_TIMEOUT",
    409: "CONFLICT",
    413: "TOO_LARGE",
    429: "TOO_MANY_REQUESTS",
}


def describe_validation(errors: Sequence[Any], lead: str = "Invalid request") -> str:
    """pydantic's errors as one line: where, and what is wrong (never the value)."""
    parts = []
    for error in errors:
        location = [str(p) for p in error.get("loc", ()) if p not in ("body",)]
        where = ".".join(location[1:]) if location[:1] == ["query"] else ".".join(location)
        kind = "query parameter" if location[:1] == ["query"] else "field"
        if location[:1] in (["path"], ["header"]):
            kind, where = location[0], ".".join(location[1:])
        label = f"{kind} '{where}'" if where else "request body"
        parts.append(f"{label}: {error.get('msg', 'invalid')}")
    return f"{lead}: " + "; ".join(parts)


class Errors:
    """Error responses in the shape of the dialect whose path was called: for the app's
    exception handlers, and for the middleware that answers before a route runs."""

    def __init__(self, shapes: Sequence[ErrorShape]) -> None:
        self.shapes = shapes

    def shape_for(self, path: str) -> ErrorShape | None:
        return next((shape for shape in self.shapes if shape.matches(path)), None)

    def respond(
        self,
        request: Request,
        status: int,
        info: ErrorInfo,
        headers: dict[str, str] | None = None,
    ) -> Response:
        shape = self.shape_for(request.url.path)
        if shape is not None and shape.respond is not None:
            response = shape.respond(request, status, info)
        else:
            body = shape.body if shape is not None else default_body
            response = Json(body(status, info), status_code=status)
            if status == 401:
                response.headers["WWW-Authenticate"] = "Bearer"
        response.headers.update(headers or {})
        return response

    def of(self, request: Request, exc: ExecdError) -> Response:
        return self.respond(
            request, exc.status_code, ErrorInfo(exc.message, exc.code, exc.details), exc.headers
        )


def install(app: FastAPI, errors: Errors) -> None:
    respond = errors.respond

    @app.exception_handler(ExecdError)
    async def _execd(request: Request, exc: ExecdError) -> Response:
        # A handler of its own (not the catch-all's): the connection stays open.
        if isinstance(exc, StoreUnavailable):
            count_unavailable(request, exc)
        return errors.of(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        info = ErrorInfo(describe_validation(exc.errors()), "INVALID_INPUT", {})
        return respond(request, 400, info)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> Response:
        message = exc.detail if isinstance(exc.detail, str) else "HTTP error"
        if exc.status_code == 404 and message == "Not Found":
            path = request.url.path
            shown = path if len(path) <= 200 else path[:200] + "..."
            message = f"No such endpoint: {request.method} {shown}"
        code = _CODES.get(exc.status_code, "HTTP_ERROR")
        return respond(request, exc.status_code, ErrorInfo(message, code, {}))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled_error", path=request.url.path)
        info = ErrorInfo("Internal server error", "INTERNAL_ERROR", {})
        return respond(request, 500, info)
