"""Times on the wire, for every dialect: RFC 3339 in UTC with milliseconds."""

from __future__ import annotations

from datetime import UTC, datetime

from execd.domain.errors import InvalidInput


def iso(ts: float | None) -> str | None:
    """2024-01-13T10:00:00.000Z; None for no time, or one no calendar can show
    (an action's absurd ETA, say), rather than a server error."""
    if ts is None:
        return None
    try:
        moment = datetime.fromtimestamp(ts, UTC)
    except (OverflowError, OSError, ValueError):
        return None
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def seconds(value: datetime | None, name: str = "A time") -> float | None:
    """A time from the wire as seconds since the epoch; UTC when it has no zone (the
    API documents' own clients send naive times)."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        return value.timestamp()
    except (OverflowError, OSError, ValueError):
        raise InvalidInput(f"{name} is out of range") from None
