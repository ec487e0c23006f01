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

    @property
    def headers(self) -> dict[str, str]:
        """HTTP headers that go with the answer."""
        return {}


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


class TooLarge(ExecdError):
    """A request body past its route's limit: refused before more of it is read."""

    status_code = 413
    code = "TOO_LARGE"


class TooManyRequests(ExecdError):
    """A rate limit is reached: `headers` say which, and when to come back."""

    status_code = 429
    code = "TOO_MANY_REQUESTS"

    def __init__(self, message: str, limit_headers: dict[str, str]) -> None:
        super().__init__(message)
        self.limit_headers = limit_headers

    @property
    def headers(self) -> dict[str, str]:
        return self.limit_headers


class Unavailable(ExecdError):
    status_code = 503
    code = "UNAVAILABLE"
    retry_after = 5  # seconds, for the Retry-After header

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class StoreUnavailable(Unavailable):
    """The database could not be reached or written (down, restarting, disk full,
    read-only): nothing was done, and the same request may be sent again."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"The store is unavailable ({reason}); try again shortly", reason=reason)
        self.reason = reason


class BatchRefused(ExecdError):
    """An all-or-nothing batch stored nothing: some of its items were refused. Its
    status is theirs when they all agree (404, 409), else 400; `details["errors"]` lists
    each refused item's index, status and message."""

    def __init__(self, errors: dict[int, ExecdError], total: int) -> None:
        kinds = {(e.status_code, e.code) for e in errors.values()}
        self.status_code, self.code = kinds.pop() if len(kinds) == 1 else (400, "INVALID_INPUT")
        listed = [item_error(index, error) for index, error in sorted(errors.items())]
        super().__init__(
            f"Batch refused, nothing was stored: {len(errors)} of {total} executions "
            "could not be submitted",
            errors=listed,
        )


def item_error(index: int, error: ExecdError) -> dict[str, Any]:
    """How one refused item of a batch is told: its index, status and message."""
    return {"index": index, "status": error.status_code, "error": error.message}


class StartupError(Exception):
    """A process cannot start as configured; the message says why and what to do."""
