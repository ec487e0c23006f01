"""The worker-node registry: who is alive, what it serves, how loaded it is."""

from __future__ import annotations

from typing import Any

import psutil
from sqlalchemy import Connection, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from execd.domain.errors import Conflict
from execd.domain.workers import ACTIVE, OFFLINE, WorkerNode
from execd.store.clock import now_of
from execd.store.database import Database
from execd.store.schema import workers


class WorkerRegistry:
    def __init__(self, db: Database, retention: float = 3600.0) -> None:
        """`retention`: how long an offline worker stays listed after its last
        heartbeat (EXECD_WORKER_RETENTION_SECONDS)."""
        self.db = db
        self.retention = retention

    async def register(
        self,
        name: str,
        host: str,
        pid: int,
        labels: list[str],
        capacity: int,
        version: str,
        *,
        live_within: float = 0.0,
        devices: list[str] | None = None,
        cpu_count: int | None = None,
        memory_total: int | None = None,
        sandbox: str | None = None,
    ) -> WorkerNode:
        """Insert or take over the row called `name` (a restarted worker keeps its id).

        A row whose worker still looks alive (a heartbeat within `live_within` seconds,
        and, on this host, its process still there) is not taken over: two workers under
        one name would each think the other's work was lost."""

        def register(conn: Connection) -> WorkerNode:
            now = now_of(conn)
            existing = conn.execute(select(workers).where(workers.c.name == name)).first()
            if existing is not None and _still_alive(existing, host, pid, now - live_within):
                raise Conflict(
                    f"A worker named {name!r} is already running "
                    f"(host {existing.host}, pid {existing.pid}, last heartbeat "
                    f"{now - existing.last_heartbeat:.1f} s ago); choose another name"
                )
            values: dict[str, Any] = {
                "name": name,
                "host": host,
                "pid": pid,
                "labels": labels,
                "devices": sorted(set(devices or [])),
                "cpu_count": cpu_count,
                "memory_total": memory_total,
                "sandbox": sandbox,
                "capacity": capacity,
                "active": 0,
                "state": ACTIVE,
                "version": version,
                "started": now,
                "last_heartbeat": now,
                "figures": None,  # a new process counts from zero
            }
            dialect_insert = pg_insert if self.db.is_postgres else sqlite_insert
            statement = dialect_insert(workers).values(values)
            statement = statement.on_conflict_do_update(
                index_elements=[workers.c.name],
                set_={k: statement.excluded[k] for k in values if k != "name"},
            )
            conn.execute(statement)
            return _node(conn.execute(select(workers).where(workers.c.name == name)).one())

        return await self.db.write(register)

    async def heartbeat(
        self,
        worker_id: int,
        *,
        active: int,
        cpu_percent: float | None,
        memory_percent: float | None,
        memory_bytes: int | None,
        state: str = ACTIVE,
        figures: dict[str, Any] | None = None,
    ) -> None:
        values = {
            "active": active,
            "cpu_percent": cpu_percent,
            "memory_percent": memory_percent,
            "memory_bytes": memory_bytes,
            "state": state,
            "figures": figures,
        }
        statement = update(workers).where(workers.c.id == worker_id)
        await self.db.write(  # a lost heartbeat is sent again in a moment
            lambda conn: conn.execute(statement.values(**values, last_heartbeat=now_of(conn))),
            durable=False,
        )

    async def set_state(
        self,
        worker_id: int,
        state: str,
        active: int | None = None,
        figures: dict[str, Any] | None = None,
    ) -> None:
        values: dict[str, Any] = {"state": state}
        if active is not None:
            values["active"] = active
        if figures is not None:
            values["figures"] = figures
        statement = update(workers).where(workers.c.id == worker_id).values(values)
        await self.db.write(lambda conn: conn.execute(statement))

    async def mark_silent_offline(self, silence: float) -> int:
        """Workers that have not sent a heartbeat for `silence` seconds are offline."""

        def mark(conn: Connection) -> int:
            cutoff = now_of(conn) - silence
            result = conn.execute(
                update(workers)
                .where(workers.c.state != OFFLINE, workers.c.last_heartbeat < cutoff)
                .values(state=OFFLINE, active=0)
            )
            return int(result.rowcount)

        return await self.db.write(mark)

    async def nodes(
        self, include_offline: bool = True, *, retired: bool = False
    ) -> list[WorkerNode]:
        """The workers: live ones, and offline ones (stopped, or silent for a lease)
        until they have been unheard of for the retention; `retired=True` adds those
        too. Their rows stay, so the name of the worker that ran an execution long ago
        is still known (the tenant API's `executionNode`)."""
        query = select(workers).order_by(workers.c.id)
        if not include_offline:
            query = query.where(workers.c.state != OFFLINE)

        def read(conn: Connection) -> list[WorkerNode]:
            listed = query
            if not retired:
                heard = workers.c.last_heartbeat >= now_of(conn) - self.retention
                listed = query.where((workers.c.state != OFFLINE) | heard)
            return [_node(r) for r in conn.execute(listed)]

        return await self.db.read(read)

    async def run_figures(self) -> dict[str, Any]:
        """What each worker's heartbeat last said it ran (engine/run_figures.py), by
        worker name: for metrics, never shown to a tenant."""
        query = select(workers.c.name, workers.c.figures).where(workers.c.figures.is_not(None))
        return await self.db.read(
            lambda conn: {r.name: r.figures for r in conn.execute(query.order_by(workers.c.id))}
        )


def _node(row: Any) -> WorkerNode:
    values = dict(row._mapping)
    values.pop("figures", None)
    return WorkerNode(**values)


def _still_alive(row: Any, host: str, pid: int, since: float) -> bool:
    if row.state == OFFLINE or row.last_heartbeat < since:
        return False
    if row.host == host:  # the same machine: ask the operating system
        return row.pid != pid and psutil.pid_exists(row.pid)
    return True
