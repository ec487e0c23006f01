"""New executions: submissions (one, a group commit of many, or a client's batch),
retries and flow steps all enter the store through `insert`."""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, insert, select

from execd.domain.actions import mask_secrets
from execd.domain.errors import Conflict
from execd.domain.executions import Execution, NewExecution
from execd.domain.states import Priority, Status
from execd.store.clock import now_of
from execd.store.database import Database
from execd.store.queue.transitions import event_row, log_events
from execd.store.rows import to_execution
from execd.store.schema import executions as ex

# A submission that loses an idempotency-key race runs again (see Queue.submit).
IDEMPOTENCY_INDEX = "uq_executions_project_id_idempotency_key"
INSERT_RETURNING_IDS = insert(ex).returning(ex.c.id, ex.c.uuid)


@dataclass(frozen=True)
class Submitted:
    execution: Execution
    replayed: bool = False


class Refused(Exception):
    """An all-or-nothing batch that stored nothing: `errors` holds, by position in the
    batch, why each refused item was refused."""

    def __init__(self, errors: dict[int, Exception]) -> None:
        super().__init__(f"{len(errors)} of the batch's items were refused")
        self.errors = errors


def submit(
    db: Database, conn: Connection, items: Sequence[NewExecution], all_or_nothing: bool
) -> list[Submitted | Exception]:
    """Store a batch of submissions in `conn`'s transaction.

    A repeated idempotency key returns the execution it first created; the same key
    with a different action or parameters is a conflict. `all_or_nothing`: a conflict
    raises `Refused` before anything is committed.
    """
    now = now_of(conn)
    results: list[Submitted | Exception | None] = [None] * len(items)
    first_of_key: dict[tuple[str, str], int] = {}
    existing = _by_idempotency_key(conn, items)
    fresh: list[int] = []
    for index, item in enumerate(items):
        key = (item.project_id, item.idempotency_key) if item.idempotency_key else None
        if key and key in existing:
            results[index] = _replay(existing[key], item)
        elif key and key in first_of_key:
            continue  # a duplicate within this batch: answered below
        else:
            if key:
                first_of_key[key] = index
            fresh.append(index)
    created = insert_executions(conn, now, [items[i] for i in fresh])
    for index, execution in zip(fresh, created, strict=True):
        results[index] = Submitted(execution)
    for index, item in enumerate(items):
        if results[index] is None:
            assert item.idempotency_key is not None
            original = results[first_of_key[(item.project_id, item.idempotency_key)]]
            assert isinstance(original, Submitted)
            results[index] = _replay(original.execution, item)
    refused = {i: r for i, r in enumerate(results) if isinstance(r, Exception)}
    if all_or_nothing and refused:
        raise Refused(refused)  # before the commit: the inserts above roll back
    if any(e.status is Status.SCHEDULING for e in created):
        db.notify_jobs(conn)
    return [r for r in results if r is not None]


def insert_executions(
    conn: Connection, now: float, items: Sequence[NewExecution]
) -> list[Execution]:
    """Insert new executions with their first events. The caller wakes the workers."""
    if not items:
        return []
    values = [_row_values(item, now) for item in items]
    # Only the ids come back (matched by uuid): asking for RETURNING in parameter
    # order would make SQLAlchemy send one INSERT per row to SQLite.
    rows = conn.execute(INSERT_RETURNING_IDS, values)
    ids = {row_uuid: row_id for row_id, row_uuid in rows}
    created = [_new_execution(ids[v["uuid"]], v) for v in values]
    history: list[dict[str, Any]] = []
    for execution, item in zip(created, items, strict=True):
        message = f"retry of execution {item.retry_of}" if item.retry_of else None
        history.append(event_row(execution, None, Status.REQUESTED, now, message))
        if execution.status is Status.SCHEDULING:
            history.append(event_row(execution, Status.REQUESTED, Status.SCHEDULING, now))
    log_events(conn, history)
    return created


def _by_idempotency_key(
    conn: Connection, items: Sequence[NewExecution]
) -> dict[tuple[str, str], Execution]:
    keys = {i.idempotency_key for i in items if i.idempotency_key}
    if not keys:
        return {}
    projects = {i.project_id for i in items if i.idempotency_key}
    rows = conn.execute(
        select(ex).where(ex.c.idempotency_key.in_(keys), ex.c.project_id.in_(projects))
    )
    found = (to_execution(r) for r in rows.mappings())
    return {(e.project_id, e.idempotency_key): e for e in found if e.idempotency_key}


def _replay(original: Execution, item: NewExecution) -> Submitted | Exception:
    # Secret values are sealed afresh each time, so they cannot be compared: the key
    # and the rest of the parameters must match.
    given = mask_secrets(item.parameters, frozenset(item.secrets or ()))
    same = original.visible_parameters == given
    if original.action_ref != item.action_ref or not same:
        return Conflict(
            f"Idempotency key {item.idempotency_key!r} was already used for a different "
            f"request (execution {original.id})",
            execution_id=original.id,
        )
    return Submitted(original, replayed=True)


def _new_execution(execution_id: int, values: dict[str, Any]) -> Execution:
    return Execution(
        id=execution_id,
        **{**values, "status": Status(values["status"]), "priority": Priority(values["priority"])},
    )


def _row_values(item: NewExecution, now: float) -> dict[str, Any]:
    not_before = item.not_before
    if not_before is None and item.delay > 0:
        not_before = now + item.delay
    due = not_before is None or not_before <= now
    return {
        "uuid": str(uuidlib.uuid4()),
        "tenant_id": item.tenant_id,
        "project_id": item.project_id,
        "action_id": item.action_id,
        "action_ref": item.action_ref,
        "pack": item.pack,
        "runner": item.runner,
        "entry_point": item.entry_point,
        "parameters": item.parameters,
        "status": Status.SCHEDULING if due else Status.REQUESTED,
        "priority": int(item.priority),
        "attempt": item.attempt,
        "max_attempts": item.max_attempts,
        "retry_policy": item.retry_policy,
        "fence": 0,
        "parent_id": item.parent_id,
        "root_id": item.root_id,
        "enforcement_id": item.enforcement_id,
        "rule_id": item.rule_id,
        "retry_of": item.retry_of,
        "not_before": not_before,
        "timeout": item.timeout,
        "idempotency_key": item.idempotency_key,
        "submitted_by": item.submitted_by,
        "secrets": item.secrets,
        "sandbox": item.sandbox,
        "created": now,
        "updated": now,
        "device_id": item.device_id,
        "flow_id": item.flow_id,
        "sequence": item.sequence,
        "plan": item.plan,
        "job_type": item.job_type,
        "job": item.job,
    }
