"""The write side of executions: submit, claim, report, finish, cancel, reap.

Every status change goes through `_apply`, which locks the rows, checks each change
against the transition table (and the fencing token when a worker makes it), writes
the rows with a compare-and-set on the status it read, and records one event per change.
"""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import Select, bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from execd.domain.executions import Execution, NewExecution
from execd.domain.retries import lost_lease_status, next_attempt
from execd.domain.states import LEASED, TERMINAL, UNCLAIMED, Status, can_transition, settle
from execd.errors import Conflict
from execd.store.clock import now_of
from execd.store.database import Database
from execd.store.rows import to_execution
from execd.store.schema import execution_events as events
from execd.store.schema import executions as ex

NOW = object()  # placeholder for the transaction's database time in Change.values


@dataclass(frozen=True)
class Change:
    """One requested change of one execution.

    `to=None` changes fields only (progress) and records no event. `fence` is the
    token of the worker making the change; None for changes not made by a worker.
    `settle` maps a run's outcome onto the row's state (a cancelling run ends cancelled).
    """

    execution_id: int
    to: Status | None = None
    fence: int | None = None
    when: frozenset[Status] | None = None
    values: Mapping[str, Any] = field(default_factory=dict)
    message: str | None = None
    settle: bool = False


@dataclass(frozen=True)
class Submitted:
    execution: Execution
    replayed: bool = False


def ready_query(limit: int) -> Select[tuple[int]]:
    """The claimable set, best first: it reads only the partial index ix_executions_ready."""
    return (
        select(ex.c.id)
        .where(ex.c.status == Status.SCHEDULING)
        .order_by(ex.c.priority.desc(), ex.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )


class Queue:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- submission -------------------------------------------------------------------

    async def submit(self, items: Sequence[NewExecution]) -> list[Submitted | Exception]:
        """Store a batch of submissions in one transaction (group commit).

        A repeated idempotency key returns the execution it first created; the same key
        with a different action or parameters is a conflict.
        """
        async with self.db.transaction() as conn:
            now = await now_of(conn)
            results: list[Submitted | Exception | None] = [None] * len(items)
            first_of_key: dict[tuple[str, str], int] = {}
            existing = await self._by_idempotency_key(conn, items)
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
            created = await self.insert(conn, now, [items[i] for i in fresh])
            for index, execution in zip(fresh, created, strict=True):
                results[index] = Submitted(execution)
            for index, item in enumerate(items):
                if results[index] is None:
                    assert item.idempotency_key is not None
                    original = results[first_of_key[(item.project_id, item.idempotency_key)]]
                    assert isinstance(original, Submitted)
                    results[index] = _replay(original.execution, item)
            if any(e.status is Status.SCHEDULING for e in created):
                await self.db.notify_jobs(conn)
        return [r for r in results if r is not None]

    async def _by_idempotency_key(
        self, conn: AsyncConnection, items: Sequence[NewExecution]
    ) -> dict[tuple[str, str], Execution]:
        keys = {i.idempotency_key for i in items if i.idempotency_key}
        if not keys:
            return {}
        projects = {i.project_id for i in items if i.idempotency_key}
        rows = await conn.execute(
            select(ex).where(ex.c.idempotency_key.in_(keys), ex.c.project_id.in_(projects))
        )
        found = (to_execution(r) for r in rows.mappings())
        return {(e.project_id, e.idempotency_key): e for e in found if e.idempotency_key}

    async def insert(
        self, conn: AsyncConnection, now: float, items: Sequence[NewExecution]
    ) -> list[Execution]:
        """Insert new executions with their first events; used by submit and by retries."""
        if not items:
            return []
        values = [_row_values(item, now) for item in items]
        rows = await conn.execute(insert(ex).returning(*ex.c, sort_by_parameter_order=True), values)
        created = [to_execution(r) for r in rows.mappings()]
        history: list[dict[str, Any]] = []
        for execution, item in zip(created, items, strict=True):
            message = f"retry of execution {item.retry_of}" if item.retry_of else None
            history.append(_event(execution, None, Status.REQUESTED, now, message))
            if execution.status is Status.SCHEDULING:
                history.append(_event(execution, Status.REQUESTED, Status.SCHEDULING, now))
        await conn.execute(insert(events), history)
        return created

    # -- claiming ---------------------------------------------------------------------

    async def has_work(self) -> bool:
        """A cheap read before taking the write lock; false negatives only delay a claim."""
        async with self.db.snapshot() as conn:
            now = await now_of(conn)
            ready = select(ex.c.id).where(ex.c.status == Status.SCHEDULING).limit(1)
            due = (
                select(ex.c.id)
                .where(ex.c.status == Status.REQUESTED, ex.c.not_before <= now)
                .limit(1)
            )
            for query in (ready, due):
                if (await conn.execute(query)).first() is not None:
                    return True
        return False

    async def next_due(self) -> float | None:
        """Seconds until the earliest delayed execution is due (None: nothing delayed)."""
        async with self.db.snapshot() as conn:
            now = await now_of(conn)
            query = select(ex.c.not_before).where(ex.c.status == Status.REQUESTED)
            first = (await conn.execute(query.order_by(ex.c.not_before).limit(1))).scalar()
        return None if first is None else max(0.0, first - now)

    async def claim(self, worker_id: int, limit: int, lease: float) -> list[Execution]:
        """Take up to `limit` ready executions, highest priority first, then oldest."""
        async with self.db.transaction() as conn:
            now = await now_of(conn)
            await self._promote_due(conn, now)
            # Two statements, not UPDATE ... WHERE id IN (SELECT ... LIMIT): PostgreSQL may
            # evaluate such a subquery more than once and claim more than `limit` rows.
            ids = list((await conn.execute(ready_query(limit))).scalars())
            if not ids:
                return []
            rows = await conn.execute(
                update(ex)
                .where(ex.c.id.in_(ids), ex.c.status == Status.SCHEDULING)
                .values(
                    status=Status.SCHEDULED,
                    worker_id=worker_id,
                    fence=ex.c.fence + 1,
                    lease_expires=now + lease,
                    updated=now,
                )
                .returning(*ex.c)
            )
            claimed = sorted(
                (to_execution(r) for r in rows.mappings()), key=lambda e: (-e.priority, e.id)
            )
            if claimed:
                await conn.execute(
                    insert(events),
                    [
                        _event(e, Status.SCHEDULING, Status.SCHEDULED, now, worker_id=worker_id)
                        for e in claimed
                    ],
                )
        return claimed

    async def promote_due(self) -> None:
        """Release delayed executions whose time has come (workers also do it when claiming)."""
        async with self.db.transaction() as conn:
            now = await now_of(conn)
            if await self._promote_due(conn, now):
                await self.db.notify_jobs(conn)

    async def _promote_due(self, conn: AsyncConnection, now: float) -> int:
        due = await conn.execute(
            select(ex.c.id)
            .where(ex.c.status == Status.REQUESTED, ex.c.not_before <= now)
            .order_by(ex.c.not_before)
            .limit(1000)
            .with_for_update(skip_locked=True)
        )
        ids = list(due.scalars())
        if ids:
            await self._apply(conn, now, [Change(i, Status.SCHEDULING) for i in ids])
        return len(ids)

    # -- worker reports ---------------------------------------------------------------

    async def apply(self, changes: Sequence[Change]) -> list[Execution | None]:
        """Apply a batch of changes in one transaction; None where a change was refused."""
        async with self.db.transaction() as conn:
            now = await now_of(conn)
            applied = await self._apply(conn, now, changes)
            retries = [
                attempt
                for change, execution in zip(changes, applied, strict=True)
                if execution is not None and change.settle
                for attempt in [next_attempt(execution, execution.status)]
                if attempt is not None
            ]
            created = await self.insert(conn, now, retries)
            if any(e.status is Status.SCHEDULING for e in created):
                await self.db.notify_jobs(conn)
        return applied

    async def renew_leases(
        self, worker_id: int, held: Mapping[int, int], lease: float
    ) -> dict[int, Status | None]:
        """Extend the leases this worker holds; report each one's status (None: lost)."""
        if not held:
            return {}
        async with self.db.transaction() as conn:
            now = await now_of(conn)
            await conn.execute(
                update(ex)
                .where(
                    ex.c.id == bindparam("eid"),
                    ex.c.fence == bindparam("efence"),
                    ex.c.worker_id == worker_id,
                    ex.c.status.in_(LEASED),
                )
                .values(lease_expires=now + lease),
                [{"eid": i, "efence": f} for i, f in held.items()],
            )
            rows = await conn.execute(
                select(ex.c.id, ex.c.fence, ex.c.status, ex.c.worker_id).where(ex.c.id.in_(held))
            )
            found = {
                r.id: Status(r.status)
                for r in rows
                if r.fence == held[r.id] and r.worker_id == worker_id and r.status in LEASED
            }
        return {i: found.get(i) for i in held}

    # -- cancellation -----------------------------------------------------------------

    async def cancel(self, project_id: str, execution_id: int) -> Execution | None:
        """Cancel an execution and its descendants. Unclaimed or not yet started work is
        cancelled at once; running work goes to `canceling` until its worker stops it.
        """
        async with self.db.transaction() as conn:
            now = await now_of(conn)
            row = (
                (
                    await conn.execute(
                        select(ex).where(ex.c.id == execution_id, ex.c.project_id == project_id)
                    )
                )
                .mappings()
                .first()
            )
            if row is None:
                return None
            execution = to_execution(row)
            if execution.status in TERMINAL:
                raise Conflict(
                    f"Execution {execution_id} is already {execution.status.value}",
                    status=execution.status.value,
                )
            targets = [execution_id, *await self._descendants(conn, execution_id)]
            applied = await self._apply(conn, now, _cancel_changes(targets))
            if any(e is not None and e.status is Status.CANCELING for e in applied):
                await self.db.notify_cancel(conn)
        # The first two changes are the root's: whichever of them applied is its new state.
        root = [e for e in applied[:2] if e is not None]
        return root[-1] if root else execution

    async def _descendants(self, conn: AsyncConnection, root: int) -> list[int]:
        found: list[int] = []
        frontier = [root]
        while frontier:
            rows = await conn.execute(
                select(ex.c.id).where(ex.c.parent_id.in_(frontier), ex.c.status.not_in(TERMINAL))
            )
            frontier = list(rows.scalars())
            found.extend(frontier)
        return found

    # -- recovery ---------------------------------------------------------------------

    async def reap_expired(self, limit: int = 500) -> list[Execution]:
        """Requeue, abandon or cancel executions whose worker stopped renewing its lease."""
        async with self.db.transaction() as conn:
            now = await now_of(conn)
            rows = await conn.execute(
                select(ex)
                .where(ex.c.status.in_(LEASED), ex.c.lease_expires < now)
                .order_by(ex.c.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
            return await self._recover(conn, now, [to_execution(r) for r in rows.mappings()])

    async def recover_worker(self, worker_id: int) -> list[Execution]:
        """A worker (re)starting under a known id: what it held before is lost."""
        async with self.db.transaction() as conn:
            now = await now_of(conn)
            rows = await conn.execute(
                select(ex)
                .where(ex.c.worker_id == worker_id, ex.c.status.in_(LEASED))
                .with_for_update()
            )
            return await self._recover(conn, now, [to_execution(r) for r in rows.mappings()])

    async def _recover(
        self, conn: AsyncConnection, now: float, lost: list[Execution]
    ) -> list[Execution]:
        changes = []
        for execution in lost:
            status, message = lost_lease_status(execution)
            values: dict[str, Any] = {"lease_expires": None}
            if status is Status.SCHEDULING:
                values.update(attempt=execution.attempt + 1, worker_id=None, pid=None)
            else:
                values.update(ended=NOW, error=message)
            changes.append(
                Change(execution.id, status, fence=execution.fence, values=values, message=message)
            )
        applied = [e for e in await self._apply(conn, now, changes) if e is not None]
        if any(e.status is Status.SCHEDULING for e in applied):
            await self.db.notify_jobs(conn)
        return applied

    async def release(self, worker_id: int, held: Mapping[int, int]) -> list[Execution | None]:
        """A worker shutting down hands back work it stopped: queued again, same attempt."""
        changes = [
            Change(
                execution_id,
                Status.SCHEDULING,
                fence=fence,
                when=frozenset({Status.SCHEDULED, Status.RUNNING}),
                values={"worker_id": None, "lease_expires": None, "pid": None},
                message=f"worker {worker_id} shut down; requeued",
            )
            for execution_id, fence in held.items()
        ]
        async with self.db.transaction() as conn:
            now = await now_of(conn)
            applied = await self._apply(conn, now, changes)
            if any(e is not None for e in applied):
                await self.db.notify_jobs(conn)
        return applied

    # -- the one way a status changes --------------------------------------------------

    async def _apply(
        self, conn: AsyncConnection, now: float, changes: Sequence[Change]
    ) -> list[Execution | None]:
        if not changes:
            return []
        ids = sorted({c.execution_id for c in changes})
        rows = await conn.execute(
            select(ex).where(ex.c.id.in_(ids)).order_by(ex.c.id).with_for_update()
        )
        current = {r["id"]: to_execution(r) for r in rows.mappings()}
        original = {i: e.status for i, e in current.items()}
        pending: dict[int, dict[str, Any]] = {}
        history: list[dict[str, Any]] = []
        results: list[Execution | None] = []
        for change in changes:
            execution = current.get(change.execution_id)
            target = _target(execution, change)
            if execution is None or target is None:
                results.append(None)
                continue
            values = {k: (now if v is NOW else v) for k, v in change.values.items()}
            values["updated"] = now
            if target is not execution.status:
                values["status"] = target
                if target in TERMINAL:
                    values.setdefault("ended", now)
                    values.setdefault("lease_expires", None)
            pending.setdefault(execution.id, {}).update(values)
            updated = _with(execution, values)
            if target is not execution.status:
                history.append(_event(updated, execution.status, target, now, change.message))
            current[execution.id] = updated
            results.append(updated)
        await self._write(conn, pending, original)
        if history:
            await conn.execute(insert(events), history)
        return results

    async def _write(
        self,
        conn: AsyncConnection,
        pending: dict[int, dict[str, Any]],
        original: dict[int, Status],
    ) -> None:
        by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for execution_id, values in pending.items():
            columns = tuple(sorted(values))
            params = {f"v_{k}": v for k, v in values.items()}
            params.update(k_id=execution_id, k_status=original[execution_id])
            by_columns.setdefault(columns, []).append(params)
        for columns, params in by_columns.items():
            statement = (
                update(ex)
                .where(ex.c.id == bindparam("k_id"), ex.c.status == bindparam("k_status"))
                .values({c: bindparam(f"v_{c}") for c in columns})
            )
            await conn.execute(statement, params)


def _target(execution: Execution | None, change: Change) -> Status | None:
    """The status `change` moves `execution` to, or None if it must be refused."""
    if execution is None:
        return None
    if change.fence is not None and execution.fence != change.fence:
        return None
    if change.to is None:
        allowed = change.when if change.when is not None else frozenset(Status) - TERMINAL
        return execution.status if execution.status in allowed else None
    if change.when is not None and execution.status not in change.when:
        return None
    target = settle(execution.status, change.to) if change.settle else change.to
    return target if can_transition(execution.status, target) else None


def _cancel_changes(ids: Iterable[int]) -> list[Change]:
    changes = []
    for execution_id in ids:
        # Whichever applies: not yet running -> cancelled; running -> canceling.
        changes.append(
            Change(
                execution_id,
                Status.CANCELLED,
                when=UNCLAIMED | {Status.SCHEDULED},
                message="cancelled before it started",
            )
        )
        changes.append(
            Change(
                execution_id,
                Status.CANCELING,
                when=frozenset({Status.RUNNING}),
                message="cancellation requested",
            )
        )
    return changes


def _with(execution: Execution, values: Mapping[str, Any]) -> Execution:
    return replace(execution, **values)


def _replay(original: Execution, item: NewExecution) -> Submitted | Exception:
    if original.action_ref != item.action_ref or original.parameters != item.parameters:
        return Conflict(
            f"Idempotency key {item.idempotency_key!r} was already used for a different "
            f"request (execution {original.id})",
            execution_id=original.id,
        )
    return Submitted(original, replayed=True)


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
        "created": now,
        "updated": now,
    }


def _event(
    execution: Execution,
    from_status: Status | None,
    to_status: Status,
    at: float,
    message: str | None = None,
    *,
    worker_id: int | None = None,
) -> dict[str, Any]:
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
    }
