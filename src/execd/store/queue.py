"""The write side of executions: submit, claim, report, finish, cancel, reap.

Every status change goes through `_apply`, which locks the rows, checks each change
against the transition table (and the fencing token when a worker makes it), writes
the rows with a compare-and-set on the status it read, and records one event per change.
"""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import (
    Connection,
    Integer,
    Select,
    bindparam,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError

from execd.domain.actions import mask_secrets
from execd.domain.executions import Execution, NewExecution
from execd.domain.flows import FLOW_RUNNER
from execd.domain.retries import CAUSES, lost_lease_status, next_attempt
from execd.domain.states import (
    LEASED,
    TERMINAL,
    UNCLAIMED,
    Priority,
    Status,
    can_transition,
    settle,
)
from execd.errors import Conflict
from execd.store import notifications
from execd.store.changes import NOW, Change
from execd.store.clock import now_of
from execd.store.database import Database, events_written
from execd.store.events import current_txid
from execd.store.flow_engine import FlowEngine
from execd.store.rows import to_execution
from execd.store.schema import LEASED_SQL
from execd.store.schema import execution_events as events
from execd.store.schema import executions as ex

RETRYABLE = frozenset(CAUSES)
# A submission that loses an idempotency-key race runs again (see Queue.submit).
IDEMPOTENCY_INDEX = "uq_executions_project_id_idempotency_key"
SUBMIT_ATTEMPTS = 3
# What an execution queued again forgets of the run it had: the next run starts afresh.
REQUEUED: Mapping[str, Any] = {
    "worker_id": None,
    "lease_expires": None,
    "pid": None,
    "started": None,
    "progress": None,
    "usage": None,
}


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


@dataclass(frozen=True, slots=True)
class RowState:
    """What `_apply` reads and writes of an execution: its state, not its payload."""

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
        return replace(
            self,
            status=status,
            attempt=values.get("attempt", self.attempt),
            worker_id=values.get("worker_id", self.worker_id),
        )


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


# The hot statements are built once: building and keying a statement costs more than
# running it on a small batch.
READY = (
    select(ex.c.id, ex.c.device_id, ex.c.parent_id, ex.c.priority)
    .where(ex.c.status == Status.SCHEDULING, ex.c.device_id.is_(None))
    .order_by(ex.c.priority.desc(), ex.c.id)
    .limit(bindparam("limit", type_=Integer))
    .with_for_update(skip_locked=True)
)
"""Ready work bound to no device, best first: it reads only ix_executions_ready."""


def device_ready_query(devices: Sequence[str]) -> Select[Any]:
    """Ready work bound to one of `devices`, best first, from ix_executions_device_ready.
    A top-level execution takes its device only while no other holds it; its steps
    (children of the holder) may run."""
    return (
        select(ex.c.id, ex.c.device_id, ex.c.parent_id, ex.c.priority)
        .where(
            ex.c.status == Status.SCHEDULING,
            ex.c.device_id.in_(sorted(devices)),
            or_(ex.c.parent_id.is_not(None), DEVICE_FREE),
        )
        .order_by(ex.c.priority.desc(), ex.c.id)
        .limit(bindparam("limit", type_=Integer))
        .with_for_update(skip_locked=True)
    )


# Spelled as the predicate of ux_executions_device_holder, so SQLite reads that index.
DEVICE_FREE = text(
    "NOT EXISTS (SELECT 1 FROM executions AS holder "
    "WHERE holder.device_id = executions.device_id AND holder.device_id IS NOT NULL "
    "AND holder.parent_id IS NULL "
    "AND holder.status IN ('scheduled', 'running', 'canceling'))"
)
# A claim that loses a race for a device (PostgreSQL) runs again, as submissions do.
DEVICE_INDEX = "ux_executions_device_holder"

CLAIM = (
    update(ex)
    .where(ex.c.id.in_(bindparam("ids", expanding=True)), ex.c.status == Status.SCHEDULING)
    .values(
        status=Status.SCHEDULED,
        worker_id=bindparam("worker"),
        fence=ex.c.fence + 1,
        lease_expires=bindparam("lease_expires"),
        updated=bindparam("now"),
    )
    .returning(*ex.c)
)
ANY_READY = (
    select(ex.c.id).where(ex.c.status == Status.SCHEDULING, ex.c.device_id.is_(None)).limit(1)
)
DUE = (
    select(ex.c.id)
    .where(ex.c.status == Status.REQUESTED, ex.c.not_before <= bindparam("now"))
    .order_by(ex.c.not_before)
    .limit(bindparam("limit", type_=Integer))
    .with_for_update(skip_locked=True)
)
ANY_DUE = (  # a plain read: the lock-taking DUE is for the claim transaction
    select(ex.c.id)
    .where(ex.c.status == Status.REQUESTED, ex.c.not_before <= bindparam("now"))
    .limit(1)
)
NEXT_DUE = (
    select(ex.c.not_before)
    .where(ex.c.status == Status.REQUESTED)
    .order_by(ex.c.not_before)
    .limit(1)
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
INSERT_EVENTS = insert(events).values(txid=current_txid())


def log_events(conn: Connection, history: list[dict[str, Any]]) -> None:
    """Append status events to the event log (the only way events are written)."""
    conn.execute(INSERT_EVENTS, history)
    events_written(conn)


class Queue:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.flows = FlowEngine(self)
        self._device_ready: dict[tuple[str, ...], Select[Any]] = {}

    # -- submission -------------------------------------------------------------------

    async def submit(
        self, items: Sequence[NewExecution], *, all_or_nothing: bool = False
    ) -> list[Submitted | Exception]:
        """Store a batch of submissions in one transaction (group commit, or a batch a
        client sent).

        A repeated idempotency key returns the execution it first created; the same key
        with a different action or parameters is a conflict. `all_or_nothing`: a
        conflict rolls the whole batch back and raises `Refused`.
        """
        for attempt in range(1, SUBMIT_ATTEMPTS + 1):
            try:
                return await self.db.write(lambda conn: self._submit(conn, items, all_or_nothing))
            except IntegrityError as exc:
                # Another node stored the same key between our look-up and our insert
                # (PostgreSQL; SQLite's single writer cannot interleave). The whole batch
                # rolled back; run it again and the key now answers with that execution.
                if attempt == SUBMIT_ATTEMPTS or IDEMPOTENCY_INDEX not in str(exc.orig):
                    raise
        raise AssertionError("unreachable")

    def _submit(
        self, conn: Connection, items: Sequence[NewExecution], all_or_nothing: bool = False
    ) -> list[Submitted | Exception]:
        now = now_of(conn)
        results: list[Submitted | Exception | None] = [None] * len(items)
        first_of_key: dict[tuple[str, str], int] = {}
        existing = self._by_idempotency_key(conn, items)
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
        created = self.insert(conn, now, [items[i] for i in fresh])
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
            self.db.notify_jobs(conn)
        return [r for r in results if r is not None]

    def _by_idempotency_key(
        self, conn: Connection, items: Sequence[NewExecution]
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

    def insert(
        self, conn: Connection, now: float, items: Sequence[NewExecution]
    ) -> list[Execution]:
        """Insert new executions with their first events; used by submit and by retries."""
        if not items:
            return []
        values = [_row_values(item, now) for item in items]
        # Only the ids come back (matched by uuid): asking for RETURNING in parameter
        # order would make SQLAlchemy send one INSERT per row to SQLite.
        rows = conn.execute(insert(ex).returning(ex.c.id, ex.c.uuid), values)
        ids = {row_uuid: row_id for row_id, row_uuid in rows}
        created = [_new_execution(ids[v["uuid"]], v) for v in values]
        history: list[dict[str, Any]] = []
        for execution, item in zip(created, items, strict=True):
            message = f"retry of execution {item.retry_of}" if item.retry_of else None
            history.append(_event(execution, None, Status.REQUESTED, now, message))
            if execution.status is Status.SCHEDULING:
                history.append(_event(execution, Status.REQUESTED, Status.SCHEDULING, now))
        log_events(conn, history)
        return created

    # -- claiming ---------------------------------------------------------------------

    async def has_work(self, devices: Sequence[str] = ()) -> bool:
        """A cheap read before taking the write lock; false negatives only delay a claim."""
        return await self.db.read(lambda conn: self._has_work(conn, devices))

    def _has_work(self, conn: Connection, devices: Sequence[str]) -> bool:
        if conn.execute(ANY_READY).first() is not None:
            return True
        if devices:
            mine = select(ex.c.id).where(
                ex.c.status == Status.SCHEDULING, ex.c.device_id.in_(list(devices))
            )
            if conn.execute(mine.limit(1)).first() is not None:
                return True
        return conn.execute(ANY_DUE, {"now": now_of(conn)}).first() is not None

    async def next_due(self) -> float | None:
        """Seconds until the earliest delayed execution is due (None: nothing delayed)."""
        return await self.db.read(self._next_due)

    def _next_due(self, conn: Connection) -> float | None:
        now = now_of(conn)
        first = conn.execute(NEXT_DUE).scalar()
        return None if first is None else max(0.0, first - now)

    async def claim(
        self, worker_id: int, limit: int, lease: float, devices: Sequence[str] = ()
    ) -> list[Execution]:
        """Take up to `limit` ready executions, highest priority first, then oldest:
        work bound to no device, and work bound to one of `devices`."""
        key = tuple(sorted(set(devices)))
        ready = self._device_ready.get(key) if key else None
        if key and ready is None:
            ready = self._device_ready[key] = device_ready_query(key)
        for attempt in range(1, SUBMIT_ATTEMPTS + 1):
            try:
                return await self.db.write(
                    lambda conn: self._claim(conn, ready, worker_id, limit, lease)
                )
            except IntegrityError as exc:
                if attempt == SUBMIT_ATTEMPTS or DEVICE_INDEX not in str(exc.orig):
                    raise
        raise AssertionError("unreachable")

    def _claim(
        self,
        conn: Connection,
        device_ready: Select[Any] | None,
        worker_id: int,
        limit: int,
        lease: float,
    ) -> list[Execution]:
        now = now_of(conn)
        self._promote_due(conn, now)
        # Two statements, not UPDATE ... WHERE id IN (SELECT ... LIMIT): PostgreSQL may
        # evaluate such a subquery more than once and claim more than `limit` rows.
        candidates = list(conn.execute(READY, {"limit": limit}))
        if device_ready is not None:  # each part from its own index, merged here
            candidates += conn.execute(device_ready, {"limit": limit})
            candidates.sort(key=lambda r: (-r.priority, r.id))
        ids: list[int] = []
        taken: set[str] = set()
        for row in candidates:
            if len(ids) == limit:
                break
            if row.device_id is not None and row.parent_id is None:
                if row.device_id in taken:
                    continue  # one top-level execution per device, in this batch too
                taken.add(row.device_id)
            ids.append(row.id)
        if not ids:
            return []
        rows = conn.execute(
            CLAIM, {"ids": ids, "worker": worker_id, "lease_expires": now + lease, "now": now}
        )
        claimed = sorted(
            (to_execution(r) for r in rows.mappings()), key=lambda e: (-e.priority, e.id)
        )
        if claimed:
            log_events(
                conn,
                [
                    _event(e, Status.SCHEDULING, Status.SCHEDULED, now, worker_id=worker_id)
                    for e in claimed
                ],
            )
        return claimed

    async def promote_due(self) -> None:
        """Release delayed executions whose time has come (workers also do it when claiming)."""

        def promote(conn: Connection) -> None:
            if self._promote_due(conn, now_of(conn)):
                self.db.notify_jobs(conn)

        await self.db.write(promote)

    def _promote_due(self, conn: Connection, now: float) -> int:
        ids = list(conn.execute(DUE, {"now": now, "limit": 1000}).scalars())
        if ids:
            self._apply(conn, now, [Change(i, Status.SCHEDULING) for i in ids])
        return len(ids)

    # -- worker reports ---------------------------------------------------------------

    async def apply(self, changes: Sequence[Change]) -> list[Status | None]:
        """Apply a batch of changes in one transaction: the status each change led to,
        None where it was refused. Runs that failed are retried as their policy says."""
        return await self.db.write(lambda conn: self._apply_with_retries(conn, changes))

    def _apply_with_retries(
        self, conn: Connection, changes: Sequence[Change]
    ) -> list[Status | None]:
        applied = self._apply(conn, now_of(conn), changes, retries=True)
        return [state.status if state else None for state in applied]

    def _retry(self, conn: Connection, now: float, ids: list[int]) -> set[int]:
        """New attempts for runs that ended as their policy retries; the ids retried."""
        if not ids:
            return set()
        rows = conn.execute(select(ex).where(ex.c.id.in_(ids))).mappings()
        retries = [
            attempt
            for execution in map(to_execution, rows)
            if (attempt := next_attempt(execution, execution.status)) is not None
        ]
        created = self.insert(conn, now, retries)
        if any(e.status is Status.SCHEDULING for e in created):
            self.db.notify_jobs(conn)
        return {r.retry_of for r in retries if r.retry_of is not None}

    async def renew_leases(
        self, worker_id: int, held: Mapping[int, int], lease: float
    ) -> dict[int, Status | None]:
        """Extend the leases this worker holds; report each one's status (None: lost)."""
        if not held:
            return {}
        return await self.db.write(lambda conn: self._renew(conn, worker_id, held, lease))

    def _renew(
        self, conn: Connection, worker_id: int, held: Mapping[int, int], lease: float
    ) -> dict[int, Status | None]:
        now = now_of(conn)
        conn.execute(
            update(ex)
            .where(ex.c.id.in_(held), ex.c.worker_id == worker_id, ex.c.status.in_(LEASED))
            .values(lease_expires=now + lease)
        )
        rows = conn.execute(
            select(ex.c.id, ex.c.fence, ex.c.status, ex.c.worker_id).where(ex.c.id.in_(held))
        )
        found = {
            r.id: Status(r.status)
            for r in rows
            if r.fence == held[r.id] and r.worker_id == worker_id and r.status in LEASED
        }
        return {i: found.get(i) for i in held}

    # -- cancellation -----------------------------------------------------------------

    async def cancel_requests(self, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
        """How each execution was asked to stop (force, discard), where it says."""
        query = select(ex.c.id, ex.c.cancel_request).where(ex.c.id.in_(list(ids)))
        rows = await self.db.read(lambda conn: list(conn.execute(query)))
        return {r.id: r.cancel_request for r in rows if r.cancel_request}

    async def cancel(
        self,
        project_id: str,
        execution_id: int,
        reason: str | None = None,
        request: Mapping[str, Any] | None = None,
    ) -> Execution | None:
        """Cancel an execution and its descendants. Unclaimed or not yet started work is
        cancelled at once; running work goes to `canceling` until its worker stops it.
        """
        return await self.db.write(
            lambda conn: self._cancel(conn, project_id, execution_id, reason, request)
        )

    def _cancel(
        self,
        conn: Connection,
        project_id: str,
        execution_id: int,
        reason: str | None,
        request: Mapping[str, Any] | None,
    ) -> Execution | None:
        now = now_of(conn)
        query = select(ex).where(ex.c.id == execution_id, ex.c.project_id == project_id)
        row = conn.execute(query).mappings().first()
        if row is None:
            return None
        execution = to_execution(row)
        if execution.status in TERMINAL:
            raise Conflict(
                f"Execution {execution_id} is already {execution.status.value}",
                status=execution.status.value,
            )
        targets = [execution_id, *self._descendants(conn, execution_id)]
        self.cancel_all(conn, now, targets, reason, request)
        return to_execution(conn.execute(query).mappings().one())

    def cancel_all(
        self,
        conn: Connection,
        now: float,
        ids: Sequence[int],
        reason: str | None = None,
        request: Mapping[str, Any] | None = None,
    ) -> None:
        """Cancel these executions: unclaimed or not started at once, running ones by
        asking their workers (`canceling`). `reason` goes into their status events;
        `request` (force, discard) tells their workers how to stop."""
        applied = self._apply(conn, now, _cancel_changes(ids, reason, request))
        if any(e is not None and e.status is Status.CANCELING for e in applied):
            self.db.notify_cancel(conn)

    def _descendants(self, conn: Connection, root: int) -> list[int]:
        found: list[int] = []
        frontier = [root]
        while frontier:
            rows = conn.execute(
                select(ex.c.id).where(ex.c.parent_id.in_(frontier), ex.c.status.not_in(TERMINAL))
            )
            frontier = list(rows.scalars())
            found.extend(frontier)
        return found

    # -- recovery ---------------------------------------------------------------------

    async def reap_expired(self, limit: int = 500) -> list[Execution]:
        """Requeue, abandon or cancel executions whose worker stopped renewing its lease."""
        return await self.db.write(lambda conn: self._reap(conn, limit))

    def _reap(self, conn: Connection, limit: int) -> list[Execution]:
        now = now_of(conn)
        rows = conn.execute(EXPIRED, {"now": now, "limit": limit})
        return self._recover(conn, now, [to_execution(r) for r in rows.mappings()])

    async def recover_worker(self, worker_id: int) -> list[Execution]:
        """A worker (re)starting under a known id: what it held before is lost."""

        def recover(conn: Connection) -> list[Execution]:
            rows = conn.execute(HELD_BY, {"worker_id": worker_id})
            return self._recover(conn, now_of(conn), [to_execution(r) for r in rows.mappings()])

        return await self.db.write(recover)

    def _recover(self, conn: Connection, now: float, lost: list[Execution]) -> list[Execution]:
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
        applied = self._apply(conn, now, changes)
        ids = [state.id for state in applied if state is not None]
        rows = conn.execute(select(ex).where(ex.c.id.in_(ids)).order_by(ex.c.id)).mappings()
        recovered = [to_execution(row) for row in rows]
        if any(e.status is Status.SCHEDULING for e in recovered):
            self.db.notify_jobs(conn)
        return recovered

    async def release(self, worker_id: int, held: Mapping[int, int]) -> list[Status | None]:
        """A worker shutting down hands back work it stopped: queued again, same attempt."""
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
        ]

        def release(conn: Connection) -> list[Status | None]:
            # Only what this worker still holds: a flow it started holds no worker any
            # more (it moves with its steps) and must not be queued again.
            mine = conn.execute(
                select(ex.c.id)
                .where(ex.c.id.in_(list(held)), ex.c.worker_id == worker_id)
                .order_by(ex.c.id.desc())
                .with_for_update()
            )
            still = set(mine.scalars())
            applied = self._apply(
                conn, now_of(conn), [c for c in changes if c.execution_id in still]
            )
            if any(state is not None for state in applied):
                self.db.notify_jobs(conn)
            return [state.status if state else None for state in applied]

        return await self.db.write(release)

    # -- the one way a status changes --------------------------------------------------

    def _apply(
        self, conn: Connection, now: float, changes: Sequence[Change], *, retries: bool = False
    ) -> list[RowState | None]:
        """Apply `changes` (compare-and-set, an event per status change) and what follows
        from them in the same transaction: retries of settled runs if `retries`, then
        the flows whose step ended, or which started or are being cancelled, advance."""
        if not changes:
            return []
        ids = sorted({c.execution_id for c in changes})
        rows = conn.execute(LOCK_STATES, {"ids": ids})
        current = {row.id: RowState(**row._mapping) for row in rows}
        original = {i: state.status for i, state in current.items()}
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
                history.append(_event(updated, state.status, target, now, change.message))
            elif values.get("progress") is not None:
                history.append(_event(updated, target, target, now, progress=values["progress"]))
            current[state.id] = updated
            results.append(updated)
        self._write(conn, pending, original)
        if history:
            log_events(conn, history)
        retried: set[int] = set()
        if retries:
            settled = [
                state.id
                for change, state in zip(changes, results, strict=True)
                if state is not None and change.settle and state.status in RETRYABLE
            ]
            retried = self._retry(conn, now, settled)
        flows = {
            state.id
            for state in current.values()
            if state.runner == FLOW_RUNNER
            and state.status is not original[state.id]
            and state.status in (Status.RUNNING, Status.CANCELING)
        } | {
            state.parent_id
            for state in current.values()
            if state.parent_id is not None
            and state.status is not original[state.id]
            and state.status in TERMINAL
            and state.id not in retried
        }
        if any(
            state.device_id is not None
            and state.parent_id is None
            and state.status in TERMINAL
            and original[state.id] not in TERMINAL
            for state in current.values()
        ):
            self.db.notify_jobs(conn)  # a device is free: whoever waits for it can start
        ended_jobs = [
            state.id
            for state in current.values()
            if state.job_type is not None
            and state.status in TERMINAL
            and original[state.id] not in TERMINAL
        ]
        if ended_jobs:
            notifications.enqueue(conn, now, ended_jobs)
        if flows:
            self.flows.advance(conn, now, flows)
        return results

    def _write(
        self,
        conn: Connection,
        pending: dict[int, dict[str, Any]],
        original: dict[int, Status],
    ) -> None:
        by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for execution_id, values in pending.items():
            columns = tuple(sorted(values))
            params = {f"v_{k}": v for k, v in values.items()}
            params.update(k_id=execution_id, k_status=original[execution_id])
            by_columns.setdefault(columns, []).append(params)
        for columns, rows in by_columns.items():
            statement = (
                update(ex)
                .where(ex.c.id == bindparam("k_id"), ex.c.status == bindparam("k_status"))
                .values({c: bindparam(f"v_{c}") for c in columns})
            )
            conn.execute(statement, rows)


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


def _event(
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
