"""Fault injection on a real server and workers, both backends: a worker SIGKILLed while
it runs several jobs (in the sandbox and without it), and a worker frozen with SIGSTOP
past its leases and thawed with SIGCONT. Each prints its figures (tries, lost, stuck,
concurrent duplicates, recovery) and asserts none lost, none stuck, and no job running
twice at once: what the first worker left running is gone before a second attempt
starts."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import httpx
import psutil
import pytest

from tests.support import Deployment, Process, get, submit, wait_for, wait_status

pytestmark = pytest.mark.fault
JOBS = 6
COMMAND = "sleep 4; echo attempt $EXECD_ATTEMPT"


def _tree(pid: int) -> list[psutil.Process]:
    try:
        top = psutil.Process(pid)
        return [top, *top.children(recursive=True)]
    except psutil.Error:
        return []


def _running(processes: list[psutil.Process]) -> bool:
    for process in processes:
        try:
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                return True
        except psutil.Error:
            continue
    return False


class FirstRuns:
    """The processes of each job's first attempt, watched every 10 ms from a thread:
    when each was last seen running (wall clock, as the service stamps `started`)."""

    def __init__(self, runs: dict[int, list[psutil.Process]]) -> None:
        self.runs = runs
        self.last_seen = {i: time.time() for i in runs}
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._done.is_set():
            now = time.time()
            for execution_id, processes in self.runs.items():
                if _running(processes):
                    self.last_seen[execution_id] = now
            time.sleep(0.01)

    def any_running(self) -> bool:
        return any(_running(p) for p in self.runs.values())

    @contextmanager
    def watched(self) -> Iterator[FirstRuns]:
        self._thread.start()
        try:
            yield self
        finally:
            self._done.set()
            self._thread.join()

    def overlapping(self, ended: list[dict[str, Any]]) -> list[int]:
        """Jobs whose second attempt started while their first still ran."""
        return [
            e["id"]
            for e in ended
            if datetime.fromisoformat(e["started"]).timestamp() < self.last_seen[e["id"]]
        ]


def _start_jobs(
    deployment: Deployment,
    client: httpx.Client,
    name: str,
    command: str = COMMAND,
    **env: str,
) -> tuple[Process, list[int], FirstRuns]:
    worker = deployment.worker(name, EXECD_WORKER_CONCURRENCY=str(JOBS), **env)
    ids = [submit(client, "core.shell", {"cmd": command})["id"] for _ in range(JOBS)]

    def all_running() -> list[dict[str, Any]] | None:
        found = [get(client, i) for i in ids]
        return found if all(e["status"] == "running" and e["pid"] for e in found) else None

    running = wait_for(all_running, timeout=30, message=f"{JOBS} jobs running")
    return worker, ids, FirstRuns({e["id"]: _tree(e["pid"]) for e in running})


def _outcome(client: httpx.Client, ids: list[int], first: FirstRuns) -> dict[str, Any]:
    ended = [wait_status(client, i, timeout=60) for i in ids]
    return {
        "ended": ended,
        "lost": sum(1 for i in ids if client.get(f"/api/v1/executions/{i}").status_code != 200),
        "stuck": sum(1 for e in ended if e["status"] != "completed"),
        "overlapping": first.overlapping(ended),
        "attempts": [e["attempt"] for e in ended],
        "outputs": {e["result"]["stdout"] for e in ended if e["result"]},
    }


@pytest.mark.parametrize(
    ("sandbox", "rescuer"),
    [
        ("bubblewrap", "w-rescue"),
        ("none", "w-rescue"),  # the reaper stops the runs as the leases run out
        ("none", "w-doomed"),  # the worker restarted under its name stops them at once
    ],
)
def test_a_worker_killed_with_jobs_running_loses_none_and_runs_none_twice(
    deployment: Deployment, report: Callable[[str], None], sandbox: str, rescuer: str
) -> None:
    # "bubblewrap" is the default: the sandbox wherever it can be had (CI has it).
    sandbox_env = {} if sandbox == "bubblewrap" else {"EXECD_SANDBOX": "none"}
    server = deployment.server(workers=0, **sandbox_env)
    client = server.client()
    doomed, ids, first = _start_jobs(deployment, client, "w-doomed", **sandbox_env)
    with first.watched():
        killed_at = time.monotonic()
        doomed.kill()
        if sandbox == "bubblewrap":
            # A sandboxed run dies with its worker, long before the lease (2 s) is out.
            wait_for(lambda: not first.any_running(), timeout=1.5, message="the runs gone")
        deployment.worker(rescuer, EXECD_WORKER_CONCURRENCY=str(JOBS), **sandbox_env)
        found = _outcome(client, ids, first)
        recovery = time.monotonic() - killed_at
        left = first.any_running()
    report(
        f"worker SIGKILL with {JOBS} jobs running (sandbox {sandbox}, rescued by {rescuer}):"
        f" tries {JOBS},"
        f" lost {found['lost']}, stuck {found['stuck']},"
        f" concurrent duplicates {len(found['overlapping'])}, first runs left running {left},"
        f" attempts {found['attempts']}, recovery {recovery:.1f} s"
    )
    assert found["lost"] == 0 and found["stuck"] == 0
    assert found["overlapping"] == [] and not left
    assert found["attempts"] == [2] * JOBS  # each ran again, once
    assert found["outputs"] == {"attempt 2\n"}


def test_a_frozen_worker_past_its_leases_has_its_runs_stopped_and_its_outcomes_refused(
    deployment: Deployment, report: Callable[[str], None]
) -> None:
    server = deployment.server(workers=0)
    client = server.client()
    # A lease twice the others' (and runs that outlast it): a worker slow to renew while
    # it starts six runs on a loaded machine must not lose them before it is frozen.
    zombie, ids, first = _start_jobs(
        deployment,
        client,
        "w-zombie",
        command="sleep 8; echo attempt $EXECD_ATTEMPT",
        EXECD_LOG_LEVEL="info",
        EXECD_LEASE_SECONDS="4",
    )
    assert all(get(client, i)["attempt"] == 1 for i in ids)
    with first.watched():
        frozen_at = time.monotonic()
        psutil.Process(zombie.pid).send_signal(signal.SIGSTOP)  # the worker only: its runs go on
        try:
            deployment.worker("w-rescue", EXECD_WORKER_CONCURRENCY=str(JOBS))
            # Every job runs again elsewhere, the frozen worker's leases long gone.
            wait_for(
                lambda: all(get(client, i)["attempt"] == 2 for i in ids),
                timeout=30,
                message="every job's second attempt",
            )
        finally:
            psutil.Process(zombie.pid).send_signal(signal.SIGCONT)
        found = _outcome(client, ids, first)
        recovery = time.monotonic() - frozen_at
        left = first.any_running()
    # Thawed, the worker finds its runs killed and reports them; the database refuses
    # those reports (their fence is stale), so each job ends as its second attempt did.
    refused = wait_for(
        lambda: zombie.log().count("execution_ended") == JOBS or None,
        timeout=20,
        message="the thawed worker to report its runs",
    )
    report(
        f"worker SIGSTOP past its leases, then SIGCONT, {JOBS} jobs: tries {JOBS},"
        f" lost {found['lost']}, stuck {found['stuck']},"
        f" concurrent duplicates {len(found['overlapping'])}, first runs left running {left},"
        f" attempts {found['attempts']}, recovery {recovery:.1f} s"
    )
    assert refused
    assert found["lost"] == 0 and found["stuck"] == 0
    assert found["overlapping"] == [] and not left
    assert found["attempts"] == [2] * JOBS
    assert found["outputs"] == {"attempt 2\n"}  # the frozen worker's outcome did not land
    assert zombie.alive()
