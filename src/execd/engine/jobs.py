"""Jobs (the tenant API): an execution of an action or a flow ("Pipeline") submitted with a
name, a type and job details, plus the estimates the job API shows."""

from __future__ import annotations

import statistics
import time
import uuid as uuidlib
from dataclasses import dataclass, field, replace
from typing import Any, BinaryIO

from execd.domain.access import Principal, require
from execd.domain.actions import MAX_SECONDS
from execd.domain.errors import Conflict, InvalidInput, NotFound
from execd.domain.executions import Execution
from execd.domain.flows import FLOW_RUNNER, plan_steps, step_name
from execd.domain.states import PENDING, TERMINAL, Priority, Status
from execd.domain.workers import ACTIVE, DRAINING, OFFLINE, WorkerNode
from execd.engine.flows import FlowService
from execd.engine.run_figures import RunFigures
from execd.engine.service import ActionService, ExecutionService, SubmitOptions, shown_name
from execd.store.jobs import JobFilter, JobStore
from execd.store.notifications import Notification, NotificationStore
from execd.store.schema import executions as ex
from execd.store.workers import WorkerRegistry

JOB_TYPES = ("ProcessMining", "DataEnrichment", "Notebook", "Analysis")
RESOURCE_TYPES = ("Action", "Pipeline")


@dataclass(frozen=True)
class JobRequest:
    name: str
    job_type: str
    resource_type: str
    resource_id: str
    description: str = ""
    priority: Priority = Priority.NORMAL
    parameters: dict[str, Any] = field(default_factory=dict)
    execute_immediately: bool = True
    scheduled_time: float | None = None
    timeout_minutes: float | None = None
    notifications: dict[str, Any] | None = None
    retry_of: str | None = None  # the job this one retries
    retry_reason: str | None = None
    # What the retried job kept sealed (its webhook URL): carried over as it is.
    sealed: dict[str, Any] | None = None


@dataclass(frozen=True)
class Estimate:
    queue_position: int
    start: float | None
    duration: tuple[float, float] | None  # seconds, a likely range


def job_not_found(job_id: str) -> NotFound:
    return NotFound("Job not found", jobId=job_id)


class JobService:
    def __init__(
        self,
        store: JobStore,
        actions: ActionService,
        executions: ExecutionService,
        flows: FlowService,
        registry: WorkerRegistry,
        notifications: NotificationStore,
        *,
        worker_alive_seconds: float,
    ) -> None:
        self.notifications = notifications
        self.store = store
        self.actions = actions
        self.executions = executions
        self.flows = flows
        self.registry = registry
        self.worker_alive_seconds = worker_alive_seconds

    async def submit(self, caller: Principal, request: JobRequest) -> Execution:
        require(caller, "operator")
        if request.job_type not in JOB_TYPES:
            raise InvalidInput(f"jobType must be one of {', '.join(JOB_TYPES)}")
        not_before = None
        if not request.execute_immediately:
            if request.scheduled_time is None:
                raise InvalidInput("scheduling.scheduledTime is needed unless executeImmediately")
            if request.scheduled_time > time.time() + MAX_SECONDS:
                raise InvalidInput("scheduling.scheduledTime is more than ten years away")
            not_before = request.scheduled_time
        timeout = request.timeout_minutes * 60 if request.timeout_minutes is not None else None
        resource_name = await self._resource_name(caller, request)
        job = {
            "name": request.name,
            "description": request.description,
            "resource": {
                "resourceType": request.resource_type,
                "resourceId": request.resource_id,
                "resourceName": resource_name,
            },
            "scheduling": {
                "executeImmediately": request.execute_immediately,
                "scheduledTime": request.scheduled_time,
                "timeoutMinutes": request.timeout_minutes,
            },
            "notifications": request.notifications or {},
            "retryOf": request.retry_of,
            "retryReason": request.retry_reason,
        }
        if request.sealed:
            job["sealed"] = request.sealed
        job = self.actions.sealer.seal_job(job)
        options = SubmitOptions(
            priority=request.priority,
            timeout=timeout,
            not_before=not_before,
            job_type=request.job_type,
            job=job,
        )
        if request.resource_type == "Pipeline":
            return await self.flows.execute(
                caller, request.resource_id, request.parameters, None, options
            )
        action = await self.actions.get_by_uuid(caller, request.resource_id.lower())
        return (
            await self.executions.submit_action(caller, action, request.parameters, options)
        ).execution

    async def _resource_name(self, caller: Principal, request: JobRequest) -> str:
        if request.resource_type not in RESOURCE_TYPES:
            raise InvalidInput(f"resourceType must be one of {', '.join(RESOURCE_TYPES)}")
        try:
            if request.resource_type == "Pipeline":
                return (await self.flows.get(caller, request.resource_id)).name
            return (await self.actions.get_by_uuid(caller, request.resource_id.lower())).ref
        except NotFound:  # what the body names is missing: 404, as for a path
            raise NotFound(
                f"No {request.resource_type.lower()} {request.resource_id} in this project",
                code="RESOURCE_NOT_FOUND",
            ) from None

    async def get(self, caller: Principal, job_id: str) -> Execution:
        try:
            uuidlib.UUID(job_id)
            execution = await self.executions.get_by_uuid(caller, job_id.lower())
        except (ValueError, NotFound):
            raise job_not_found(job_id) from None
        if execution.job_type is None:
            raise job_not_found(job_id)
        return execution

    # -- what a job is made of ------------------------------------------------------------

    async def parts(self, job: Execution) -> list[tuple[str, Execution]]:
        """The executions that do a job's work, each with the prefix its files show
        under: the job itself for an Action job; for a Pipeline, the flow execution and
        the latest attempt of every step below it ("step-1/", "step-2/step-1/", ...)."""
        found: list[tuple[str, Execution]] = [("", job)]
        if job.flow_id is None:
            return found
        frontier = found
        while frontier:
            children = await self.flows.steps_of([e for _, e in frontier])
            below: list[tuple[str, Execution]] = []
            for prefix, parent in frontier:
                latest: dict[int, Execution] = {}
                for child in children.get(parent.id, []):
                    if child.sequence is not None:
                        latest[child.sequence] = child  # oldest first: the last one wins
                for sequence, child in sorted(latest.items()):
                    below.append((f"{prefix}step-{sequence}/", child))
            found.extend(below)
            frontier = below
        return found

    async def view(self, job: Execution) -> tuple[Execution, list[tuple[str, Execution]]]:
        """The job as its API shows it: for a Pipeline, progress, counters, resource use
        and node come from its steps. Also returns its parts."""
        parts = await self.parts(job)
        if job.flow_id is None:
            return job, parts
        return replace(job, **_pipeline_figures(job, parts)), parts

    async def artifacts(self, parts: list[tuple[str, Execution]]) -> list[tuple[str, int]]:
        found: list[tuple[str, int]] = []
        for prefix, part in parts:
            found += [(prefix + p, size) for p, size in await self.executions.artifacts_of(part)]
        return found

    def open_artifact(self, parts: list[tuple[str, Execution]], path: str) -> BinaryIO | None:
        for prefix, part in sorted(parts, key=lambda p: -len(p[0])):
            if path.startswith(prefix):
                return self.executions.open_artifact(part, path[len(prefix) :])
        return None

    async def deliveries(self, job: Execution) -> list[Notification]:
        """The notifications this job has sent, or is still trying to send."""
        return await self.notifications.of(job.id)

    async def page(
        self, caller: Principal, f: JobFilter, page: int, size: int
    ) -> tuple[list[Execution], dict[Status, int]]:
        return await self.store.page(caller.project_id, f, size, (page - 1) * size)

    async def cancel(
        self,
        caller: Principal,
        job_id: str,
        reason: str | None,
        *,
        force: bool = False,
        keep_results: bool = True,
    ) -> Execution:
        """Stop a job: gracefully, or at once with `force`; without `keep_results`
        the artifacts it wrote so far are deleted."""
        require(caller, "operator")
        job = await self.get(caller, job_id)
        try:
            await self.executions.cancel(
                caller, job.id, reason=reason, force=force, discard=not keep_results
            )
        except Conflict:
            raise Conflict(
                f"Job {job_id} has already ended ({job.status.value}) and cannot be cancelled",
                jobId=job_id,
            ) from None
        return await self.get(caller, job_id)

    async def retry(
        self,
        caller: Principal,
        job_id: str,
        *,
        reason: str | None,
        parameters: dict[str, Any] | None,
        priority: Priority | None,
        immediately: bool,
        timeout_minutes: float | None = None,
    ) -> Execution:
        """A new job running the same resource, linked to the old one (`retryOf`).
        `parameters` are merged over the old ones; `immediately` queues it at Critical
        priority unless `priority` says otherwise."""
        require(caller, "operator")
        old = await self.get(caller, job_id)
        if old.status not in (Status.FAILED, Status.TIMEOUT, Status.ABANDONED, Status.CANCELLED):
            raise Conflict(
                f"Only a failed or cancelled job can be retried; job {job_id} is "
                f"{old.status.value}",
                jobId=job_id,
            )
        job = old.job or {}
        resource = job.get("resource", {})
        scheduling = job.get("scheduling", {})
        # Submitted (and validated) again as a whole, so the old secret values are opened.
        held = old.plan or {"parameters": old.parameters, "secrets": old.secrets}
        base = self.actions.sealer.open_values(held["parameters"], held.get("secrets"))
        request = JobRequest(
            name=job.get("name", ""),
            job_type=old.job_type or JOB_TYPES[0],
            resource_type=resource.get("resourceType", "Action"),
            resource_id=resource.get("resourceId", ""),
            description=job.get("description", ""),
            priority=priority
            if priority is not None
            else (Priority.CRITICAL if immediately else old.priority),
            parameters={**base, **(parameters or {})},
            execute_immediately=True,
            timeout_minutes=timeout_minutes
            if timeout_minutes is not None
            else scheduling.get("timeoutMinutes"),
            notifications=job.get("notifications"),
            retry_of=old.uuid,
            retry_reason=reason,
            sealed=job.get("sealed"),
        )
        return await self.submit(caller, request)

    # -- estimates ----------------------------------------------------------------------

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


def _pipeline_figures(job: Execution, parts: list[tuple[str, Execution]]) -> dict[str, Any]:
    """Progress, counters, resource use and node of a Pipeline job, from its steps."""
    runs = [e for _, e in parts[1:] if e.runner != FLOW_RUNNER]
    progress: dict[str, Any] = {}
    for key in ("processed", "total", "errors", "warnings"):
        values = [e.progress[key] for e in runs if e.progress and key in e.progress]
        if values:
            progress[key] = sum(values)
    messages = [m for e in runs for m in (e.progress or {}).get("warning_messages", [])]
    if messages:
        progress["warning_messages"] = messages
    top = {e.sequence: e for prefix, e in parts[1:] if prefix.count("/") == 1}
    total = len(plan_steps(job.plan)) or 1
    done = sum(1 for e in top.values() if e.status in TERMINAL)
    current = next((e for e in top.values() if e.status not in TERMINAL), None)
    fraction = 0.0
    if current is not None:
        fraction = float((current.progress or {}).get("percent") or 0.0) / 100
        name = step_name(plan_steps(job.plan)[(current.sequence or 1) - 1])
        inner = (current.progress or {}).get("stage")
        progress["stage"] = f"{name}: {inner}" if inner else name
    progress["percent"] = round(100 * (done + fraction) / total, 1)
    active = [e for e in runs if e.status not in TERMINAL]
    usage: dict[str, Any] = {}
    for key in ("memory_bytes", "cpu_percent"):
        values = [e.usage[key] for e in active if e.usage and key in e.usage]
        if values:
            usage[key] = sum(values)
    for key in ("cpu_seconds", "disk_bytes", "read_bytes", "write_bytes", "io_operations"):
        values = [e.usage[key] for e in runs if e.usage and key in e.usage]
        if values:
            usage[key] = sum(values)
    peaks = [
        e.usage["peak_memory_bytes"] for e in runs if e.usage and "peak_memory_bytes" in e.usage
    ]
    if peaks:
        usage["peak_memory_bytes"] = max(peaks)
    node = next((e.worker_id for e in active if e.worker_id), None)
    if node is None and runs:
        node = runs[-1].worker_id
    return {"progress": progress, "usage": usage or None, "worker_id": node}


def _resource_column(job: Execution) -> Any:
    if job.flow_id is not None:
        return ex.c.flow_id == job.flow_id
    return ex.c.action_ref == job.action_ref
