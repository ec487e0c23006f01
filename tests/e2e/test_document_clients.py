"""The client code printed in the API documents runs unchanged against execd.

Each API document ends with example clients. They are rewritten here in this
project's own words, but they do what the printed code does, request for request, and
read the answers the way it reads them: a field it subscripts must be there, a figure
it formats as a number must be a number, a status it compares must be spelled its way.
They run against a real server, on both backends.
"""

from __future__ import annotations

import time
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import Server, new_project

FINAL_JOB = ("Completed", "Failed", "Cancelled")


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
