"""The v1 API beyond its document (issue 5, part 1): retry, bulk cancel and delete,
time ranges, cursor paging and streamed export, against a real server."""

from __future__ import annotations

import csv
import io
import json
import time

import httpx
import psutil

from tests.support import Deployment, get, history, insert_ended, submit, wait_status


def _define(client: httpx.Client, ref: str, script: str, **kw: object) -> None:
    body = {"ref": ref, "runner": "shell", "entry_point": script, **kw}
    assert client.post("/api/v1/actions", json=body).status_code == 201


def test_retry_runs_it_again_with_overrides_and_a_link(client: httpx.Client) -> None:
    _define(
        client,
        "ops.check",
        'test "$PARAM_MODE" = good',
        parameters={"type": "object", "properties": {"mode": {"type": "string"}}},
    )
    failed = wait_status(client, submit(client, "ops.check", {"mode": "bad"})["id"])
    assert failed["status"] == "failed"
    response = client.post(
        f"/api/v1/executions/{failed['id']}/retry",
        json={"parameters": {"mode": "good"}, "priority": "high"},
    )
    assert response.status_code == 201, response.text
    retried = response.json()["data"]
    assert retried["retry_of"] == failed["id"] and retried["priority"] == "high"
    assert retried["config"] == {"mode": "good"}
    assert wait_status(client, retried["id"])["status"] == "completed"
    assert any("retry of execution" in (e["message"] or "") for e in history(client, retried["id"]))

    bad = client.post(f"/api/v1/executions/{failed['id']}/retry", json={"parameters": {"mode": 3}})
    assert bad.status_code == 400 and bad.json()["status"] == 400
    _define(client, "ops.slow", "sleep 30")
    running = submit(client, "ops.slow")
    wait_status(client, running["id"], "running")
    early = client.post(f"/api/v1/executions/{running['id']}/retry")
    assert early.status_code == 409
    client.post(f"/api/v1/executions/{running['id']}/cancel")
    assert client.post("/api/v1/executions/999999/retry").status_code == 404


def test_cancel_is_idempotent_while_canceling_and_cascades_to_children(
    deployment: Deployment,
) -> None:
    # A kill grace of 5 s and a script that ignores SIGTERM keep the parent in
    # `canceling` until the grace runs out, so the second cancel meets it there.
    server = deployment.server(workers=2, EXECD_KILL_GRACE_SECONDS="5")
    client = server.client()
    stubborn = "trap '' TERM; echo ready; while :; do sleep 0.1; done"
    _define(client, "ops.stubborn", stubborn, timeout=120)
    parent = submit(client, "ops.stubborn")
    wait_status(client, parent["id"], "running")
    running_child = submit(client, "ops.stubborn", parent=parent["id"])
    wait_status(client, running_child["id"], "running")
    queued_child = submit(client, "core.noop", parent=parent["id"], delay=600)
    grandchild = submit(client, "core.noop", parent=queued_child["id"], delay=600)

    first = client.post(f"/api/v1/executions/{parent['id']}/cancel")
    assert first.status_code == 200, first.text
    assert first.json()["data"]["status"] == "canceling"
    again = client.post(f"/api/v1/executions/{parent['id']}/cancel")
    assert again.status_code == 200, again.text
    assert again.json()["data"]["status"] == "canceling"
    # The cascade reached every descendant: the queued ones end at once, the
    # running child is asked to stop like its parent.
    assert get(client, queued_child["id"])["status"] == "cancelled"
    assert get(client, grandchild["id"])["status"] == "cancelled"
    assert get(client, running_child["id"])["status"] == "canceling"
    steps = [(e["from_status"], e["to_status"]) for e in history(client, parent["id"])]
    assert steps.count(("running", "canceling")) == 1, "the second cancel changed nothing"

    # After the grace the worker kills them; then a cancel is a conflict.
    for execution in (parent, running_child):
        assert wait_status(client, execution["id"], timeout=30)["status"] == "cancelled"
    late = client.post(f"/api/v1/executions/{parent['id']}/cancel")
    assert late.status_code == 409
    assert late.json() == {
        "error": f"Execution {parent['id']} is already cancelled",
        "status": 409,
    }


def test_bulk_cancel_and_delete_answer_per_id(client: httpx.Client) -> None:
    _define(client, "ops.wait", "sleep 30")
    waiting = [submit(client, "ops.wait", delay=600)["id"] for _ in range(3)]
    done = wait_status(client, submit(client, "core.echo", {"message": "x"})["id"])
    cancelled = client.post(
        "/api/v1/executions/bulk/cancel", json={"ids": [*waiting[:2], done["id"], 999999]}
    )
    assert cancelled.status_code == 200, cancelled.text
    results = {r["id"]: r["result"] for r in cancelled.json()["data"]}
    assert results == {
        waiting[0]: "cancelled",
        waiting[1]: "cancelled",
        done["id"]: "finished",
        999999: "not_found",
    }
    assert cancelled.json()["summary"] == {"cancelled": 2, "finished": 1, "not_found": 1}
    by_filter = client.post(
        "/api/v1/executions/bulk/cancel",
        json={"filter": {"status": "requested", "action_ref": "ops.wait"}},
    ).json()
    assert {r["id"] for r in by_filter["data"]} == {waiting[2]}

    deleted = client.post(
        "/api/v1/executions/bulk/delete", json={"ids": [waiting[0], done["id"], 999999]}
    ).json()
    assert {r["id"]: r["result"] for r in deleted["data"]} == {
        waiting[0]: "deleted",
        done["id"]: "deleted",
        999999: "not_found",
    }
    assert client.get(f"/api/v1/executions/{done['id']}").status_code == 404
    _define(client, "ops.busy", "sleep 30")
    busy = submit(client, "ops.busy")
    wait_status(client, busy["id"], "running")
    refused = client.post("/api/v1/executions/bulk/delete", json={"ids": [busy["id"]]}).json()
    assert refused["data"] == [{"id": busy["id"], "result": "not_finished"}]
    client.post(f"/api/v1/executions/{busy['id']}/cancel")
    for body in ({}, {"ids": [1], "filter": {}}, {"ids": list(range(1, 1002))}):
        assert client.post("/api/v1/executions/bulk/delete", json=body).status_code == 400


def test_time_ranges_cursors_and_export(client: httpx.Client) -> None:
    before = time.time()
    ids = [submit(client, "core.noop")["id"] for _ in range(7)]
    for execution_id in ids:
        wait_status(client, execution_id)
    iso_before = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(before - 1)) + "Z"
    in_range = client.get("/api/v1/executions", params={"created_after": iso_before}).json()
    assert in_range["pagination"]["total_items"] == 7
    none = client.get("/api/v1/executions", params={"created_before": iso_before}).json()
    assert none["data"] == []
    updated = client.get("/api/v1/executions", params={"updated_after": iso_before}).json()
    assert len(updated["data"]) == 7

    seen: list[int] = []
    cursor = ""  # an empty cursor starts cursor paging
    while True:
        params: dict[str, object] = {"per_page": 3, "cursor": cursor}
        body = client.get("/api/v1/executions", params=params).json()
        seen += [e["id"] for e in body["data"]]
        cursor = body["pagination"]["next_cursor"]
        if not cursor:
            break
    assert seen == ids[::-1]
    quick = client.get("/api/v1/executions", params={"include_total": "false"}).json()
    assert quick["pagination"]["total_items"] is None and len(quick["data"]) == 7
    bad = client.get("/api/v1/executions", params={"cursor": "nonsense"})
    assert bad.status_code == 400

    lines = client.get("/api/v1/executions/export", params={"format": "jsonl"})
    assert lines.status_code == 200 and lines.headers["content-type"] == "application/x-ndjson"
    records = [json.loads(line) for line in lines.text.splitlines()]
    assert [r["id"] for r in records] == ids[::-1]
    assert records[0] == get(client, ids[-1])
    table = client.get("/api/v1/executions/export", params={"format": "csv", "status": "completed"})
    rows = list(csv.DictReader(io.StringIO(table.text)))
    assert [int(r["id"]) for r in rows] == ids[::-1]
    assert rows[0]["action_ref"] == "core.noop" and rows[0]["status"] == "completed"
    assert client.get("/api/v1/executions/export", params={"format": "xml"}).status_code == 400


def test_bulk_by_filter_says_when_more_match(deployment: Deployment) -> None:
    server = deployment.server(workers=0)
    client = server.client()
    insert_ended(deployment.database_url, client, 1205)
    body = {"filter": {"status": "completed", "action_ref": "core.noop"}}
    first = client.post("/api/v1/executions/bulk/delete", json=body).json()
    assert first["summary"] == {"deleted": 1000} and first["more"] is True
    second = client.post("/api/v1/executions/bulk/delete", json=body).json()
    assert second["summary"] == {"deleted": 205} and second["more"] is False
    assert client.get("/api/v1/executions").json()["pagination"]["total_items"] == 0
    by_ids = client.post("/api/v1/executions/bulk/cancel", json={"ids": [1]}).json()
    assert by_ids["more"] is False and by_ids["data"] == [{"id": 1, "result": "not_found"}]


def test_an_export_of_100000_executions_streams_in_flat_memory(deployment: Deployment) -> None:
    server = deployment.server(workers=0)
    client = server.client()
    insert_ended(deployment.database_url, client, 100_000)

    process = psutil.Process(server.pid)
    before = process.memory_info().rss
    peak = before
    count = 0
    with client.stream("GET", "/api/v1/executions/export", params={"format": "jsonl"}) as reply:
        assert reply.status_code == 200
        for line in reply.iter_lines():
            if line:
                count += 1
            if count % 5000 == 0:
                peak = max(peak, process.memory_info().rss)
    assert count == 100_000
    # 100,000 rows are about 60 MB of JSON lines; the server holds a batch at a time.
    assert peak - before < 40 * 1024 * 1024, (before, peak)
