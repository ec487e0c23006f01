"""Where jobs stand: a job's place in the queue and when it will likely start and how
long it will likely run; the waiting queue and the live workers; and the figures of the
whole service, for metrics."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, replace
from typing import Any

from execd.domain.access import Principal
from execd.domain.executions import Execution
from execd.domain.states import PENDING, Priority, Status
from execd.domain.workers import ACTIVE, DRAINING, OFFLINE, WorkerNode
from execd.engine.executions import shown_name
from execd.engine.run_figures import RunFigures
from execd.store.jobs import JobStore
from execd.store.schema import executions as ex
from execd.store.workers import WorkerRegistry


@dataclass(frozen=True)
class Estimate:
    queue_position: int
    start: float | None
    duration: tuple[float, float] | None  # seconds, a likely range


class JobQueue:
    def __init__(
        self, store: JobStore, registry: WorkerRegistry, *, worker_alive_seconds: float
    ) -> None:
        self.store = store
        self.registry = registry
        self.worker_alive_seconds = worker_alive_seconds

    async def estimate(self, caller: Principal, job: Execution) -> Estimate:
        """Where the job stands in the queue, when it will likely start and how long it
        will likely run: from the real queue, the live workers' free capacity, and the
        run times of this resource's completed executions."""
        duration = await self._likely_duration(caller, job)
        if job.status not in PENDING:
            return Estimate(0, job.started, duration)
        ahead = await self.store.ahead_of(job)
        nodes = await self.live_nodes()
        per_job = await self.store.recent_run_time() or 1.0
        return Estimate(ahead + 1, _start_time(job, ahead, nodes, per_job), duration)

    async def live_nodes(self) -> list[WorkerNode]:
        alive_since = time.time() - self.worker_alive_seconds
        return [
            n
            for n in await self.registry.nodes(include_offline=False)
            if n.state != OFFLINE and n.last_heartbeat >= alive_since
        ]

    async def _likely_duration(
        self, caller: Principal, job: Execution
    ) -> tuple[float, float] | None:
        durations = await self.store.run_times(caller.project_id, _resource_column(job))
        if not durations:
            return None
        if len(durations) >= 4:
            low, _, high = statistics.quantiles(durations, n=4)
            return low, high
        return min(durations), max(durations)

    async def queue(self, caller: Principal, limit: int = 100) -> QueueView:
        """The project's executions waiting for a worker (the first `limit`): each with
        its place in the whole queue, when it will likely start and for how long; the
        total waiting; and the live workers. A handful of queries, however long."""
        waiting = await self.store.queue_of(caller.project_id, limit)
        nodes = await self.live_nodes()
        per_job = await self.store.recent_run_time() or 1.0
        durations: dict[str, tuple[float, float] | None] = {}
        items = []
        for execution, place in waiting:
            key = execution.flow_id or execution.action_ref
            if key not in durations:
                durations[key] = await self._likely_duration(caller, execution)
            start = _start_time(execution, place - 1, nodes, per_job)
            items.append(QueuedItem(execution, place, start, durations[key]))
        total = await self.store.waiting_in(caller.project_id)
        return QueueView(items, total, nodes)

    async def figures(self) -> ClusterFigures:
        """The whole service at this moment, for metrics: every project, every worker
        (an operator's view: nothing here is any tenant's to see)."""
        alive_since = time.time() - self.worker_alive_seconds
        workers = {ACTIVE: 0, DRAINING: 0, OFFLINE: 0}
        total = busy = 0
        for node in await self.registry.nodes():
            alive = node.state != OFFLINE and node.last_heartbeat >= alive_since
            state = node.state if alive else OFFLINE
            workers[state] = workers.get(state, 0) + 1
            if alive:
                total, busy = total + node.capacity, busy + node.active
        return ClusterFigures(
            workers=workers,
            slots=(total, busy),
            waiting=await self.store.waiting_by_priority(),
            ended=await self.store.ended_totals(),
            runs={
                name: RunFigures.from_json(figures)
                for name, figures in (await self.registry.run_figures()).items()
            },
        )

    async def system(self, caller: Principal) -> SystemFigures:
        now = time.time()
        midnight = now - now % 86400
        return SystemFigures(
            nodes=[replace(n, name=shown_name(caller, n)) for n in await self.live_nodes()],
            waiting=await self.store.waiting_by_priority(),
            wait_seconds=await self.store.recent_wait(),
            run_seconds=await self.store.recent_run_time(),
            today=await self.store.ended_since(caller.tenant_id, midnight),
            day_elapsed=now - midnight,
        )


@dataclass(frozen=True)
class QueuedItem:
    execution: Execution
    position: int
    start: float | None
    duration: tuple[float, float] | None


@dataclass(frozen=True)
class QueueView:
    items: list[QueuedItem]
    total: int
    nodes: list[WorkerNode]


@dataclass(frozen=True)
class ClusterFigures:
    workers: dict[str, int]  # by state; one silent for a lease length is offline
    slots: tuple[int, int]  # of the live workers: (total, busy)
    waiting: dict[Priority, int]
    ended: dict[tuple[Status, str], int]  # ever, by final status and action
    runs: dict[str, RunFigures]  # by worker name: what each worker process has run


@dataclass(frozen=True)
class SystemFigures:
    nodes: list[WorkerNode]
    waiting: dict[Priority, int]
    wait_seconds: float | None
    run_seconds: float | None
    today: dict[Status, tuple[int, float]]  # the tenant's executions ended today (UTC)
    day_elapsed: float


def _start_time(
    job: Execution, ahead: int, nodes: list[WorkerNode], per_job: float
) -> float | None:
    """When `job` will likely start: at once if a worker slot is free for it, else
    after the waves of work ahead of it, each lasting a recent run time."""
    now = time.time()
    due = job.not_before if job.not_before and job.not_before > now else now
    capacity = sum(n.capacity for n in nodes)
    if capacity == 0:
        return None  # nobody to run it yet
    free = max(0, capacity - sum(n.active for n in nodes))
    if ahead < free:
        return due
    waves = (ahead - free) // capacity + 1
    return max(due, now + waves * per_job)


def _resource_column(job: Execution) -> Any:
    if job.flow_id is not None:
        return ex.c.flow_id == job.flow_id
    return ex.c.action_ref == job.action_ref
