"""Fault injection on a real server and worker, both backends: a worker SIGKILLed while
it runs several jobs. Prints its figures (tries, lost, stuck, processes left running,
recovery) and asserts none lost, none stuck, and nothing of the first runs left to run
beside the second (so no job runs twice at once)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import psutil
import pytest

from tests.support import Deployment, get, submit, wait_for, wait_status

pytestmark = pytest.mark.fault
JOBS = 6


def _processes(pid: int) -> list[psutil.Process]:
    try:
        top = psutil.Process(pid)
        return [top, *top.children(recursive=True)]
    except psutil.Error:
        return []


def _alive(processes: list[psutil.Process]) -> list[psutil.Process]:
    found = []
    for process in processes:
        try:
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                found.append(process)
        except psutil.Error:
            continue
    return found


def test_a_worker_killed_with_jobs_running_loses_none_and_runs_none_twice(
    deployment: Deployment, report: Callable[[str], None]
) -> None:
    server = deployment.server(workers=0)
    client = server.client()
    doomed = deployment.worker("w-doomed", EXECD_WORKER_CONCURRENCY=str(JOBS))
    ids = [submit(client, "core.shell", {"cmd": "sleep 3; echo done"})["id"] for _ in range(JOBS)]

    def all_running() -> list[dict[str, Any]] | None:
        found = [get(client, i) for i in ids]
        return found if all(e["status"] == "running" and e["pid"] for e in found) else None

    running = wait_for(all_running, timeout=30, message=f"{JOBS} jobs running")
    first_runs = {e["id"]: _processes(e["pid"]) for e in running}
    killed_at = time.monotonic()
    doomed.kill()
    # What the killed worker ran must be gone before anything can run it again: the
    # lease (2 s here) has not even run out yet.
    wait_for(
        lambda: not any(_alive(p) for p in first_runs.values()),
        timeout=1.5,
        message="the killed worker's processes gone",
    )
    rescue = deployment.worker("w-rescue", EXECD_WORKER_CONCURRENCY=str(JOBS))
    ended = [wait_status(client, i, timeout=60) for i in ids]
    recovery = time.monotonic() - killed_at
    lost = sum(1 for i in ids if client.get(f"/api/v1/executions/{i}").status_code != 200)
    stuck = sum(1 for e in ended if e["status"] != "completed")
    attempts = [e["attempt"] for e in ended]
    report(
        f"worker SIGKILL with {JOBS} jobs running: tries {JOBS}, lost {lost}, stuck {stuck},"
        " processes left running 0 (all gone within 1.5 s, before the lease ran out),"
        f" attempts {attempts}, recovery {recovery:.1f} s"
    )
    assert lost == 0 and stuck == 0
    assert all(a == 2 for a in attempts)  # each ran again, once
    assert rescue.alive()
