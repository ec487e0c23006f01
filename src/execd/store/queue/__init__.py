"""The write side of executions: submit, claim, report, finish, cancel, recover.

`Queue` is what the engine holds: each method is one transaction around a part that
lives in the module of its concern:

- submit.py: new executions (submissions, batches, idempotency keys);
- claim.py: the ready queue, delayed work coming due, claims and lease renewal;
- transitions.py: the one way a status changes (compare-and-set, fencing, events);
- followers.py: what follows a change in the same transaction (retries, flows,
  freed devices, job notifications), with flow_engine.py moving flows on;
- cancel.py and recovery.py: cancellation, and work whose worker is gone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Select, select
from sqlalchemy.exc import IntegrityError

from execd.domain.changes import Change
from execd.domain.executions import Execution, NewExecution
from execd.domain.states import Status
from execd.store.clock import now_of
from execd.store.database import Database
from execd.store.queue import cancel, claim, recovery, submit
from execd.store.queue.claim import DEVICE_INDEX, READY, Inline, device_ready_query
from execd.store.queue.followers import Followers
from execd.store.queue.recovery import EXPIRED, HELD_BY
from execd.store.queue.submit import IDEMPOTENCY_INDEX, Refused, Submitted
from execd.store.queue.transitions import Transitions
from execd.store.schema import executions as ex

__all__ = [
    "EXPIRED",
    "HELD_BY",
    "READY",
    "Inline",
    "Queue",
    "Refused",
    "Submitted",
    "device_ready_query",
]

# A write that loses a race for a unique index on PostgreSQL (an idempotency key, a
# device) rolls back and runs again; the second time it sees the winner's row.
RACE_ATTEMPTS = 3


class Queue:
    def __init__(self, db: Database, stop_runs: recovery.StopRuns | None = None) -> None:
        self.db = db
        self.stop_runs = stop_runs
        self.transitions = Transitions(db)
        self.followers = self.transitions.follow = Followers(self.transitions)
        self._device_ready: dict[tuple[str, ...], Select[Any]] = {}

    async def _write_racing(self, index: str, work: Any, *, durable: bool = True) -> Any:
        for attempt in range(1, RACE_ATTEMPTS + 1):
            try:
                return await self.db.write(work, durable=durable)
            except IntegrityError as exc:
                if attempt == RACE_ATTEMPTS or index not in str(exc.orig):
                    raise
        raise AssertionError("unreachable")

    # -- submission -------------------------------------------------------------------

    async def submit(
        self, items: Sequence[NewExecution], *, all_or_nothing: bool = False
    ) -> list[Submitted | Exception]:
        """Store a batch of submissions in one transaction (group commit, or a batch a
        client sent); see submit.submit. `all_or_nothing`: a conflict rolls the whole
        batch back and raises `Refused`."""
        result: list[Submitted | Exception] = await self._write_racing(
            IDEMPOTENCY_INDEX,
            lambda conn: submit.submit(self.db, conn, items, all_or_nothing),
        )
        return result

    def insert(
        self, conn: Connection, now: float, items: Sequence[NewExecution]
    ) -> list[Execution]:
        """Insert new executions in `conn`'s transaction (the caller wakes the workers)."""
        return submit.insert_executions(conn, now, items)

    # -- claiming ---------------------------------------------------------------------

    async def has_work(self, devices: Sequence[str] = ()) -> bool:
        """A cheap read before taking the write lock; false negatives only delay a claim."""
        return await self.db.read(lambda conn: claim.has_work(conn, devices))

    async def next_due(self) -> float | None:
        """Seconds until the earliest delayed execution is due (None: nothing delayed)."""
        return await self.db.read(claim.next_due)

    async def claim(
        self,
        worker_id: int,
        limit: int,
        lease: float,
        devices: Sequence[str] = (),
        inline: Inline | None = None,
    ) -> list[Execution]:
        """Take up to `limit` ready executions, highest priority first, then oldest:
        work bound to no device, and work bound to one of `devices`. With `inline`, up
        to `inline.limit` more of its runners are run and ended in the claim's
        transaction; they come back ended, the rest `scheduled`."""
        key = tuple(sorted(set(devices)))
        ready = self._device_ready.get(key) if key else None
        if key and ready is None:
            ready = self._device_ready[key] = device_ready_query(key)
        # Not durable on SQLite (see Database.write): a claim lost in a power cut leaves
        # the execution claimable again, and the worker that took it is gone with it.
        # Work it also ended is flushed to disk before the answer (must_reach_disk).
        claimed: list[Execution] = await self._write_racing(
            DEVICE_INDEX,
            lambda conn: claim.claim(
                self.transitions, conn, ready, worker_id, limit, lease, inline
            ),
            durable=False,
        )
        return claimed

    async def promote_due(self) -> None:
        """Release delayed executions whose time has come (workers also do it when claiming)."""

        def promote(conn: Connection) -> None:
            if claim.promote_due(self.transitions, conn, now_of(conn)):
                self.db.notify_jobs(conn)

        await self.db.write(promote, durable=False)  # lost: due again at the restart

    async def renew_leases(
        self, worker_id: int, held: Mapping[int, int], lease: float
    ) -> dict[int, Status | None]:
        """Extend the leases this worker holds; report each one's status (None: lost)."""
        if not held:
            return {}
        return await self.db.write(
            lambda conn: claim.renew(conn, worker_id, held, lease), durable=False
        )

    # -- worker reports ---------------------------------------------------------------

    async def apply(self, changes: Sequence[Change]) -> list[Status | None]:
        """Apply a batch of changes in one transaction: the status each change led to,
        None where it was refused. Runs that failed are retried as their policy says."""

        def apply(conn: Connection) -> list[Status | None]:
            applied = self.transitions.apply(conn, now_of(conn), changes, retries=True)
            return [state.status if state else None for state in applied]

        return await self.db.write(apply)

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
            lambda conn: cancel.cancel(
                self.transitions, conn, project_id, execution_id, reason, request
            )
        )

    # -- recovery ---------------------------------------------------------------------

    async def reap_expired(self, limit: int = 500) -> list[Execution]:
        """Requeue, abandon or cancel executions whose worker stopped renewing its lease."""
        return await self.db.write(
            lambda conn: recovery.reap(self.transitions, conn, limit, self.stop_runs)
        )

    async def recover_worker(self, worker_id: int) -> list[Execution]:
        """A worker (re)starting under a known id: what it held before is lost."""
        return await self.db.write(
            lambda conn: recovery.recover_worker(self.transitions, conn, worker_id, self.stop_runs)
        )

    async def release(self, worker_id: int, held: Mapping[int, int]) -> list[Status | None]:
        """A worker shutting down hands back work it stopped: queued again, same attempt."""
        return await self.db.write(
            lambda conn: recovery.release(self.transitions, conn, worker_id, held)
        )
