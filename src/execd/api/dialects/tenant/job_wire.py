"""A job as the tenant API shows it: its status and metrics, a page of jobs, the queue,
and a finished job's results and outputs."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

from execd.api.dialects.tenant.wire import SPELLING, human_bytes, human_range, human_seconds, iso
from execd.domain.executions import Execution
from execd.domain.states import TERMINAL, Status
from execd.engine.job_queue import Estimate, QueueView


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
    """One job; `nodes` names the workers, by id."""
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
        "status": SPELLING[job.status],
        "priority": job.priority.label,
        "progress": {
            "percentage": _percentage(job, progress),
            "currentStage": progress.get("stage") or SPELLING[job.status],
            "estimatedCompletion": iso(job.estimated_end(time.time())),
            "elapsedTime": human_seconds(elapsed),
            "elapsedSeconds": None if elapsed is None else round(elapsed, 3),
        },
        "resource": info.get("resource"),
        "execution": {
            "startTime": iso(job.started),
            "endTime": iso(job.ended),
            "submittedBy": job.submitted_by,
            "executionNode": nodes.get(job.worker_id) if job.worker_id else None,
            "memoryUsage": human_bytes(memory),
            "memoryBytes": memory,
            "cpuUsage": None if cpu is None else f"{cpu:.0f}%",
            "cpuPercent": cpu,
            "diskUsage": human_bytes(usage.get("disk_bytes")),
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
        "dateCreated": iso(job.created),
        "lastUpdated": iso(job.updated),
    }


def _list_item(job: Execution) -> dict[str, Any]:
    info = job.job or {}
    progress = job.progress or {}
    item: dict[str, Any] = {
        "jobId": job.uuid,
        "jobType": job.job_type,
        "jobName": info.get("name"),
        "status": SPELLING[job.status],
        "priority": job.priority.label,
        "progress": _percentage(job, progress),
        "startTime": iso(job.started),
        "estimatedCompletion": iso(job.estimated_end(time.time())),
        "submittedBy": job.submitted_by,
        "resourceName": (info.get("resource") or {}).get("resourceName"),
    }
    if job.ended is not None:
        elapsed = _elapsed(job)
        item["endTime"] = iso(job.ended)
        item["duration"] = human_seconds(elapsed)
        item["durationSeconds"] = None if elapsed is None else round(elapsed, 3)
    return item


def jobs_page(
    jobs: list[Execution], counts: dict[Status, int], page: int, page_size: int
) -> dict[str, Any]:
    """A page of jobs, and how many of the project's jobs are in each status."""

    def count(*spelled: str) -> int:
        return sum(n for s, n in counts.items() if SPELLING[s] in spelled)

    total = sum(counts.values())
    return {
        "jobs": [_list_item(j) for j in jobs],
        "summary": {
            "totalJobs": total,
            "runningJobs": count("Running"),
            "queuedJobs": count("Queued"),
            "completedJobs": count("Completed"),
            "failedJobs": count("Failed"),
            "cancelledJobs": count("Cancelled"),
        },
        "page": page,
        "pageSize": page_size,
        "hasNextPage": page * page_size < total,
    }


def submitted(job: Execution, estimate: Estimate) -> dict[str, Any]:
    duration = estimate.duration
    return {
        "jobId": job.uuid,
        "status": SPELLING[job.status],
        "queuePosition": estimate.queue_position,
        "estimatedStartTime": iso(estimate.start),
        "estimatedDuration": human_range(*duration) if duration else None,
        "estimatedDurationSeconds": (
            {"min": round(duration[0], 3), "max": round(duration[1], 3)} if duration else None
        ),
        "jobName": (job.job or {}).get("name"),
        "priority": job.priority.label,
        "dateSubmitted": iso(job.created),
        "submittedBy": job.submitted_by,
    }


def cancelled(job: Execution, reason: str | None) -> dict[str, Any]:
    return {
        "jobId": job.uuid,
        "status": SPELLING[job.status],
        "message": "Job cancelled"
        if job.status is Status.CANCELLED
        else "Job cancellation requested; it stops shortly",
        "reason": reason,
    }


def queue(view: QueueView) -> dict[str, Any]:
    capacity = sum(n.capacity for n in view.nodes)
    busy = sum(n.active for n in view.nodes)
    return {
        "queuedJobs": [
            {
                "jobId": item.execution.uuid,
                "jobName": (item.execution.job or {}).get("name") or item.execution.action_ref,
                "jobType": item.execution.job_type,
                "priority": item.execution.priority.label,
                "status": SPELLING[item.execution.status],
                "queuePosition": item.position,
                "estimatedStartTime": iso(item.start),
                "estimatedDuration": human_range(*item.duration) if item.duration else None,
                "dateSubmitted": iso(item.execution.created),
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
        "timestamp": iso(time.time()),
    }


# -- job outputs (the tenant API's results): artifacts, classified by kind ---------------------

OUTPUT_TYPES: dict[str, frozenset[str]] = {
    "reports": frozenset({"html", "htm", "pdf", "md", "txt", "docx", "rtf"}),
    "data": frozenset({"csv", "tsv", "json", "jsonl", "parquet", "xlsx", "xls", "xml", "sqlite"}),
    "models": frozenset({"pkl", "pickle", "joblib", "onnx", "pt", "pth", "h5", "pmml", "model"}),
    "visualizations": frozenset({"svg", "png", "jpg", "jpeg", "gif", "webp", "bpmn", "dot"}),
}
_TYPE_NAMES = {
    "reports": "Report",
    "data": "Dataset",
    "models": "Model",
    "visualizations": "Visualization",
}


def output_type(path: str) -> str:
    extension = path.rsplit(".", 1)[-1].lower() if "." in path else ""
    for kind, extensions in OUTPUT_TYPES.items():
        if extension in extensions:
            return kind
    return "data"


def output(path: str, size: int, url: str, reported: dict[str, Any] | None) -> dict[str, Any]:
    """One artifact as an output: what the action said of it (its result's `outputs`
    entry for this path) over what execd can tell from the file."""
    kind = output_type(path)
    name = path.rsplit("/", 1)[-1]
    body: dict[str, Any] = {
        "type": _TYPE_NAMES[kind],
        "title": name.rsplit(".", 1)[0] if "." in name else name,
        "format": name.rsplit(".", 1)[-1].lower() if "." in name else "",
        "outputType": kind,
        "path": path,
        "size": human_bytes(size),
        "sizeBytes": size,
    }
    extra = {k: v for k, v in (reported or {}).items() if k not in ("path", "primary")}
    body.update(extra)
    body["downloadUrl"] = url
    return body


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _reported_outputs(result: Any) -> dict[str, dict[str, Any]]:
    """The action's own description of its outputs: result["outputs"], a list of
    objects with a `path` under the artifacts directory."""
    outputs = result.get("outputs") if isinstance(result, dict) else None
    if not isinstance(outputs, list):
        return {}
    return {o["path"]: o for o in outputs if isinstance(o, dict) and isinstance(o.get("path"), str)}


def results(
    job: Execution,
    artifacts: list[tuple[str, int]],
    artifact_link: str,
    logs: dict[str, str] | None,
    *,
    include_artifacts: bool,
    output_kind: str | None,
) -> dict[str, Any]:
    """A finished job's results: its artifacts (`path`, size) are downloaded at
    `artifact_link` + path; `logs`, links by stream, come with the detailed format
    (and its result and parameters)."""
    result = job.result if isinstance(job.result, dict) else {}
    reported = _reported_outputs(job.result)
    outputs = [
        output(path, size, artifact_link + quote(path), reported.get(path))
        for path, size in artifacts
        if output_kind is None or output_type(path) == output_kind
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
        "status": SPELLING[job.status],
        "completionTime": iso(job.ended),
        "totalDuration": human_seconds(elapsed),
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
            "totalCpuTime": human_seconds(cpu_seconds),
            "totalCpuSeconds": cpu_seconds,
            "peakMemoryUsage": human_bytes(usage.get("peak_memory_bytes")),
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
    if logs is not None:
        body["result"] = job.result
        body["parameters"] = job.visible_parameters
        body["logs"] = logs
    return body
