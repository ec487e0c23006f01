"""The flow dialect's wire format (the flow history API): camelCase fields, UUID ids, its own
status spelling, durations in milliseconds and words, and the success envelope."""

from __future__ import annotations

import time
from typing import Any

from execd.domain import times
from execd.domain.errors import InvalidInput
from execd.domain.executions import Execution
from execd.domain.flows import Flow, latest_attempts, numbered_steps, plan_steps, step_name
from execd.domain.states import TERMINAL, Status

iso = times.iso  # the one way every dialect writes a time

# Canonical state -> this dialect's spelling (DESIGN.md section 3), and back.
SPELLING: dict[Status, str] = {
    Status.REQUESTED: "PENDING",
    Status.SCHEDULING: "PENDING",
    Status.SCHEDULED: "PENDING",
    Status.RUNNING: "RUNNING",
    Status.CANCELING: "RUNNING",
    Status.COMPLETED: "PASSED",
    Status.FAILED: "FAILED",
    Status.TIMEOUT: "FAILED",
    Status.ABANDONED: "FAILED",
    Status.CANCELLED: "CANCELLED",
}
STATUSES: dict[str, frozenset[Status]] = {
    spelled: frozenset(s for s, name in SPELLING.items() if name == spelled)
    for spelled in dict.fromkeys(SPELLING.values())
}
SKIPPED = "SKIPPED"  # a step that never ran: its flow ended before reaching it
PARENT, SUBFLOW = "PARENT", "SUBFLOW"


def parse_status(value: str) -> frozenset[Status]:
    statuses = STATUSES.get(value.strip().upper())
    if statuses is None:
        raise InvalidInput(
            f"Invalid status {value!r}; expected one of {', '.join(STATUSES)}",
            code="INVALID_STATUS",
            title="Invalid status",
        )
    return statuses


def now_iso() -> str:
    return iso(time.time()) or ""


def format_duration(ms: float | None) -> str | None:
    """15.00s; 2m 5.00s; 1h 2m 5.00s."""
    if ms is None:
        return None
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.2f}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{int(minutes)}m {seconds:.2f}s"
    hours, minutes = divmod(minutes, 60)
    return f"{int(hours)}h {int(minutes)}m {seconds:.2f}s"


def duration_ms(e: Execution) -> int | None:
    if e.started is None:
        return None
    end = e.ended if e.ended is not None else time.time()
    return max(0, round((end - e.started) * 1000))


def envelope(message: str, **fields: Any) -> dict[str, Any]:
    return {"success": True, **fields, "message": message, "timestamp": now_iso()}


def pagination(limit: int, offset: int, total: int) -> dict[str, Any]:
    return {"limit": limit, "offset": offset, "total": total, "hasMore": offset + limit < total}


# -- executions -----------------------------------------------------------------------


def execution_type(e: Execution) -> str:
    return PARENT if e.parent_id is None else SUBFLOW


def flow_name(e: Execution) -> str:
    return str((e.plan or {}).get("name", ""))


def execution(
    e: Execution,
    steps: list[Execution] | None,
    *,
    parent_uuid: str | None = None,
    detail: bool = False,
    lite: bool = False,
) -> dict[str, Any]:
    ms = duration_ms(e)
    latest = latest_attempts(steps or [])
    body: dict[str, Any] = {
        "id": e.uuid,
        "flowId": e.flow_id,
        "deviceId": e.device_id,
        "status": SPELLING[e.status],
        "executionType": execution_type(e),
        "startTime": iso(e.started),
        "endTime": iso(e.ended),
        "durationMs": ms,
        "durationFormatted": format_duration(ms),
        "stepSummary": step_summary(e, latest),
    }
    if not lite:
        body["steps"] = [step(e, s, n, latest.get(n), detail) for n, s in numbered_steps(e.plan)]
    body["flow"] = {"name": flow_name(e)}
    if detail:
        body["executionData"] = e.result
        body["errorMessage"] = e.error
    body["createdAt"] = iso(e.created)
    body["updatedAt"] = iso(e.updated)
    body["parentExecutionId"] = parent_uuid
    body["priority"] = e.priority.label
    body["parameters"] = e.visible_parameters
    return body


def step_summary(e: Execution, latest: dict[int, Execution]) -> dict[str, int]:
    total = len(plan_steps(e.plan))
    passed = sum(1 for s in latest.values() if s.status is Status.COMPLETED)
    failed = sum(1 for s in latest.values() if s.status in TERMINAL) - passed
    skipped = total - len(latest) if e.status in TERMINAL else 0
    return {"total": total, "passed": passed, "failed": failed, "skipped": skipped}


def step(
    flow: Execution, planned: dict[str, Any], number: int, run: Execution | None, detail: bool
) -> dict[str, Any]:
    is_flow = "flow" in planned
    if run is None:
        status = SKIPPED if flow.status in TERMINAL else "PENDING"
    else:
        status = SPELLING[run.status]
    ms = duration_ms(run) if run is not None else None
    body: dict[str, Any] = {
        "id": run.uuid if run is not None else None,
        "sequenceNumber": number,
        "name": step_name(planned),
        "action": f"flow:{planned['flow'].get('name', '')}" if is_flow else planned.get("action"),
        "executionType": SUBFLOW if is_flow else "STEP",
        "status": status,
        "durationMs": ms,
        "durationFormatted": format_duration(ms),
        "startTime": iso(run.started) if run is not None else None,
        "endTime": iso(run.ended) if run is not None else None,
        "continueOnFailure": bool(planned.get("continueOnFailure")),
    }
    if detail:
        body["executionData"] = run.result if run is not None else None
        body["errorMessage"] = run.error if run is not None else None
        body["attempt"] = run.attempt if run is not None else None
    return body


# -- flows ----------------------------------------------------------------------------


def flow(f: Flow) -> dict[str, Any]:
    return {
        "id": f.id,
        "name": f.name,
        "description": f.description,
        "parameters": f.parameters,
        "steps": [
            {
                "name": s.name,
                "action": s.action,
                "flowId": s.flow,
                "parameters": s.parameters,
                "timeout": s.timeout,
                "continueOnFailure": s.continue_on_failure,
            }
            for s in f.steps
        ],
        "createdAt": iso(f.created),
        "updatedAt": iso(f.updated),
        "createdBy": f.created_by,
    }
