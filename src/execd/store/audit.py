"""The audit log's rows: written with the change they record (a `Rider` of its first
durable write), or alone for a request that changed nothing; read newest first by
keyset; deleted by age."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from typing import Any

from sqlalchemy import Connection, delete, insert, select

from execd.domain.audit import MAX_OBJECTS, AuditEntry, AuditFilter, made_ids
from execd.store.clock import now_of
from execd.store.database import Database
from execd.store.schema import audit_log as al


class Carried:
    """The entry of one request, waiting for its first durable write (a `Rider`).
    `complete` fills in what is known only once the request has been routed and
    authenticated (its route, caller and path ids)."""

    def __init__(self, entry: AuditEntry, complete: Callable[[AuditEntry], None]) -> None:
        self.entry = entry
        self.complete = complete
        self.claimed = False
        self.written = False

    def ride(self, conn: Connection, result: Any) -> None:
        self.complete(self.entry)
        made = made_ids(result)
        if made:
            self.entry.objects["made"] = made
        self.entry.outcome = "done"
        insert_entry(conn, self.entry)
        self.written = True


# One statement, its values as parameters: built once, it costs an eighth of a
# statement built with each entry's values (it runs in the writer's transaction).
INSERT = insert(al)
_COLUMNS = [f.name for f in fields(AuditEntry) if f.name != "id"]  # the id is the database's


def insert_entry(conn: Connection, entry: AuditEntry) -> None:
    row = {name: getattr(entry, name) for name in _COLUMNS}  # not asdict: no deep copy
    row["at"] = now_of(conn)
    row["path"] = entry.path[:2000]
    row["route"] = entry.route[:300]
    row["error"] = entry.error[:500] if entry.error else None
    row["objects"] = _bounded(entry.objects)
    conn.execute(INSERT, row)


def _bounded(objects: dict[str, Any]) -> dict[str, Any]:
    """Path ids as they were sent may be long: each kept to 200 characters."""
    kept: dict[str, Any] = {}
    for name, value in list(objects.items())[:MAX_OBJECTS]:
        if isinstance(value, str):
            value = value[:200]
        kept[name[:100]] = value
    return kept


class AuditStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def record(self, entry: AuditEntry) -> None:
        """An entry of its own (a request that changed nothing)."""
        await self.db.write(lambda conn: insert_entry(conn, entry))

    async def search(self, f: AuditFilter, limit: int) -> list[AuditEntry]:
        def read(conn: Connection) -> list[AuditEntry]:
            query = select(al)
            for column, value in (
                (al.c.tenant_id, f.tenant_id),
                (al.c.project_id, f.project_id),
                (al.c.token_id, f.token_id),
                (al.c.method, f.method),
                (al.c.route, f.route),
                (al.c.outcome, f.outcome),
                (al.c.status, f.status),
            ):
                if value is not None:
                    query = query.where(column == value)
            if f.since is not None:
                query = query.where(al.c.at >= f.since)
            if f.until is not None:
                query = query.where(al.c.at < f.until)
            if f.below_id is not None:
                query = query.where(al.c.id < f.below_id)
            rows = conn.execute(query.order_by(al.c.id.desc()).limit(limit)).mappings()
            return [AuditEntry(**row) for row in rows]

        return await self.db.read(read)

    async def delete_before(self, cutoff_days: float, limit: int) -> int:
        """Delete up to `limit` of the oldest entries over `cutoff_days` old."""

        def remove(conn: Connection) -> int:
            before = now_of(conn) - cutoff_days * 86400
            ids = select(al.c.id).where(al.c.at < before).order_by(al.c.at).limit(limit)
            found = list(conn.execute(ids).scalars())
            if found:
                conn.execute(delete(al).where(al.c.id.in_(found)))
            return len(found)

        return await self.db.write(remove)
