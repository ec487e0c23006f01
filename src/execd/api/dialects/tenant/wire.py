"""The tenant dialect's wire format: GUIDs, camelCase, its status spelling."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from execd.domain.actions import Action
from execd.domain.executions import Execution
from execd.domain.states import Status

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


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def execution(e: Execution, action_id: str | None) -> dict[str, Any]:
    """Seeds 000 and 001: dateStarted is when it started, or was queued until then."""
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
        "lastRunTime": iso(last.created) if last is not None else None,
        "lastRunResult": SPELLING[last.status] if last is not None else None,
        "dateCreated": iso(a.created),
        "dateModified": iso(a.updated),
        "createdBy": a.created_by if not a.builtin else "system",
    }
