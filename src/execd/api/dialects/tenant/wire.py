"""The tenant dialect's wire format: GUIDs, camelCase, its status spelling."""

from __future__ import annotations

from typing import Any

from execd.domain import times
from execd.domain.actions import Action
from execd.domain.executions import Brief, Execution
from execd.domain.states import Status

iso = times.iso  # the one way every dialect writes a time

SPELLING: dict[Status, str] = {
    Status.REQUESTED: "Queued",
    Status.SCHEDULING: "Queued",
    Status.SCHEDULED: "Queued",
    Status.RUNNING: "Running",
    Status.CANCELING: "Running",
    Status.COMPLETED: "Completed",
    Status.FAILED: "Failed",
    Status.TIMEOUT: "Failed",  # notes say it timed out
    Status.ABANDONED: "Failed",  # notes say why
    Status.CANCELLED: "Cancelled",
}


def execution(e: Execution | Brief, action_id: str | None) -> dict[str, Any]:
    """Action execution history and execute action: dateStarted is when it started, or
    was queued until then."""
    return {
        "actionId": action_id,
        "actionExecutionId": e.uuid,
        "dateStarted": iso(e.started if e.started is not None else e.created),
        "dateEnded": iso(e.ended),
        "status": SPELLING[e.status],
        "notes": e.error,
    }


def action(a: Action, last: Execution | None) -> dict[str, Any]:
    return {
        "actionId": a.uuid,
        "name": a.name,
        "ref": a.ref,
        "description": a.description,
        "runner": a.runner,
        "entryPoint": a.entry_point,
        "parameters": a.parameters,
        "isEnabled": a.enabled,
        "isBuiltIn": a.builtin,
        "maxRunTime": a.timeout,
        "retry": a.retry.to_json(),
        "network": a.sandbox.network,
        "limits": a.sandbox.limits.to_json(),
        "lastRunTime": iso(last.created) if last is not None else None,
        "lastRunResult": SPELLING[last.status] if last is not None else None,
        "dateCreated": iso(a.created),
        "dateModified": iso(a.updated),
        "createdBy": a.created_by if not a.builtin else "system",
    }


# -- human-readable companions (the tenant API shows "2.1 GB", "8 minutes 32 seconds") -------


def human_bytes(size: float | None) -> str | None:
    if size is None:
        return None
    value = float(size)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            if unit == "B":
                return f"{int(value)} B"
            return f"{value:.1f} {unit}" if value < 10 else f"{value:.0f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _plural(n: int, unit: str) -> str:
    return f"{n} {unit}" + ("" if n == 1 else "s")


def human_seconds(seconds: float | None) -> str | None:
    """8 minutes 32 seconds; 1 hour 5 minutes; 45 seconds."""
    if seconds is None:
        return None
    total = max(0, round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{_plural(hours, 'hour')} {_plural(minutes, 'minute')}"
    if minutes:
        return f"{_plural(minutes, 'minute')} {_plural(secs, 'second')}"
    return _plural(secs, "second")


def human_range(low: float, high: float) -> str:
    """45-60 minutes; 10-30 seconds; 1.5-2.0 hours; about 5 seconds."""
    if high < 60:
        scale, unit, digits = 1.0, "seconds", 0
    elif high < 3600:
        scale, unit, digits = 60.0, "minutes", 0
    else:
        scale, unit, digits = 3600.0, "hours", 1
    a = round(low / scale, digits) if digits else max(1, round(low / scale))
    b = round(high / scale, digits) if digits else max(1, round(high / scale))
    return f"about {b} {unit}" if a == b else f"{a}-{b} {unit}"


def human_minutes(seconds: float | None) -> str | None:
    """4.2 minutes; 45 seconds under a minute."""
    if seconds is None:
        return None
    if seconds < 60:
        return f"{seconds:.0f} seconds"
    return f"{seconds / 60:.1f} minutes"
