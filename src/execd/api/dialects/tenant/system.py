"""/api/{tenantId}/execution/system/status (the tenant API): nodes, queue, today's figures."""

from __future__ import annotations

import shutil
import time

from fastapi import APIRouter

from execd.api.deps import Caller, RuntimeDep
from execd.api.dialects.tenant import wire
from execd.api.responses import Json
from execd.domain.errors import Unauthorized
from execd.domain.states import Priority, Status

router = APIRouter(prefix="/api/{tenantId}/execution/system", tags=["tenant jobs"])

_NODE_STATES = {"active": "Active", "draining": "Draining", "offline": "Offline"}


@router.get("/status", summary="System-wide execution status")
async def system_status(runtime: RuntimeDep, caller: Caller, tenantId: str) -> Json:
    if tenantId.lower() != caller.tenant_id:
        raise Unauthorized("The access token is not valid for this tenant")
    figures = await runtime.jobs.system(caller)
    nodes = figures.nodes
    waiting = figures.waiting
    queued = sum(waiting.values())
    capacity = sum(n.capacity for n in nodes)
    done, done_seconds = figures.today.get(Status.COMPLETED, (0, 0.0))
    failed = sum(
        figures.today.get(s, (0, 0.0))[0] for s in (Status.FAILED, Status.TIMEOUT, Status.ABANDONED)
    )
    finished = done + failed
    run = figures.run_seconds
    processing = (queued * run / capacity) if run is not None and capacity else None
    cpu_total = sum((n.cpu_count or 0) * 100 for n in nodes)
    cpu_used = sum((n.cpu_count or 0) * (n.cpu_percent or 0.0) for n in nodes)
    memory_total = sum(n.memory_total or 0 for n in nodes)
    memory_used = sum(n.memory_bytes or 0 for n in nodes)
    disk = shutil.disk_usage(runtime.artifacts.root if runtime.artifacts.root.exists() else ".")
    if not nodes:
        health = "Unavailable" if queued else "Idle"
    elif all(n.active >= n.capacity for n in nodes) and queued:
        health = "Busy"
    else:
        health = "Healthy"
    sandbox, warnings = runtime.status_warnings([n.sandbox for n in nodes])
    return Json(
        {
            "systemStatus": health,
            "timestamp": wire.iso(time.time()),
            "sandbox": sandbox,
            "warnings": warnings,
            "executionNodes": [
                {
                    "nodeId": n.name,
                    "status": _NODE_STATES.get(n.state, n.state),
                    "cpuUsage": n.cpu_percent,
                    "memoryUsage": n.memory_percent,
                    "activeJobs": n.active,
                    "jobCapacity": n.capacity,
                    "devices": n.devices,
                    "sandbox": n.sandbox or "unknown",
                    "lastHeartbeat": wire.iso(n.last_heartbeat),
                }
                for n in nodes
            ],
            "queueStatistics": {
                "totalQueuedJobs": queued,
                "criticalPriorityJobs": waiting.get(Priority.CRITICAL, 0),
                "highPriorityJobs": waiting.get(Priority.HIGH, 0),
                "normalPriorityJobs": waiting.get(Priority.NORMAL, 0),
                "lowPriorityJobs": waiting.get(Priority.LOW, 0),
                "averageWaitTime": wire.human_minutes(figures.wait_seconds),
                "averageWaitSeconds": _round(figures.wait_seconds),
                "estimatedProcessingTime": wire.human_minutes(processing),
                "estimatedProcessingSeconds": _round(processing),
            },
            "performanceMetrics": {
                "jobsCompletedToday": done,
                "jobsFailedToday": failed,
                "averageJobDuration": wire.human_minutes(done_seconds / done if done else None),
                "averageJobDurationSeconds": _round(done_seconds / done if done else None),
                "successRate": round(done / finished * 100, 1) if finished else None,
                "throughputPerHour": round(done / (figures.day_elapsed / 3600), 1)
                if figures.day_elapsed > 0
                else 0.0,
            },
            "resourceUtilization": {
                "totalCpuCapacity": cpu_total,
                "usedCpuCapacity": round(cpu_used),
                "totalMemoryCapacity": wire.human_bytes(memory_total),
                "totalMemoryBytes": memory_total,
                "usedMemoryCapacity": wire.human_bytes(memory_used),
                "usedMemoryBytes": memory_used,
                "diskSpaceAvailable": wire.human_bytes(disk.free),
                "diskSpaceAvailableBytes": disk.free,
            },
        }
    )


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
