"""The reliability contract (DESIGN.md section 4) on a real server process."""

from __future__ import annotations

import concurrent.futures
import contextlib
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psutil

from tests.support import (
    Deployment,
    get,
    history,
    new_project,
    process_gone,
    submit,
    wait_for,
    wait_status,
)


def test_failing_command_ends_failed_with_its_stderr(client: httpx.Client) -> None:
    execution = submit(client, "core.shell", {"cmd": "echo partial; echo 'disk full' >&2; exit 3"})
    done = wait_status(client, execution["id"])
    assert done["status"] == "failed"
    assert done["exit_code"] == 3
    assert done["error"] == "exit code 3: disk full"
    assert done["result"] == {"return_code": 3, "stdout": "partial\n", "stderr": "disk full\n"}


def test_timeout_kills_the_process(client: httpx.Client) -> None:
    execution = submit(client, "core.sleep", {"seconds": 60}, timeout=1)
    done = wait_status(client, execution["id"], timeout=20)
    assert done["status"] == "timeout"
    assert done["error"] == "timed out after 1 second"
    assert done["pid"] is not None
    assert process_gone(done["pid"])
    assert 1.0 <= done["duration_ms"] / 1000 < 10


def test_cancel_running_command_kills_its_children(client: httpx.Client) -> None:
    script = "sleep 300 & echo child=$!; sh -c 'sleep 300' & wait"
    execution = submit(client, "core.shell", {"cmd": script})
    wait_status(client, execution["id"], "running")

    def child_pid() -> int | None:
        out = client.get(f"/api/v1/executions/{execution['id']}/output/stdout").text
        return int(out.split("=")[1]) if out.startswith("child=") else None

    child = wait_for(child_pid, message="child pid on stdout")
    main_pid = wait_for(lambda: get(client, execution["id"])["pid"], message="pid recorded")
    grandchildren = [p.pid for p in psutil.Process(main_pid).children(recursive=True)]
    # The action printed its child's pid in the sandbox's PID namespace: the host knows
    # that process by another pid, and lists the namespace's pid last in NSpid.
    assert child in [_innermost_pid(pid) for pid in grandchildren] and len(grandchildren) >= 2

    response = client.post(f"/api/v1/executions/{execution['id']}/cancel")
    assert response.status_code == 200
    assert response.json()["data"]["status"] in {"canceling", "cancelled"}
    again = client.post(f"/api/v1/executions/{execution['id']}/cancel")
    assert again.status_code in (200, 409)  # idempotent while canceling

    done = wait_status(client, execution["id"])
    assert done["status"] == "cancelled"
    for pid in [main_pid, *grandchildren]:
        wait_for(lambda pid=pid: process_gone(pid), timeout=10, message=f"pid {pid} gone")
    steps = [(e["from_status"], e["to_status"]) for e in history(client, execution["id"])]
    assert steps[-2:] == [("running", "canceling"), ("canceling", "cancelled")]


def _innermost_pid(host_pid: int) -> int | None:
    with open(f"/proc/{host_pid}/status") as status:
        for line in status:
            if line.startswith("NSpid:"):
                return int(line.split()[-1])
    return None


def test_cancel_finished_execution_is_409(client: httpx.Client) -> None:
    execution = submit(client, "core.noop")
    wait_status(client, execution["id"], "completed")
    response = client.post(f"/api/v1/executions/{execution['id']}/cancel")
    assert response.status_code == 409
    assert response.json() == {
        "error": f"Execution {execution['id']} is already completed",
        "status": 409,
    }


def test_cancel_before_start_needs_no_worker(client: httpx.Client) -> None:
    execution = submit(client, "core.noop", delay=3600)
    response = client.post(f"/api/v1/executions/{execution['id']}/cancel")
    assert response.json()["data"]["status"] == "cancelled"
    assert [e["to_status"] for e in history(client, execution["id"])] == [
        "requested",
        "cancelled",
    ]


def test_idempotency_key_returns_the_first_execution(client: httpx.Client) -> None:
    body = {"action_ref": "core.echo", "parameters": {"message": "once"}, "idempotency_key": "k-1"}

    def post(_: int) -> httpx.Response:
        return client.post("/api/v1/executions/execute", json=body)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(post, range(16)))
    assert sorted(r.status_code for r in responses) == [200] * 15 + [201]
    assert len({r.json()["data"]["id"] for r in responses}) == 1
    replay = client.post(
        "/api/v1/executions/execute",
        json={"action_ref": "core.echo", "parameters": {"message": "once"}},
        headers={"Idempotency-Key": "k-1"},
    )
    assert replay.status_code == 200 and replay.headers["idempotent-replayed"] == "true"
    assert replay.json()["data"]["id"] == responses[0].json()["data"]["id"]
    different = client.post(
        "/api/v1/executions/execute", json={**body, "parameters": {"message": "twice"}}
    )
    assert different.status_code == 409
    assert client.get("/api/v1/executions").json()["pagination"]["total_items"] == 1


def test_not_before_is_honoured(client: httpx.Client) -> None:
    due = datetime.now(UTC) + timedelta(seconds=3)
    execution = submit(client, "core.noop", not_before=due.isoformat())
    assert execution["status"] == "requested"
    time.sleep(1.5)  # well before it is due: it must still be waiting
    assert get(client, execution["id"])["status"] == "requested"
    done = wait_status(client, execution["id"], "completed", timeout=15)
    started = datetime.fromisoformat(done["started"].replace("Z", "+00:00"))
    assert started >= due - timedelta(milliseconds=1)
    naive = client.post(
        "/api/v1/executions/execute",
        json={"action_ref": "core.noop", "not_before": "2030-01-01T00:00:00"},
    )
    assert naive.status_code == 400


def test_higher_priority_runs_first(deployment: Deployment) -> None:
    server = deployment.server(workers=1, EXECD_WORKER_CONCURRENCY="1")
    client = server.client()
    blocker = submit(client, "core.sleep", {"seconds": 1.5})
    wait_status(client, blocker["id"], "running")
    order = ["low", "normal", "critical", "high", "normal", "critical"]
    # Work that holds a slot (a built-in such as core.noop runs in the claim itself,
    # holding none, so those claimed together start together).
    ids = [submit(client, "core.sleep", {"seconds": 0}, priority=p)["id"] for p in order]
    done = [wait_status(client, i, "completed") for i in ids]
    started = sorted(done, key=lambda e: (e["started"], e["id"]))
    assert [e["priority"] for e in started] == [
        "critical",
        "critical",
        "high",
        "normal",
        "normal",
        "low",
    ]
    assert [e["id"] for e in started if e["priority"] == "critical"] == [ids[2], ids[5]]


def test_failures_are_retried_by_policy_with_a_link(client: httpx.Client) -> None:
    action = {
        "ref": "flaky.job",
        "runner": "shell",
        "entry_point": 'test "$EXECD_ATTEMPT" -ge 3',
        "retry": {"max_attempts": 3, "retry_on": ["failed"], "delay": 0.2, "backoff": 2},
    }
    assert client.post("/api/v1/actions", json=action).status_code == 201
    first = submit(client, "flaky.job")
    assert wait_status(client, first["id"])["status"] == "failed"

    def attempt_of(retry_of: int) -> dict[str, Any] | None:
        executions = client.get("/api/v1/executions", params={"action_ref": "flaky.job"}).json()
        for summary in executions["data"]:
            full = get(client, summary["id"])
            if full["retry_of"] == retry_of:
                return full
        return None

    second = wait_for(lambda: attempt_of(first["id"]), message="second attempt")
    assert second["attempt"] == 2
    assert wait_status(client, second["id"])["status"] == "failed"
    third = wait_for(lambda: attempt_of(second["id"]), message="third attempt")
    done = wait_status(client, third["id"])
    assert (done["status"], done["attempt"]) == ("completed", 3)
    assert attempt_of(third["id"]) is None


def test_worker_killed_mid_job_is_requeued_then_completed(deployment: Deployment) -> None:
    server = deployment.server(workers=0)
    client = server.client()
    first = deployment.worker("w-doomed")
    execution = submit(client, "core.sleep", {"seconds": 2})
    running = _running_with_pid(client, execution["id"])
    first.kill()
    requeued = wait_status(client, execution["id"], {"scheduling"}, timeout=20)
    assert requeued["attempt"] == 2
    assert requeued["executor"] is None and requeued["pid"] is None
    assert requeued["started"] is None  # the next run starts afresh
    deployment.worker("w-rescue")
    done = wait_status(client, execution["id"], "completed", timeout=30)
    assert done["attempt"] == 2
    assert done["executor"] != running["executor"]
    messages = [e["message"] or "" for e in history(client, execution["id"])]
    assert any("lease expired" in m and "requeued as attempt 2 of 3" in m for m in messages)
    _kill_orphan(running["pid"])


def test_worker_killed_with_no_attempts_left_is_abandoned(deployment: Deployment) -> None:
    server = deployment.server(workers=0)
    client = server.client()
    action = {
        "ref": "once.only",
        "runner": "command",
        "entry_point": ["sleep", "30"],
        "retry": {"max_attempts": 1},
    }
    assert client.post("/api/v1/actions", json=action).status_code == 201
    worker = deployment.worker("w-once")
    execution = submit(client, "once.only")
    running = _running_with_pid(client, execution["id"])
    worker.kill()
    done = wait_status(client, execution["id"], timeout=20)
    assert done["status"] == "abandoned"
    assert "no attempts are left" in done["error"]
    _kill_orphan(running["pid"])


def test_execution_survives_a_server_killed_after_201(deployment: Deployment) -> None:
    server = deployment.server(workers=0)
    client = server.client()
    acknowledged: list[int] = []

    def post(_: int) -> None:
        try:
            response = client.post("/api/v1/executions/execute", json={"action_ref": "core.noop"})
        except httpx.HTTPError:
            return
        if response.status_code == 201:
            acknowledged.append(response.json()["data"]["id"])

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(post, i) for i in range(400)]
        wait_for(lambda: len(acknowledged) >= 50, message="some acknowledged submissions")
        server.kill()
        concurrent.futures.wait(futures)
    assert acknowledged
    restarted = deployment.server(workers=1)
    check = restarted.client()
    for execution_id in acknowledged:
        assert check.get(f"/api/v1/executions/{execution_id}").status_code == 200
    for execution_id in acknowledged[-5:]:
        wait_status(check, execution_id, "completed")


def test_graceful_shutdown_hands_back_unfinished_work(deployment: Deployment) -> None:
    server = deployment.server(workers=0)
    client = server.client()
    worker = deployment.worker("w-leaving", EXECD_SHUTDOWN_GRACE_SECONDS="1")
    quick = submit(client, "core.sleep", {"seconds": 0.2})
    long = submit(client, "core.sleep", {"seconds": 30})
    wait_status(client, quick["id"], "completed")
    running = _running_with_pid(client, long["id"])
    assert worker.stop(timeout=20) == 0
    back = wait_status(client, long["id"], {"scheduling"}, timeout=10)
    assert back["attempt"] == 1  # handing back does not consume an attempt
    assert process_gone(running["pid"])
    workers = client.get("/api/v1/workers").json()["data"]
    assert [w["state"] for w in workers if w["name"] == "w-leaving"] == ["offline"]
    client.post(f"/api/v1/executions/{long['id']}/cancel")


def test_worker_registry(deployment: Deployment) -> None:
    server = deployment.server(workers=0)
    client = server.client()
    deployment.worker("w-reg", EXECD_WORKER_CONCURRENCY="3", EXECD_WORKER_LABELS="gpu,eu")

    def registered() -> dict[str, Any] | None:
        for node in client.get("/api/v1/workers").json()["data"]:
            if node["name"] == "w-reg" and node["cpu_percent"] is not None:
                return node
        return None

    node = wait_for(registered, message="worker heartbeat")
    assert node["capacity"] == 3 and node["labels"] == ["gpu", "eu"]
    assert node["state"] == "active" and node["memory_bytes"]
    submit(client, "core.sleep", {"seconds": 2})
    wait_for(
        lambda: any(n["active"] == 1 for n in client.get("/api/v1/workers").json()["data"]),
        message="active count",
    )
    # Workers are shared by all tenants: other callers see the load, not the machines.
    _, _, token = new_project(client, role="operator")
    (seen,) = [
        n
        for n in server.client(token).get("/api/v1/workers").json()["data"]
        if n["name"] == "w-reg"
    ]
    assert seen["capacity"] == 3 and seen["state"] == "active"
    assert seen["host"] is None and seen["pid"] is None and seen["memory_bytes"] is None
    assert node["host"] and node["pid"]


def _running_with_pid(client: httpx.Client, execution_id: int) -> dict[str, Any]:
    wait_status(client, execution_id, "running")
    return wait_for(lambda: (e := get(client, execution_id))["pid"] and e, message="pid recorded")


def _kill_orphan(pid: int) -> None:
    """A SIGKILLed worker cannot stop its run: the test cleans up what the OS keeps."""
    assert pid
    with contextlib.suppress(psutil.Error):
        psutil.Process(pid).kill()


def test_a_second_worker_under_a_live_workers_name_is_refused(deployment: Deployment) -> None:
    deployment.server(workers=0)
    first = deployment.worker("w-twin")
    wait_for(lambda: "running" in first.log(), timeout=20, message="first worker up")
    second = deployment.worker("w-twin")
    assert second.popen is not None
    assert second.popen.wait(timeout=30) == 2
    assert "already running" in second.log()
    assert first.alive()


def test_a_killed_workers_action_processes_die_with_it(deployment: Deployment) -> None:
    """SIGKILL leaves a worker no chance to stop what it runs: what it started (the
    action and the processes the action started) must not run on without it, or the
    run would go on beside its retry. The sandbox's process tree dies with the worker
    (bubblewrap's --die-with-parent and a PID namespace of its own)."""
    server = deployment.server(workers=0)
    client = server.client()
    worker = deployment.worker("w-parent")
    script = "sleep 300 & sh -c 'sleep 300' & sleep 300"
    execution = submit(client, "core.shell", {"cmd": script})
    running = _running_with_pid(client, execution["id"])
    tree = wait_for(
        lambda: found if len(found := _tree(running["pid"])) >= 4 else None,
        message="the action and its children",
    )
    worker.kill()
    for process in tree:
        wait_for(lambda p=process: _gone(p), timeout=10, message=f"pid {process.pid} gone")


def _tree(pid: int) -> list[psutil.Process]:
    with contextlib.suppress(psutil.Error):
        top = psutil.Process(pid)
        return [top, *top.children(recursive=True)]
    return []


def _gone(process: psutil.Process) -> bool:
    try:
        return not process.is_running() or process.status() == psutil.STATUS_ZOMBIE
    except psutil.Error:
        return True
