"""The audit log as the API serves it: who may read which entries."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import replace

from execd.domain.access import Principal, require
from execd.domain.audit import AuditEntry, AuditFilter
from execd.domain.errors import Forbidden
from execd.store.audit import AuditStore, Carried
from execd.store.database import RIDER


class AuditLog:
    def __init__(self, store: AuditStore) -> None:
        self.store = store

    async def search(self, caller: Principal, f: AuditFilter, limit: int) -> list[AuditEntry]:
        """Newest first. A system admin reads every tenant's entries; a tenant admin its
        own tenant's (the entries of requests its tenant's tokens made); no one else."""
        require(caller, "admin")
        if not caller.system:
            if f.tenant_id is not None and f.tenant_id != caller.tenant_id:
                raise Forbidden("A tenant admin reads its own tenant's audit log only")
            f = replace(f, tenant_id=caller.tenant_id)
        return await self.store.search(f, limit)

    async def record(self, entry: AuditEntry) -> None:
        """An entry of its own: a request that changed nothing."""
        await self.store.record(entry)

    @contextlib.contextmanager
    def carried(
        self, entry: AuditEntry, complete: Callable[[AuditEntry], None]
    ) -> Iterator[Carried]:
        """While this lasts (a request), the first durable write made in this context
        writes `entry` in its transaction, after `complete(entry)` has filled in what
        is known only then; `.written` says whether one did."""
        carried = Carried(entry, complete)
        token = RIDER.set(carried)
        try:
            yield carried
        finally:
            RIDER.reset(token)
