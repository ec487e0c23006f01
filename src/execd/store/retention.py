"""Which ended executions a retention policy lets go, and deleting them in batches."""

from __future__ import annotations

from sqlalchemy import Connection, and_, or_, select

from execd.domain.executions import Execution
from execd.domain.retention import Policy
from execd.domain.states import TERMINAL
from execd.store.clock import now_of
from execd.store.database import Database
from execd.store.executions import delete_terminal
from execd.store.schema import executions as ex


class RetentionStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def expired(self, policy: Policy, limit: int, after: int = 0) -> list[int]:
        """Ids above `after` of top-level ended executions past their time (in id
        order, so a sweep pages through them once, whatever it could not delete).

        A candidate is walked to along the primary key from `after`; the newest
        `keep_per_action` of its action are kept by looking at most that many newer
        ones up (an index on project, action and id), never by ranking the history."""

        def read(conn: Connection) -> list[int]:
            now = now_of(conn)
            old = or_(
                *(
                    and_(ex.c.status == status.value, ex.c.ended < now - days * 86400)
                    for status, days in policy.days.items()
                )
            )
            query = select(ex.c.id).where(ex.c.id > after, ex.c.parent_id.is_(None), old)
            if policy.keep_per_action:
                newer = ex.alias("newer")
                # The keep_per_action-th newer ended execution of the same action: it
                # exists only if this one is not among the newest that are kept.
                nth_newer = (
                    select(newer.c.id)
                    .where(
                        newer.c.project_id == ex.c.project_id,
                        newer.c.action_ref == ex.c.action_ref,
                        newer.c.id > ex.c.id,
                        newer.c.parent_id.is_(None),
                        newer.c.status.in_(sorted(TERMINAL)),
                    )
                    .order_by(newer.c.id)
                    .offset(policy.keep_per_action - 1)
                    .limit(1)
                )
                query = query.where(nth_newer.exists())
            return list(conn.execute(query.order_by(ex.c.id).limit(limit)).scalars())

        if not policy.days:
            return []
        return await self.db.read(read)

    async def delete(self, ids: list[int]) -> list[Execution]:
        """Delete these (with everything below them) if all of it has ended."""

        def remove(conn: Connection) -> list[Execution]:
            projects = conn.execute(select(ex.c.project_id, ex.c.id).where(ex.c.id.in_(ids))).all()
            removed: list[Execution] = []
            by_project: dict[str, list[int]] = {}
            for project_id, execution_id in projects:
                by_project.setdefault(project_id, []).append(execution_id)
            for project_id, chunk in by_project.items():
                removed += delete_terminal(conn, project_id, chunk)[1]
            return removed

        return await self.db.write(remove)
