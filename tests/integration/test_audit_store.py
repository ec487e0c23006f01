"""The audit log in the store, on both backends: an entry rides in the transaction of
the first durable write of its request (stored exactly when the change is), and is
deleted by age."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import Connection, func, insert, select, update

from execd.domain.audit import AuditEntry, AuditFilter
from execd.domain.retention import Policy
from execd.engine.retention import Retention
from execd.store.artifacts import ArtifactStore
from execd.store.audit import AuditStore, Carried
from execd.store.database import RIDER, Database
from execd.store.retention import RetentionStore
from execd.store.schema import audit_log, tenants

Run = Callable[[Callable[[Database], Awaitable[Any]]], Any]


def _tenant(name: str, fail: bool = False) -> Callable[[Connection], Any]:
    def work(conn: Connection) -> Any:
        conn.execute(insert(tenants).values(id=str(uuid.uuid4()), name=name, created=0.0))
        if fail:
            raise ValueError("refused after writing")
        return name

    return work


def _carried(route: str) -> Carried:
    entry = AuditEntry(at=0.0, method="POST", path=route, address="192.0.2.1")

    def complete(e: AuditEntry) -> None:
        e.route, e.token_id, e.tenant_id = route, 5, "t-1"

    return Carried(entry, complete)


async def _entries(db: Database) -> list[dict[str, Any]]:
    rows = await db.read(lambda conn: conn.execute(select(audit_log)).mappings().all())
    return [dict(r) for r in rows]


async def _count(db: Database, table: Any) -> int:
    return int(
        await db.read(
            lambda conn: conn.execute(select(func.count()).select_from(table)).scalar_one()
        )
    )


def test_an_entry_rides_in_its_first_durable_write_only_if_that_write_commits(
    with_db: Run,
) -> None:
    async def scenario(db: Database) -> None:
        # A write that fails rolls its entry back with it; the next write carries it.
        failing = _carried("/fails-then-works")
        token = RIDER.set(failing)
        try:
            with pytest.raises(ValueError):
                await db.write(_tenant("audited-a", fail=True))
            assert await _entries(db) == [] and not failing.claimed
            await db.write(_tenant("audited-b"))
            await db.write(_tenant("audited-c"))  # a second write carries nothing
            await db.write(_tenant("audited-d"), durable=False)
        finally:
            RIDER.reset(token)
        entries = await _entries(db)
        assert len(entries) == 1 and failing.written
        entry = entries[0]
        assert entry["route"] == "/fails-then-works" and entry["outcome"] == "done"
        assert entry["token_id"] == 5 and entry["tenant_id"] == "t-1"
        assert entry["address"] == "192.0.2.1" and entry["at"] > 0
        # Without a rider nothing is recorded.
        await db.write(_tenant("audited-e"))
        assert len(await _entries(db)) == 1

        # Concurrent writes of one request: exactly one carries the entry.
        both = _carried("/concurrent")
        token = RIDER.set(both)
        try:
            await asyncio.gather(*(db.write(_tenant(f"audited-f{i}")) for i in range(5)))
        finally:
            RIDER.reset(token)
        routes = [e["route"] for e in await _entries(db)]
        assert routes.count("/concurrent") == 1

    with_db(scenario)


def test_entries_are_read_newest_first_by_filter_and_deleted_by_age(
    with_db: Run, tmp_path: Any
) -> None:
    async def scenario(db: Database) -> None:
        store = AuditStore(db)
        for index in range(6):
            tenant = "t-a" if index % 2 else "t-b"
            entry = AuditEntry(
                at=0.0, method="DELETE", path=f"/x/{index}", address=None, route="/x/{id}",
                tenant_id=tenant, status=204, outcome="done", objects={"id": index},
            )  # fmt: skip
            await store.record(entry)
        newest = await store.search(AuditFilter(tenant_id="t-a"), 2)
        assert [e.objects["id"] for e in newest] == [5, 3]
        older = await store.search(AuditFilter(tenant_id="t-a", below_id=newest[-1].id), 2)
        assert [e.objects["id"] for e in older] == [1]
        # Two entries made old; a policy of 30 days deletes those only.
        old_ids = [e.id for e in await store.search(AuditFilter(), 6)][-2:]
        await db.write(
            lambda conn: conn.execute(
                update(audit_log).where(audit_log.c.id.in_(old_ids)).values(at=1.0)
            )
        )
        retention = Retention(
            RetentionStore(db), ArtifactStore(tmp_path), store, Policy(audit_days=30)
        )
        swept = await retention.sweep()
        assert swept.audit_deleted == 2 and swept.deleted == 0
        assert await _count(db, audit_log) == 4
        left = {e.id for e in await store.search(AuditFilter(), 10)}
        assert left.isdisjoint(old_ids)

    with_db(scenario)
