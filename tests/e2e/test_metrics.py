"""GET /metrics as Prometheus scrapes it: who may read it, and figures that match what
happened (requests by route, executions by final status, the queue, the workers)."""

from __future__ import annotations

from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support import (
    ADMIN_TOKEN,
    Deployment,
    free_port,
    new_project,
    submit,
    wait_for,
    wait_status,
)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return found


def value(found: dict[Any, float], name: str, **labels: str) -> float | None:
    return found.get((name, tuple(sorted(labels.items()))))


def test_metrics_count_requests_executions_queue_and_workers(deployment: Deployment) -> None:
    port = free_port()
    server = deployment.server(workers=1, EXECD_METRICS_PORT=str(port))
    admin = server.client(ADMIN_TOKEN)
    _, _, token = new_project(admin)
    api = server.client(token)
    done = [wait_status(api, submit(api, "core.shell", {"cmd": f"exit {i % 2}"})["id"])
            for i in range(4)]  # fmt: skip
    assert [d["status"] for d in done] == ["completed", "failed"] * 2
    for d in done:
        assert api.get(f"/api/v1/executions/{d['id']}").status_code == 200

    assert httpx.get(f"{server.url}/metrics", timeout=10).status_code == 401
    refused = api.get("/metrics")  # a project's token: not an operator of the service
    assert refused.status_code == 403 and "system admin" in refused.json()["error"]
    scraped = admin.get("/metrics")
    assert scraped.status_code == 200
    assert scraped.headers["content-type"].startswith("text/plain; version=")
    found = samples(scraped.text)
    route = "/api/v1/executions/{execution_id}"
    reads = value(found, "execd_http_requests_total", method="GET", route=route, status="200")
    assert reads is not None and reads >= 4
    latency = value(found, "execd_http_request_duration_seconds_count", method="GET", route=route)
    assert latency == reads
    ended = {"action": "core.shell"}
    assert value(found, "execd_executions_ended_total", status="completed", **ended) == 2
    assert value(found, "execd_executions_ended_total", status="failed", **ended) == 2
    assert value(found, "execd_executions_submitted_total", **ended) == 4
    assert value(found, "execd_queue_depth", priority="normal") in (None, 0)
    assert value(found, "execd_workers", state="active") == 1
    assert (value(found, "execd_worker_slots", use="total") or 0) >= 1
    assert value(found, "execd_open_streams") == 0
    # What the worker ran reaches the scrape with its next heartbeat.
    worker = {"worker": _worker_name(admin)}

    def run_figures() -> dict[Any, float] | None:
        found = samples(admin.get("/metrics").text)
        runs = value(found, "execd_execution_run_seconds_count", **worker)
        return found if runs == 4 else None

    found = wait_for(run_figures, timeout=10, message="the worker's run figures")
    assert value(found, "execd_executions_started_total", action="core.shell", **worker) == 4
    assert value(found, "execd_execution_wait_seconds_count", **worker) == 4
    assert value(found, "execd_execution_wait_seconds_bucket", le="+Inf", **worker) == 4
    runs = [value(found, "execd_execution_run_seconds_bucket", le=le, **worker)
            for le in ("0.01", "3600.0", "+Inf")]  # fmt: skip
    assert runs[0] is not None and runs[0] <= runs[1] == runs[2] == 4
    assert 0 < (value(found, "execd_execution_run_seconds_sum", **worker) or 0) < 60

    # The same figures without a token, on the port of their own.
    apart = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    assert apart.status_code == 200
    failed = value(samples(apart.text), "execd_executions_ended_total", status="failed", **ended)
    assert failed == 2
    assert httpx.get(f"http://127.0.0.1:{port}/other", timeout=10).status_code == 404


def _worker_name(admin: httpx.Client) -> str:
    workers = admin.get("/api/v1/workers").json()["data"]
    assert len(workers) == 1
    name: str = workers[0]["name"]
    return name


def test_metrics_can_be_open_or_off(deployment: Deployment) -> None:
    opened = deployment.server(workers=0, EXECD_METRICS="open")
    assert httpx.get(f"{opened.url}/metrics", timeout=10).status_code == 200
    off = deployment.server(workers=0, EXECD_METRICS="off")
    assert off.client(ADMIN_TOKEN).get("/metrics").status_code == 404


def test_metrics_cover_worker_processes(deployment: Deployment) -> None:
    """`execd serve` runs executions in worker processes of its own: the API process's
    scrape still counts every run, whichever process ran it."""
    server = deployment.server(workers=None, EXECD_WORKER_PROCESSES="2")
    admin = server.client(ADMIN_TOKEN)
    _, _, token = new_project(admin)
    api = server.client(token)
    ids = [submit(api, "core.shell", {"cmd": "true"})["id"] for _ in range(6)]
    assert {wait_status(api, i)["status"] for i in ids} == {"completed"}

    def counted() -> dict[str, float] | None:
        found = samples(admin.get("/metrics").text)
        by_worker = {
            dict(labels)["worker"]: count
            for (name, labels), count in found.items()
            if name == "execd_execution_run_seconds_count"
        }
        return by_worker if sum(by_worker.values()) == 6 else None

    by_worker = wait_for(counted, timeout=10, message="six runs counted")
    # Counted in the worker processes, not in the one that answered the scrape.
    pids = {w["name"]: w["pid"] for w in admin.get("/api/v1/workers").json()["data"]}
    assert len(pids) == 2 and server.pid not in pids.values()
    assert set(by_worker) <= set(pids)
