"""/api/{tenantId}/{projectId}/execution: jobs (the tenant API)."""

from __future__ import annotations

import asyncio
import mimetypes
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from execd.api.deps import RuntimeDep, public_link
from execd.api.dialects.tenant import job_wire, wire
from execd.api.dialects.tenant.access import TenantCaller
from execd.api.openapi import PRIORITY, PRIORITY_NAME, given, nullable, one_of, shown
from execd.api.responses import Json, file_chunks
from execd.domain import times
from execd.domain.access import Principal
from execd.domain.actions import MAX_SECONDS
from execd.domain.errors import Conflict, InvalidInput, NotFound
from execd.domain.executions import Execution, ExecutionFilter
from execd.domain.states import TERMINAL, Priority, Status
from execd.engine.jobs import JOB_TYPES, RESOURCE_TYPES, JobRequest
from execd.runtime import Runtime

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


async def _shown(runtime: Runtime, caller: Principal, job: Execution) -> dict[str, Any]:
    """A job in full: with the worker that ran it, and its notifications."""
    job, _ = await runtime.jobs.view(job)
    workers = await runtime.executions.workers(caller, retired=True)  # those gone too
    body = job_wire.job_body(job, {n.id: n.name for n in workers})
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
    estimate = await runtime.jobs.estimate(caller, job)
    return Json(job_wire.submitted(job, estimate), status_code=201)


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
    f = ExecutionFilter(
        statuses=statuses,
        job_type=jobType or None,
        priority=_priority(priority) if priority else None,
        submitted_by=submittedBy or None,
        created_after=times.seconds(dateFrom, "dateFrom"),
        created_until=times.seconds(dateTo, "dateTo"),
    )
    pageSize = min(pageSize, MAX_PAGE)  # the document's "max": the most a page holds
    jobs, counts = await runtime.jobs.page(caller, f, page, pageSize)
    viewed = [(await runtime.jobs.view(j))[0] for j in jobs]
    return Json(job_wire.jobs_page(viewed, counts, page, pageSize))


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
    return Json(job_wire.cancelled(job, body.reason))


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
STREAMS = ("stdout", "stderr")


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
    outputType: Annotated[str | None, shown(nullable(one_of(job_wire.OUTPUT_TYPES)))] = None,
) -> Json | StreamingResponse:
    if format not in FORMATS:
        raise InvalidInput(f"format must be one of {', '.join(FORMATS)}")
    if outputType is not None and outputType not in job_wire.OUTPUT_TYPES:
        raise InvalidInput(f"outputType must be one of {', '.join(job_wire.OUTPUT_TYPES)}")
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
    ids = {"tenantId": job.tenant_id, "projectId": job.project_id, "jobId": job.uuid}
    # Where every artifact's link starts: the link of a path "-", less the "-".
    artifact_link = public_link(request, "download_artifact", **ids, path="-").rstrip("-")
    logs = None
    if format == "detailed":
        logs = {
            stream: public_link(request, "download_log", **ids, stream=stream) for stream in STREAMS
        }
    body = job_wire.results(
        job,
        artifacts,
        artifact_link,
        logs,
        include_artifacts=includeArtifacts,
        output_kind=outputType,
    )
    return Json(body)


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
    if stream not in STREAMS:
        raise NotFound("Log not found", jobId=job.uuid)
    handle = await asyncio.to_thread(runtime.executions.open_log, job, stream)
    return StreamingResponse(
        file_chunks(handle) if handle is not None else iter([b""]), media_type="text/plain"
    )


@router.get("/queue", summary="The project's jobs waiting for a worker, and the capacity")
async def queue(runtime: RuntimeDep, caller: TenantCaller) -> Json:
    return Json(job_wire.queue(await runtime.jobs.queue(caller)))
