"""The one way an execution's status changes.

`Transitions.apply` locks the rows, checks each change against the transition table
(and the fencing token when a worker makes it), writes the rows with a compare-and-set
on the status it read, records one event per change, and then hands what moved to the
followers (retries, flows, devices, job notifications; see followers.py), all in the
caller's transaction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import Connection, Update, bindparam, insert, select, update

from execd.domain.changes import NOW, Change
from execd.domain.executions import Execution
from execd.domain.states import TERMINAL, Status, can_transition, settle
from execd.store.database import Database, events_written
from execd.store.events import current_txid
from execd.store.schema import execution_events as events
from execd.store.schema import executions as ex


@dataclass(frozen=True, slots=True)
class RowState:
    """What `apply` reads and writes of an execution: its state, not its payload."""

    id: int
    status: Status
    fence: int
    attempt: int
    tenant_id: str
    project_id: str
    worker_id: int | None
    runner: str
    parent_id: int | None
    device_id: str | None
    job_type: str | None

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", Status(self.status))

    def moved(self, status: Status, values: Mapping[str, Any]) -> RowState:
        if status is self.status and "attempt" not in values and "worker_id" not in values:
            return self
        return RowState(  # built whole: dataclasses.replace costs twice as much, per change
            self.id,
            status,
            self.fence,
            values.get("attempt", self.attempt),
            self.tenant_id,
            self.project_id,
            values.get("worker_id", self.worker_id),
            self.runner,
            self.parent_id,
            self.device_id,
            self.job_type,
        )


@dataclass(frozen=True, slots=True)
class Applied:
    """What one `apply` did: per change the state it led to (None: refused), and per
    execution touched its status before and its state after."""

    changes: Sequence[Change]
    results: list[RowState | None]
    before: dict[int, Status]
    after: dict[int, RowState]

    def moved(self) -> list[RowState]:
        """The executions whose status changed."""
        return [s for i, s in self.after.items() if s.status is not self.before[i]]

    def ended(self) -> list[RowState]:
        """The executions that reached a terminal status here."""
        after = self.after.items()
        return [s for i, s in after if s.status in TERMINAL and self.before[i] not in TERMINAL]


class Follower(Protocol):
    def __call__(self, conn: Connection, now: float, applied: Applied, retries: bool) -> None: ...


STATE_COLUMNS = (
    ex.c.id,
    ex.c.status,
    ex.c.fence,
    ex.c.attempt,
    ex.c.tenant_id,
    ex.c.project_id,
    ex.c.worker_id,
    ex.c.runner,
    ex.c.parent_id,
    ex.c.device_id,
    ex.c.job_type,
)
LOCK_STATES = (
    select(*STATE_COLUMNS)
    .where(ex.c.id.in_(bindparam("ids", expanding=True)))
    .order_by(ex.c.id.desc())
    .with_for_update()
)
"""Rows are always locked newest first. A child is newer than its parent, and the
flow engine locks a flow after the step that moved it, so every transaction takes
locks in the same (descending) order and none waits on another in a cycle."""
INSERT_EVENTS = insert(events).values(txid=current_txid())


def log_events(conn: Connection, history: list[dict[str, Any]]) -> None:
    """Append status events to the event log (the only way events are written)."""
    conn.execute(INSERT_EVENTS, history)
    events_written(conn)


def event_row(
    execution: Execution | RowState,
    from_status: Status | None,
    to_status: Status,
    at: float,
    message: str | None = None,
    *,
    worker_id: int | None = None,
    progress: Any = None,
) -> dict[str, Any]:
    """An event row: a status change, or (with `progress`) a progress report."""
    return {
        "execution_id": execution.id,
        "tenant_id": execution.tenant_id,
        "project_id": execution.project_id,
        "from_status": from_status,
        "to_status": to_status,
        "at": at,
        "attempt": execution.attempt,
        "worker_id": worker_id if worker_id is not None else execution.worker_id,
        "message": message,
        "kind": None if progress is None else "progress",
        "data": progress,
    }


class Transitions:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.follow: Follower | None = None  # set once the followers are built

    def apply(
        self, conn: Connection, now: float, changes: Sequence[Change], *, retries: bool = False
    ) -> list[RowState | None]:
        """Apply `changes` (compare-and-set, an event per status change) and what follows
        from them in the same transaction; `retries`: runs that failed are retried as
        their policy says."""
        if not changes:
            return []
        ids = sorted({c.execution_id for c in changes})
        rows = conn.execute(LOCK_STATES, {"ids": ids})
        current = {row.id: RowState(**row._mapping) for row in rows}
        before = {i: state.status for i, state in current.items()}
        pending: dict[int, dict[str, Any]] = {}
        history: list[dict[str, Any]] = []
        results: list[RowState | None] = []
        for change in changes:
            state = current.get(change.execution_id)
            target = _target(state, change)
            if state is None or target is None:
                results.append(None)
                continue
            values = {k: (now if v is NOW else v) for k, v in change.values.items()}
            values["updated"] = now
            if target is not state.status:
                values["status"] = target
                if target in TERMINAL:
                    values.setdefault("ended", now)
                    values.setdefault("lease_expires", None)
            pending.setdefault(state.id, {}).update(values)
            updated = state.moved(target, values)
            if target is not state.status:
                history.append(event_row(updated, state.status, target, now, change.message))
            elif values.get("progress") is not None:
                history.append(event_row(updated, target, target, now, progress=values["progress"]))
            current[state.id] = updated
            results.append(updated)
        _write(conn, pending, before)
        if history:
            log_events(conn, history)
        if self.follow is not None:
            self.follow(conn, now, Applied(changes, results, before, current), retries)
        return results


def _write(conn: Connection, pending: dict[int, dict[str, Any]], before: dict[int, Status]) -> None:
    """One UPDATE per set of columns, each row guarded by the status it was read in."""
    by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for execution_id, values in pending.items():
        columns = tuple(sorted(values))
        params = {f"v_{k}": v for k, v in values.items()}
        params.update(k_id=execution_id, k_status=before[execution_id])
        by_columns.setdefault(columns, []).append(params)
    for columns, rows in by_columns.items():
        statement = _UPDATES.get(columns)
        if statement is None:  # a few dozen sets of columns occur: each built once
            statement = _UPDATES[columns] = (
                update(ex)
                .where(ex.c.id == bindparam("k_id"), ex.c.status == bindparam("k_status"))
                .values({c: bindparam(f"v_{c}") for c in columns})
            )
        conn.execute(statement, rows)


_UPDATES: dict[tuple[str, ...], Update] = {}


def _target(state: RowState | None, change: Change) -> Status | None:
    """The status `change` moves the execution to, or None if it must be refused."""
    if state is None:
        return None
    if change.fence is not None and state.fence != change.fence:
        return None
    if change.to is None:
        allowed = change.when if change.when is not None else frozenset(Status) - TERMINAL
        return state.status if state.status in allowed else None
    if change.when is not None and state.status not in change.when:
        return None
    target = settle(state.status, change.to) if change.settle else change.to
    return target if can_transition(state.status, target) else None
