"""Errors the service layer raises; each API dialect renders them in its own shape."""

from __future__ import annotations

from typing import Any


class ExecdError(Exception):
    status_code = 500
    code = "INTERNAL_ERROR"

    def __init__(self, message: str, *, code: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details


class InvalidInput(ExecdError):
    status_code = 400
    code = "INVALID_INPUT"


class Unauthorized(ExecdError):
    status_code = 401
    code = "UNAUTHORIZED"


class Forbidden(ExecdError):
    status_code = 403
    code = "FORBIDDEN"


class NotFound(ExecdError):
    status_code = 404
    code = "NOT_FOUND"


class Conflict(ExecdError):
    status_code = 409
    code = "CONFLICT"


class Unavailable(ExecdError):
    status_code = 503
    code = "UNAVAILABLE"


class StartupError(Exception):
    """A process cannot start as configured; the message says why and what to do."""
