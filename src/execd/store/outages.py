"""Which errors of the store say the database is out of reach or cannot write, and
how the service reports them (`StoreUnavailable`)."""

from __future__ import annotations

import structlog
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from execd.domain.errors import StoreUnavailable

log = structlog.get_logger(__name__)

# What says the database is out of reach or cannot write, rather than that it refused
# what it was given: down, restarting, out of connections, disk full, read-only.
OUTAGES = (OperationalError, InterfaceError, PoolTimeout)


# SQLite reports a statement it cannot run (a bug, or a schema not migrated) with the
# same exception class as an outage: those stay errors of their own.
_NOT_OUTAGES = ("no such table", "no such column", "has no column", "syntax error")


def outage(exc: BaseException) -> StoreUnavailable | None:
    """The store's error as the service's: why, in a few words (the driver's message
    goes to the log, never to a caller). None: not an outage."""
    text = str(getattr(exc, "orig", None) or exc).lower()
    if any(marker in text for marker in _NOT_OUTAGES):
        return None
    if "disk is full" in text or "no space left" in text or "could not extend file" in text:
        reason = "disk full"
    elif "readonly" in text or "read-only" in text or "read only" in text:
        reason = "read-only"
    elif "database is locked" in text:
        reason = "busy"
    else:
        reason = "database unreachable"
    log.warning("store_unavailable", reason=reason, error=text.splitlines()[0][:300])
    return StoreUnavailable(reason)
