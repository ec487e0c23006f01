"""The v1 executions API as its specification describes it, against a real server."""

from __future__ import annotations

import httpx

from tests.support import Server, get, new_project, submit, wait_status


def test_submit_runs_to_completion_and_reads_back(client: httpx.Client) -> None:
    created = submit(client, "core.echo", {"message": "hello"})
    assert created["status"] in {"requested", "scheduling", "scheduled", "running", "completed"}
    assert isinstance(created["id"], int)

    done = wait_status(client, created["id"], "completed")
    assert done["result"] == {"message": "hello"}
    assert done["action_ref"] == "core.echo"
    assert done["config"] == {"message": "hello"}
    assert done["action"] is None  # built-in actions have no integer id
    assert isinstance(done["executor"], int)
    assert done["parent"] is None and done["enforcement"] is None
    for key in ("created", "updated"):
        assert done[key].endswith("Z")
    assert done["started"] <= done["ended"]


def test_list_is_newest_first_with_documented_envelope(client: httpx.Client) -> None:
    ids = [submit(client, "core.noop")["id"] for _ in range(5)]
    body = client.get("/api/v1/executions", params={"per_page": 2, "page": 1}).json()
    assert [e["id"] for e in body["data"]] == ids[::-1][:2]
    assert body["pagination"] == {"page": 1, "page_size": 2, "total_items": 5, "total_pages": 3}
    assert set(body["data"][0]) == {
        "id",
        "action_ref",
        "status",
        "parent",
        "enforcement",
        "created",
        "updated",
    }
    third = client.get("/api/v1/executions", params={"per_page": 2, "page": 3}).json()
    assert [e["id"] for e in third["data"]] == [ids[0]]
    beyond = client.get("/api/v1/executions", params={"per_page": 2, "page": 9}).json()
    assert beyond["data"] == [] and beyond["pagination"]["total_items"] == 5


def test_filters_are_applied(shared_server: Server, admin: httpx.Client) -> None:
    _, _, token = new_project(admin)
    client = shared_server.client(token)
    action = {
        "ref": "monitoring.check",
        "runner": "shell",
        "entry_point": 'echo "{\\"state\\": \\"$PARAM_STATE\\"}" > "$EXECD_RESULT_FILE"',
        "parameters": {"type": "object", "properties": {"state": {"type": "string"}}},
    }
    assert client.post("/api/v1/actions", json=action).status_code == 201
    ok = submit(client, "monitoring.check", {"state": "all good"})
    bad = submit(client, "monitoring.check", {"state": "Connection TIMEOUT"})
    echo = submit(client, "core.echo", {"message": "fine"})
    for execution in (ok, bad, echo):
        wait_status(client, execution["id"], "completed")
    parent_child = submit(client, "core.noop", parent=echo["id"])

    def ids(**params: object) -> list[int]:
        response = client.get("/api/v1/executions", params=params)
        assert response.status_code == 200, response.text
        return [e["id"] for e in response.json()["data"]]

    assert ids(pack_name="monitoring") == [bad["id"], ok["id"]]
    assert ids(action_ref="core.echo") == [echo["id"]]
    assert ids(result_contains="timeout") == [bad["id"]]  # case-insensitive
    assert ids(result_contains="TIMEOUT", pack_name="monitoring", status="completed") == [bad["id"]]
    assert ids(status="failed") == []
    assert sorted(ids(status="failed,completed")) == sorted(ids(status="completed"))
    bad_list = client.get("/api/v1/executions", params={"status": "completed,nope"})
    assert bad_list.json() == {"error": "Invalid execution status: nope", "status": 400}
    assert ids(parent=echo["id"]) == [parent_child["id"]]
    assert ids(result_contains="100%_") == []  # LIKE wildcards are literal


def test_invalid_status_is_400_in_the_documented_shape(client: httpx.Client) -> None:
    response = client.get("/api/v1/executions/status/invalid_status")
    assert response.status_code == 400
    assert response.json() == {"error": "Invalid execution status: invalid_status", "status": 400}
    response = client.get("/api/v1/executions", params={"status": "nope"})
    assert response.status_code == 400
    assert response.json()["status"] == 400


def test_by_status_lists_only_that_status(client: httpx.Client) -> None:
    done = submit(client, "core.noop")
    failing = submit(client, "core.shell", {"cmd": "exit 1"})
    wait_status(client, done["id"], "completed")
    wait_status(client, failing["id"], "failed")
    body = client.get("/api/v1/executions/status/failed").json()
    assert [e["id"] for e in body["data"]] == [failing["id"]]
    assert body["pagination"]["total_items"] == 1
    completed = client.get("/api/v1/executions/status/completed", params={"per_page": 50}).json()
    assert [e["id"] for e in completed["data"]] == [done["id"]]


def test_get_unknown_execution_is_404(client: httpx.Client) -> None:
    response = client.get("/api/v1/executions/999999")
    assert response.status_code == 404
    assert response.json() == {"error": "Execution with ID 999999 not found", "status": 404}


def test_per_page_above_100_holds_100_and_bad_pages_are_400(client: httpx.Client) -> None:
    # The document's "max 100" is the most a page holds; page_size is per_page's alias.
    for params in ({"per_page": 101}, {"page_size": 5000}):
        response = client.get("/api/v1/executions", params=params)
        assert response.status_code == 200 and response.json()["pagination"]["page_size"] == 100
    aliased = client.get("/api/v1/executions", params={"page_size": 3}).json()
    assert aliased["pagination"]["page_size"] == 3
    for params in ({"per_page": 0}, {"page_size": 0}, {"page": 0}, {"page": "x"}):
        response = client.get("/api/v1/executions", params=params)
        assert response.status_code == 400, params
        assert set(response.json()) == {"error", "status"}


def test_stats_count_every_execution(client: httpx.Client) -> None:
    runs = [submit(client, "core.noop") for _ in range(3)]
    failing = submit(client, "core.shell", {"cmd": "exit 2"})
    for execution in runs:
        wait_status(client, execution["id"], "completed")
    wait_status(client, failing["id"], "failed")
    delayed = submit(client, "core.noop", delay=3600)
    assert delayed["status"] == "requested"
    stats = client.get("/api/v1/executions/stats").json()["data"]
    assert stats == {
        "total": 5,
        "completed": 3,
        "failed": 1,
        "running": 0,
        "pending": 1,
        "cancelled": 0,
        "timeout": 0,
        "abandoned": 0,
    }


def test_history_records_every_status_change(client: httpx.Client) -> None:
    execution = submit(client, "core.echo", {"message": "x"})
    wait_status(client, execution["id"], "completed")
    events = client.get(f"/api/v1/executions/{execution['id']}/history").json()["data"]
    assert [(e["from_status"], e["to_status"]) for e in events] == [
        (None, "requested"),
        ("requested", "scheduling"),
        ("scheduling", "scheduled"),
        ("scheduled", "running"),
        ("running", "completed"),
    ]


def test_output_is_kept_and_capped(shared_server: Server, client: httpx.Client) -> None:
    execution = submit(client, "core.shell", {"cmd": "echo to-out; echo to-err >&2"})
    wait_status(client, execution["id"], "completed")
    out = client.get(f"/api/v1/executions/{execution['id']}/output/stdout")
    err = client.get(f"/api/v1/executions/{execution['id']}/output/stderr")
    assert (out.status_code, out.text) == (200, "to-out\n")
    assert (err.status_code, err.text) == (200, "to-err\n")
    assert client.get(f"/api/v1/executions/{execution['id']}/output/nope").status_code == 400


def test_unknown_action_and_bad_parameters_are_rejected(client: httpx.Client) -> None:
    unknown = client.post("/api/v1/executions/execute", json={"action_ref": "nope.nothing"})
    assert unknown.status_code == 404
    assert unknown.json() == {"error": "Action nope.nothing not found", "status": 404}
    malformed = client.post("/api/v1/executions/execute", json={"action_ref": "no-dot"})
    assert malformed.status_code == 400
    missing = client.post("/api/v1/executions/execute", json={"action_ref": "core.sleep"})
    assert missing.status_code == 400
    assert "seconds" in missing.json()["error"]
    wrong_type = client.post(
        "/api/v1/executions/execute",
        json={"action_ref": "core.sleep", "parameters": {"seconds": "soon"}},
    )
    assert wrong_type.status_code == 400
    extra = client.post("/api/v1/executions/execute", json={"action_ref": "core.noop", "x": 1})
    assert extra.status_code == 400
    bad_priority = client.post(
        "/api/v1/executions/execute", json={"action_ref": "core.noop", "priority": "urgent"}
    )
    assert bad_priority.status_code == 400
    not_json = client.post(
        "/api/v1/executions/execute",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert not_json.status_code == 400
    assert client.get("/api/v1/executions").json()["pagination"]["total_items"] == 0


def test_secret_parameters_are_masked(client: httpx.Client) -> None:
    action = {
        "ref": "deploy.push",
        "runner": "shell",
        "entry_point": 'test "$PARAM_PASSWORD" = hunter2',
        "parameters": {
            "type": "object",
            "properties": {
                "user": {"type": "string"},
                "password": {"type": "string", "secret": True},
            },
            "required": ["user", "password"],
        },
    }
    assert client.post("/api/v1/actions", json=action).status_code == 201
    execution = submit(client, "deploy.push", {"user": "ann", "password": "hunter2"})
    assert execution["config"] == {"user": "ann", "password": "********"}
    done = wait_status(client, execution["id"])
    assert done["status"] == "completed"  # the real value reached the script
    assert "hunter2" not in str(get(client, execution["id"]))
