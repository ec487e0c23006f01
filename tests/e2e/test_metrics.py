"""GET /metrics as Prometheus scrapes it: who may read it, and figures that match what
happened (requests by route, executions by final status, the queue, the workers)."""

from __future__ import annotations

from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support import ADMIN_TOKEN, Deployment, free_port, new_project, submit, wait_status


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
    assert value(found, "execd_executions_ended_total", status="completed") == 2
    assert value(found, "execd_executions_ended_total", status="failed") == 2
    assert value(found, "execd_queue_depth", priority="normal") in (None, 0)
    assert value(found, "execd_workers", state="active") == 1
    assert (value(found, "execd_worker_slots", use="total") or 0) >= 1
    assert value(found, "execd_open_streams") == 0
    assert (value(found, "execd_recent_run_seconds") or -1) >= 0

    # The same figures without a token, on the port of their own.
    apart = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    assert apart.status_code == 200
    assert value(samples(apart.text), "execd_executions_ended_total", status="failed") == 2
    assert httpx.get(f"http://127.0.0.1:{port}/other", timeout=10).status_code == 404


def test_metrics_can_be_open_or_off(deployment: Deployment) -> None:
    opened = deployment.server(workers=0, EXECD_METRICS="open")
    assert httpx.get(f"{opened.url}/metrics", timeout=10).status_code == 200
    off = deployment.server(workers=0, EXECD_METRICS="off")
    assert off.client(ADMIN_TOKEN).get("/metrics").status_code == 404
