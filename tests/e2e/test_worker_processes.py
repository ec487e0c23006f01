"""`execd serve` uses every core: the API in its own process, executions in `execd
worker` processes it starts, watches and stops; wake-ups between them are immediate on
both backends (a datagram beside the SQLite file, NOTIFY on PostgreSQL)."""

from __future__ import annotations

import os
import signal
from typing import Any

import httpx

from tests.support import (
    Deployment,
    Server,
    children_running,
    process_gone,
    submit,
    wait_for,
    wait_status,
)


def _online(client: httpx.Client) -> list[dict[str, Any]]:
    workers: list[dict[str, Any]] = client.get("/api/v1/workers").json()["data"]
    return [w for w in workers if w["state"] == "active"]


def _children(server: Server) -> list[int]:
    """The server's live worker processes."""
    return children_running(server.pid, "worker")


def test_serve_runs_executions_in_worker_processes_it_supervises(
    deployment: Deployment,
) -> None:
    # A poll this long would hold every execution for minutes: only a wake-up starts them.
    server = deployment.server(workers=None, EXECD_WORKER_PROCESSES="2", EXECD_POLL_SECONDS="300")
    assert "workers: 2 processes, 0 loops in the API's process" in server.log()
    admin = server.client()
    first = wait_for(lambda: len(c := _children(server)) == 2 and c, message="two workers")
    wait_for(lambda: {w["pid"] for w in _online(admin)} == set(first), message="both online")

    ids = [submit(admin, "core.noop")["id"] for _ in range(12)]
    ran = {wait_status(admin, i, "completed", timeout=15)["executor"] for i in ids}
    assert ran <= {w["id"] for w in _online(admin)}  # by the worker processes

    # A worker that dies is started again, and the new one takes the next executions.
    os.kill(first[0], signal.SIGKILL)
    again = wait_for(
        lambda: len(c := _children(server)) == 2 and first[0] not in c and c,
        timeout=30,
        message="a new worker process",
    )
    assert first[1] in again
    assert "child_process_exited" in server.log()
    wait_for(lambda: {w["pid"] for w in _online(admin)} >= set(again), message="it registers")
    for execution_id in [submit(admin, "core.noop")["id"] for _ in range(4)]:
        wait_status(admin, execution_id, "completed", timeout=15)

    # Stopping the server stops its workers first.
    assert server.stop() in (0, -signal.SIGTERM)
    assert all(process_gone(pid) for pid in again)
    assert "Traceback" not in server.log()


def test_ctrl_c_stops_the_whole_tree_and_a_lost_server_takes_its_workers(
    deployment: Deployment,
) -> None:
    server = deployment.server(workers=None, EXECD_WORKER_PROCESSES="1")
    (child,) = wait_for(lambda: _children(server), message="the worker process")
    os.killpg(server.pid, signal.SIGINT)  # what a terminal sends the foreground group
    assert server.popen is not None and server.popen.wait(timeout=60) in (0, 130, -signal.SIGINT)
    wait_for(lambda: process_gone(child), message="the worker to stop")

    server = deployment.server(workers=None, EXECD_WORKER_PROCESSES="1")
    (child,) = wait_for(lambda: _children(server), message="the worker process")
    server.kill()  # no chance to stop anything
    wait_for(lambda: process_gone(child), timeout=30, message="the orphan to follow it")


def test_by_default_serve_has_a_worker_process_per_core_but_one(deployment: Deployment) -> None:
    cores = len(os.sched_getaffinity(0))
    server = deployment.server(workers=None)
    processes = cores - 1
    said = {0: "0 processes, 1 loop", 1: "1 process, 0 loops"}.get(
        processes, f"{processes} processes, 0 loops"
    )
    assert f"workers: {said} in the API's process" in server.log()
    wait_for(lambda: len(_children(server)) == processes, message="the worker processes")
    done = wait_status(server.client(), submit(server.client(), "core.noop")["id"], "completed")
    assert done["executor"] is not None
