"""Jobs (the tenant API) in the database: lists with summary counts, and the figures that
queue positions and estimates are computed from."""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import Connection, and_, func, or_, select
from sqlalchemy.sql.elements import ColumnElement

from execd.domain.executions import Execution, ExecutionFilter, Kind
from execd.domain.states import Priority, Status
from execd.store import analytics
from execd.store.database import Database
from execd.store.filters import conditions
from execd.store.rows import to_execution
from execd.store.schema import DEVICE_READY_SQL, READY_SQL
from execd.store.schema import executions as ex


class JobStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def page(
        self, project_id: str, f: ExecutionFilter, limit: int, offset: int
    ) -> tuple[list[Execution], dict[Status, int]]:
        """A page of jobs, newest first, and the count of each status over all that
        match the filter."""
        where = conditions(project_id, replace(f, only=Kind.JOBS))

        def read(conn: Connection) -> tuple[list[Execution], dict[Status, int]]:
            rows = conn.execute(
                select(ex).where(*where).order_by(ex.c.id.desc()).limit(limit).offset(offset)
            ).mappings()
            items = [to_execution(r) for r in rows]
            counts = conn.execute(
                select(ex.c.status, func.count()).where(*where).group_by(ex.c.status)
            )
            return items, {Status(s): int(n) for s, n in counts}

        return await self.db.read(read)

    async def ahead_of(self, execution: Execution) -> int:
        """Executions the queue serves before this one (higher priority, or as high and
        older), in every project: workers are shared."""
        query = select(func.count()).where(
            ex.c.status == Status.SCHEDULING,
            ex.c.device_id.is_(None),
            or_(
                ex.c.priority > int(execution.priority),
                and_(ex.c.priority == int(execution.priority), ex.c.id < execution.id),
            ),
        )
        return int(await self.db.read(lambda conn: conn.execute(query).scalar_one()))

    async def run_times(
        self, project_id: str, resource: ColumnElement[bool], limit: int = 50
    ) -> list[float]:
        """Run times (seconds) of the latest completed executions of one resource."""
        query = (
            select(ex.c.ended - ex.c.started)
            .where(
                ex.c.project_id == project_id,
                resource,
                ex.c.status == Status.COMPLETED,
                ex.c.started.is_not(None),
                ex.c.ended.is_not(None),
            )
            .order_by(ex.c.id.desc())
            .limit(limit)
        )
        rows = await self.db.read(lambda conn: list(conn.execute(query).scalars()))
        return [float(r) for r in rows if r is not None]

    async def recent_run_time(self, sample: int = 200) -> float | None:
        """Mean run time of the latest completed executions, in every project (read
        backwards by id, so it costs `sample` rows however long the history)."""
        latest = (
            select((ex.c.ended - ex.c.started).label("seconds"))
            .where(ex.c.status == Status.COMPLETED, ex.c.started.is_not(None))
            .order_by(ex.c.id.desc())
            .limit(sample)
            .subquery()
        )
        value = await self.db.read(
            lambda conn: conn.execute(select(func.avg(latest.c.seconds))).scalar()
        )
        return None if value is None else float(value)

    async def ended_totals(self) -> dict[tuple[Status, str], int]:
        """Executions ended, ever, in every project, by final status and action."""
        return await self.db.read(analytics.ended_totals)

    async def waiting_by_priority(self) -> dict[Priority, int]:
        """Executions waiting to start, in every project, by priority; each part is
        counted from its own partial index."""
        parts = (READY_SQL, DEVICE_READY_SQL, ex.c.status == Status.REQUESTED)

        def read(conn: Connection) -> dict[Priority, int]:
            found: dict[Priority, int] = {}
            for part in parts:
                rows = conn.execute(
                    select(ex.c.priority, func.count()).where(part).group_by(ex.c.priority)
                )
                for priority, count in rows:
                    found[Priority(priority)] = found.get(Priority(priority), 0) + int(count)
            return found

        return await self.db.read(read)

    async def recent_wait(self, sample: int = 200) -> float | None:
        """Mean time from submission to start of the latest started executions."""
        latest = (
            select((ex.c.started - ex.c.created).label("seconds"))
            .where(ex.c.started.is_not(None), ex.c.not_before.is_(None))
            .order_by(ex.c.id.desc())
            .limit(sample)
            .subquery()
        )
        value = await self.db.read(
            lambda conn: conn.execute(select(func.avg(latest.c.seconds))).scalar()
        )
        return None if value is None else float(value)

    async def ended_since(self, tenant_id: str, since: float) -> dict[Status, tuple[int, float]]:
        """Per final status: how many of the tenant's executions ended since `since`,
        and their total run time."""
        query = (
            select(ex.c.status, func.count(), func.sum(ex.c.ended - ex.c.started))
            .where(ex.c.tenant_id == tenant_id, ex.c.ended >= since)
            .group_by(ex.c.status)
        )
        rows = await self.db.read(lambda conn: list(conn.execute(query)))
        return {Status(s): (int(n), float(t or 0.0)) for s, n, t in rows}

    async def waiting_in(self, project_id: str) -> int:
        """How many of the project's executions wait for a worker."""
        query = select(func.count()).where(ex.c.project_id == project_id, READY_SQL)
        return int(await self.db.read(lambda conn: conn.execute(query).scalar_one()))

    async def queue_of(self, project_id: str, limit: int) -> list[tuple[Execution, int]]:
        """The project's executions waiting for a worker, best first, with their place
        in the whole queue (1 = next)."""
        ranked = (
            select(
                ex.c.id,
                ex.c.project_id,
                func.row_number().over(order_by=(ex.c.priority.desc(), ex.c.id)).label("position"),
            )
            .where(READY_SQL)
            .subquery()
        )
        query = (
            select(ex, ranked.c.position)
            .join(ranked, ranked.c.id == ex.c.id)
            .where(ranked.c.project_id == project_id)
            .order_by(ranked.c.position)
            .limit(limit)
        )

        def read(conn: Connection) -> list[tuple[Execution, int]]:
            rows = conn.execute(query).mappings()
            return [
                (to_execution({k: v for k, v in r.items() if k != "position"}), int(r["position"]))
                for r in rows
            ]

        return await self.db.read(read)
