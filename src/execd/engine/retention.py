"""Retention: ended executions older than the policy allows are deleted, with their
events, logs and artifacts, in small batches so the queue never waits on it. Runs in
every `execd serve` (every EXECD_RETENTION_SECONDS) and as `execd gc`."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import structlog

from execd.domain.retention import Policy
from execd.store.artifacts import ArtifactStore
from execd.store.audit import AuditStore
from execd.store.retention import RetentionStore

log = structlog.get_logger(__name__)
BATCH = 200


@dataclass(frozen=True)
class Sweep:
    deleted: int  # executions removed (or, in a dry run, top-level ones that would be)
    batches: int
    audit_deleted: int = 0  # audit log entries removed (none in a dry run)


class Retention:
    def __init__(
        self, store: RetentionStore, artifacts: ArtifactStore, audit: AuditStore, policy: Policy
    ) -> None:
        self.store = store
        self.artifacts = artifacts
        self.audit = audit
        self.policy = policy

    async def sweep(self, *, dry_run: bool = False) -> Sweep:
        """Delete what the policy lets go (ended executions, then audit log entries);
        with `dry_run`, only count the top-level executions that would go (each takes
        everything below it along)."""
        if dry_run:
            return Sweep(len(await self.store.expired(self.policy, 10**9)), 0)
        deleted = batches = 0
        after = 0
        while True:
            ids = await self.store.expired(self.policy, BATCH, after)
            if not ids:
                break
            after = ids[-1]  # what could not go (something below still runs) is passed
            removed = await self.store.delete(ids)
            if removed:
                await asyncio.to_thread(self.artifacts.remove, removed)
                deleted += len(removed)
                batches += 1
            if len(ids) < BATCH:
                break
            await asyncio.sleep(0)  # other work gets its turn between batches
        audit_deleted = 0
        if self.policy.audit_days is not None:
            while (gone := await self.audit.delete_before(self.policy.audit_days, 1000)) > 0:
                audit_deleted += gone
                await asyncio.sleep(0)
        if deleted or audit_deleted:
            log.info(
                "retention_deleted",
                executions=deleted,
                batches=batches,
                audit_entries=audit_deleted,
            )
        return Sweep(deleted, batches, audit_deleted)

    async def run(self, interval: float) -> None:
        while True:
            try:
                await self.sweep()
            except Exception as exc:
                log.warning("retention_error", error=str(exc))
            await asyncio.sleep(interval)
