"""Flows and the flow history API against a real server, on both backends."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import pytest

from tests.support import process_gone, wait_for

TERMINAL = {"PASSED", "FAILED", "CANCELLED"}


# -- helpers ---------------------------------------------------------------------------


def define(client: httpx.Client, name: str, steps: list[dict[str, Any]], **kw: Any) -> str:
    response = client.post("/api/flows", json={"name": name, "steps": steps, **kw})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["success"] is True and body["message"] and body["timestamp"].endswith("Z")
    flow_id: str = body["flow"]["id"]
    return flow_id


def run(client: httpx.Client, flow_id: str, **body: Any) -> dict[str, Any]:
    response = client.post(f"/api/flows/{flow_id}/execute", json=body)
    assert response.status_code == 201, response.text
    execution: dict[str, Any] = response.json()["execution"]
    return execution


def detail(client: httpx.Client, execution_id: str) -> dict[str, Any]:
    response = client.get(f"/api/history/executions/{execution_id}")
    assert response.status_code == 200, response.text
    execution: dict[str, Any] = response.json()["execution"]
    return execution


def wait_flow(
    client: httpx.Client, execution_id: str, statuses: set[str] = TERMINAL, timeout: float = 30
) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        execution = detail(client, execution_id)
        return execution if execution["status"] in statuses else None

    return wait_for(reached, timeout=timeout, message=f"flow {execution_id} in {statuses}")


def error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["success"] is False and body["code"] == code, body
    assert set(body) == {"success", "error", "code", "message"}
    assert body["error"] and body["message"]
    return body


def echo(message: str, **kw: Any) -> dict[str, Any]:
    return {"action": "core.echo", "parameters": {"message": message}, **kw}


def shell(cmd: str, **kw: Any) -> dict[str, Any]:
    return {"action": "core.shell", "parameters": {"cmd": cmd}, **kw}


# -- definitions -----------------------------------------------------------------------


def test_flows_are_defined_listed_changed_and_deleted(client: httpx.Client) -> None:
    first = define(client, "first", [echo("a")], description="one step")
    second = define(client, "second", [echo("b"), echo("c", name="third", timeout=5)])
    got = client.get(f"/api/flows/{second}").json()["flow"]
    assert got["name"] == "second" and got["id"] == second
    assert got["steps"][1] == {
        "name": "third",
        "action": "core.echo",
        "flowId": None,
        "parameters": {"message": "c"},
        "timeout": 5,
        "continueOnFailure": False,
    }
    page = client.get("/api/flows", params={"limit": 1}).json()
    assert [f["id"] for f in page["flows"]] == [second]
    assert page["pagination"] == {"limit": 1, "offset": 0, "total": 2, "hasMore": True}
    rest = client.get("/api/flows", params={"limit": 1, "offset": 1}).json()
    assert [f["id"] for f in rest["flows"]] == [first] and not rest["pagination"]["hasMore"]

    changed = client.put(f"/api/flows/{first}", json={"name": "renamed", "steps": [echo("z")]})
    assert changed.status_code == 200 and changed.json()["flow"]["name"] == "renamed"
    # A name is unique in the project, as a ref is: a flow is found by it.
    taken = error(
        client.post("/api/flows", json={"name": "second", "steps": [echo("d")]}), 409, "FLOW_EXISTS"
    )
    assert second in taken["message"]
    error(
        client.put(f"/api/flows/{first}", json={"name": "second", "steps": [echo("z")]}),
        409,
        "FLOW_EXISTS",
    )
    kept = client.put(f"/api/flows/{second}", json={"name": "second", "steps": [echo("e")]})
    assert kept.status_code == 200, kept.text
    gone = client.delete(f"/api/flows/{first}")
    assert gone.status_code == 200 and gone.json()["flowId"] == first
    error(client.get(f"/api/flows/{first}"), 404, "FLOW_NOT_FOUND")
    error(client.get("/api/flows/not-a-uuid"), 404, "FLOW_NOT_FOUND")
    error(
        client.put(f"/api/flows/{uuid.uuid4()}", json={"name": "x", "steps": [echo("a")]}),
        404,
        "FLOW_NOT_FOUND",
    )


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"name": "x", "steps": []}, "INVALID_INPUT"),
        ({"name": "", "steps": [{"action": "core.noop"}]}, "INVALID_INPUT"),
        ({"name": "x", "steps": [{"name": "neither"}]}, "INVALID_FLOW"),
        ({"name": "x", "steps": [{"action": "core.noop", "flowId": "f"}]}, "INVALID_FLOW"),
        ({"name": "x", "steps": [{"action": "core.noop", "timeout": 0}]}, "INVALID_INPUT"),
        ({"name": "x", "steps": [{"action": "core.noop"}], "unknown": 1}, "INVALID_INPUT"),
    ],
)
def test_bad_definitions_are_refused(client: httpx.Client, body: dict[str, Any], code: str) -> None:
    error(client.post("/api/flows", json=body), 400, code)


@pytest.mark.parametrize(
    ("step", "code"),
    [
        ({"action": "no.such"}, "ACTION_NOT_FOUND"),
        ({"flowId": str(uuid.UUID(int=1))}, "FLOW_NOT_FOUND"),
    ],
)
def test_a_step_naming_what_does_not_exist_is_not_found(
    client: httpx.Client, step: dict[str, Any], code: str
) -> None:
    body = error(client.post("/api/flows", json={"name": "x", "steps": [step]}), 404, code)
    assert "in this project" in body["message"]


def test_a_flow_that_calls_itself_is_refused(client: httpx.Client) -> None:
    leaf = define(client, "leaf", [echo("leaf")])
    middle = define(client, "middle", [{"flowId": leaf}])
    top = define(client, "top", [{"flowId": middle}])
    direct = client.put(f"/api/flows/{top}", json={"name": "top", "steps": [{"flowId": top}]})
    error(direct, 400, "FLOW_CYCLE")
    through = client.put(f"/api/flows/{leaf}", json={"name": "leaf", "steps": [{"flowId": top}]})
    body = error(through, 400, "FLOW_CYCLE")
    assert leaf in body["message"] and top in body["message"]
    # Still as it was, and still runnable.
    assert client.get(f"/api/flows/{leaf}").json()["flow"]["steps"][0]["action"] == "core.echo"
    # A flow another flow calls cannot be deleted from under it.
    error(client.delete(f"/api/flows/{middle}"), 409, "FLOW_IN_USE")


# -- running ---------------------------------------------------------------------------


def test_nested_sub_flows_run_in_order_with_templated_parameters(client: httpx.Client) -> None:
    inner = define(
        client,
        "inner",
        [
            echo("inner {{ parameters.who }}"),
            {"action": "core.echo", "parameters": {"message": "{{ parameters.who }}"}},
        ],
        parameters={"who": "nobody"},
    )
    middle = define(
        client,
        "middle",
        [echo("middle"), {"flowId": inner, "parameters": {"who": "{{ parameters.user }}"}}],
    )
    outer = define(
        client,
        "Login Flow",
        [
            {
                "name": "launch_app",
                "action": "core.shell",
                "parameters": {"cmd": 'echo "step one for $1"', "args": ["{{ parameters.user }}"]},
            },
            {
                "flowId": middle,
                "name": "middle part",
                "parameters": {"user": "{{ parameters.user }}"},
            },
            echo("done with {{ parameters.count }} items, flow {{ flowName }}"),
        ],
    )
    started = run(client, outer, parameters={"user": "ann", "count": 3})
    assert started["status"] in {"PENDING", "RUNNING"} and started["executionType"] == "PARENT"
    assert started["flowId"] == outer and started["flow"] == {"name": "Login Flow"}
    done = wait_flow(client, started["id"])
    assert done["status"] == "PASSED", done
    assert done["stepSummary"] == {"total": 3, "passed": 3, "failed": 0, "skipped": 0}
    steps = done["steps"]
    assert [s["sequenceNumber"] for s in steps] == [1, 2, 3]
    assert [s["status"] for s in steps] == ["PASSED"] * 3
    assert steps[0]["name"] == "launch_app" and steps[0]["action"] == "core.shell"
    assert steps[0]["executionData"]["stdout"] == "step one for ann\n"
    assert steps[1]["executionType"] == "SUBFLOW" and steps[1]["action"] == "flow:middle"
    assert steps[2]["executionData"] == {"message": "done with 3 items, flow Login Flow"}
    assert (
        steps[0]["endTime"] <= steps[1]["startTime"] <= steps[1]["endTime"] <= steps[2]["startTime"]
    )
    assert done["startTime"] <= steps[0]["startTime"] and done["endTime"] >= steps[2]["endTime"]
    assert done["durationMs"] >= 0 and done["durationFormatted"].endswith("s")

    # The sub-flows are executions of their own, linked to their parents.
    middle_run = detail(client, steps[1]["id"])
    assert (
        middle_run["executionType"] == "SUBFLOW" and middle_run["parentExecutionId"] == done["id"]
    )
    inner_step = middle_run["steps"][1]
    inner_run = detail(client, inner_step["id"])
    assert inner_run["parentExecutionId"] == middle_run["id"]
    assert [s["executionData"] for s in inner_run["steps"]] == [
        {"message": "inner ann"},
        {"message": "ann"},
    ]

    # The same tree in the v1 dialect, with its integer parent links.
    v1 = client.get("/api/v1/executions", params={"per_page": 100}).json()["data"]
    by_uuid = {}
    for item in v1:
        full = client.get(f"/api/v1/executions/{item['id']}").json()["data"]
        by_uuid[full["uuid"]] = full
    parent = by_uuid[done["id"]]
    assert parent["action_ref"] == "core.flow" and parent["status"] == "completed"
    assert by_uuid[steps[0]["id"]]["parent"] == parent["id"]
    assert by_uuid[middle_run["id"]]["parent"] == parent["id"]
    assert by_uuid[inner_run["id"]]["parent"] == by_uuid[middle_run["id"]]["id"]
    assert by_uuid[inner_run["id"]]["root"] == parent["id"]


def test_a_failed_step_fails_the_flow_and_the_rest_are_skipped(client: httpx.Client) -> None:
    flow = define(client, "breaks", [echo("fine"), shell("echo broken >&2; exit 3"), echo("never")])
    done = wait_flow(client, run(client, flow)["id"])
    assert done["status"] == "FAILED"
    assert [s["status"] for s in done["steps"]] == ["PASSED", "FAILED", "SKIPPED"]
    assert done["steps"][2]["id"] is None and done["steps"][2]["executionData"] is None
    assert done["steps"][1]["errorMessage"] == "exit code 3: broken"
    assert done["errorMessage"].startswith("step 2 (core.shell) ended failed")
    assert done["stepSummary"] == {"total": 3, "passed": 1, "failed": 1, "skipped": 1}


def test_a_step_retried_by_its_policy_keeps_the_flow_waiting(client: httpx.Client) -> None:
    action = {
        "ref": "flaky.once",
        "runner": "shell",
        "entry_point": 'test "$EXECD_ATTEMPT" = 2 || { echo "try $EXECD_ATTEMPT" >&2; exit 1; }',
        "retry": {"max_attempts": 2, "retry_on": ["failed"], "delay": 0},
    }
    assert client.post("/api/v1/actions", json=action).status_code == 201
    flow = define(client, "retrying", [{"action": "flaky.once"}, echo("after")])
    done = wait_flow(client, run(client, flow)["id"])
    assert done["status"] == "PASSED", done
    assert [s["status"] for s in done["steps"]] == ["PASSED", "PASSED"]
    assert done["steps"][0]["attempt"] == 2


def test_continue_on_failure_lets_the_flow_go_on(client: httpx.Client) -> None:
    flow = define(client, "tolerant", [shell("exit 1", continueOnFailure=True), echo("after")])
    done = wait_flow(client, run(client, flow)["id"])
    assert done["status"] == "PASSED"
    assert [s["status"] for s in done["steps"]] == ["FAILED", "PASSED"]
    assert done["steps"][0]["continueOnFailure"] is True


def test_a_step_that_times_out_fails_the_flow_with_the_reason(client: httpx.Client) -> None:
    flow = define(
        client, "slow", [{"action": "core.sleep", "parameters": {"seconds": 30}, "timeout": 0.5}]
    )
    done = wait_flow(client, run(client, flow)["id"])
    assert done["status"] == "FAILED"
    assert "timed out" in done["steps"][0]["errorMessage"] and "timeout" in done["errorMessage"]


def test_cancelling_a_flow_stops_its_running_step_and_skips_the_rest(client: httpx.Client) -> None:
    flow = define(client, "long", [shell("sleep 60"), echo("never")])
    started = run(client, flow)

    def step_running() -> dict[str, Any] | None:
        first = detail(client, started["id"])["steps"][0]
        return first if first["status"] == "RUNNING" and first["id"] else None

    first = wait_for(step_running, message="first step running")
    v1_ids = {
        client.get(f"/api/v1/executions/{e['id']}").json()["data"]["uuid"]: e["id"]
        for e in client.get("/api/v1/executions", params={"per_page": 100}).json()["data"]
    }
    pid = wait_for(
        lambda: client.get(f"/api/v1/executions/{v1_ids[first['id']]}").json()["data"]["pid"],
        message="step pid",
    )
    cancel = client.post(f"/api/flows/executions/{started['id']}/cancel")
    assert cancel.status_code == 200, cancel.text
    assert cancel.json()["execution"]["status"] in {"RUNNING", "CANCELLED"}
    done = wait_flow(client, started["id"])
    assert done["status"] == "CANCELLED"
    assert [s["status"] for s in done["steps"]] == ["CANCELLED", "SKIPPED"]
    again = client.post(f"/api/flows/executions/{started['id']}/cancel")
    error(again, 409, "EXECUTION_FINISHED")
    error(client.post(f"/api/flows/executions/{uuid.uuid4()}/cancel"), 404, "EXECUTION_NOT_FOUND")

    # The v1 dialect cancels flows too (by the integer id).
    second = run(client, flow)
    wait_for(lambda: detail(client, second["id"])["steps"][0]["status"] == "RUNNING", message="run")
    v1_id = next(
        e["id"]
        for e in client.get("/api/v1/executions", params={"per_page": 100}).json()["data"]
        if client.get(f"/api/v1/executions/{e['id']}").json()["data"]["uuid"] == second["id"]
    )
    assert client.post(f"/api/v1/executions/{v1_id}/cancel").status_code == 200
    assert wait_flow(client, second["id"])["status"] == "CANCELLED"
    wait_for(lambda: process_gone(pid), timeout=15, message="step process gone")


# -- the history API -------------------------------------------------------------------


def test_history_lists_filter_and_page(client: httpx.Client) -> None:
    sub = define(client, "sub", [echo("s")])
    good = define(client, "good", [echo("g"), {"flowId": sub}])
    bad = define(client, "bad", [shell("exit 2")])
    runs = [run(client, good)["id"] for _ in range(3)] + [run(client, bad)["id"]]
    for execution_id in runs:
        wait_flow(client, execution_id)

    def history(**query: Any) -> dict[str, Any]:
        response = client.get("/api/history/executions", params=query)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        assert body["success"] is True and body["message"] == "Executions retrieved successfully"
        return body

    everything = history()
    assert everything["pagination"] == {"limit": 50, "offset": 0, "total": 7, "hasMore": False}
    assert everything["filters"] == {
        "status": None,
        "flowId": None,
        "deviceId": None,
        "startDate": None,
        "endDate": None,
        "executionType": None,
        "lite": False,
    }
    ids = [e["id"] for e in everything["executions"]]
    assert all("steps" in e for e in everything["executions"])

    parents = history(executionType="PARENT")["executions"]
    assert [e["id"] for e in parents] == runs[::-1]  # newest first
    subflows = history(executionType="subflow")["executions"]
    assert len(subflows) == 3 and all(e["flowId"] == sub for e in subflows)
    assert {e["parentExecutionId"] for e in subflows} == set(runs[:3])

    failed = history(status="FAILED")
    assert [e["id"] for e in failed["executions"]] == [runs[3]]
    assert failed["filters"]["status"] == "FAILED"
    assert len(history(status="passed")["executions"]) == 6
    assert [e["id"] for e in history(flowId=bad)["executions"]] == [runs[3]]

    lite = history(lite="true", limit=2, offset=1)
    assert [e["id"] for e in lite["executions"]] == ids[1:3]
    assert all("steps" not in e and "stepSummary" in e for e in lite["executions"])
    assert lite["pagination"] == {"limit": 2, "offset": 1, "total": 7, "hasMore": True}
    assert lite["filters"]["lite"] is True

    now = time.time()
    assert history(startDate=_iso(now + 3600))["pagination"]["total"] == 0
    assert history(endDate=_iso(now - 3600))["pagination"]["total"] == 0
    assert history(startDate=_iso(now - 3600), endDate=_iso(now + 3600))["pagination"]["total"] == 7
    assert history(endDate=time.strftime("%Y-%m-%d", time.gmtime(now)))["pagination"]["total"] == 7


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ({"status": "DONE"}, "INVALID_STATUS"),
        ({"limit": "0"}, "INVALID_LIMIT"),
        ({"limit": "1001"}, "INVALID_LIMIT"),
        ({"limit": "ten"}, "INVALID_LIMIT"),
        ({"offset": "-1"}, "INVALID_OFFSET"),
        ({"startDate": "yesterday"}, "INVALID_DATE"),
        ({"endDate": "2024-13-45"}, "INVALID_DATE"),
        ({"startDate": "2024-02-01", "endDate": "2024-01-01"}, "INVALID_DATE_RANGE"),
        ({"executionType": "CHILD"}, "INVALID_EXECUTION_TYPE"),
        ({"lite": "maybe"}, "INVALID_BOOLEAN"),
    ],
)
def test_history_refuses_bad_queries(
    client: httpx.Client, query: dict[str, str], code: str
) -> None:
    error(client.get("/api/history/executions", params=query), 400, code)


def test_history_of_one_flow(client: httpx.Client) -> None:
    flow = define(client, "often", [echo("x")])
    other = define(client, "other", [echo("y")])
    runs = [run(client, flow)["id"] for _ in range(22)]
    run(client, other)
    for execution_id in runs:
        wait_flow(client, execution_id)
    body = client.get(f"/api/history/executions/flows/{flow}").json()
    assert body["success"] is True and body["flowId"] == flow
    assert body["count"] == 20 and len(body["executions"]) == 20  # default limit
    assert [e["id"] for e in body["executions"]] == runs[::-1][:20]
    assert body["message"] == "Flow executions retrieved successfully"
    five = client.get(f"/api/history/executions/flows/{flow}", params={"limit": 5}).json()
    assert five["count"] == 5
    none = client.get(f"/api/history/executions/flows/{flow}", params={"status": "FAILED"}).json()
    assert none["count"] == 0 and none["executions"] == []
    error(client.get("/api/history/executions/flows/"), 400, "MISSING_FLOW_ID")
    error(
        client.get(f"/api/history/executions/flows/{flow}", params={"status": "x"}),
        400,
        "INVALID_STATUS",
    )


def test_one_execution_in_detail_and_the_not_found_error(client: httpx.Client) -> None:
    flow = define(client, "detailed", [echo("hello")])
    done = wait_flow(client, run(client, flow)["id"])
    assert done["executionData"] == {
        "stepSummary": {"total": 1, "passed": 1, "failed": 0, "skipped": 0}
    }
    assert done["errorMessage"] is None and done["updatedAt"] >= done["createdAt"]
    assert done["steps"][0]["executionData"] == {"message": "hello"}
    assert done["steps"][0]["errorMessage"] is None
    missing = str(uuid.uuid4())
    body = error(client.get(f"/api/history/executions/{missing}"), 404, "EXECUTION_NOT_FOUND")
    assert body == {
        "success": False,
        "error": "Flow execution not found",
        "code": "EXECUTION_NOT_FOUND",
        "message": f"Flow execution with ID {missing} not found",
    }
    # A step is not a flow execution; another project's flow execution is not visible.
    error(
        client.get(f"/api/history/executions/{done['steps'][0]['id']}"), 404, "EXECUTION_NOT_FOUND"
    )


def test_statistics_are_computed_over_the_window(client: httpx.Client) -> None:
    good = define(client, "stat-good", [echo("x")])
    bad = define(client, "stat-bad", [shell("exit 1")])
    for flow in (good, good, good, bad):
        wait_flow(client, run(client, flow)["id"])
    body = client.get("/api/history/execution-stats").json()
    assert body["success"] is True
    stats = body["stats"]
    assert stats["totalExecutions"] == 4
    assert stats["statusBreakdown"] == {"PASSED": 3, "FAILED": 1}
    assert stats["successRate"] == "75.0%" and stats["completedCount"] == 4
    assert isinstance(stats["averageExecutionTimeMs"], int)
    assert stats["averageExecutionTimeFormatted"].endswith("s")
    assert body["filters"] == {
        "flowId": None,
        "deviceId": None,
        "days": 30,
        "startDate": None,
        "endDate": None,
        "executionType": None,
        "status": None,
    }
    only_good = client.get(
        "/api/history/execution-stats", params={"flowId": good, "days": 7}
    ).json()
    assert only_good["stats"]["successRate"] == "100.0%" and only_good["filters"]["days"] == 7
    future = client.get(
        "/api/history/execution-stats", params={"startDate": _iso(time.time() + 60)}
    )
    assert future.json()["stats"] == {
        "totalExecutions": 0,
        "statusBreakdown": {},
        "averageExecutionTimeMs": 0,
        "averageExecutionTimeFormatted": "0.00s",
        "successRate": "0.0%",
        "completedCount": 0,
    }
    by_status = client.get("/api/history/execution-stats", params={"status": "failed"}).json()
    assert by_status["stats"]["statusBreakdown"] == {"FAILED": 1}
    assert (
        by_status["stats"]["successRate"] == "0.0%" and by_status["filters"]["status"] == "FAILED"
    )
    subflows = client.get("/api/history/execution-stats", params={"executionType": "SUBFLOW"})
    assert subflows.json()["stats"]["totalExecutions"] == 0
    parents = client.get("/api/history/execution-stats", params={"executionType": "PARENT"})
    assert parents.json()["stats"]["totalExecutions"] == 4
    ranged = client.get(
        "/api/history/execution-stats",
        params={"startDate": _iso(time.time() - 600), "endDate": _iso(time.time() + 600)},
    ).json()
    assert ranged["stats"]["totalExecutions"] == 4
    error(client.get("/api/history/execution-stats", params={"days": "0"}), 400, "INVALID_DAYS")
    error(
        client.get("/api/history/execution-stats", params={"status": "OK"}), 400, "INVALID_STATUS"
    )


def test_requests_without_a_token_get_the_dialects_error(client: httpx.Client) -> None:
    anonymous = httpx.Client(base_url=str(client.base_url))
    error(anonymous.get("/api/history/executions"), 401, "UNAUTHORIZED")
    error(anonymous.get("/api/flows"), 401, "UNAUTHORIZED")
    error(anonymous.get("/api/devices"), 401, "UNAUTHORIZED")


def test_flow_parameters_that_feed_secrets_are_masked(client: httpx.Client) -> None:
    action = {
        "ref": "vault.login",
        "runner": "shell",
        "entry_point": 'test "$PARAM_PASSWORD" = hunter2',
        "parameters": {
            "type": "object",
            "properties": {
                "password": {"type": "string", "secret": True},
                "user": {"type": "string"},
            },
        },
    }
    assert client.post("/api/v1/actions", json=action).status_code == 201
    inner = define(
        client,
        "login",
        [
            {
                "action": "vault.login",
                "parameters": {"password": "{{ parameters.pw }}", "user": "{{ parameters.who }}"},
            }
        ],
    )
    outer = define(
        client,
        "outer login",
        [
            {
                "flowId": inner,
                "parameters": {"pw": "{{ parameters.secret }}", "who": "{{ parameters.name }}"},
            }
        ],
    )
    started = run(client, outer, parameters={"secret": "hunter2", "name": "ann"})
    done = wait_flow(client, started["id"])
    assert done["status"] == "PASSED", done  # the action got the real value
    assert done["parameters"] == {"secret": "********", "name": "ann"}
    sub = detail(client, done["steps"][0]["id"])
    assert sub["parameters"] == {"pw": "********", "who": "ann"}
    listed = client.get("/api/history/executions").json()["executions"]
    assert "hunter2" not in str(listed) and "hunter2" not in str(sub)
    for item in client.get("/api/v1/executions", params={"per_page": 100}).json()["data"]:
        assert "hunter2" not in str(client.get(f"/api/v1/executions/{item['id']}").json())


def test_a_plan_that_expands_too_far_is_refused(client: httpx.Client) -> None:
    wide = define(client, "wide", [echo("x")] * 200)
    wider = define(client, "wider", [{"flowId": wide}] * 20)
    error(client.post(f"/api/flows/{wider}/execute", json={}), 400, "PLAN_TOO_LARGE")
    assert (
        client.get("/api/history/executions", params={"flowId": wider}).json()["executions"] == []
    )


@pytest.mark.parametrize(
    "raw",
    [
        b'{"name": "x", "steps": [{"action": "core.echo", "parameters": {"message": "\\ud800"}}]}',
        b'{"name": "x", "parameters": {"a": '
        + b"[" * 200
        + b"]" * 200
        + b'}, "steps": [{"action": "core.noop"}]}',
    ],
    ids=["lone-surrogate", "too-deep"],
)
def test_text_and_nesting_the_store_cannot_hold_are_refused(
    client: httpx.Client, raw: bytes
) -> None:
    response = client.post("/api/flows", content=raw, headers={"Content-Type": "application/json"})
    error(response, 400, "INVALID_INPUT")


def test_templates_cannot_build_what_the_store_cannot_hold(client: httpx.Client) -> None:
    flow = define(
        client, "deep", [{"action": "core.echo", "parameters": {"message": "{{ parameters.m }}"}}]
    )
    deep: Any = "x"
    for _ in range(120):
        deep = [deep]
    # Valid input (120 levels), but placed 3 levels down in the compiled plan: too deep.
    response = client.post(f"/api/flows/{flow}/execute", json={"parameters": {"m": deep}})
    error(response, 400, "INVALID_PARAMETERS")


def test_two_changes_at_once_cannot_make_a_cycle_together(client: httpx.Client) -> None:
    from concurrent.futures import ThreadPoolExecutor

    a = define(client, "a", [echo("a")])
    b = define(client, "b", [echo("b")])
    names = {a: "a", b: "b"}
    for _ in range(5):
        with ThreadPoolExecutor(2) as pool:
            answers = list(
                pool.map(
                    lambda pair: client.put(
                        f"/api/flows/{pair[0]}",
                        json={"name": names[pair[0]], "steps": [{"flowId": pair[1]}]},
                    ),
                    [(a, b), (b, a)],
                )
            )
        assert sorted(r.status_code for r in answers) == [200, 400], [r.text for r in answers]
        for flow_id in (a, b):  # undo
            undone = {"name": names[flow_id], "steps": [echo("x")]}
            assert client.put(f"/api/flows/{flow_id}", json=undone).status_code == 200
