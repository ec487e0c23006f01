"""The read side of executions: one record, lists with filters, statistics, history."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy import Connection, Select, delete, func, select, union_all
from sqlalchemy.sql.elements import ColumnElement

from execd.domain.analytics import Aggregate
from execd.domain.executions import (
    Brief,
    Execution,
    ExecutionFilter,
    ExecutionStats,
    Page,
    StatusEvent,
)
from execd.domain.states import TERMINAL, Status
from execd.store import analytics
from execd.store.database import Database
from execd.store.filters import conditions
from execd.store.rows import STATUS, to_execution
from execd.store.schema import execution_events as events
from execd.store.schema import executions as ex

# Pages this near the top of a status-filtered list are merged from one index range per
# status (see _newest_first); deeper ones are read as one query.
MERGED_UP_TO = 2000


def _newest_first(
    project_id: str, f: ExecutionFilter, page: Page, bounds: Sequence[ColumnElement[bool]]
) -> Select[Any]:
    """A page of the list, newest first. Filtered by status, both databases would walk
    the project's id index and test each row, reading the whole history when the status
    is rare (what runs now, among a million that ended): so while the page is near the
    top, each status is read from its own (project, status, id) index range, newest
    first, and the ranges are merged."""
    if not f.statuses or page.offset + page.size > MERGED_UP_TO:
        query = select(ex).where(*conditions(project_id, f), *bounds)
        return query.order_by(ex.c.id.desc()).offset(page.offset).limit(page.size)
    enough = page.offset + page.size
    parts = [
        select(ex)
        .where(*conditions(project_id, replace(f, statuses=frozenset({status}))), *bounds)
        .order_by(ex.c.id.desc())
        .limit(enough)
        .subquery()
        .select()
        for status in sorted(f.statuses)
    ]
    merged = union_all(*parts).subquery()
    return select(merged).order_by(merged.c.id.desc()).offset(page.offset).limit(page.size)


def _by_status(conn: Connection, project_id: str, f: ExecutionFilter) -> dict[Status, int] | None:
    """How many match `f` per status from the kept counts (store/analytics.py), which
    read a few rows rather than every row of the project: when `f` filters by status
    only. None otherwise."""
    if replace(f, statuses=None) != ExecutionFilter():
        return None
    found = analytics.counts(conn, project_id)
    return {s: n for s, n in found.items() if f.statuses is None or s in f.statuses}


def _total(conn: Connection, project_id: str, f: ExecutionFilter) -> int:
    by_status = _by_status(conn, project_id, f)
    if by_status is not None:
        return sum(by_status.values())
    count = select(func.count()).select_from(ex).where(*conditions(project_id, f))
    return int(conn.execute(count).scalar_one())


class ExecutionQueries:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def delete(
        self, project_id: str, ids: list[int]
    ) -> tuple[dict[int, str], list[Execution]]:
        return await self.db.write(lambda conn: delete_terminal(conn, project_id, ids))

    async def ids(self, project_id: str, f: ExecutionFilter, limit: int) -> list[int]:
        """Ids of the newest `limit` executions matching `f`."""
        query = (
            select(ex.c.id).where(*conditions(project_id, f)).order_by(ex.c.id.desc()).limit(limit)
        )
        return await self.db.read(lambda conn: list(conn.execute(query).scalars()))

    async def get(self, project_id: str, execution_id: int) -> Execution | None:
        return await self._one(ex.c.id == execution_id, ex.c.project_id == project_id)

    async def get_by_uuid(self, project_id: str, execution_uuid: str) -> Execution | None:
        return await self._one(ex.c.uuid == execution_uuid, ex.c.project_id == project_id)

    async def _one(self, *where: ColumnElement[bool]) -> Execution | None:
        def one(conn: Connection) -> Execution | None:
            row = conn.execute(select(ex).where(*where)).mappings().first()
            return to_execution(row) if row else None

        return await self.db.read(one)

    async def search(
        self, project_id: str, f: ExecutionFilter, page: Page, *, with_total: bool = True
    ) -> tuple[list[Execution], int | None]:
        """Newest first. Every filter runs in the database; history has no size cap."""
        where = conditions(project_id, f)

        def page_of(conn: Connection) -> tuple[list[Execution], int | None]:
            total = None
            bounds: list[ColumnElement[bool]] = []
            if f.created_after is not None or f.created_before is not None:
                # Ids follow creation, which PostgreSQL's planner does not know: it would
                # walk the primary key from the newest row down to the range. Bounded
                # by the ids the range holds (read with its count from the `created`
                # index), the walk starts at the range's newest row.
                counted = select(func.count(), func.min(ex.c.id), func.max(ex.c.id))
                total, low, high = conn.execute(counted.where(*where)).one()
                if not total:
                    return [], 0 if with_total else None
                bounds = [ex.c.id >= low, ex.c.id <= high]
            elif with_total:
                total = _total(conn, project_id, f)
            rows = conn.execute(_newest_first(project_id, f, page, bounds)).mappings()
            return [to_execution(r) for r in rows], total if with_total else None

        return await self.db.read(page_of)

    async def window(self, project_id: str, f: ExecutionFilter, size: int) -> int | None:
        """Where a bounded scan of `size` executions stops: the lowest id of the `size`
        newest below `f.below_id` (within `f`'s `created` range, if it has one). None
        when there are fewer: the scan reaches the oldest. Read from indexes alone."""

        def edge(conn: Connection) -> int | None:
            bounds = [ex.c.project_id == project_id]
            if f.below_id is not None:
                bounds.append(ex.c.id < f.below_id)
            if f.created_after is not None or f.created_before is not None:
                created = ExecutionFilter(
                    created_after=f.created_after, created_before=f.created_before
                )
                ranged = select(func.min(ex.c.id), func.max(ex.c.id))
                low, high = conn.execute(ranged.where(*conditions(project_id, created))).one()
                if low is None:
                    return None
                bounds += [ex.c.id >= low, ex.c.id <= high]
            nth = select(ex.c.id).where(*bounds).order_by(ex.c.id.desc())
            found = conn.execute(nth.offset(size - 1).limit(1)).scalar()
            return int(found) if found is not None else None

        return await self.db.read(edge)

    async def briefs(self, project_id: str, f: ExecutionFilter, page: Page) -> list[Brief]:
        """Newest first, like `search`, but only what a `Brief` holds."""
        query = (
            select(ex.c.uuid, ex.c.status, ex.c.created, ex.c.started, ex.c.ended, ex.c.error)
            .where(*conditions(project_id, f))
            .order_by(ex.c.id.desc())
            .offset(page.offset)
            .limit(page.size)
        )

        def read(conn: Connection) -> list[Brief]:
            rows = conn.execute(query)
            return [Brief(u, STATUS[s], c, st, e, err) for u, s, c, st, e, err in rows]

        return await self.db.read(read)

    async def latest_by_ref(self, project_id: str, refs: list[str]) -> dict[str, Execution]:
        """The newest execution of each action ref (one indexed look-up per ref)."""

        def read(conn: Connection) -> dict[str, Execution]:
            found = {}
            for ref in refs:
                row = (
                    conn.execute(
                        select(ex)
                        .where(ex.c.project_id == project_id, ex.c.action_ref == ref)
                        .order_by(ex.c.id.desc())
                        .limit(1)
                    )
                    .mappings()
                    .first()
                )
                if row is not None:
                    found[ref] = to_execution(row)
            return found

        return await self.db.read(read)

    async def stats(self, project_id: str, f: ExecutionFilter | None = None) -> ExecutionStats:
        f = f or ExecutionFilter()
        query = select(ex.c.status, func.count()).where(*conditions(project_id, f))

        def count(conn: Connection) -> dict[Status, int]:
            by_status = _by_status(conn, project_id, f)
            if by_status is not None:
                return by_status
            return {Status(s): int(n) for s, n in conn.execute(query.group_by(ex.c.status))}

        by_status = await self.db.read(count)
        return ExecutionStats(total=sum(by_status.values()), by_status=by_status)

    async def analytics(
        self,
        project_id: str,
        since: float,
        until: float,
        *,
        by_action: bool,
        bucket_seconds: int | None,
        durations: bool = True,
    ) -> list[Aggregate]:
        return await self.db.read(
            lambda conn: analytics.aggregate(
                conn,
                project_id,
                since,
                until,
                by_action=by_action,
                bucket_seconds=bucket_seconds,
                durations=durations,
            )
        )

    async def seal_rollups(self, max_hours: int = 24) -> int:
        """Roll up the hours that are over (see store/analytics.py). Most minutes there
        is none: that is found out without taking the write lock."""
        if not await self.db.read(analytics.due):
            return 0
        return await self.db.write(lambda conn: analytics.seal(conn, max_hours))

    async def rebuild_rollups(self) -> None:
        await self.db.write(analytics.rebuild)

    async def history(self, project_id: str, execution_id: int) -> list[StatusEvent]:
        query = (
            select(events)
            .where(
                events.c.execution_id == execution_id,
                events.c.project_id == project_id,
                events.c.kind.is_(None),  # status changes, not progress reports
            )
            .order_by(events.c.id)
        )
        return await self.db.read(
            lambda conn: [_to_event(r) for r in conn.execute(query).mappings()]
        )


def _to_event(row: Any) -> StatusEvent:
    return StatusEvent(
        execution_id=row["execution_id"],
        from_status=Status(row["from_status"]) if row["from_status"] else None,
        to_status=Status(row["to_status"]),
        at=row["at"],
        attempt=row["attempt"],
        worker_id=row["worker_id"],
        message=row["message"],
    )


def delete_terminal(
    conn: Connection, project_id: str, ids: list[int]
) -> tuple[dict[int, str], list[Execution]]:
    """Delete these executions with everything below them, each only if all of it has
    ended. Per id: "deleted", "not_found" or "not_finished"; and what was removed."""
    rows = conn.execute(
        select(ex).where(ex.c.project_id == project_id, ex.c.id.in_(ids)).with_for_update()
    ).mappings()
    found = {r["id"]: to_execution(r) for r in rows}
    results: dict[int, str] = {}
    removed: list[Execution] = []
    done: set[int] = set()
    for execution_id in ids:
        root = found.get(execution_id)
        if root is None or execution_id in done:
            results[execution_id] = "deleted" if execution_id in done else "not_found"
            continue
        tree = with_descendants(conn, [root])
        if any(e.status not in TERMINAL for e in tree):
            results[execution_id] = "not_finished"
            continue
        delete_rows(conn, [e.id for e in tree])
        done.update(e.id for e in tree)
        removed.extend(tree)
        results[execution_id] = "deleted"
    return results, removed


def with_descendants(conn: Connection, roots: list[Execution]) -> list[Execution]:
    """`roots` and every execution below them (children, their children, ...)."""
    tree = list(roots)
    frontier = [r.id for r in roots]
    while frontier:
        rows = conn.execute(select(ex).where(ex.c.parent_id.in_(frontier))).mappings()
        found = [to_execution(r) for r in rows]
        tree.extend(found)
        frontier = [e.id for e in found]
    return tree


def delete_rows(conn: Connection, ids: list[int]) -> None:
    """Delete executions and their status events, in chunks (and take them out of the
    kept counts the stats read)."""
    for start in range(0, len(ids), 500):
        part = ids[start : start + 500]
        analytics.forget(conn, part)
        conn.execute(delete(events).where(events.c.execution_id.in_(part)))
        conn.execute(delete(ex).where(ex.c.id.in_(part)))
