"""Devices and history deletion: several real processes sharing one database."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.test_flows import define, detail, echo, error, run, shell, wait_flow
from tests.support import Deployment, new_project, wait_for


def _v1_by_uuid(client: httpx.Client) -> dict[str, dict[str, Any]]:
    found = {}
    page = 1
    while True:
        body = client.get("/api/v1/executions", params={"per_page": 100, "page": page}).json()
        for item in body["data"]:
            full = client.get(f"/api/v1/executions/{item['id']}").json()["data"]
            found[full["uuid"]] = full
        if page >= body["pagination"]["total_pages"]:
            return found
        page += 1


def _workers(client: httpx.Client) -> dict[str, int]:
    return {w["name"]: w["id"] for w in client.get("/api/v1/workers").json()["data"]}


def test_device_routing_one_flow_per_device_and_waiting_devices(deployment: Deployment) -> None:
    server = deployment.server(workers=0)
    client = server.client()
    deployment.worker("w-a", EXECD_WORKER_DEVICES="device-a")
    deployment.worker("w-b", EXECD_WORKER_DEVICES="device-b")
    wait_for(lambda: {"w-a", "w-b"} <= set(_workers(client)), message="both workers registered")
    ids = _workers(client)

    flow = define(
        client, "on device", [shell("sleep 1; echo {{ deviceId }}"), echo("{{ deviceId }}")]
    )
    first_a = run(client, flow, deviceId="device-a")
    second_a = run(client, flow, deviceId="device-a")
    on_b = run(client, flow, deviceId="device-b")
    nobody = run(client, flow, deviceId="device-z")
    assert first_a["deviceId"] == "device-a"

    # While the first flow holds device-a, the second waits; device-b runs meanwhile.
    wait_for(lambda: detail(client, first_a["id"])["status"] == "RUNNING", message="first on a")
    assert detail(client, second_a["id"])["status"] == "PENDING"
    devices = {d["id"]: d for d in client.get("/api/devices").json()["devices"]}
    assert devices["device-a"]["busy"] is True and devices["device-a"]["status"] == "BUSY"
    assert devices["device-a"]["currentExecutionId"] == first_a["id"]
    assert devices["device-a"]["waitingExecutions"] == 1
    assert [w["name"] for w in devices["device-a"]["workers"]] == ["w-a"]
    assert devices["device-z"] == {
        "id": "device-z",
        "status": "OFFLINE",
        "online": False,
        "busy": False,
        "workers": [],
        "currentExecutionId": None,
        "currentFlowId": None,
        "waitingExecutions": 1,
    }

    done = {e["id"]: wait_flow(client, e["id"]) for e in (first_a, second_a, on_b)}
    for execution in done.values():
        assert execution["status"] == "PASSED", execution
    a1, a2 = done[first_a["id"]], done[second_a["id"]]
    assert a1["endTime"] <= a2["startTime"], "device-a ran two flows at once"
    assert a2["steps"][1]["executionData"] == {"message": "device-a"}
    executors = _v1_by_uuid(client)
    for execution, worker in ((a1, "w-a"), (a2, "w-a"), (done[on_b["id"]], "w-b")):
        for step in execution["steps"]:
            assert executors[step["id"]]["executor"] == ids[worker], (step, worker)

    # The history and its statistics filter by device.
    on_a = client.get("/api/history/executions", params={"deviceId": "device-a"}).json()
    assert {e["id"] for e in on_a["executions"]} == {first_a["id"], second_a["id"]}
    assert on_a["filters"]["deviceId"] == "device-a"
    stats_b = client.get("/api/history/execution-stats", params={"deviceId": "device-b"}).json()
    assert stats_b["stats"]["totalExecutions"] == 1 and stats_b["filters"]["deviceId"] == "device-b"

    # Work for a device nobody serves waits; it is not lost, and runs once served.
    assert detail(client, nobody["id"])["status"] == "PENDING"
    deployment.worker("w-z", EXECD_WORKER_DEVICES="device-z")
    assert wait_flow(client, nobody["id"])["status"] == "PASSED"
    devices = {d["id"]: d for d in client.get("/api/devices").json()["devices"]}
    assert devices["device-z"]["online"] is True and devices["device-z"]["status"] == "ONLINE"
    assert devices["device-z"]["waitingExecutions"] == 0


def test_deleting_history_removes_rows_and_files(deployment: Deployment) -> None:
    server = deployment.server(workers=1)
    client = server.client()
    project = client.get("/api/v1/me").json()["data"]["project_id"]
    artifacts = Path(deployment.root) / "data" / "artifacts" / project
    sub = define(client, "writes files", [shell("echo out; echo err >&2")])
    flow = define(client, "to delete", [shell("echo hello"), {"flowId": sub}])
    one = wait_flow(client, run(client, flow)["id"])
    two = wait_flow(client, run(client, flow)["id"])
    tree = [one["id"], one["steps"][0]["id"], one["steps"][1]["id"]]
    sub_run = detail(client, one["steps"][1]["id"])
    tree.append(sub_run["steps"][0]["id"])
    for execution_id in tree[1:2] + tree[3:]:
        assert (artifacts / execution_id / "stdout.log").is_file()
    v1_before = _v1_by_uuid(client)

    # A sub-flow's execution belongs to its parent's history; it goes with it.
    refused = client.delete(f"/api/history/executions/{sub_run['id']}")
    message = error(refused, 409, "EXECUTION_IS_SUBFLOW")["message"]
    # It names the execution to delete instead by its uuid, as the flow API names them all.
    assert one["steps"][1]["id"] in message and not re.search(r"execution \d+;", message)
    deleted = client.delete(f"/api/history/executions/{one['id']}")
    assert deleted.status_code == 200, deleted.text
    body = deleted.json()
    assert body["success"] is True and body["executionId"] == one["id"]
    assert body["message"] == f"Successfully deleted execution {one['id']}"
    error(client.get(f"/api/history/executions/{one['id']}"), 404, "EXECUTION_NOT_FOUND")
    for execution_id in tree:
        assert not (artifacts / execution_id).exists(), execution_id
        v1_id = v1_before[execution_id]["id"]
        assert client.get(f"/api/v1/executions/{v1_id}").status_code == 404
        assert client.get(f"/api/v1/executions/{v1_id}/history").status_code == 404
    assert detail(client, two["id"])["status"] == "PASSED"
    error(client.delete(f"/api/history/executions/{one['id']}"), 404, "EXECUTION_NOT_FOUND")

    # Running executions are not deleted, one by one or by flow.
    slow = define(client, "slow", [shell("sleep 30")])
    running = run(client, slow)
    wait_for(lambda: detail(client, running["id"])["status"] == "RUNNING", message="running")
    error(client.delete(f"/api/history/executions/{running['id']}"), 409, "EXECUTION_RUNNING")
    error(client.delete(f"/api/history/executions/flows/{slow}"), 409, "EXECUTION_RUNNING")
    assert detail(client, running["id"])["status"] == "RUNNING"

    by_flow = client.delete(f"/api/history/executions/flows/{flow}")
    assert by_flow.status_code == 200, by_flow.text
    assert by_flow.json()["deletedCount"] == 1 and by_flow.json()["flowId"] == flow
    assert by_flow.json()["message"] == f"Successfully deleted 1 execution records for flow {flow}"
    assert not (artifacts / two["id"]).exists()
    assert client.get("/api/history/executions", params={"flowId": flow}).json()["executions"] == []
    none_left = client.delete(f"/api/history/executions/flows/{flow}").json()
    assert none_left["deletedCount"] == 0

    error(client.delete("/api/history/executions/"), 400, "MISSING_EXECUTION_ID")
    error(client.delete("/api/history/executions"), 400, "MISSING_EXECUTION_ID")
    missing = error(client.delete("/api/history/executions/flows/"), 400, "MISSING_FLOW_ID")
    assert missing == {
        "success": False,
        "error": "flowId is required",
        "code": "MISSING_FLOW_ID",
        "message": "Flow ID is required to delete execution history",
    }
    client.post(f"/api/v1/executions/{_v1_by_uuid(client)[running['id']]['id']}/cancel")


def test_devices_show_a_workers_default_name_to_system_admins_only(
    deployment: Deployment,
) -> None:
    server = deployment.server(workers=1, EXECD_WORKER_DEVICES="dev-1")
    admin = server.client()
    [worker] = wait_for(lambda: admin.get("/api/v1/workers").json()["data"], message="a worker")
    _, _, token = new_project(admin)

    def serving(client: httpx.Client) -> list[dict[str, Any]]:
        devices = {d["id"]: d for d in client.get("/api/devices").json()["devices"]}
        workers: list[dict[str, Any]] = devices["dev-1"]["workers"]
        return workers

    assert serving(admin) == [{"id": worker["id"], "name": worker["name"], "state": "active"}]
    assert serving(server.client(token)) == [
        {"id": worker["id"], "name": f"worker-{worker['id']}", "state": "active"}
    ]
