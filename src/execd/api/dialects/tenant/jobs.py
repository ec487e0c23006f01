"""/api/{tenantId}/{projectId}/execution: jobs (the tenant API)."""

from __future__ import annotations

import asyncio
import mimetypes
import time
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from execd.api.deps import RuntimeDep, public_link
from execd.api.dialects.tenant import wire
from execd.api.dialects.tenant.access import TenantCaller
from execd.api.openapi import PRIORITY, PRIORITY_NAME, given, nullable, one_of, shown
from execd.api.responses import Json, file_chunks
from execd.domain import times
from execd.domain.access import Principal
from execd.domain.actions import MAX_SECONDS
from execd.domain.errors import Conflict, InvalidInput, NotFound
from execd.domain.executions import Execution
from execd.domain.states import TERMINAL, Priority, Status
from execd.engine.jobs import JOB_TYPES, RESOURCE_TYPES, Estimate, JobRequest
from execd.runtime import Runtime
from execd.store.jobs import JobFilter

router = APIRouter(prefix="/execution", tags=["tenant jobs"])
MAX_PAGE = 100

STATUSES: dict[str, frozenset[Status]] = {}
for _status, _spelled in wire.SPELLING.items():
    STATUSES.setdefault(_spelled.lower(), frozenset())
    STATUSES[_spelled.lower()] |= {_status}


class Resource(BaseModel):
    model_config = ConfigDict(extra="forbid")

    resourceType: Annotated[str, shown(one_of(RESOURCE_TYPES, "Action or Pipeline (a flow)"))]
    resourceId: str = Field(min_length=1, max_length=64)


class Scheduling(BaseModel):
    # Not immediately: at a time.
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "anyOf": [
                {"properties": {"executeImmediately": {"const": True}}},
                given("scheduledTime"),
            ]
        },
    )

    executeImmediately: bool = True
    scheduledTime: datetime | None = None
    timeoutMinutes: float | None = Field(default=None, gt=0, le=MAX_SECONDS / 60)


class Notifications(BaseModel):
    model_config = ConfigDict(extra="forbid")

    onCompletion: bool = False
    onFailure: bool = False
    emailRecipients: list[str] = Field(default_factory=list, max_length=50)
    webhookUrl: str | None = Field(default=None, max_length=2000)


class JobBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    jobName: str = Field(min_length=1, max_length=200)
    jobDescription: str = Field(default="", max_length=10_000)
    jobType: Annotated[str, shown(one_of(JOB_TYPES))]
    priority: Annotated[str | int, shown(PRIORITY)] = "Normal"
    resource: Resource
    parameters: dict[str, Any] = Field(default_factory=dict)
    scheduling: Scheduling = Field(default_factory=Scheduling)
    notifications: Notifications = Field(default_factory=Notifications)


class CancelBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, max_length=2000)
    forceTermination: bool = False
    preservePartialResults: bool = True


class RetryBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    retryReason: str | None = Field(default=None, max_length=2000)
    modifyParameters: bool | None = None
    updatedParameters: dict[str, Any] = Field(default_factory=dict)
    priority: str | int | None = None
    immediateExecution: bool = False


def _priority(value: str | int) -> Priority:
    try:
        return Priority.parse(value)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None


async def _body(request: Request, model: type[BaseModel]) -> Any:
    """An optional JSON body (DELETE and retry may come without one)."""
    raw = await request.body()
    if not raw.strip():
        return model()
    try:
        return model.model_validate_json(raw)
    except ValueError as exc:
        raise InvalidInput(f"Invalid request body: {exc}") from None


# -- the job as the API shows it ----------------------------------------------------------


async def _nodes(runtime: Runtime, caller: Principal) -> dict[int, str]:
    """Names of workers, by id, those no longer listed included: who ran a job."""
    return {n.id: n.name for n in await runtime.executions.workers(caller, retired=True)}


def _elapsed(job: Execution) -> float | None:
    return job.elapsed(time.time())


def _percentage(job: Execution, progress: dict[str, Any]) -> float:
    if job.status is Status.COMPLETED:
        return 100
    value = float(progress.get("percent") or 0)
    return int(value) if value == int(value) else round(value, 1)


def _count(*reported: Any) -> Any:
    """The first count reported; 0 when none was (the document shows a number)."""
    return next((n for n in reported if n is not None), 0)


def job_body(job: Execution, nodes: dict[int, str]) -> dict[str, Any]:
    info = job.job or {}
    progress = job.progress or {}
    usage = job.usage or {}
    elapsed = _elapsed(job)
    # A counter the document shows as a number is one: 0 when the action reported none.
    processed = _count(progress.get("processed"))
    rate = processed / elapsed if elapsed else None
    memory = usage.get("peak_memory_bytes") if job.status in TERMINAL else usage.get("memory_bytes")
    cpu = usage.get("cpu_percent")
    return {
        "jobId": job.uuid,
        "projectId": job.project_id,
        "jobType": job.job_type,
        "jobName": info.get("name"),
        "jobDescription": info.get("description"),
        "status": wire.SPELLING[job.status],
        "priority": job.priority.label,
        "progress": {
            "percentage": _percentage(job, progress),
            "currentStage": progress.get("stage") or wire.SPELLING[job.status],
            "estimatedCompletion": wire.iso(job.estimated_end(time.time())),
            "elapsedTime": wire.human_seconds(elapsed),
            "elapsedSeconds": None if elapsed is None else round(elapsed, 3),
        },
        "resource": info.get("resource"),
        "execution": {
            "startTime": wire.iso(job.started),
            "endTime": wire.iso(job.ended),
            "submittedBy": job.submitted_by,
            "executionNode": nodes.get(job.worker_id) if job.worker_id else None,
            "memoryUsage": wire.human_bytes(memory),
            "memoryBytes": memory,
            "cpuUsage": None if cpu is None else f"{cpu:.0f}%",
            "cpuPercent": cpu,
            "diskUsage": wire.human_bytes(usage.get("disk_bytes")),
            "diskBytes": usage.get("disk_bytes"),
        },
        "metrics": {
            "recordsProcessed": processed,
            "totalRecords": progress.get("total"),
            "errorCount": progress.get("errors", 0),
            "warningCount": progress.get("warnings", 0),
            "averageProcessingRate": None if rate is None else f"{rate:.0f} records/second",
            "recordsPerSecond": None if rate is None else round(rate, 3),
        },
        "error": job.error,
        "retryOf": info.get("retryOf"),
        "retryReason": info.get("retryReason"),
        "dateCreated": wire.iso(job.created),
        "lastUpdated": wire.iso(job.updated),
    }


def _list_item(job: Execution) -> dict[str, Any]:
    info = job.job or {}
    progress = job.progress or {}
    item: dict[str, Any] = {
        "jobId": job.uuid,
        "jobType": job.job_type,
        "jobName": info.get("name"),
        "status": wire.SPELLING[job.status],
        "priority": job.priority.label,
        "progress": _percentage(job, progress),
        "startTime": wire.iso(job.started),
        "estimatedCompletion": wire.iso(job.estimated_end(time.time())),
        "submittedBy": job.submitted_by,
        "resourceName": (info.get("resource") or {}).get("resourceName"),
    }
    if job.ended is not None:
        elapsed = _elapsed(job)
        item["endTime"] = wire.iso(job.ended)
        item["duration"] = wire.human_seconds(elapsed)
        item["durationSeconds"] = None if elapsed is None else round(elapsed, 3)
    return item


def _submitted(job: Execution, estimate: Estimate) -> dict[str, Any]:
    duration = estimate.duration
    return {
        "jobId": job.uuid,
        "status": wire.SPELLING[job.status],
        "queuePosition": estimate.queue_position,
        "estimatedStartTime": wire.iso(estimate.start),
        "estimatedDuration": wire.human_range(*duration) if duration else None,
        "estimatedDurationSeconds": (
            {"min": round(duration[0], 3), "max": round(duration[1], 3)} if duration else None
        ),
        "jobName": (job.job or {}).get("name"),
        "priority": job.priority.label,
        "dateSubmitted": wire.iso(job.created),
        "submittedBy": job.submitted_by,
    }


async def _shown(runtime: Runtime, caller: Principal, job: Execution) -> dict[str, Any]:
    job, _ = await runtime.jobs.view(job)
    body = job_body(job, await _nodes(runtime, caller))
    body["notifications"] = {
        **((job.job or {}).get("notifications") or {}),
        "deliveries": [
            {
                "channel": n.channel,
                "target": n.target,
                "event": n.event,
                "state": n.state,
                "attempts": n.attempts,
                "lastError": n.last_error,
                "dateSent": wire.iso(n.sent),
            }
            for n in await runtime.jobs.deliveries(job)
        ],
    }
    return body


# -- routes -------------------------------------------------------------------------------


@router.post("/job", status_code=201, summary="Submit a job")
async def submit_job(runtime: RuntimeDep, caller: TenantCaller, body: JobBody) -> Json:
    scheduling = body.scheduling
    request = JobRequest(
        name=body.jobName,
        job_type=body.jobType,
        resource_type=body.resource.resourceType,
        resource_id=body.resource.resourceId,
        description=body.jobDescription,
        priority=_priority(body.priority),
        parameters=body.parameters,
        execute_immediately=scheduling.executeImmediately,
        scheduled_time=times.seconds(scheduling.scheduledTime, "scheduling.scheduledTime"),
        timeout_minutes=scheduling.timeoutMinutes,
        notifications=body.notifications.model_dump(),
    )
    job = await runtime.jobs.submit(caller, request)
    return Json(_submitted(job, await runtime.jobs.estimate(caller, job)), status_code=201)


@router.get("/job/{jobId}", summary="A job's status, progress, node metrics and metrics")
async def get_job(runtime: RuntimeDep, caller: TenantCaller, jobId: str) -> Json:
    return Json(await _shown(runtime, caller, await runtime.jobs.get(caller, jobId)))


@router.get("/jobs", summary="Jobs of the project, newest first, with summary counts")
async def list_jobs(
    runtime: RuntimeDep,
    caller: TenantCaller,
    status: Annotated[
        str | None, shown(nullable(one_of(dict.fromkeys(wire.SPELLING.values()))))
    ] = None,
    jobType: Annotated[str | None, shown(nullable(one_of(JOB_TYPES)))] = None,
    priority: Annotated[str | None, shown(nullable(PRIORITY_NAME))] = None,
    submittedBy: str | None = None,
    dateFrom: datetime | None = None,
    dateTo: datetime | None = None,
    page: Annotated[int, Query(ge=1, le=10**9)] = 1,
    pageSize: Annotated[
        int, Query(ge=1, le=10**9, description=f"Above {MAX_PAGE} counts as {MAX_PAGE}")
    ] = 20,
) -> Json:
    statuses = None
    if status:
        statuses = STATUSES.get(status.strip().lower())
        if statuses is None:
            raise InvalidInput(
                f"Invalid status {status!r}; "
                "expected Queued, Running, Completed, Failed or Cancelled"
            )
    if jobType and jobType not in JOB_TYPES:
        raise InvalidInput(f"Invalid jobType {jobType!r}; expected one of {', '.join(JOB_TYPES)}")
    f = JobFilter(
        statuses=statuses,
        job_type=jobType or None,
        priority=_priority(priority) if priority else None,
        submitted_by=submittedBy or None,
        since=times.seconds(dateFrom, "dateFrom"),
        until=times.seconds(dateTo, "dateTo"),
    )
    pageSize = min(pageSize, MAX_PAGE)  # the document's "max": the most a page holds
    jobs, counts = await runtime.jobs.page(caller, f, page, pageSize)

    def count(*spelled: str) -> int:
        return sum(n for s, n in counts.items() if wire.SPELLING[s] in spelled)

    total = sum(counts.values())
    return Json(
        {
            "jobs": [_list_item((await runtime.jobs.view(j))[0]) for j in jobs],
            "summary": {
                "totalJobs": total,
                "runningJobs": count("Running"),
                "queuedJobs": count("Queued"),
                "completedJobs": count("Completed"),
                "failedJobs": count("Failed"),
                "cancelledJobs": count("Cancelled"),
            },
            "page": page,
            "pageSize": pageSize,
            "hasNextPage": page * pageSize < total,
        }
    )


@router.delete("/job/{jobId}", summary="Cancel a queued or running job")
async def cancel_job(
    request: Request,
    runtime: RuntimeDep,
    caller: TenantCaller,
    jobId: str,
) -> Json:
    body: CancelBody = await _body(request, CancelBody)
    job = await runtime.jobs.cancel(
        caller,
        jobId,
        body.reason,
        force=body.forceTermination,
        keep_results=body.preservePartialResults,
    )
    return Json(
        {
            "jobId": job.uuid,
            "status": wire.SPELLING[job.status],
            "message": "Job cancelled"
            if job.status is Status.CANCELLED
            else "Job cancellation requested; it stops shortly",
            "reason": body.reason,
        }
    )


@router.post("/job/{jobId}/retry", summary="Retry a failed or cancelled job as a new job")
async def retry_job(
    request: Request,
    runtime: RuntimeDep,
    caller: TenantCaller,
    jobId: str,
) -> Json:
    body: RetryBody = await _body(request, RetryBody)
    updated = dict(body.updatedParameters) if body.modifyParameters is not False else {}
    timeout = updated.pop("timeoutMinutes", None)
    if timeout is not None and (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not 0 < timeout <= MAX_SECONDS / 60
    ):
        raise InvalidInput("updatedParameters.timeoutMinutes must be a positive number")
    job = await runtime.jobs.retry(
        caller,
        jobId,
        reason=body.retryReason,
        parameters=updated,
        priority=_priority(body.priority) if body.priority is not None else None,
        immediately=body.immediateExecution,
        timeout_minutes=timeout,
    )
    return Json(await _shown(runtime, caller, job))


# -- results ------------------------------------------------------------------------------

FORMATS = ("summary", "detailed", "download")


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _reported_outputs(result: Any) -> dict[str, dict[str, Any]]:
    """The action's own description of its outputs: result["outputs"], a list of
    objects with a `path` under the artifacts directory."""
    outputs = result.get("outputs") if isinstance(result, dict) else None
    if not isinstance(outputs, list):
        return {}
    return {o["path"]: o for o in outputs if isinstance(o, dict) and isinstance(o.get("path"), str)}


def _results(
    request: Request,
    job: Execution,
    artifacts: list[tuple[str, int]],
    *,
    detailed: bool,
    include_artifacts: bool,
    output_kind: str | None,
) -> dict[str, Any]:
    result = job.result if isinstance(job.result, dict) else {}
    reported = _reported_outputs(job.result)
    base = public_link(
        request,
        "download_artifact",
        tenantId=job.tenant_id,
        projectId=job.project_id,
        jobId=job.uuid,
        path="-",
    ).rstrip("-")
    outputs = [
        wire.output(path, size, base + quote(path), reported.get(path))
        for path, size in artifacts
        if output_kind is None or wire.output_type(path) == output_kind
    ]
    primary_path = next((p for p, o in reported.items() if o.get("primary")), None)
    primary = next((o for o in outputs if o["path"] == primary_path), None)
    if primary is None:
        primary = next((o for o in outputs if o["outputType"] == "reports"), None)
    if primary is None and outputs:
        primary = outputs[0]
    progress = job.progress or {}
    usage = job.usage or {}
    summary: dict[str, Any] = _object(result.get("summary"))
    quality: dict[str, Any] = _object(result.get("qualityMetrics"))
    warnings = quality.get("warnings")
    if warnings is None:
        counted: dict[str, int] = {}
        for message in progress.get("warning_messages", []):
            counted[str(message)] = counted.get(str(message), 0) + 1
        warnings = [{"type": "Action", "message": m, "count": n} for m, n in counted.items()]
    elapsed = _elapsed(job)
    cpu_seconds = usage.get("cpu_seconds")
    body: dict[str, Any] = {
        "jobId": job.uuid,
        "status": wire.SPELLING[job.status],
        "completionTime": wire.iso(job.ended),
        "totalDuration": wire.human_seconds(elapsed),
        "totalDurationSeconds": None if elapsed is None else round(elapsed, 3),
        "success": job.status is Status.COMPLETED,
        "summary": {
            "recordsProcessed": summary.get("recordsProcessed") or progress.get("processed") or 0,
            "outputsGenerated": len(artifacts),
            "dataQualityScore": summary.get("dataQualityScore"),
            "processingEfficiency": summary.get("processingEfficiency"),
        },
        "results": {
            "primaryOutput": primary if include_artifacts else None,
            "additionalOutputs": [o for o in outputs if o is not primary]
            if include_artifacts
            else [],
        },
        "executionMetrics": {
            "totalCpuTime": wire.human_seconds(cpu_seconds),
            "totalCpuSeconds": cpu_seconds,
            "peakMemoryUsage": wire.human_bytes(usage.get("peak_memory_bytes")),
            "peakMemoryBytes": usage.get("peak_memory_bytes"),
            "diskIoOperations": usage.get("io_operations"),
            "diskReadBytes": usage.get("read_bytes"),
            "diskWriteBytes": usage.get("write_bytes"),
            "networkDataTransfer": None,  # not measured per process
        },
        "qualityMetrics": {
            "dataValidation": quality.get("dataValidation"),
            "processingErrors": quality.get("processingErrors", []),
            "warnings": warnings,
        },
    }
    if job.status is not Status.COMPLETED:
        body["error"] = job.error
    if detailed:
        body["result"] = job.result
        body["parameters"] = job.visible_parameters
        body["logs"] = {
            stream: public_link(
                request,
                "download_log",
                tenantId=job.tenant_id,
                projectId=job.project_id,
                jobId=job.uuid,
                stream=stream,
            )
            for stream in ("stdout", "stderr")
        }
    return body


@router.get(
    "/job/{jobId}/results", summary="A finished job's results and outputs", response_model=None
)
async def job_results(
    request: Request,
    runtime: RuntimeDep,
    caller: TenantCaller,
    jobId: str,
    format: Annotated[str, shown(one_of(FORMATS))] = "summary",
    includeArtifacts: bool = True,
    outputType: Annotated[str | None, shown(nullable(one_of(wire.OUTPUT_TYPES)))] = None,
) -> Json | StreamingResponse:
    if format not in FORMATS:
        raise InvalidInput(f"format must be one of {', '.join(FORMATS)}")
    if outputType is not None and outputType not in wire.OUTPUT_TYPES:
        raise InvalidInput(f"outputType must be one of {', '.join(wire.OUTPUT_TYPES)}")
    job = await runtime.jobs.get(caller, jobId)
    if job.status not in TERMINAL:
        raise Conflict(
            f"Job {job.uuid} has not finished ({wire.SPELLING[job.status]}); "
            "its results come when it ends",
            jobId=job.uuid,
        )
    job, parts = await runtime.jobs.view(job)
    if format == "download":
        chunks = await runtime.executions.package(caller, job, parts)
        assert chunks is not None
        return StreamingResponse(
            chunks,
            media_type="application/zip",
            headers={"Content-Disposition": f'attachment; filename="{job.uuid}.zip"'},
        )
    artifacts = await runtime.jobs.artifacts(parts)
    return Json(
        _results(
            request,
            job,
            artifacts,
            detailed=format == "detailed",
            include_artifacts=includeArtifacts,
            output_kind=outputType,
        )
    )


@router.get(
    "/job/{jobId}/artifacts/{path:path}", summary="One output file of a job", response_model=None
)
async def download_artifact(
    runtime: RuntimeDep,
    caller: TenantCaller,
    jobId: str,
    path: str,
) -> StreamingResponse:
    job = await runtime.jobs.get(caller, jobId)
    _, parts = await runtime.jobs.view(job)
    handle = await asyncio.to_thread(runtime.jobs.open_artifact, parts, path)
    if handle is None:
        raise NotFound("Artifact not found", jobId=job.uuid)
    name = path.rsplit("/", 1)[-1]
    media = mimetypes.guess_type(name)[0] or "application/octet-stream"
    return StreamingResponse(
        file_chunks(handle),
        media_type=media,
        headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}"},
    )


@router.get("/job/{jobId}/logs/{stream}", summary="A job's stdout or stderr", response_model=None)
async def download_log(
    runtime: RuntimeDep,
    caller: TenantCaller,
    jobId: str,
    stream: str,
) -> StreamingResponse:
    job = await runtime.jobs.get(caller, jobId)
    if stream not in ("stdout", "stderr"):
        raise NotFound("Log not found", jobId=job.uuid)
    handle = await asyncio.to_thread(runtime.executions.open_log, job, stream)
    return StreamingResponse(
        file_chunks(handle) if handle is not None else iter([b""]), media_type="text/plain"
    )


@router.get("/queue", summary="The project's jobs waiting for a worker, and the capacity")
async def queue(runtime: RuntimeDep, caller: TenantCaller) -> Json:
    view = await runtime.jobs.queue(caller)
    capacity = sum(n.capacity for n in view.nodes)
    busy = sum(n.active for n in view.nodes)
    return Json(
        {
            "queuedJobs": [
                {
                    "jobId": item.execution.uuid,
                    "jobName": (item.execution.job or {}).get("name") or item.execution.action_ref,
                    "jobType": item.execution.job_type,
                    "priority": item.execution.priority.label,
                    "status": wire.SPELLING[item.execution.status],
                    "queuePosition": item.position,
                    "estimatedStartTime": wire.iso(item.start),
                    "estimatedDuration": wire.human_range(*item.duration)
                    if item.duration
                    else None,
                    "dateSubmitted": wire.iso(item.execution.created),
                    "submittedBy": item.execution.submitted_by,
                }
                for item in view.items
            ],
            "totalQueued": view.total,
            "capacity": {
                "workers": len(view.nodes),
                "totalSlots": capacity,
                "busySlots": busy,
                "freeSlots": max(0, capacity - busy),
            },
            "timestamp": wire.iso(time.time()),
        }
    )
