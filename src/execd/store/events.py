"""The event log: every execution's status changes and progress reports, in an order
that readers can follow without ever missing an event.

Ids alone are not such an order on PostgreSQL: a transaction can take id 10, another
id 11 and commit first, and a reader that saw 11 would skip 10 for ever. So each
event also carries its transaction's id (txid), and readers go in (txid, id) order
and stop below the oldest transaction still running: everything below that
horizon is final. SQLite has one writer, so commit order is id order; its events
all have txid 0 and the horizon is unbounded.

Live streams (api/dialects/v1/streams.py) and the rules' execution triggers
(engine/rules.py) read the log this way, from a position they keep.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Connection, func, select, tuple_
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from execd.domain.events import LogEvent, Position
from execd.store.database import Database
from execd.store.schema import execution_events as events
from execd.store.schema import executions as ex

MAX_ID = 2**63 - 1


class current_txid(FunctionElement[int]):
    """The writing transaction's id (0 on SQLite)."""

    type = BigInteger()
    inherit_cache = True


@compiles(current_txid, "sqlite")
def _sqlite_txid(element: current_txid, compiler: SQLCompiler, **kw: Any) -> str:
    return "0"


@compiles(current_txid, "postgresql")
def _postgres_txid(element: current_txid, compiler: SQLCompiler, **kw: Any) -> str:
    return "CAST(CAST(pg_current_xact_id() AS TEXT) AS BIGINT)"


class horizon(FunctionElement[int]):
    """The oldest transaction id still running: events below it are final."""

    type = BigInteger()
    inherit_cache = True


@compiles(horizon, "sqlite")
def _sqlite_horizon(element: horizon, compiler: SQLCompiler, **kw: Any) -> str:
    return str(MAX_ID)


@compiles(horizon, "postgresql")
def _postgres_horizon(element: horizon, compiler: SQLCompiler, **kw: Any) -> str:
    return "CAST(CAST(pg_snapshot_xmin(pg_current_snapshot()) AS TEXT) AS BIGINT)"


def tail(conn: Connection) -> Position:
    """Where a reader starts that wants only what happens from now on."""
    if conn.dialect.name == "sqlite":
        return Position(
            0, conn.execute(select(func.coalesce(func.max(events.c.id), 0))).scalar_one()
        )
    # Everything below the horizon is done; what is at or above it comes next.
    return Position(conn.execute(select(horizon())).scalar_one() - 1, MAX_ID)


_READ = (
    select(
        events.c.txid,
        events.c.id,
        events.c.execution_id,
        events.c.tenant_id,
        events.c.project_id,
        events.c.from_status,
        events.c.to_status,
        events.c.at,
        events.c.attempt,
        events.c.message,
        events.c.kind,
        events.c.data,
        ex.c.action_ref,
    )
    .select_from(events.outerjoin(ex, ex.c.id == events.c.execution_id))
    .order_by(events.c.txid, events.c.id)
)


def read(
    conn: Connection, after: Position, limit: int, project_id: str | None = None
) -> tuple[list[LogEvent], Position]:
    """Up to `limit` final events after `after` (of one project, or of all), and the
    position after the last one."""
    query = _READ.where(
        tuple_(events.c.txid, events.c.id) > tuple_(after.txid, after.id),
        events.c.txid < horizon(),
    ).limit(limit)
    if project_id is not None:  # read through ix_execution_events_project_id_txid_id
        query = query.where(events.c.project_id == project_id)
    found = [_to_event(row) for row in conn.execute(query).mappings()]
    return found, (found[-1].position if found else after)


def pending(conn: Connection, after: Position) -> bool:
    """Whether an event after `after` is committed but not yet final: it waits behind
    a transaction still open (on PostgreSQL, anywhere in the cluster)."""
    query = select(events.c.id).where(
        tuple_(events.c.txid, events.c.id) > tuple_(after.txid, after.id)
    )
    return conn.execute(query.limit(1)).first() is not None


def _to_event(row: Any) -> LogEvent:
    kind = row["kind"] or ("created" if row["from_status"] is None else "status")
    return LogEvent(
        position=Position(row["txid"] or 0, row["id"]),
        execution_id=row["execution_id"],
        tenant_id=row["tenant_id"],
        project_id=row["project_id"],
        action_ref=row["action_ref"],
        kind=kind,
        from_status=row["from_status"],
        to_status=row["to_status"],
        at=row["at"],
        attempt=row["attempt"],
        message=row["message"],
        data=row["data"],
    )


class EventLog:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def tail(self) -> Position:
        return await self.db.read(tail)

    async def read(
        self, after: Position, limit: int, project_id: str | None = None
    ) -> tuple[list[LogEvent], Position]:
        return await self.db.read(lambda conn: read(conn, after, limit, project_id))

    async def pending(self, after: Position) -> bool:
        return await self.db.read(lambda conn: pending(conn, after))
