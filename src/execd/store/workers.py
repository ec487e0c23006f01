"""The worker-node registry: who is alive, what it serves, how loaded it is."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from execd.store.clock import now_of
from execd.store.database import Database
from execd.store.schema import workers

ACTIVE, DRAINING, OFFLINE = "active", "draining", "offline"


@dataclass(frozen=True)
class WorkerNode:
    id: int
    name: str
    host: str
    pid: int
    labels: list[str]
    capacity: int
    active: int
    cpu_percent: float | None
    memory_percent: float | None
    memory_bytes: int | None
    state: str
    version: str
    started: float
    last_heartbeat: float


class WorkerRegistry:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def register(
        self, name: str, host: str, pid: int, labels: list[str], capacity: int, version: str
    ) -> WorkerNode:
        """Insert or take over the row called `name` (a restarted worker keeps its id)."""
        async with self.db.transaction() as conn:
            now = await now_of(conn)
            values: dict[str, Any] = {
                "name": name,
                "host": host,
                "pid": pid,
                "labels": labels,
                "capacity": capacity,
                "active": 0,
                "state": ACTIVE,
                "version": version,
                "started": now,
                "last_heartbeat": now,
            }
            dialect_insert = pg_insert if self.db.is_postgres else sqlite_insert
            statement = dialect_insert(workers).values(values)
            statement = statement.on_conflict_do_update(
                index_elements=[workers.c.name],
                set_={k: statement.excluded[k] for k in values if k != "name"},
            )
            await conn.execute(statement)
            row = (await conn.execute(select(workers).where(workers.c.name == name))).one()
        return WorkerNode(**row._mapping)

    async def heartbeat(
        self,
        worker_id: int,
        *,
        active: int,
        cpu_percent: float | None,
        memory_percent: float | None,
        memory_bytes: int | None,
        state: str = ACTIVE,
    ) -> None:
        async with self.db.transaction() as conn:
            now = await now_of(conn)
            await conn.execute(
                update(workers)
                .where(workers.c.id == worker_id)
                .values(
                    active=active,
                    cpu_percent=cpu_percent,
                    memory_percent=memory_percent,
                    memory_bytes=memory_bytes,
                    state=state,
                    last_heartbeat=now,
                )
            )

    async def set_state(self, worker_id: int, state: str, active: int | None = None) -> None:
        values: dict[str, Any] = {"state": state}
        if active is not None:
            values["active"] = active
        async with self.db.transaction() as conn:
            await conn.execute(update(workers).where(workers.c.id == worker_id).values(values))

    async def mark_silent_offline(self, silence: float) -> int:
        """Workers that have not sent a heartbeat for `silence` seconds are offline."""
        async with self.db.transaction() as conn:
            now = await now_of(conn)
            result = await conn.execute(
                update(workers)
                .where(workers.c.state != OFFLINE, workers.c.last_heartbeat < now - silence)
                .values(state=OFFLINE, active=0)
            )
            return int(result.rowcount)

    async def list(self, include_offline: bool = True) -> list[WorkerNode]:
        query = select(workers).order_by(workers.c.id)
        if not include_offline:
            query = query.where(workers.c.state != OFFLINE)
        async with self.db.snapshot() as conn:
            return [WorkerNode(**r._mapping) for r in await conn.execute(query)]
