"""What the SDK raises: one base class, and one subclass per kind of failure.

Every error from the server keeps its HTTP status, the message the server gave and
the whole error body, whatever the dialect's error shape.
"""

from __future__ import annotations

from typing import Any


class ClientError(Exception):
    """Anything the SDK raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigurationError(ClientError):
    """No server URL, or a setting that cannot work."""


class ConnectionFailed(ClientError):
    """The server could not be reached (refused, timed out, DNS, TLS)."""


class UnexpectedAnswer(ClientError):
    """An answer that is not what an execd server gives (not JSON, fields missing): the
    URL probably points at something else."""


class ApiError(ClientError):
    """The server answered with an error status."""

    def __init__(self, status: int, message: str, body: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body

    def __str__(self) -> str:
        return f"{self.status}: {self.message}"


class BadRequest(ApiError):
    """400: the request was invalid (parameters, filters, a definition)."""


class Unauthorized(ApiError):
    """401: no token, or a token the server does not accept."""


class Forbidden(ApiError):
    """403: the token's role is too low."""


class NotFound(ApiError):
    """404: no such execution, action, flow, rule... in the token's project."""


class Conflict(ApiError):
    """409: the thing exists already, or is in a state that does not allow this."""


class ServerError(ApiError):
    """5xx."""


_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
}


def error_message(body: Any) -> str | None:
    """The message of an error body in one of execd's shapes: v1 `{"error", "status"}`,
    the flow dialect's `{"error", "code", "message"}`, the tenant dialect's `{"error",
    ...}` or FastAPI's `{"detail"}`. None: no such body (something else answered)."""
    if isinstance(body, dict):
        for key in ("message", "error", "detail"):
            value = body.get(key)
            if isinstance(value, str) and value:
                return value
    return None


def error_for(status: int, body: Any, fallback: str) -> ApiError:
    """The exception for an error answer, with the message taken from any dialect's body
    (`fallback` when it has none)."""
    kind = _BY_STATUS.get(status, ServerError if status >= 500 else ApiError)
    return kind(status, error_message(body) or fallback, body)
