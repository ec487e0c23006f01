"""Query parameters of the flow dialect, parsed by hand so that each bad value gets
its own error code (INVALID_LIMIT, INVALID_DATE, ...) rather than a generic one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from execd.errors import InvalidInput

MAX_LIMIT = 1000
MAX_DAYS = 36600


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
    return integer(value, "offset", 0, 0, 10**12, "INVALID_OFFSET")


def date(value: str | None, name: str, *, end_of_day: bool = False) -> float | None:
    """ISO 8601 date or date-time; without a zone it is UTC. A bare date as an end is
    inclusive: the whole day counts."""
    if value is None or value == "":
        return None
    text = value.strip()
    try:
        moment = datetime.fromisoformat(text)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        if end_of_day and len(text) == 10:  # YYYY-MM-DD: up to the end of that day
            return (moment + timedelta(days=1)).timestamp() - 1e-6
        return moment.timestamp()
    except (ValueError, OverflowError):
        raise InvalidInput(
            f"{name} must be an ISO 8601 date or date-time (e.g. 2024-01-01T12:00:00Z), "
            f"not {value!r}",
            code="INVALID_DATE",
            title=f"Invalid {name}",
        ) from None


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
    if spelled == "PARENT":
        return True
    if spelled == "SUBFLOW":
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
