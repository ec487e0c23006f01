"""Job notifications in the database: queued when a job ends (in that transaction),
claimed by notifiers, retried with backoff, and recorded either way."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, insert, select, update

from execd.domain.executions import Execution
from execd.domain.states import Status
from execd.store.clock import now_of
from execd.store.database import Database
from execd.store.rows import to_execution
from execd.store.schema import executions as ex
from execd.store.schema import notifications as nt

PENDING, SENT, FAILED = "pending", "sent", "failed"
# How long a claimed delivery may take before another notifier may try it again; every
# delivery gives up well before (DELIVERY_SECONDS), so two never overlap.
CLAIM_SECONDS = 120.0
DELIVERY_SECONDS = 60.0


@dataclass(frozen=True)
class Notification:
    id: int
    execution_id: int
    tenant_id: str
    project_id: str
    channel: str
    target: str
    event: str
    state: str
    attempts: int
    next_attempt: float | None
    last_error: str | None
    created: float
    sent: float | None


def deliveries(job: dict[str, Any] | None, status: Status) -> list[tuple[str, str, str]]:
    """(channel, target, event) for each notification a job ending in `status` asks for."""
    wanted = (job or {}).get("notifications") or {}
    if status is Status.COMPLETED:
        event, flag = "completed", "onCompletion"
    elif status in (Status.FAILED, Status.TIMEOUT, Status.ABANDONED):
        event, flag = "failed", "onFailure"
    else:
        return []
    if not wanted.get(flag):
        return []
    found = [("email", str(r), event) for r in wanted.get("emailRecipients") or []]
    if wanted.get("webhookUrl"):
        found.append(("webhook", str(wanted["webhookUrl"]), event))
    return found


def enqueue(conn: Connection, now: float, ended: Iterable[int]) -> None:
    """Queue the notifications of the jobs among `ended` (their final status is set)."""
    rows = conn.execute(
        select(ex.c.id, ex.c.tenant_id, ex.c.project_id, ex.c.job, ex.c.status).where(
            ex.c.id.in_(list(ended)), ex.c.job_type.is_not(None)
        )
    )
    values = [
        {
            "execution_id": row.id,
            "tenant_id": row.tenant_id,
            "project_id": row.project_id,
            "channel": channel,
            "target": target,
            "event": event,
            "state": PENDING,
            "attempts": 0,
            "next_attempt": now,
            "created": now,
        }
        for row in rows
        for channel, target, event in deliveries(row.job, Status(row.status))
    ]
    if values:
        conn.execute(insert(nt), values)


class NotificationStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def claim(self, limit: int = 20) -> list[tuple[Notification, Execution]]:
        """Due deliveries, each with its job; claimed for CLAIM_SECONDS."""

        def claim(conn: Connection) -> list[tuple[Notification, Execution]]:
            now = now_of(conn)
            rows = conn.execute(
                select(nt)
                .where(nt.c.state == PENDING, nt.c.next_attempt <= now)
                .order_by(nt.c.next_attempt)
                .limit(limit)
                .with_for_update(skip_locked=True)
            ).all()
            if not rows:
                return []
            ids = [r.id for r in rows]
            until = now + CLAIM_SECONDS
            conn.execute(update(nt).where(nt.c.id.in_(ids)).values(next_attempt=until))
            jobs = {
                r["id"]: to_execution(r)
                for r in conn.execute(
                    select(ex).where(ex.c.id.in_({r.execution_id for r in rows}))
                ).mappings()
            }
            # The claim's end is its token: only the holder of this claim records it.
            return [
                (Notification(**{**r._mapping, "next_attempt": until}), jobs[r.execution_id])
                for r in rows
                if r.execution_id in jobs
            ]

        return await self.db.write(claim)

    async def record(
        self, notification: Notification, error: str | None, retry_in: float | None
    ) -> None:
        """Sent (no error), to be tried again in `retry_in` seconds, or failed for good."""

        def record(conn: Connection) -> None:
            now = now_of(conn)
            values: dict[str, Any] = {
                "attempts": notification.attempts + 1,
                "last_error": error,
            }
            if error is None:
                values.update(state=SENT, sent=now, next_attempt=None)
            elif retry_in is not None:
                values.update(next_attempt=now + retry_in)
            else:
                values.update(state=FAILED, next_attempt=None)
            conn.execute(
                update(nt)
                .where(
                    nt.c.id == notification.id,
                    nt.c.state == PENDING,
                    nt.c.next_attempt == notification.next_attempt,
                )
                .values(values)
            )

        await self.db.write(record)

    async def of(self, execution_id: int) -> list[Notification]:
        query = select(nt).where(nt.c.execution_id == execution_id).order_by(nt.c.id)
        rows = await self.db.read(lambda conn: conn.execute(query).all())
        return [Notification(**r._mapping) for r in rows]
