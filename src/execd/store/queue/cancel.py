"""Cancellation: an execution and everything below it stop, at once where nothing
runs yet, through their workers (`canceling`) where something does."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, select

from execd.domain.changes import Change
from execd.domain.errors import Conflict
from execd.domain.executions import Execution
from execd.domain.states import TERMINAL, UNCLAIMED, Status
from execd.store.clock import now_of
from execd.store.queue.transitions import LOCK_STATES, Transitions
from execd.store.rows import to_execution
from execd.store.schema import executions as ex


def cancel(
    t: Transitions,
    conn: Connection,
    project_id: str,
    execution_id: int,
    reason: str | None,
    request: Mapping[str, Any] | None,
) -> Execution | None:
    """Cancel an execution of `project_id` and its descendants; None if there is none."""
    query = select(ex).where(ex.c.id == execution_id, ex.c.project_id == project_id)
    if conn.execute(query.with_only_columns(ex.c.id)).first() is None:
        return None
    targets = [execution_id, *descendants(conn, execution_id)]
    # Decided from the row locked, not from the read above: a worker's report that
    # ended it may have committed in between (PostgreSQL reads what was committed when
    # each statement began). Locked in the queue's order (newest first), as apply does.
    locked = {r.id: r.status for r in conn.execute(LOCK_STATES, {"ids": targets})}
    if execution_id not in locked:  # deleted in between
        return None
    status = Status(locked[execution_id])
    if status in TERMINAL:
        raise Conflict(f"Execution {execution_id} is already {status.value}", status=status.value)
    now = now_of(conn)  # after the lock: later than anything the rows went through
    cancel_all(t, conn, now, targets, reason, request)
    return to_execution(conn.execute(query).mappings().one())


def cancel_all(
    t: Transitions,
    conn: Connection,
    now: float,
    ids: Sequence[int],
    reason: str | None = None,
    request: Mapping[str, Any] | None = None,
) -> None:
    """Cancel these executions: unclaimed or not started at once, running ones by
    asking their workers (`canceling`). `reason` goes into their status events;
    `request` (force, discard) tells their workers how to stop."""
    applied = t.apply(conn, now, _cancel_changes(ids, reason, request))
    if any(e is not None and e.status is Status.CANCELING for e in applied):
        t.db.notify_cancel(conn)


def descendants(conn: Connection, root: int) -> list[int]:
    """The not yet ended executions below `root`, level by level."""
    found: list[int] = []
    frontier = [root]
    while frontier:
        rows = conn.execute(
            select(ex.c.id).where(ex.c.parent_id.in_(frontier), ex.c.status.not_in(TERMINAL))
        )
        frontier = list(rows.scalars())
        found.extend(frontier)
    return found


def _cancel_changes(
    ids: Iterable[int], reason: str | None = None, request: Mapping[str, Any] | None = None
) -> list[Change]:
    why = f": {reason}" if reason else ""
    values = {"cancel_request": dict(request)} if request else {}
    changes = []
    for execution_id in ids:
        # Whichever applies: not yet running -> cancelled; running -> canceling.
        changes.append(
            Change(
                execution_id,
                Status.CANCELLED,
                when=UNCLAIMED | {Status.SCHEDULED},
                message=f"cancelled before it started{why}",
            )
        )
        changes.append(
            Change(
                execution_id,
                Status.CANCELING,
                when=frozenset({Status.RUNNING}),
                message=f"cancellation requested{why}",
                values=values,
            )
        )
    return changes
