"""Jobs (the tenant API): an execution of an action or a flow ("Pipeline") submitted with a
name, a type and job details; what a job is made of; cancelling and retrying one. Where
jobs stand in the queue is job_queue.py."""

from __future__ import annotations

import time
import uuid as uuidlib
from dataclasses import dataclass, field, replace
from typing import Any, BinaryIO

from execd.domain.access import Principal, require
from execd.domain.actions import MAX_SECONDS
from execd.domain.errors import Conflict, InvalidInput, NotFound
from execd.domain.executions import Execution, ExecutionFilter
from execd.domain.flows import FLOW_RUNNER, plan_steps, step_name
from execd.domain.retries import retryable
from execd.domain.states import TERMINAL, Priority, Status
from execd.engine.actions import ActionService
from execd.engine.executions import ExecutionService, SubmitOptions
from execd.engine.flows import FlowService
from execd.engine.job_queue import JobQueue
from execd.store.jobs import JobStore
from execd.store.notifications import Notification, NotificationStore
from execd.store.workers import WorkerRegistry

JOB_TYPES = ("ProcessMining", "DataEnrichment", "Notebook", "Analysis")
RESOURCE_TYPES = ("Action", "Pipeline")
# A job that completed is not retried, unlike a v1 execution (any that has ended).
RETRYABLE = frozenset({Status.FAILED, Status.TIMEOUT, Status.ABANDONED, Status.CANCELLED})


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


def job_not_found(job_id: str) -> NotFound:
    return NotFound("Job not found", jobId=job_id)


class JobService(JobQueue):
    """Jobs, and where they stand (`JobQueue`)."""

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
        super().__init__(store, registry, worker_alive_seconds=worker_alive_seconds)
        self.notifications = notifications
        self.actions = actions
        self.executions = executions
        self.flows = flows

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
        self, caller: Principal, f: ExecutionFilter, page: int, size: int
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
        if not retryable(old, RETRYABLE):
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
