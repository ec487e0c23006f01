"""The v1 wire format."""

from __future__ import annotations

import math
from typing import Any

from execd.api.openapi import component, record
from execd.domain import times
from execd.domain.actions import Action
from execd.domain.analytics import Aggregate
from execd.domain.errors import InvalidInput
from execd.domain.executions import MAX_ID, Execution, StatusEvent
from execd.domain.rules import Enforcement, Rule, Trigger
from execd.domain.states import Priority, Status
from execd.domain.workers import WorkerNode

iso = times.iso  # the one way every dialect writes a time
TERMINAL_ORDER = (
    Status.COMPLETED, Status.FAILED, Status.TIMEOUT, Status.CANCELLED, Status.ABANDONED,
)  # fmt: skip


# -- The shapes below, as the OpenAPI document shows them ------------------------------

TIME = {"type": "string", "format": "date-time"}
MAYBE_TIME = {"type": ["string", "null"], "format": "date-time"}
MAYBE_ID = {"type": ["integer", "null"]}
MAYBE_TEXT = {"type": ["string", "null"]}
_STATUS = {"enum": [s.value for s in Status]}
SUMMARY = component(
    "ExecutionSummary",
    answer=True,
    schema=record(
        {
            "id": {"type": "integer"},
            "action_ref": {"type": "string"},
            "status": _STATUS,
            "parent": MAYBE_ID,
            "enforcement": MAYBE_ID,
            "created": TIME,
            "updated": TIME,
        }
    ),
)
EXECUTION = component(
    "Execution",
    answer=True,
    schema=record(
        {
            "id": {"type": "integer"},
            "action": {**MAYBE_ID, "description": "null for a built-in action"},
            "action_ref": {"type": "string"},
            "config": {"type": "object", "description": "Its parameters, secrets masked"},
            "parent": MAYBE_ID,
            "enforcement": MAYBE_ID,
            "executor": {**MAYBE_ID, "description": "The worker running it"},
            "status": _STATUS,
            "result": {"description": "What the action returned (any JSON value)"},
            "created": TIME,
            "updated": TIME,
            "uuid": {"type": "string", "format": "uuid"},
            "root": MAYBE_ID,
            "rule": MAYBE_ID,
            "priority": {"enum": [p.name.lower() for p in Priority]},
            "attempt": {"type": "integer", "minimum": 1},
            "max_attempts": {"type": "integer", "minimum": 1},
            "retry_of": MAYBE_ID,
            "not_before": MAYBE_TIME,
            "timeout": {"type": ["number", "null"], "description": "Seconds"},
            "started": MAYBE_TIME,
            "ended": MAYBE_TIME,
            "duration_ms": MAYBE_ID,
            "progress": {"type": ["object", "null"]},
            "usage": {"type": ["object", "null"], "description": "CPU, memory, output"},
            "error": MAYBE_TEXT,
            "exit_code": MAYBE_ID,
            "pid": MAYBE_ID,
            "submitted_by": MAYBE_TEXT,
            "idempotency_key": MAYBE_TEXT,
        }
    ),
)
EVENT = record(
    {
        "from_status": {"anyOf": [_STATUS, {"type": "null"}]},
        "to_status": _STATUS,
        "at": TIME,
        "attempt": {"type": "integer"},
        "executor": MAYBE_ID,
        "message": MAYBE_TEXT,
    }
)


def data(schema: dict[str, Any]) -> dict[str, Any]:
    """The envelope of one thing, or a list: `{"data": ...}`."""
    return record({"data": schema})


def paged(item: dict[str, Any]) -> dict[str, Any]:
    """The envelope of a page (`page`); `next_cursor` with cursor paging, and no
    totals (null) when none are counted."""
    count = {"type": ["integer", "null"], "minimum": 0}
    return record(
        {
            "data": {"type": "array", "items": item},
            "pagination": record(
                {
                    "page": {"type": "integer"},
                    "page_size": {"type": "integer"},
                    "total_items": count,
                    "total_pages": count,
                },
                next_cursor=MAYBE_TEXT,
            ),
        }
    )


def summary(e: Execution) -> dict[str, Any]:
    return {
        "id": e.id,
        "action_ref": e.action_ref,
        "status": e.status.value,
        "parent": e.parent_id,
        "enforcement": e.enforcement_id,
        "created": iso(e.created),
        "updated": iso(e.updated),
    }


def execution(e: Execution) -> dict[str, Any]:
    """The document's fields first, then what execd adds (documented in docs/api-v1.md)."""
    duration = e.duration
    return {
        "id": e.id,
        "action": e.action_id,
        "action_ref": e.action_ref,
        "config": e.visible_parameters,
        "parent": e.parent_id,
        "enforcement": e.enforcement_id,
        "executor": e.worker_id,
        "status": e.status.value,
        "result": e.result,
        "created": iso(e.created),
        "updated": iso(e.updated),
        "uuid": e.uuid,
        "root": e.root_id,
        "rule": e.rule_id,
        "priority": e.priority.name.lower(),
        "attempt": e.attempt,
        "max_attempts": e.max_attempts,
        "retry_of": e.retry_of,
        "not_before": iso(e.not_before),
        "timeout": e.timeout,
        "started": iso(e.started),
        "ended": iso(e.ended),
        "duration_ms": None if duration is None else round(duration * 1000),
        "progress": e.progress,
        "usage": e.usage,
        "error": e.error,
        "exit_code": e.exit_code,
        "pid": e.pid,
        "submitted_by": e.submitted_by,
        "idempotency_key": e.idempotency_key,
    }


def aggregate(a: Aggregate, since: float, until: float, bucket: float | None) -> dict[str, Any]:
    """One analytics group of the window [since, until); its throughput is counted over
    the part of its bucket inside the window (the whole window without buckets)."""
    if a.bucket is not None and bucket is not None:
        width = min(a.bucket + bucket, until) - max(a.bucket, since)
    else:
        width = until - since

    def ms(seconds: float | None) -> int | None:
        return None if seconds is None else round(seconds * 1000)

    p50, p95, p99 = a.percentiles()
    body: dict[str, Any] = {}
    if a.action_ref is not None:
        body["action_ref"] = a.action_ref
    if a.bucket is not None:
        body["bucket"] = iso(a.bucket)
    body.update(
        {
            "ended": a.ended,
            **{s.value: a.by_status.get(s, 0) for s in TERMINAL_ORDER},
            "failure_rate": a.failure_rate,
            "throughput_per_hour": round(a.ended * 3600 / width, 3),
            "duration_ms": {"p50": ms(p50), "p95": ms(p95), "p99": ms(p99)},
        }
    )
    return body


def cursor_schema(kind: str) -> dict[str, Any]:
    """What a `cursor` parameter takes: empty (the first page) or a `next_cursor`."""
    return {
        "type": "string",
        "pattern": f"^({kind}[0-9]{{1,19}})?$",
        "description": "Empty for the first page, then the next_cursor of the page before",
    }


def below(cursor: str | None, kind: str) -> int | None:
    """The id the page a cursor names starts below. A cursor is a kind of list (a
    letter) and an id; clients are to pass the `next_cursor` they were given."""
    if not cursor:
        return None
    found, digits = cursor[: len(kind)], cursor[len(kind) :]
    if found != kind or not digits.isascii() or not digits.isdigit() or len(digits) > 19:
        raise InvalidInput("Invalid cursor: pass the next_cursor of a previous page")
    return min(int(digits), MAX_ID)


def cursor_below(last_id: int, kind: str) -> str:
    return f"{kind}{last_id}"


def page(items: list[dict[str, Any]], number: int, size: int, total: int) -> dict[str, Any]:
    return {
        "data": items,
        "pagination": {
            "page": number,
            "page_size": size,
            "total_items": total,
            "total_pages": math.ceil(total / size) if total else 0,
        },
    }


def event(ev: StatusEvent) -> dict[str, Any]:
    return {
        "from_status": ev.from_status.value if ev.from_status else None,
        "to_status": ev.to_status.value,
        "at": iso(ev.at),
        "attempt": ev.attempt,
        "executor": ev.worker_id,
        "message": ev.message,
    }


def action(a: Action) -> dict[str, Any]:
    return {
        "id": a.id,
        "uuid": a.uuid,
        "ref": a.ref,
        "pack": a.pack,
        "name": a.name,
        "runner": a.runner,
        "entry_point": a.entry_point,
        "parameters": a.parameters,
        "timeout": a.timeout,
        "retry": a.retry.to_json(),
        "enabled": a.enabled,
        "description": a.description,
        "network": a.sandbox.network,
        "limits": a.sandbox.limits.to_json(),
        "builtin": a.builtin,
        "created": iso(a.created),
        "updated": iso(a.updated),
        "created_by": a.created_by,
    }


def worker(w: WorkerNode) -> dict[str, Any]:
    return {
        "id": w.id,
        "name": w.name,
        "host": w.host,
        "pid": w.pid,
        "labels": w.labels,
        "devices": w.devices,
        "capacity": w.capacity,
        "active": w.active,
        "cpu_percent": w.cpu_percent,
        "memory_percent": w.memory_percent,
        "memory_bytes": w.memory_bytes,
        "state": w.state,
        "sandbox": w.sandbox or "unknown",
        "version": w.version,
        "started": iso(w.started),
        "last_heartbeat": iso(w.last_heartbeat),
    }


def trigger(t: Trigger, secret: str | None = None) -> dict[str, Any]:
    body = {
        "id": t.id,
        "ref": t.ref,
        "type": t.type,
        "description": t.description,
        "config": t.config,
        "enabled": t.enabled,
        "next_fire": iso(t.next_fire),
        "has_secret": t.has_secret,
        "webhook_url": f"/api/v1/webhooks/{t.ref}" if t.type == "webhook" else None,
        "created": iso(t.created),
        "updated": iso(t.updated),
    }
    if secret is not None:
        body["secret"] = secret  # only in the answer that made it
    return body


def rule(r: Rule) -> dict[str, Any]:
    return {
        "id": r.id,
        "ref": r.ref,
        "description": r.description,
        "trigger": r.trigger_ref,
        "criteria": r.criteria,
        "action_ref": r.action_ref,
        "parameters": r.parameters,
        "enabled": r.enabled,
        "created": iso(r.created),
        "updated": iso(r.updated),
        "created_by": r.created_by,
    }


def enforcement(e: Enforcement) -> dict[str, Any]:
    return {
        "id": e.id,
        "rule": e.rule_id,
        "rule_ref": e.rule_ref,
        "trigger": e.trigger_id,
        "trigger_ref": e.trigger_ref,
        "trigger_type": e.trigger_type,
        "payload": e.payload,
        "status": e.status,
        "error": e.error,
        "depth": e.depth,
        "executions": e.execution_ids,
        "created": iso(e.created),
    }
