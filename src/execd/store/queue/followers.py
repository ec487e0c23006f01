"""What follows a status change, in the transaction that made it: a failed run's
retry, the flow whose step ended (or which started or is being cancelled), the
workers waiting for a device it freed, and the notification of a job that ended."""

from __future__ import annotations

from sqlalchemy import Connection, select

from execd.domain.flows import FLOW_RUNNER
from execd.domain.retries import CAUSES, next_attempt
from execd.domain.states import TERMINAL, Status
from execd.store import notifications
from execd.store.queue.flow_engine import FlowEngine
from execd.store.queue.submit import insert_executions
from execd.store.queue.transitions import Applied, Transitions
from execd.store.rows import to_execution
from execd.store.schema import executions as ex

RETRYABLE = frozenset(CAUSES)


class Followers:
    def __init__(self, transitions: Transitions) -> None:
        self.t = transitions
        self.flows = FlowEngine(transitions)

    def __call__(self, conn: Connection, now: float, applied: Applied, retries: bool) -> None:
        retried: set[int] = set()
        if retries:
            settled = [
                state.id
                for change, state in zip(applied.changes, applied.results, strict=True)
                if state is not None and change.settle and state.status in RETRYABLE
            ]
            retried = self._retry(conn, now, settled)
        moved = applied.moved()
        ended = applied.ended()
        flows = {
            s.id
            for s in moved
            if s.runner == FLOW_RUNNER and s.status in (Status.RUNNING, Status.CANCELING)
        } | {
            s.parent_id
            for s in moved
            if s.parent_id is not None and s.status in TERMINAL and s.id not in retried
        }
        if any(s.device_id is not None and s.parent_id is None for s in ended):
            self.t.db.notify_jobs(conn)  # a device is free: whoever waits for it can start
        ended_jobs = [s.id for s in ended if s.job_type is not None]
        if ended_jobs:
            notifications.enqueue(conn, now, ended_jobs)
        if flows:
            self.flows.advance(conn, now, flows)

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
        created = insert_executions(conn, now, retries)
        if any(e.status is Status.SCHEDULING for e in created):
            self.t.db.notify_jobs(conn)
        return {r.retry_of for r in retries if r.retry_of is not None}
