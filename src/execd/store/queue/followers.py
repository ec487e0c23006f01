"""What follows a status change, carried out in the transaction that made it: a failed
run's retry, the flow whose step ended (or which started or is being cancelled), the
workers waiting for a device it freed, and the notification of a job that ended. What
follows is decided in the domain (domain/follow_ups.py, domain/retries.py)."""

from __future__ import annotations

from sqlalchemy import Connection, select

from execd.domain.follow_ups import follow_ups, retry_candidates
from execd.domain.retries import next_attempt
from execd.domain.states import Status
from execd.store import notifications
from execd.store.queue.flow_engine import FlowEngine
from execd.store.queue.submit import insert_executions
from execd.store.queue.transitions import Applied, Transitions
from execd.store.rows import to_execution
from execd.store.schema import executions as ex


class Followers:
    def __init__(self, transitions: Transitions) -> None:
        self.t = transitions
        self.flows = FlowEngine(transitions)

    def __call__(self, conn: Connection, now: float, applied: Applied, retries: bool) -> None:
        retried: set[int] = set()
        if retries:
            settled = [
                state
                for change, state in zip(applied.changes, applied.results, strict=True)
                if change.settle
            ]
            retried = self._retry(conn, now, retry_candidates(settled))
        after = follow_ups(applied.moved(), applied.ended(), retried)
        if after.device_freed:
            self.t.db.notify_jobs(conn)  # whoever waits for the device can start
        if after.ended_jobs:
            notifications.enqueue(conn, now, after.ended_jobs)
        if after.flows:
            self.flows.advance(conn, now, after.flows)

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
