"""Which ended executions a retention policy lets go, and deleting them in batches."""

from __future__ import annotations

from sqlalchemy import Connection, and_, func, or_, select

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

    async def expired(self, policy: Policy, limit: int) -> list[int]:
        """Ids of top-level ended executions past their time (oldest first)."""

        def read(conn: Connection) -> list[int]:
            now = now_of(conn)
            ranked = (
                select(
                    ex.c.id,
                    ex.c.status,
                    ex.c.ended,
                    func.row_number()
                    .over(partition_by=(ex.c.project_id, ex.c.action_ref), order_by=ex.c.id.desc())
                    .label("newest"),
                )
                .where(ex.c.parent_id.is_(None), ex.c.status.in_(sorted(TERMINAL)))
                .subquery()
            )
            old = or_(
                *(
                    and_(ranked.c.status == status, ranked.c.ended < now - days * 86400)
                    for status, days in policy.days.items()
                )
            )
            query = (
                select(ranked.c.id)
                .where(ranked.c.newest > policy.keep_per_action, old)
                .order_by(ranked.c.id)
                .limit(limit)
            )
            return list(conn.execute(query).scalars())

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
