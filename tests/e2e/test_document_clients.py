"""The client code printed in the API documents runs unchanged against execd.

Each API document ends with example clients. They are rewritten here in this
project's own words, but they do what the printed code does, request for request, and
read the answers the way it reads them: a field it subscripts must be there, a figure
it formats as a number must be a number, a status it compares must be spelled its way.
They run against a real server, on both backends.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import IN_CI, Server, new_project, wait_for

FINAL_JOB = ("Completed", "Failed", "Cancelled")
# `make test` installs curl and jq (Debian); CI=true never skips.
needs_curl = pytest.mark.skipif(
    not IN_CI and not (shutil.which("curl") and shutil.which("jq")),
    reason="the documents' curl examples need curl and jq: sudo apt-get install curl jq",
)


class ActionClient:
    """The tenant API's action execution clients (execute action, execution history,
    last execution, one execution, result package, waiting), as printed."""

    def __init__(self, base_url: str, tenant_id: str, project_id: str) -> None:
        self.base = f"{base_url}/api/{tenant_id}/{project_id}"

    def execute_action(self, action_id: str, token: str) -> dict[str, Any]:
        response = httpx.get(
            f"{self.base}/action/execute/{action_id}", headers={"Authorization": f"Bearer {token}"}
        )
        if response.is_success:
            result: dict[str, Any] = response.json()
            print(f"queued: {result}; its execution: {result['actionExecutionId']}")
            return result
        if response.status_code == 404:
            raise LookupError(response.json()["error"])
        raise RuntimeError(f"execution failed: {response.status_code}")

    def history(self, action_id: str, token: str) -> list[dict[str, Any]]:
        response = httpx.get(
            f"{self.base}/actionexecution/action/{action_id}",
            headers={"Authorization": f"Bearer {token}"},
        )
        response.raise_for_status()
        items: list[dict[str, Any]] = response.json()["items"]
        return items

    def last(self, action_id: str, token: str) -> dict[str, Any] | None:
        response = httpx.get(
            f"{self.base}/actionexecution/lastaction/{action_id}",
            headers={"Authorization": f"Bearer {token}"},
        )
        if response.status_code == 404:
            return None
        response.raise_for_status()
        found: dict[str, Any] = response.json()
        return found

    def execution(self, execution_id: str, token: str) -> dict[str, Any]:
        response = httpx.get(
            f"{self.base}/actionexecution/{execution_id}",
            headers={"Authorization": f"Bearer {token}"},
        )
        response.raise_for_status()
        found: dict[str, Any] = response.json()
        return found

    def download(self, execution_id: str, token: str, path: Path) -> Path:
        response = httpx.get(
            f"{self.base}/actionexecution/downloadpackage/{execution_id}",
            headers={"Authorization": f"Bearer {token}"},
        )
        response.raise_for_status()
        path.write_bytes(response.content)
        return path

    def wait(self, execution_id: str, token: str, seconds: float = 60) -> dict[str, Any]:
        began = time.time()
        while time.time() - began < seconds:
            execution = self.execution(execution_id, token)
            if execution["status"] == "Completed":
                return execution
            if execution["status"] == "Failed":
                print(f"failed: {execution.get('notes', 'Unknown error')}")
                return execution
            time.sleep(0.2)  # the printed code waits 5 s; the test has no time to lose
        raise TimeoutError("the execution did not end in time")


class JobManager:
    """The tenant API's job execution client (submit, status, wait, results, system
    status), as printed in its "complete workflow" example."""

    def __init__(self, base_url: str, tenant_id: str, project_id: str, token: str) -> None:
        self.base_url, self.tenant_id, self.project_id = base_url, tenant_id, project_id
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    @property
    def jobs(self) -> str:
        return f"{self.base_url}/api/{self.tenant_id}/{self.project_id}/execution"

    def submit_job(
        self, name: str, job_type: str, kind: str, resource_id: str, parameters: Any, priority: str
    ) -> dict[str, Any]:
        payload = {
            "jobName": name,
            "jobType": job_type,
            "priority": priority,
            "resource": {"resourceType": kind, "resourceId": resource_id},
            "parameters": parameters or {},
            "scheduling": {"executeImmediately": True, "timeoutMinutes": 120},
            "notifications": {"onCompletion": True, "onFailure": True},
        }
        answer: dict[str, Any] = httpx.post(
            f"{self.jobs}/job", json=payload, headers=self.headers
        ).json()
        return answer

    def status(self, job_id: str) -> dict[str, Any]:
        answer: dict[str, Any] = httpx.get(f"{self.jobs}/job/{job_id}", headers=self.headers).json()
        return answer

    def list_jobs(self, **filters: Any) -> dict[str, Any]:
        params = {"page": 1, "pageSize": 20, **filters}
        answer: dict[str, Any] = httpx.get(
            f"{self.jobs}/jobs", params=params, headers=self.headers
        ).json()
        return answer

    def wait_for_completion(self, job_id: str, timeout: float = 60) -> dict[str, Any]:
        began = time.time()
        while time.time() - began < timeout:
            job = self.status(job_id)
            print(f"Job {job_id}: {job['status']} ({job['progress']['percentage']}%)")
            print(f"  stage: {job['progress']['currentStage']}")
            print(f"  elapsed: {job['progress']['elapsedTime']}")
            if job["status"] in FINAL_JOB:
                return job
            time.sleep(0.2)
        raise TimeoutError(f"job {job_id} did not end within {timeout} s")

    def results(self, job_id: str) -> dict[str, Any]:
        params = {"format": "detailed", "includeArtifacts": "true"}
        answer: dict[str, Any] = httpx.get(
            f"{self.jobs}/job/{job_id}/results", params=params, headers=self.headers
        ).json()
        return answer

    def system_status(self) -> dict[str, Any]:
        url = f"{self.base_url}/api/{self.tenant_id}/execution/system/status"
        answer: dict[str, Any] = httpx.get(url, headers=self.headers).json()
        return answer


@pytest.fixture
def project(shared_server: Server, admin: httpx.Client) -> tuple[str, str, str]:
    return new_project(admin)


def test_the_action_execution_clients(
    shared_server: Server, project: tuple[str, str, str], tmp_path: Path
) -> None:
    tenant_id, project_id, token = project
    api = shared_server.client(token)
    action = api.post(
        "/api/v1/actions",
        json={"ref": "docs.greet", "runner": "shell", "entry_point": "echo hello > out.txt"},
    )
    assert action.status_code == 201, action.text
    action_id = action.json()["data"]["uuid"]
    client = ActionClient(shared_server.url, tenant_id, project_id)

    assert client.last(action_id, token) is None  # never run: the printed code's None
    queued = client.execute_action(action_id, token)
    done = client.wait(queued["actionExecutionId"], token)
    assert done["status"] == "Completed" and done["actionId"] == action_id
    assert [e["actionExecutionId"] for e in client.history(action_id, token)] == [
        queued["actionExecutionId"]
    ]
    last = client.last(action_id, token)
    assert last is not None and last["actionExecutionId"] == queued["actionExecutionId"]
    package = client.download(queued["actionExecutionId"], token, tmp_path / "results.zip")
    assert zipfile.is_zipfile(package)
    with pytest.raises(LookupError):  # the printed code raises the error body's message
        client.execute_action("00000000-0000-0000-0000-000000000000", token)


def test_the_job_management_workflow(
    shared_server: Server, project: tuple[str, str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """The job document's usage example on a Pipeline (a flow), step by step, with
    every print it makes; then the history endpoints reach the job by its actionId."""
    tenant_id, project_id, token = project
    api = shared_server.client(token)
    flow = api.post(
        "/api/flows",
        json={
            "name": "Monthly Process Analytics",
            "steps": [
                {
                    "name": "analyse",
                    "action": "core.shell",
                    "parameters": {"cmd": 'echo "<h1>report</h1>" > "$EXECD_ARTIFACTS_DIR/r.html"'},
                }
            ],
        },
    )
    assert flow.status_code == 201, flow.text
    flow_id = flow.json()["flow"]["id"]
    manager = JobManager(shared_server.url, tenant_id, project_id, token)

    system = manager.system_status()
    print(f"System Status: {system['systemStatus']}")
    print(f"Jobs in queue: {system['queueStatistics']['totalQueuedJobs']}")
    print(f"Average wait time: {system['queueStatistics']['averageWaitTime']}")
    parameters = {"analysisType": "comprehensive", "timeWindow": {"startDate": "2024-01-01"}}
    job = manager.submit_job(
        "Monthly Process Analytics", "ProcessMining", "Pipeline", flow_id, parameters, "High"
    )
    print(f"Submitted job: {job['jobId']}")
    print(f"Queue position: {job['queuePosition']}")
    print(f"Estimated start: {job['estimatedStartTime']}")
    final = manager.wait_for_completion(job["jobId"])
    assert final["status"] == "Completed", final
    results = manager.results(job["jobId"])
    print(f"Records processed: {results['summary']['recordsProcessed']:,}")
    print(f"Data quality score: {results['summary']['dataQualityScore']}")
    print(f"Processing efficiency: {results['summary']['processingEfficiency']}%")
    print(f"Download report: {results['results']['primaryOutput']['downloadUrl']}")
    for output in results["results"]["additionalOutputs"]:
        print(f"Download {output['type']}: {output['downloadUrl']}")
    printed = capsys.readouterr().out
    assert "System Status: " in printed and "Records processed: 0" in printed
    assert f"Job {job['jobId']}: Completed (100" in printed
    report = results["results"]["primaryOutput"]["downloadUrl"]
    assert api.get(report).text == "<h1>report</h1>\n"

    listed = manager.list_jobs(status="Completed")
    assert [j["jobId"] for j in listed["jobs"]] == [job["jobId"]]
    # The execution records carry the flow's id as their actionId: so do the history
    # endpoints that look executions up by it.
    history = ActionClient(shared_server.url, tenant_id, project_id)
    last = history.last(flow_id, token)
    assert last is not None and last["actionId"] == flow_id
    assert last["actionExecutionId"] == job["jobId"]
    assert [e["actionExecutionId"] for e in history.history(flow_id, token)] == [job["jobId"]]


# The flow history and v1 documents' examples are curl lines that send no token: they
# run against a server that lets such requests act as an operator of the default
# project (EXECD_ANONYMOUS_ROLE, docs/security.md); the other clients send tokens.
SERVER_ENV = {"EXECD_ANONYMOUS_ROLE": "operator"}
DOCUMENT_HOST = "http://localhost:3000"


def curl(server: Server, *printed: str) -> Any:
    """Runs a curl line as the document prints it (its host replaced by the server's,
    the URL quoted), and answers the JSON body; a status other than 2xx fails."""
    args = [a.replace(DOCUMENT_HOST, server.url) for a in printed]
    done = subprocess.run(
        ["curl", "-s", "-w", "\n%{http_code}", *args], capture_output=True, text=True, timeout=30
    )
    body, _, status = done.stdout.rpartition("\n")
    assert done.returncode == 0 and status.startswith("2"), (printed, status, body)
    return json.loads(body) if body else None


def run_default(admin: httpx.Client, action_ref: str, parameters: dict[str, Any]) -> int:
    """An execution in the default project (where anonymous requests act), ended."""
    created = admin.post(
        "/api/v1/executions/execute", json={"action_ref": action_ref, "parameters": parameters}
    )
    assert created.status_code == 201, created.text
    execution_id: int = created.json()["data"]["id"]
    wait_for(
        lambda: (
            admin.get(f"/api/v1/executions/{execution_id}").json()["data"]["status"]
            in ("completed", "failed")
        ),
        timeout=30,
        message=f"execution {execution_id} ended",
    )
    return execution_id


@needs_curl
def test_the_v1_documents_curl_lines(shared_server: Server, admin: httpx.Client) -> None:
    done = run_default(admin, "core.echo", {"message": "no error here"})
    failed = run_default(admin, "core.shell", {"cmd": "echo timeout >&2; exit 3"})
    trigger = admin.post("/api/v1/triggers", json={"ref": f"doc-{done}", "type": "webhook"})
    assert trigger.status_code == 201, trigger.text
    rule = {"ref": f"doc-{done}", "trigger": f"doc-{done}", "action_ref": "core.noop"}
    assert admin.post("/api/v1/rules", json=rule).status_code == 201
    fired = admin.post(f"/api/v1/webhooks/doc-{done}", json={}).json()["data"]
    enforcement = fired["enforcements"][0]["id"]

    host = DOCUMENT_HOST
    listed = curl(shared_server, f"{host}/api/v1/executions")
    assert {done, failed} <= {e["id"] for e in listed["data"]}
    assert listed["pagination"]["page"] == 1
    for query, expected in [
        ("?status=completed", done),
        ("?action_ref=core.shell", failed),
        ("?pack_name=core", done),
        ("?result_contains=here", done),
        ("?pack_name=core&status=failed&page=1&per_page=50", failed),
        ("?per_page=100", done),
        ("?status=failed&action_ref=core.shell", failed),
    ]:
        found = curl(shared_server, f"{host}/api/v1/executions{query}")
        assert expected in [e["id"] for e in found["data"]], query
    for status in ("running", "scheduled", "abandoned", "timeout"):
        assert curl(shared_server, f"{host}/api/v1/executions/status/{status}")["data"] == []
    assert curl(shared_server, f"{host}/api/v1/executions/status/failed?per_page=10")["data"]
    assert curl(shared_server, f"{host}/api/v1/executions/status/completed?page=1&per_page=50")
    assert curl(shared_server, f"{host}/api/v1/executions/{done}")["data"]["status"] == "completed"
    assert curl(shared_server, f"{host}/api/v1/executions?parent={done}")["data"] == []
    by_rule = curl(shared_server, f"{host}/api/v1/executions/enforcement/{enforcement}")
    assert [e["action_ref"] for e in by_rule["data"]] == ["core.noop"]
    assert curl(shared_server, f"{host}/api/v1/enforcements/{enforcement}")["data"]["id"]
    stats = curl(shared_server, f"{host}/api/v1/executions/stats")
    assert stats["data"]["total"] >= 3 and stats["data"]["failed"] >= 1

    # The document's polling loop, as printed but for its host and execution id.
    loop = f"""
while true; do
  status=$(curl -s {host}/api/v1/executions/{done} | jq -r '.data.status')
  echo "Status: $status"
  if [[ "$status" == "completed" || "$status" == "failed" ]]; then
    break
  fi
  sleep 2
done
""".replace(host, shared_server.url)
    polled = subprocess.run(["bash", "-c", loop], capture_output=True, text=True, timeout=30)
    assert polled.stdout == "Status: completed\n", polled


@needs_curl
def test_the_flow_history_documents_curl_lines(shared_server: Server, admin: httpx.Client) -> None:
    flow = admin.post(
        "/api/flows", json={"name": "flow-456", "steps": [{"action": "core.echo"}]}
    ).json()["flow"]["id"]
    run = admin.post(f"/api/flows/{flow}/execute", json={}).json()["execution"]["id"]
    wait_for(
        lambda: (
            admin.get(f"/api/history/executions/{run}").json()["execution"]["status"] == "PASSED"
        ),
        timeout=30,
        message="the flow passed",
    )
    host = DOCUMENT_HOST
    passed = curl(
        shared_server, "-X", "GET", f"{host}/api/history/executions?status=PASSED&limit=20&offset=0"
    )
    assert run in [e["id"] for e in passed["executions"]]
    of_flow = curl(
        shared_server, "-X", "GET", f"{host}/api/history/executions/flows/{flow}?limit=10"
    )
    assert [e["id"] for e in of_flow["executions"]] == [run]
    one = curl(shared_server, "-X", "GET", f"{host}/api/history/executions/{run}")
    assert one["execution"]["status"] == "PASSED" and one["execution"]["steps"]
    stats = curl(
        shared_server, "-X", "GET", f"{host}/api/history/execution-stats?days=30&flowId={flow}"
    )
    assert stats["stats"]["totalExecutions"] == 1
    assert stats["stats"]["statusBreakdown"]["PASSED"] == 1
    curl(shared_server, "-X", "DELETE", f"{host}/api/history/executions/{run}")
    curl(shared_server, "-X", "DELETE", f"{host}/api/history/executions/flows/{flow}")
    gone = admin.get(f"/api/history/executions/{run}")
    assert gone.status_code == 404, gone.text
