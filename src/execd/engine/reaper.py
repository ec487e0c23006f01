"""Recovery and housekeeping, run by every execd process: expired leases are requeued
or abandoned, due delayed executions are released to the queue, silent workers are
marked offline. Every step is a compare-and-set, so any number of reapers may run."""

from __future__ import annotations

import asyncio

import structlog

from execd.store.queue import Queue
from execd.store.workers import WorkerRegistry

log = structlog.get_logger(__name__)


class Reaper:
    def __init__(
        self, queue: Queue, registry: WorkerRegistry, *, interval: float, lease_seconds: float
    ) -> None:
        self.queue = queue
        self.registry = registry
        self.interval = interval
        self.lease_seconds = lease_seconds
        # Leases this process found expired, by what became of the execution
        # (`scheduling`: queued again; `abandoned`: no attempt left). For metrics.
        self.expired: dict[str, int] = {}

    async def run(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception as exc:
                log.warning("reaper_error", error=str(exc))
            await asyncio.sleep(self.interval)

    async def tick(self) -> None:
        for execution in await self.queue.reap_expired():
            self.expired[execution.status.value] = self.expired.get(execution.status.value, 0) + 1
            log.info(
                "lease_expired",
                execution=execution.id,
                status=execution.status.value,
                attempt=execution.attempt,
            )
        await self.queue.promote_due()
        await self.registry.mark_silent_offline(silence=self.lease_seconds)
