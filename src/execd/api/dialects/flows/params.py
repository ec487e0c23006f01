"""Query parameters of the flow dialect, parsed by hand so that each bad value gets
its own error code (INVALID_LIMIT, INVALID_DATE, ...) rather than a generic one."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Path, Query

from execd.api.dialects.flows.wire import PARENT, STATUSES, SUBFLOW
from execd.api.openapi import NOT_BLANK, nullable, one_of, shown, whole
from execd.domain import times
from execd.domain.errors import InvalidInput

MAX_LIMIT = 1000
MAX_OFFSET = 10**12
MAX_DAYS = 36600
DAY = 86400.0

# Each is text to the handler, which checks it (the functions below); the document shows
# what it takes.
Limit = Annotated[str | None, Query(), shown(nullable(whole(1, MAX_LIMIT)))]
Offset = Annotated[str | None, Query(), shown(nullable(whole(0, MAX_OFFSET)))]
Days = Annotated[str | None, Query(), shown(nullable(whole(1, MAX_DAYS, "Days to look back")))]
_DATE = {
    "anyOf": [{"type": "string", "format": f} for f in ("date", "date-time")],
    "description": "ISO 8601 date or date-time; UTC when no zone is given",
}
Date = Annotated[str | None, Query(), shown(nullable(_DATE))]
Flag = Annotated[str | None, Query(), shown(nullable({"type": "boolean"}))]
_TYPES = one_of((PARENT, SUBFLOW), "Top-level flows, or sub-flows")
ExecutionType = Annotated[str | None, Query(), shown(nullable(_TYPES))]
Status = Annotated[str | None, Query(), shown(nullable(one_of(STATUSES)))]
# An id in the path; a blank one is answered MISSING_..._ID, as the document says.
PathId = Annotated[str, Path(), shown({"type": "string", "pattern": NOT_BLANK})]


def integer(value: str | None, name: str, default: int, low: int, high: int, code: str) -> int:
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        number = None
    if number is None or not low <= number <= high:
        raise InvalidInput(
            f"{name} must be a whole number from {low} to {high}, not {value!r}",
            code=code,
            title=f"Invalid {name}",
        )
    return number


def limit(value: str | None, default: int) -> int:
    return integer(value, "limit", default, 1, MAX_LIMIT, "INVALID_LIMIT")


def offset(value: str | None) -> int:
    return integer(value, "offset", 0, 0, MAX_OFFSET, "INVALID_OFFSET")


def date(value: str | None, name: str, *, end_of_day: bool = False) -> float | None:
    """ISO 8601 date or date-time; without a zone it is UTC. A bare date as an end is
    inclusive: the whole day counts."""
    if value is None or value == "":
        return None
    text = value.strip().upper()  # RFC 3339 allows a lower-case t and z
    try:
        seconds = times.seconds(datetime.fromisoformat(text), name)
    except (ValueError, InvalidInput):
        raise InvalidInput(
            f"{name} must be an ISO 8601 date or date-time (e.g. 2024-01-01T12:00:00Z), "
            f"not {value!r}",
            code="INVALID_DATE",
            title=f"Invalid {name}",
        ) from None
    if seconds is not None and end_of_day and len(text) == 10:
        return seconds + DAY - 1e-6  # YYYY-MM-DD: up to the end of that day
    return seconds


def boolean(value: str | None, name: str) -> bool:
    if value is None or value == "":
        return False
    lowered = value.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise InvalidInput(
        f"{name} must be true or false, not {value!r}",
        code="INVALID_BOOLEAN",
        title=f"Invalid {name}",
    )


def execution_type(value: str | None) -> bool | None:
    """PARENT -> True (top level), SUBFLOW -> False, absent -> None."""
    if value is None or value == "":
        return None
    spelled = value.strip().upper()
    if spelled == PARENT:
        return True
    if spelled == SUBFLOW:
        return False
    raise InvalidInput(
        f"executionType must be PARENT or SUBFLOW, not {value!r}",
        code="INVALID_EXECUTION_TYPE",
        title="Invalid executionType",
    )


def check_range(since: float | None, until: float | None) -> None:
    if since is not None and until is not None and since > until:
        raise InvalidInput(
            "startDate must not be after endDate", code="INVALID_DATE_RANGE", title="Invalid dates"
        )
