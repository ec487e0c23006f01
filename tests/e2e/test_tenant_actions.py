"""The tenant dialect's actions, execute action and action execution history
with result packages, against a real server on both backends."""

from __future__ import annotations

import hashlib
import io
import json
import uuid
import zipfile
from typing import Any

import httpx
import pytest

from tests.support import Server, new_project, wait_for

FINISHED = {"Completed", "Failed", "Cancelled"}


class Tenant:
    """A client for one project's tenant paths."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client
        me = client.get("/api/v1/me").json()["data"]
        self.tenant, self.project = me["tenant_id"], me["project_id"]
        self.base = f"/api/{self.tenant}/{self.project}"

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.client.get(self.base + path, **kw)

    def post(self, path: str, **kw: Any) -> httpx.Response:
        return self.client.post(self.base + path, **kw)

    def define(self, name: str, script: str, **kw: Any) -> str:
        body = {"name": name, "runner": "shell", "entryPoint": script, **kw}
        response = self.post("/action", json=body)
        assert response.status_code == 201, response.text
        action_id: str = response.json()["actionId"]
        return action_id

    def execute(self, action_id: str) -> dict[str, Any]:
        response = self.get(f"/action/execute/{action_id}")
        assert response.status_code == 200, response.text
        execution: dict[str, Any] = response.json()
        return execution

    def wait(self, execution_id: str, statuses: set[str] = FINISHED) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            body: dict[str, Any] = self.get(f"/actionexecution/{execution_id}").json()
            return body if body["status"] in statuses else None

        return wait_for(reached, timeout=30, message=f"{execution_id} in {statuses}")


@pytest.fixture
def tenant(client: httpx.Client) -> Tenant:
    return Tenant(client)


def error(response: httpx.Response, status: int, message: str, **ids: str) -> None:
    assert response.status_code == status, response.text
    assert response.json() == {"error": message, **ids}


# -- access ----------------------------------------------------------------------------


def test_pings_and_a_token_only_reaches_its_own_project(
    tenant: Tenant, shared_server: Server, admin: httpx.Client
) -> None:
    pong = tenant.get("/action/ping")
    assert pong.status_code == 200 and pong.json()["projectId"] == tenant.project
    anonymous = httpx.Client(base_url=shared_server.url)
    assert anonymous.get(tenant.base + "/action/unauthorized-ping").json()["status"] == "ok"
    no_token = anonymous.get(tenant.base + "/action/ping")
    assert no_token.status_code == 401 and no_token.json()["error"]

    _, _, other_token = new_project(admin)
    other = shared_server.client(other_token)
    foreign = other.get(tenant.base + "/action")
    nowhere = other.get(f"/api/{uuid.uuid4()}/{uuid.uuid4()}/action")
    assert foreign.status_code == nowhere.status_code == 401
    assert foreign.json() == nowhere.json()  # says nothing about what exists
    assert other.get(tenant.base + "/actionexecution/" + str(uuid.uuid4())).status_code == 401


# -- actions ---------------------------------------------------------------------------


def test_actions_are_listed_defined_changed_enabled_and_deleted(tenant: Tenant) -> None:
    listed = tenant.get("/action").json()
    builtins = listed["totalCount"]
    assert builtins == len(listed["actions"]) >= 6
    echo = next(a for a in listed["actions"] if a["ref"] == "core.echo")
    assert echo["isBuiltIn"] is True and echo["createdBy"] == "system"

    action_id = tenant.define("nightly-report", "echo ok", description="builds it", maxRunTime=60)
    one = tenant.get(f"/action/{action_id}").json()
    assert one["name"] == "nightly-report" and one["ref"] == "actions.nightly-report"
    assert one["isEnabled"] is True and one["maxRunTime"] == 60
    assert one["lastRunTime"] is None and one["lastRunResult"] is None
    assert one["dateCreated"].endswith("Z") and one["createdBy"] == "test"
    assert tenant.get("/action").json()["totalCount"] == builtins + 1

    changed = tenant.client.put(
        tenant.base + f"/action/{action_id}",
        json={"name": "nightly-report", "runner": "shell", "entryPoint": "exit 2"},
    )
    assert changed.status_code == 200 and changed.json()["entryPoint"] == "exit 2"
    assert changed.json()["dateModified"] >= one["dateModified"]

    disabled = tenant.post(f"/action/{action_id}/disable")
    assert disabled.status_code == 200 and disabled.json()["isEnabled"] is False
    assert tenant.post(f"/action/{action_id}/enable").json()["isEnabled"] is True

    execution = tenant.execute(action_id)
    tenant.wait(execution["actionExecutionId"])
    ran = tenant.get(f"/action/{action_id}").json()
    assert ran["lastRunResult"] == "Failed" and ran["lastRunTime"] is not None

    deleted = tenant.client.delete(tenant.base + f"/action/{action_id}")
    assert deleted.status_code == 200
    error(tenant.get(f"/action/{action_id}"), 404, "Action not found", actionId=action_id)
    # Its executions stay.
    assert tenant.get(f"/actionexecution/{execution['actionExecutionId']}").status_code == 200


def test_bad_action_definitions_are_refused(tenant: Tenant) -> None:
    bad = tenant.post("/action", json={"name": "x", "runner": "teleport"})
    assert bad.status_code == 400 and "runner" in bad.json()["error"]
    missing = tenant.post("/action", json={"runner": "shell"})
    assert missing.status_code == 400 and set(missing.json()) == {"error"}


# -- execute action -----------------------------------------------------------


def test_execute_queues_and_the_execution_runs(tenant: Tenant, client: httpx.Client) -> None:
    action_id = tenant.define("hello", 'echo "hello $PARAM_WHO"', parameters={
        "type": "object", "properties": {"who": {"type": "string", "default": "world"}}
    })  # fmt: skip
    queued = tenant.execute(action_id)
    assert set(queued) == {
        "actionId",
        "actionExecutionId",
        "dateStarted",
        "dateEnded",
        "status",
        "notes",
    }
    assert queued["actionId"] == action_id and queued["status"] in {
        "Queued",
        "Running",
        "Completed",
    }
    assert queued["dateStarted"].endswith("Z")
    done = tenant.wait(queued["actionExecutionId"])
    assert done["status"] == "Completed" and done["notes"] is None and done["dateEnded"]

    posted = tenant.post(f"/action/execute/{action_id}", json={"parameters": {"who": "ann"}})
    assert posted.status_code == 200, posted.text
    tenant.wait(posted.json()["actionExecutionId"])
    # The same execution in the v1 dialect.
    v1 = client.get("/api/v1/executions", params={"per_page": 5}).json()["data"][0]
    full = client.get(f"/api/v1/executions/{v1['id']}").json()["data"]
    assert full["uuid"] == posted.json()["actionExecutionId"]
    assert full["result"]["stdout"] == "hello ann\n"


def test_execute_errors(tenant: Tenant) -> None:
    missing = str(uuid.uuid4())
    error(tenant.get(f"/action/execute/{missing}"), 404, "Action not found", actionId=missing)
    error(tenant.get("/action/execute/not-a-guid"), 404, "Action not found", actionId="not-a-guid")

    needs = tenant.define("needs-input", "true", parameters={
        "type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]
    })  # fmt: skip
    refused = tenant.get(f"/action/execute/{needs}")
    assert refused.status_code == 404
    body = refused.json()
    assert body["error"] == "Action can't create execution" and body["actionId"] == needs
    assert "n" in body["reason"]

    tenant.post(f"/action/{needs}/disable")
    disabled = tenant.post(f"/action/execute/{needs}", json={"parameters": {"n": 1}})
    assert disabled.status_code == 404 and "disabled" in disabled.json()["reason"]


def test_failures_timeouts_and_cancels_are_spelled_as_the_dialect_says(
    tenant: Tenant, client: httpx.Client
) -> None:
    failing = tenant.define("fails", "echo broken >&2; exit 4")
    failed = tenant.wait(tenant.execute(failing)["actionExecutionId"])
    assert failed["status"] == "Failed" and failed["notes"] == "exit code 4: broken"

    slow = tenant.define("slow", "sleep 30", maxRunTime=0.5)
    timed_out = tenant.wait(tenant.execute(slow)["actionExecutionId"])
    assert timed_out["status"] == "Failed" and "timed out" in timed_out["notes"]

    sleeper = tenant.define("sleeper", "sleep 30")
    running = tenant.execute(sleeper)
    tenant.wait(running["actionExecutionId"], {"Running"})
    v1_id = next(
        e["id"]
        for e in client.get("/api/v1/executions", params={"per_page": 20}).json()["data"]
        if client.get(f"/api/v1/executions/{e['id']}").json()["data"]["uuid"]
        == running["actionExecutionId"]
    )
    client.post(f"/api/v1/executions/{v1_id}/cancel")
    assert tenant.wait(running["actionExecutionId"])["status"] == "Cancelled"


# -- action execution history -------------------------------------------------


def test_history_last_and_one_execution(tenant: Tenant) -> None:
    action_id = tenant.define("counted", "echo $EXECD_EXECUTION_UUID")
    error(
        tenant.get(f"/actionexecution/lastaction/{action_id}"),
        404,
        "Can't find action",
        actionId=action_id,
    )
    runs = [tenant.execute(action_id)["actionExecutionId"] for _ in range(3)]
    for run in runs:
        tenant.wait(run)
    items = tenant.get(f"/actionexecution/action/{action_id}").json()["items"]
    assert [i["actionExecutionId"] for i in items] == runs[::-1]
    assert all(i["actionId"] == action_id and i["status"] == "Completed" for i in items)
    page = tenant.get(f"/actionexecution/action/{action_id}", params={"limit": 1, "offset": 1})
    assert [i["actionExecutionId"] for i in page.json()["items"]] == [runs[1]]

    last = tenant.get(f"/actionexecution/lastaction/{action_id}").json()
    assert last["actionExecutionId"] == runs[2]
    one = tenant.get(f"/actionexecution/{runs[0]}").json()
    assert one == items[2]

    missing = str(uuid.uuid4())
    error(tenant.get(f"/actionexecution/{missing}"), 404, "Can't find action", executionId=missing)
    error(
        tenant.get(f"/actionexecution/action/{missing}"), 404, "Can't find action", actionId=missing
    )
    error(
        tenant.get(f"/actionexecution/lastaction/{missing}"),
        404,
        "Can't find action",
        actionId=missing,
    )


def test_result_package_holds_record_result_output_and_artifacts(tenant: Tenant) -> None:
    script = (
        'echo "rows: 3"; echo "careful" >&2; mkdir -p "$EXECD_ARTIFACTS_DIR/charts"; '
        'printf "a,b\\n1,2\\n" > "$EXECD_ARTIFACTS_DIR/data.csv"; '
        'printf "<svg/>" > "$EXECD_ARTIFACTS_DIR/charts/c.svg"; '
        'head -c 3000000 /dev/urandom > "$EXECD_ARTIFACTS_DIR/big.bin"; '
        'echo \'{"rows": 3}\' > "$EXECD_RESULT_FILE"'
    )
    action_id = tenant.define("packager", script)
    run = tenant.execute(action_id)["actionExecutionId"]
    tenant.wait(run)
    response = tenant.get(f"/actionexecution/downloadpackage/{run}")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/zip"
    assert response.headers["content-disposition"] == f'attachment; filename="{run}.zip"'
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert archive.testzip() is None
    names = set(archive.namelist())
    assert names == {
        "manifest.json",
        "execution.json",
        "result.json",
        "stdout.log",
        "stderr.log",
        "artifacts/data.csv",
        "artifacts/charts/c.svg",
        "artifacts/big.bin",
    }
    manifest = json.loads(archive.read("manifest.json"))
    assert manifest["executionId"] == run
    for entry in manifest["files"]:
        data = archive.read(entry["path"])
        assert len(data) == entry["size"]
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
    assert {f["path"] for f in manifest["files"]} == names - {"manifest.json"}
    assert json.loads(archive.read("result.json")) == {"rows": 3}
    assert archive.read("stdout.log") == b"rows: 3\n"
    assert archive.read("artifacts/data.csv") == b"a,b\n1,2\n"
    record = json.loads(archive.read("execution.json"))
    assert record["uuid"] == run and record["status"] == "completed"
    assert [e["to"] for e in record["events"]][-1] == "completed"
    # One spelling throughout the record, inside its usage too.
    keys = set(record) | set(record["usage"] or {})
    assert keys and not [k for k in keys if "_" in k], keys


def test_package_errors(tenant: Tenant) -> None:
    missing = str(uuid.uuid4())
    error(
        tenant.get(f"/actionexecution/downloadpackage/{missing}"),
        404,
        "Execution not found",
        executionId=missing,
    )
    sleeper = tenant.define("still-going", "sleep 30")
    run = tenant.execute(sleeper)["actionExecutionId"]
    error(
        tenant.get(f"/actionexecution/downloadpackage/{run}"),
        404,
        "Zip file not found",
        executionId=run,
    )
