"""Work whose worker is gone: leases that ran out (the reaper), a worker restarting
under a known name, and a worker handing back what it stopped when it shuts down."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Connection, Integer, bindparam, select

from execd.domain.changes import NOW, Change
from execd.domain.executions import Execution
from execd.domain.retries import lost_lease_status
from execd.domain.states import Status
from execd.store.clock import now_of
from execd.store.queue.transitions import Transitions
from execd.store.rows import to_execution
from execd.store.schema import LEASED_SQL
from execd.store.schema import executions as ex

# What an execution queued again forgets of the run it had: the next run starts afresh.
REQUEUED: Mapping[str, Any] = {
    "worker_id": None,
    "lease_expires": None,
    "pid": None,
    "started": None,
    "progress": None,
    "usage": None,
}
EXPIRED = (
    select(ex)
    .where(LEASED_SQL, ex.c.lease_expires < bindparam("now"))
    .order_by(ex.c.id)
    .limit(bindparam("limit", type_=Integer))
    .with_for_update(skip_locked=True)
)
"""Leases that ran out, for the reaper: read from ix_executions_leased."""
HELD_BY = (
    select(ex)
    .where(ex.c.worker_id == bindparam("worker_id"), LEASED_SQL)
    .order_by(ex.c.id.desc())
    .with_for_update()
)
"""What one worker holds: read from ix_executions_worker_leased."""


StopRuns = Callable[[list[Execution]], object]
"""Stops what lost runs left running on this host, before their work is queued again
(runners/leftovers.py); called in the transaction, with the rows locked."""


def reap(t: Transitions, conn: Connection, limit: int, stop: StopRuns | None) -> list[Execution]:
    now = now_of(conn)
    rows = conn.execute(EXPIRED, {"now": now, "limit": limit})
    return _recover(t, conn, now, [to_execution(r) for r in rows.mappings()], stop)


def recover_worker(
    t: Transitions, conn: Connection, worker_id: int, stop: StopRuns | None
) -> list[Execution]:
    rows = conn.execute(HELD_BY, {"worker_id": worker_id})
    return _recover(t, conn, now_of(conn), [to_execution(r) for r in rows.mappings()], stop)


def _recover(
    t: Transitions, conn: Connection, now: float, lost: list[Execution], stop: StopRuns | None
) -> list[Execution]:
    if lost and stop is not None:
        stop(lost)
    changes = []
    for execution in lost:
        status, message = lost_lease_status(execution)
        values: dict[str, Any]
        if status is Status.SCHEDULING:
            values = {**REQUEUED, "attempt": execution.attempt + 1}
        else:
            values = {"lease_expires": None, "ended": NOW, "error": message}
        changes.append(
            Change(execution.id, status, fence=execution.fence, values=values, message=message)
        )
    applied = t.apply(conn, now, changes)
    ids = [state.id for state in applied if state is not None]
    rows = conn.execute(select(ex).where(ex.c.id.in_(ids)).order_by(ex.c.id)).mappings()
    recovered = [to_execution(row) for row in rows]
    if any(e.status is Status.SCHEDULING for e in recovered):
        t.db.notify_jobs(conn)
    return recovered


def release(
    t: Transitions, conn: Connection, worker_id: int, held: Mapping[int, int]
) -> list[Status | None]:
    """Queue again, same attempt, what a worker shutting down stopped."""
    # Only what this worker still holds: a flow it started holds no worker any more
    # (it moves with its steps) and must not be queued again.
    mine = conn.execute(
        select(ex.c.id)
        .where(ex.c.id.in_(list(held)), ex.c.worker_id == worker_id)
        .order_by(ex.c.id.desc())
        .with_for_update()
    )
    still = set(mine.scalars())
    changes = [
        Change(
            execution_id,
            Status.SCHEDULING,
            fence=fence,
            when=frozenset({Status.SCHEDULED, Status.RUNNING}),
            values=REQUEUED,
            message=f"worker {worker_id} shut down; requeued",
        )
        for execution_id, fence in held.items()
        if execution_id in still
    ]
    applied = t.apply(conn, now_of(conn), changes)
    if any(state is not None for state in applied):
        t.db.notify_jobs(conn)
    return [state.status if state else None for state in applied]
