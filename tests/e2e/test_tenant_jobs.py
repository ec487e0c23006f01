"""Jobs against a real server on both backends: submit, status with progress
and node metrics from a real running action, list, cancel, retry."""

from __future__ import annotations

import io
import json
import os
import time
import uuid
import zipfile
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import httpx
import pytest

from tests.e2e.test_flows import define as define_flow
from tests.e2e.test_tenant_actions import Tenant
from tests.support import Deployment, Server, new_project, wait_for

# Reports progress and counters through the control file, then takes its time.
WORKING = (
    'emit() { echo "$1" >> "$EXECD_CONTROL_FILE"; }; '
    'emit \'{"percent": 50, "stage": "Data Processing", "processed": 500, "total": 1000}\'; '
    'emit \'{"warning": "timestamps inferred"}\'; '
    "python3 -c 'x = bytearray(40_000_000); import time; time.sleep(2.5)'; "
    'emit \'{"percent": 100, "stage": "Done", "processed": 1000, "errors": 1}\''
)


@pytest.fixture
def tenant(client: httpx.Client) -> Tenant:
    return Tenant(client)


def submit(tenant: Tenant, resource_id: str, **kw: Any) -> httpx.Response:
    body = {
        "jobName": kw.pop("jobName", "Weekly Process Analysis"),
        "jobType": kw.pop("jobType", "ProcessMining"),
        "resource": {"resourceType": kw.pop("resourceType", "Action"), "resourceId": resource_id},
        **kw,
    }
    return tenant.post("/execution/job", json=body)


def job(tenant: Tenant, job_id: str) -> dict[str, Any]:
    response = tenant.get(f"/execution/job/{job_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def wait_job(tenant: Tenant, job_id: str, statuses: set[str]) -> dict[str, Any]:
    return wait_for(
        lambda: (j := job(tenant, job_id))["status"] in statuses and j,
        timeout=30,
        message=f"job {job_id} in {statuses}",
    )


def test_a_job_reports_progress_node_metrics_and_metrics(tenant: Tenant) -> None:
    action = tenant.define("mining", WORKING)
    response = submit(
        tenant,
        action,
        jobDescription="Automated weekly analysis",
        priority="High",
        scheduling={"executeImmediately": True, "timeoutMinutes": 2},
        notifications={"onCompletion": True, "onFailure": True, "emailRecipients": []},
    )
    assert response.status_code == 201, response.text
    submitted = response.json()
    assert submitted["status"] == "Queued" and submitted["queuePosition"] >= 1
    assert submitted["jobName"] == "Weekly Process Analysis" and submitted["priority"] == "High"
    assert submitted["submittedBy"] == "test" and submitted["dateSubmitted"].endswith("Z")
    assert submitted["estimatedStartTime"] is not None  # a live worker has room
    job_id = submitted["jobId"]

    def halfway() -> dict[str, Any] | None:
        body = job(tenant, job_id)
        ok = body["progress"]["percentage"] == 50 and body["execution"]["memoryBytes"]
        return body if ok and body["execution"]["memoryBytes"] > 30_000_000 else None

    running = wait_for(halfway, timeout=20, message="job halfway with memory sampled")
    assert running["status"] == "Running"
    assert running["progress"]["currentStage"] == "Data Processing"
    assert running["progress"]["estimatedCompletion"] is not None
    assert running["progress"]["elapsedTime"].endswith(("second", "seconds"))
    assert running["resource"] == {
        "resourceType": "Action",
        "resourceId": action,
        "resourceName": "actions.mining",
    }
    node = running["execution"]
    assert node["executionNode"] and node["startTime"] and node["submittedBy"] == "test"
    assert node["memoryUsage"].endswith("MB") and node["cpuUsage"].endswith("%")
    assert running["metrics"]["recordsProcessed"] == 500
    assert running["metrics"]["totalRecords"] == 1000
    assert running["metrics"]["warningCount"] == 1
    assert running["metrics"]["averageProcessingRate"].endswith("records/second")

    done = wait_job(tenant, job_id, {"Completed", "Failed"})
    assert done["status"] == "Completed", done.get("error")
    assert done["progress"]["percentage"] == 100
    assert done["metrics"]["recordsProcessed"] == 1000 and done["metrics"]["errorCount"] == 1
    assert done["execution"]["endTime"] and done["execution"]["diskBytes"] is not None
    assert (
        done["jobDescription"] == "Automated weekly analysis" and done["jobType"] == "ProcessMining"
    )


def test_a_pipeline_job_runs_a_flow(tenant: Tenant) -> None:
    flow = define_flow(
        tenant.client,
        "Customer Analytics Pipeline",
        [{"action": "core.echo", "parameters": {"message": "{{ parameters.x }}"}}],
    )
    response = submit(
        tenant, flow, resourceType="Pipeline", jobType="Analysis", parameters={"x": "hi"}
    )
    assert response.status_code == 201, response.text
    done = wait_job(tenant, response.json()["jobId"], {"Completed", "Failed"})
    assert done["status"] == "Completed"
    assert done["resource"]["resourceName"] == "Customer Analytics Pipeline"
    history = tenant.client.get(f"/api/history/executions/{done['jobId']}").json()["execution"]
    assert history["steps"][0]["status"] == "PASSED"
    # The job's records carry the flow's id as their actionId; the action history takes it.
    last = tenant.get(f"/actionexecution/lastaction/{flow}")
    assert last.status_code == 200, last.text
    assert last.json()["actionExecutionId"] == done["jobId"] and last.json()["actionId"] == flow
    items = tenant.get(f"/actionexecution/action/{flow}").json()["items"]
    assert [i["actionExecutionId"] for i in items] == [done["jobId"]]


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"jobType": "Magic"}, "jobType"),
        ({"resourceType": "Spaceship"}, "resourceType"),
        ({"priority": "Urgent"}, "priority"),
        ({"scheduling": {"executeImmediately": False}}, "scheduledTime"),
        ({"parameters": {"n": "not a number"}}, "n"),
    ],
)
def test_bad_submissions_are_refused_with_the_reason(
    tenant: Tenant, change: dict[str, Any], needle: str
) -> None:
    action = tenant.define("typed", "true", parameters={
        "type": "object", "properties": {"n": {"type": "integer"}}
    })  # fmt: skip
    response = submit(tenant, action, **change)
    assert response.status_code == 400, response.text
    assert needle in response.json()["error"]


def test_counters_are_numbers_when_the_action_reports_none(tenant: Tenant) -> None:
    job_id = submit(tenant, tenant.define("quiet", "true")).json()["jobId"]
    done = wait_job(tenant, job_id, {"Completed", "Failed"})
    assert done["status"] == "Completed", done.get("error")
    metrics = done["metrics"]
    assert (metrics["recordsProcessed"], metrics["errorCount"], metrics["warningCount"]) == (
        0,
        0,
        0,
    )
    results = tenant.get(f"/execution/job/{job_id}/results").json()
    # What the job API's own example client prints: it formats the count as a number.
    assert (
        f"Records processed: {results['summary']['recordsProcessed']:,}" == "Records processed: 0"
    )


def test_unknown_resources_and_jobs(tenant: Tenant) -> None:
    missing = str(uuid.uuid4())
    unknown = submit(tenant, missing)
    # What the body names is missing: a 404, as for a path.
    assert unknown.status_code == 404 and missing in unknown.json()["error"]
    for response in (
        tenant.get(f"/execution/job/{missing}"),
        tenant.client.delete(tenant.base + f"/execution/job/{missing}"),
        tenant.post(f"/execution/job/{missing}/retry", json={}),
        tenant.get("/execution/job/not-a-guid"),
    ):
        assert response.status_code == 404, response.text
        assert response.json()["error"] == "Job not found"
    # A plain execution (not submitted as a job) is not a job.
    plain = tenant.execute(tenant.define("plain", "true"))["actionExecutionId"]
    assert tenant.get(f"/execution/job/{plain}").status_code == 404


def test_a_scheduled_job_waits_for_its_time(tenant: Tenant) -> None:
    action = tenant.define("later", "true")
    at = time.time() + 3
    when = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at)) + f".{int(at % 1 * 1000):03d}Z"
    response = submit(
        tenant, action, scheduling={"executeImmediately": False, "scheduledTime": when}
    )
    assert response.status_code == 201, response.text
    assert response.json()["estimatedStartTime"] >= when[:19]
    job_id = response.json()["jobId"]
    time.sleep(1)
    assert job(tenant, job_id)["status"] == "Queued"
    done = wait_job(tenant, job_id, {"Completed"})
    assert done["execution"]["startTime"] >= when[:19]


def test_jobs_are_listed_filtered_and_counted(tenant: Tenant) -> None:
    ok = tenant.define("ok", "true")
    bad = tenant.define("bad", "exit 1")
    ids = [submit(tenant, ok, jobType="DataEnrichment").json()["jobId"] for _ in range(3)]
    ids.append(submit(tenant, bad, jobType="Notebook", priority="Low").json()["jobId"])
    for job_id in ids:
        wait_job(tenant, job_id, {"Completed", "Failed"})

    def jobs(**query: Any) -> dict[str, Any]:
        response = tenant.get("/execution/jobs", params=query)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    everything = jobs()
    assert [j["jobId"] for j in everything["jobs"]] == ids[::-1]
    assert everything["summary"] == {
        "totalJobs": 4,
        "runningJobs": 0,
        "queuedJobs": 0,
        "completedJobs": 3,
        "failedJobs": 1,
        "cancelledJobs": 0,
    }
    assert everything["page"] == 1 and everything["pageSize"] == 20
    assert everything["hasNextPage"] is False
    first = everything["jobs"][1]
    assert first["status"] == "Completed" and first["progress"] == 100
    assert first["duration"] and first["resourceName"] == "actions.ok" and first["endTime"]

    assert [j["jobId"] for j in jobs(status="Failed")["jobs"]] == [ids[3]]
    assert len(jobs(status="completed")["jobs"]) == 3
    assert len(jobs(jobType="DataEnrichment")["jobs"]) == 3
    assert [j["jobId"] for j in jobs(priority="Low")["jobs"]] == [ids[3]]
    assert len(jobs(submittedBy="test")["jobs"]) == 4 and jobs(submittedBy="nobody")["jobs"] == []
    assert jobs(dateFrom="2000-01-01T00:00:00Z", dateTo="2000-01-02T00:00:00Z")["jobs"] == []
    assert len(jobs(dateFrom="2000-01-01T00:00:00Z")["jobs"]) == 4
    paged = jobs(page=2, pageSize=3)
    assert [j["jobId"] for j in paged["jobs"]] == [ids[0]] and paged["hasNextPage"] is False
    assert jobs(page=1, pageSize=3)["hasNextPage"] is True
    # Above the document's "max 100" a page holds 100.
    assert jobs(pageSize=101)["pageSize"] == 100
    for query in ({"pageSize": 0}, {"page": 0}, {"status": "Done"}, {"jobType": "X"}):
        response = tenant.get("/execution/jobs", params=query)
        assert response.status_code == 400 and response.json()["error"], query


def test_cancel_a_running_job_and_not_a_finished_one(tenant: Tenant) -> None:
    slow = tenant.define("slow", "sleep 30")
    job_id = submit(tenant, slow).json()["jobId"]
    wait_job(tenant, job_id, {"Running"})
    response = tenant.client.request(
        "DELETE",
        tenant.base + f"/execution/job/{job_id}",
        json={"reason": "User requested cancellation", "forceTermination": False},
    )
    assert response.status_code == 200, response.text
    assert response.json()["jobId"] == job_id
    assert wait_job(tenant, job_id, {"Cancelled"})["status"] == "Cancelled"
    again = tenant.client.delete(tenant.base + f"/execution/job/{job_id}")
    assert again.status_code == 409 and again.json()["jobId"] == job_id
    # The reason is kept with the execution's history.
    v1 = tenant.client.get("/api/v1/executions", params={"per_page": 5}).json()["data"]
    v1_id = next(
        e["id"]
        for e in v1
        if tenant.client.get(f"/api/v1/executions/{e['id']}").json()["data"]["uuid"] == job_id
    )
    events = tenant.client.get(f"/api/v1/executions/{v1_id}/history").json()["data"]
    assert any("User requested cancellation" in (e["message"] or "") for e in events)


def test_retry_makes_a_new_linked_job_only_for_failed_or_cancelled_ones(tenant: Tenant) -> None:
    action = tenant.define("picky", 'test "$PARAM_MODE" = good', parameters={
        "type": "object", "properties": {"mode": {"type": "string", "default": "bad"}}
    })  # fmt: skip
    failed = submit(tenant, action, priority="Low").json()["jobId"]
    assert wait_job(tenant, failed, {"Completed", "Failed"})["status"] == "Failed"
    response = tenant.post(
        f"/execution/job/{failed}/retry",
        json={
            "retryReason": "Infrastructure issue resolved",
            "modifyParameters": True,
            "updatedParameters": {"mode": "good", "timeoutMinutes": 3},
            "priority": "High",
            "immediateExecution": False,
        },
    )
    assert response.status_code == 200, response.text
    retried = response.json()
    assert retried["jobId"] != failed and retried["retryOf"] == failed
    assert retried["retryReason"] == "Infrastructure issue resolved"
    assert retried["priority"] == "High" and retried["jobName"] == "Weekly Process Analysis"
    done = wait_job(tenant, retried["jobId"], {"Completed", "Failed"})
    assert done["status"] == "Completed"
    refused = tenant.post(f"/execution/job/{retried['jobId']}/retry", json={})
    assert refused.status_code == 409 and refused.json()["jobId"] == retried["jobId"]


def test_estimates_come_from_the_resources_history(tenant: Tenant) -> None:
    action = tenant.define("steady", "sleep 0.2")
    for _ in range(4):
        wait_job(tenant, submit(tenant, action).json()["jobId"], {"Completed"})
    estimate = submit(tenant, action).json()
    seconds = estimate["estimatedDurationSeconds"]
    assert 0.1 < seconds["min"] <= seconds["max"] < 5
    assert estimate["estimatedDuration"].endswith("seconds")


OUTPUTS = (
    "sleep 1.5; "  # long enough for the resource sampler (once a second) to see it
    'mkdir -p "$EXECD_ARTIFACTS_DIR/reports"; '
    'echo "<html>report</html>" > "$EXECD_ARTIFACTS_DIR/reports/summary.html"; '
    'printf "a,b\\n1,2\\n" > "$EXECD_ARTIFACTS_DIR/enriched.csv"; '
    'echo "<svg/>" > "$EXECD_ARTIFACTS_DIR/process map.svg"; '
    'echo "model" > "$EXECD_ARTIFACTS_DIR/journey.pkl"; '
    'echo \'{"warning": "Some timestamps had to be inferred"}\' >> "$EXECD_CONTROL_FILE"; '
    'echo \'{"warning": "Some timestamps had to be inferred"}\' >> "$EXECD_CONTROL_FILE"; '
    'echo \'{"processed": 2, "total": 2}\' >> "$EXECD_CONTROL_FILE"; '
    'echo \'{"summary": {"dataQualityScore": 94.2, "processingEfficiency": 87.5},'
    ' "outputs": [{"path": "enriched.csv", "title": "Enriched data", "recordCount": 2}],'
    ' "qualityMetrics": {"dataValidation": {"totalRecords": 3, "validRecords": 2}}}\''
    ' > "$EXECD_RESULT_FILE"'
)


def test_results_list_outputs_with_working_download_urls(tenant: Tenant) -> None:
    action = tenant.define("outputs", OUTPUTS)
    job_id = submit(tenant, action).json()["jobId"]
    wait_job(tenant, job_id, {"Completed"})
    response = tenant.get(f"/execution/job/{job_id}/results")
    assert response.status_code == 200, response.text
    results = response.json()
    assert results["jobId"] == job_id and results["status"] == "Completed"
    assert results["success"] is True and results["completionTime"] and results["totalDuration"]
    assert results["summary"] == {
        "recordsProcessed": 2,
        "outputsGenerated": 4,
        "dataQualityScore": 94.2,
        "processingEfficiency": 87.5,
    }
    primary = results["results"]["primaryOutput"]
    assert primary["type"] == "Report" and primary["format"] == "html"
    others = {o["path"]: o for o in results["results"]["additionalOutputs"]}
    assert set(others) == {"enriched.csv", "process map.svg", "journey.pkl"}
    assert others["enriched.csv"]["title"] == "Enriched data"
    assert others["enriched.csv"]["recordCount"] == 2
    assert others["journey.pkl"]["outputType"] == "models"
    # A Host header is the client's word: links come from the settings (the bind address
    # here, EXECD_PUBLIC_URL when set), so a forged one cannot send them elsewhere.
    forged = tenant.get(f"/execution/job/{job_id}/results", headers={"Host": "evil.example"})
    assert "evil.example" not in forged.text and forged.json()["results"] == results["results"]
    for output in [primary, *others.values()]:
        assert output["downloadUrl"].startswith(str(tenant.client.base_url) + "/api/")
        file = tenant.client.get(output["downloadUrl"])
        assert file.status_code == 200 and len(file.content) == output["sizeBytes"]
        anonymous = httpx.get(output["downloadUrl"])
        assert anonymous.status_code == 401  # authenticated URLs
    metrics = results["executionMetrics"]
    assert metrics["peakMemoryBytes"] > 0 and metrics["totalCpuSeconds"] is not None
    assert metrics["diskIoOperations"] is not None
    quality = results["qualityMetrics"]
    assert quality["dataValidation"] == {"totalRecords": 3, "validRecords": 2}
    assert quality["warnings"] == [
        {"type": "Action", "message": "Some timestamps had to be inferred", "count": 2}
    ]

    visual = tenant.get(f"/execution/job/{job_id}/results", params={"outputType": "visualizations"})
    assert [visual.json()["results"]["primaryOutput"]["format"]] == ["svg"]
    assert visual.json()["results"]["additionalOutputs"] == []
    bare = tenant.get(f"/execution/job/{job_id}/results", params={"includeArtifacts": "false"})
    assert bare.json()["results"] == {"primaryOutput": None, "additionalOutputs": []}
    detailed = tenant.get(f"/execution/job/{job_id}/results", params={"format": "detailed"}).json()
    assert detailed["result"]["summary"]["dataQualityScore"] == 94.2
    assert tenant.client.get(detailed["logs"]["stdout"]).status_code == 200
    download = tenant.get(f"/execution/job/{job_id}/results", params={"format": "download"})
    assert download.status_code == 200 and download.headers["content-type"] == "application/zip"
    assert download.content[:2] == b"PK"
    for query in ({"format": "pdf"}, {"outputType": "songs"}):
        assert tenant.get(f"/execution/job/{job_id}/results", params=query).status_code == 400
    missing = tenant.get(f"/execution/job/{job_id}/artifacts/../../etc/passwd")
    assert missing.status_code == 404


def test_links_begin_with_the_public_url(deployment: Deployment) -> None:
    public = "https://jobs.example.com/execd"
    server = deployment.server(EXECD_PUBLIC_URL=public + "/")
    tenant = Tenant(server.client())
    action = tenant.define("one-file", 'echo a,b > "$EXECD_ARTIFACTS_DIR/out.csv"')
    job_id = submit(tenant, action).json()["jobId"]
    wait_job(tenant, job_id, {"Completed"})
    detailed = tenant.get(f"/execution/job/{job_id}/results", params={"format": "detailed"})
    body = detailed.json()
    job_path = f"/api/{tenant.tenant}/{tenant.project}/execution/job/{job_id}"
    assert body["results"]["primaryOutput"]["downloadUrl"] == (
        f"{public}{job_path}/artifacts/out.csv"
    )
    assert body["logs"] == {s: f"{public}{job_path}/logs/{s}" for s in ("stdout", "stderr")}
    # The path below the public URL is the one this server answers (a proxy strips it).
    assert server.client().get(body["logs"]["stdout"].removeprefix(public)).status_code == 200


def test_results_of_an_unfinished_job_are_a_conflict(tenant: Tenant) -> None:
    job_id = submit(tenant, tenant.define("long", "sleep 30")).json()["jobId"]
    response = tenant.get(f"/execution/job/{job_id}/results")
    assert response.status_code == 409 and response.json()["jobId"] == job_id
    tenant.client.delete(tenant.base + f"/execution/job/{job_id}")


def test_queue_view_and_system_status(
    tenant: Tenant, client: httpx.Client, shared_server: Any, admin: httpx.Client
) -> None:
    # Four slow jobs at Low priority behind everything else: some wait in the queue.
    slow = tenant.define("queue-filler", "sleep 3")
    ids = [submit(tenant, slow, priority="Low").json()["jobId"] for _ in range(4)]
    status = client.get(f"/api/{tenant.tenant}/execution/system/status")
    assert status.status_code == 200, status.text
    body = status.json()
    assert body["systemStatus"] in {"Healthy", "Busy"}
    node = body["executionNodes"][0]
    assert node["status"] == "Active" and node["jobCapacity"] >= 1
    stats = body["queueStatistics"]
    assert stats["totalQueuedJobs"] == sum(
        stats[k]
        for k in (
            "criticalPriorityJobs",
            "highPriorityJobs",
            "normalPriorityJobs",
            "lowPriorityJobs",
        )
    )
    assert body["resourceUtilization"]["totalCpuCapacity"] >= 100
    assert body["resourceUtilization"]["diskSpaceAvailableBytes"] > 0
    assert "jobsCompletedToday" in body["performanceMetrics"]

    queue = tenant.get("/execution/queue").json()
    assert queue["capacity"]["totalSlots"] >= 1
    positions = [j["queuePosition"] for j in queue["queuedJobs"]]
    assert positions == sorted(positions)
    assert {j["jobId"] for j in queue["queuedJobs"]} <= set(ids)
    for job_id in ids:
        tenant.client.delete(tenant.base + f"/execution/job/{job_id}")

    _, _, other = new_project(admin)
    foreign = shared_server.client(other).get(f"/api/{tenant.tenant}/execution/system/status")
    assert foreign.status_code == 401 and foreign.json()["error"]


# On SIGTERM it takes half a second to clean up, then writes an artifact saying so.
CLEANS_UP = (
    'echo partial > "$EXECD_ARTIFACTS_DIR/partial.csv"; '
    "trap 'sleep 0.5; echo done > \"$EXECD_ARTIFACTS_DIR/cleanup.txt\"; exit 0' TERM; "
    "sleep 30 & wait"
)


@pytest.mark.parametrize(
    ("options", "kept"),
    [
        ({}, {"partial.csv", "cleanup.txt"}),  # graceful: it may clean up; all is kept
        ({"forceTermination": True}, {"partial.csv"}),  # killed at once: no clean-up
        ({"preservePartialResults": False}, set()),  # what it wrote is discarded
    ],
    ids=["graceful", "force", "discard"],
)
def test_cancel_options(tenant: Tenant, options: dict[str, Any], kept: set[str]) -> None:
    job_id = submit(tenant, tenant.define("cleaner", CLEANS_UP)).json()["jobId"]
    wait_for(
        lambda: (
            job(tenant, job_id)["status"] == "Running"
            and job(tenant, job_id)["execution"]["memoryBytes"]
        ),
        message="running",
    )
    response = tenant.client.request(
        "DELETE", tenant.base + f"/execution/job/{job_id}", json={"reason": "test", **options}
    )
    assert response.status_code == 200, response.text
    wait_job(tenant, job_id, {"Cancelled"})
    results = tenant.get(f"/execution/job/{job_id}/results").json()
    outputs = results["results"]["additionalOutputs"] + (
        [results["results"]["primaryOutput"]] if results["results"]["primaryOutput"] else []
    )
    assert {o["path"] for o in outputs} == kept


def test_the_example_csv_report_runs_as_a_job(deployment: Any) -> None:
    """The examples pack's demo action, end to end: progress while it runs, node
    metrics from the worker, and a report, a data file and an SVG chart to download."""
    examples = Path(__file__).resolve().parents[2] / "examples"
    server = deployment.server(workers=1, EXECD_ACTIONS_PATH=str(examples))
    client = server.client()
    definition = json.loads((examples / "csv_report.json").read_text())
    created = client.post("/api/v1/actions", json=definition)
    assert created.status_code == 201, created.text
    tenant = Tenant(client)
    response = submit(
        tenant,
        created.json()["data"]["uuid"],
        jobType="DataEnrichment",
        parameters={"rows": 4000, "delay": 0.1},
    )
    assert response.status_code == 201, response.text
    job_id = response.json()["jobId"]

    def processing() -> dict[str, Any] | None:
        body = job(tenant, job_id)
        ok = body["progress"]["currentStage"] == "Data Processing"
        ok = ok and 5 < body["progress"]["percentage"] < 100
        return body if ok and body["execution"]["memoryBytes"] else None

    running = wait_for(processing, timeout=30, message="processing with metrics")
    assert running["metrics"]["totalRecords"] == 4000
    assert 0 < running["metrics"]["recordsProcessed"] <= 4000
    assert running["execution"]["executionNode"]

    done = wait_job(tenant, job_id, {"Completed", "Failed"})
    assert done["status"] == "Completed", done.get("error")
    assert done["metrics"]["recordsProcessed"] == 4000 and done["metrics"]["errorCount"] == 42
    assert done["metrics"]["warningCount"] == 1
    results = tenant.get(f"/execution/job/{job_id}/results").json()
    assert results["summary"]["recordsProcessed"] == 4000
    assert results["summary"]["dataQualityScore"] == pytest.approx(98.9, abs=0.1)
    primary = results["results"]["primaryOutput"]
    assert primary["path"] == "report.html" and primary["title"] == "CSV report"
    outputs = {o["path"]: o for o in results["results"]["additionalOutputs"]}
    assert outputs["summary.csv"]["recordCount"] == 5
    chart = client.get(outputs["chart.svg"]["downloadUrl"])
    assert chart.status_code == 200
    assert ElementTree.fromstring(chart.content).tag.endswith("svg")
    table = client.get(outputs["summary.csv"]["downloadUrl"]).text.splitlines()
    assert table[0] == "region,count,total_amount" and len(table) == 6
    assert "Total amount by region" in client.get(primary["downloadUrl"]).text
    assert results["qualityMetrics"]["dataValidation"]["invalidRecords"] == 42


def test_timeout_minutes_bounds_an_action_job(tenant: Tenant) -> None:
    job_id = submit(
        tenant, tenant.define("too-slow", "sleep 30"), scheduling={"timeoutMinutes": 0.01}
    ).json()["jobId"]
    done = wait_job(tenant, job_id, {"Failed", "Completed"})
    assert done["status"] == "Failed" and "timed out after 0.6 seconds" in done["error"]


def test_an_immediate_retry_jumps_the_queue(tenant: Tenant) -> None:
    failed = submit(tenant, tenant.define("once", "exit 1"), priority="Low").json()["jobId"]
    wait_job(tenant, failed, {"Failed"})
    retried = tenant.post(f"/execution/job/{failed}/retry", json={"immediateExecution": True})
    assert retried.status_code == 200 and retried.json()["priority"] == "Critical"
    kept = tenant.post(f"/execution/job/{failed}/retry", json={})
    assert kept.json()["priority"] == "Low" and kept.json()["retryOf"] == failed


@pytest.mark.parametrize(
    "script",
    [
        # The whole artifact directory swapped for a link to the server's /etc.
        'rm -rf "$EXECD_ARTIFACTS_DIR"; ln -s /etc "$EXECD_ARTIFACTS_DIR"',
        # The execution's own directory swapped: logs and artifacts through the link.
        'd="$(dirname "$EXECD_ARTIFACTS_DIR")"; rm -rf "$d"; ln -s /etc "$d"',
        # A link among real files, and a log replaced by a link to the process's secrets.
        'ln -s /etc/passwd "$EXECD_ARTIFACTS_DIR/passwd"; echo ok > "$EXECD_ARTIFACTS_DIR/ok.txt"',
    ],
    ids=["artifacts-dir", "execution-dir", "file"],
)
def test_links_planted_by_an_action_reach_nothing_outside(tenant: Tenant, script: str) -> None:
    job_id = submit(tenant, tenant.define("planter", script)).json()["jobId"]
    wait_job(tenant, job_id, {"Completed", "Failed"})
    results = tenant.get(f"/execution/job/{job_id}/results").json()
    paths = {o["path"] for o in results["results"]["additionalOutputs"]}
    if results["results"]["primaryOutput"]:
        paths.add(results["results"]["primaryOutput"]["path"])
    assert paths <= {"ok.txt"}
    for path in ("passwd", "hostname", "../../../etc/passwd"):
        assert tenant.get(f"/execution/job/{job_id}/artifacts/{path}").status_code == 404
    package = tenant.get(f"/execution/job/{job_id}/results", params={"format": "download"})
    assert package.status_code == 200 and b"root:" not in package.content
    archive = zipfile.ZipFile(io.BytesIO(package.content))
    assert {n for n in archive.namelist() if n.startswith("artifacts/")} <= {"artifacts/ok.txt"}


def test_a_hard_linked_artifact_is_neither_served_nor_packed(
    tenant: Tenant, shared_server: Server
) -> None:
    """A file of the server's own, hard-linked into a running job's artifact directory
    (the sandbox keeps the action from making such a link itself: its directories are
    separate mounts), is a second name for a file outside: it is not an artifact."""
    script = (
        'echo ok > "$EXECD_ARTIFACTS_DIR/ok.txt"; '
        'for i in $(seq 100); do [ -e "$EXECD_ARTIFACTS_DIR/hard.txt" ] && break; sleep 0.1; done; '
        'stat -c "links=%h" "$EXECD_ARTIFACTS_DIR/hard.txt"'
    )
    job_id = submit(tenant, tenant.define("hard-linked", script)).json()["jobId"]
    wait_job(tenant, job_id, {"Running"})
    data = Path(shared_server.env["EXECD_DATA_DIR"])
    artifacts = data / "artifacts" / tenant.project / job_id / "artifacts"
    wait_for(lambda: (artifacts / "ok.txt").exists(), message="the job's first artifact")
    outside = data / f"private-{job_id}.txt"
    outside.write_text("private")
    os.link(outside, artifacts / "hard.txt")
    done = wait_job(tenant, job_id, {"Completed", "Failed"})
    assert done["status"] == "Completed", done.get("error")
    assert tenant.get(f"/execution/job/{job_id}/logs/stdout").text.strip() == "links=2"
    results = tenant.get(f"/execution/job/{job_id}/results").json()["results"]
    paths = {o["path"] for o in [results["primaryOutput"], *results["additionalOutputs"]] if o}
    assert paths == {"ok.txt"}
    assert tenant.get(f"/execution/job/{job_id}/artifacts/hard.txt").status_code == 404
    assert tenant.get(f"/execution/job/{job_id}/artifacts/ok.txt").text == "ok\n"
    package = tenant.get(f"/execution/job/{job_id}/results", params={"format": "download"})
    names = zipfile.ZipFile(io.BytesIO(package.content)).namelist()
    assert "artifacts/ok.txt" in names and "artifacts/hard.txt" not in names
    assert b"private" not in package.content


def test_a_log_replaced_by_a_link_serves_nothing(tenant: Tenant) -> None:
    script = (
        'log="$(dirname "$EXECD_ARTIFACTS_DIR")/stdout.log"; sleep 0.5; '
        'rm -f "$log"; ln -s /proc/self/environ "$log"'
    )
    job_id = submit(tenant, tenant.define("log-link", script)).json()["jobId"]
    wait_job(tenant, job_id, {"Completed", "Failed"})
    log = tenant.get(f"/execution/job/{job_id}/logs/stdout")
    assert log.status_code == 200 and b"EXECD" not in log.content
    package = tenant.get(f"/execution/job/{job_id}/results", params={"format": "download"})
    assert b"EXECD_ADMIN_TOKEN" not in package.content


def test_odd_values_get_answers_not_errors(tenant: Tenant) -> None:
    action = tenant.define(
        "odd",
        'echo \'{"eta": 1e300, "percent": 0.000001}\' >> "$EXECD_CONTROL_FILE"; '
        "printf x > \"$EXECD_ARTIFACTS_DIR/$(printf 'a\\377b.csv')\"; sleep 1.5",
    )
    far = submit(
        tenant,
        action,
        scheduling={"executeImmediately": False, "scheduledTime": "9999-12-31T23:59:59-14:00"},
    )
    assert far.status_code == 400 and "ten years" in far.json()["error"]
    job_id = submit(tenant, action).json()["jobId"]
    # Running with an ETA beyond any calendar: the job and the list still answer.
    running = wait_job(tenant, job_id, {"Running"})
    assert running["progress"]["percentage"] >= 0
    assert tenant.get("/execution/jobs").status_code == 200
    wait_job(tenant, job_id, {"Completed"})
    assert tenant.get(f"/execution/job/{job_id}/results").status_code == 200
    package = tenant.get(f"/execution/job/{job_id}/results", params={"format": "download"})
    assert zipfile.ZipFile(io.BytesIO(package.content)).testzip() is None
    nul = tenant.client.request(
        "DELETE", tenant.base + f"/execution/job/{job_id}", json={"reason": "a\u0000b"}
    )
    assert nul.status_code == 400


def test_a_pipeline_job_shows_its_steps_progress_metrics_and_files(tenant: Tenant) -> None:
    analyse = (
        'echo \'{"percent": 40, "stage": "Mining", "processed": 30, "total": 60}\' '
        '>> "$EXECD_CONTROL_FILE"; echo "<html>map</html>" > "$EXECD_ARTIFACTS_DIR/map.html"; '
        'echo analysed; python3 -c "b = bytearray(30_000_000); import time; time.sleep(2)"'
    )
    enrich = (
        'echo \'{"processed": 60, "total": 60}\' >> "$EXECD_CONTROL_FILE"; '
        'printf "a,b\\n" > "$EXECD_ARTIFACTS_DIR/data.csv"'
    )
    flow = define_flow(
        tenant.client,
        "Customer Analytics Pipeline",
        [
            {"name": "analyse", "action": "core.shell", "parameters": {"cmd": analyse}},
            {"name": "enrich", "action": "core.shell", "parameters": {"cmd": enrich}},
        ],
    )
    job_id = submit(tenant, flow, resourceType="Pipeline").json()["jobId"]

    def analysing() -> dict[str, Any] | None:
        body = job(tenant, job_id)
        ok = body["progress"]["currentStage"] == "analyse: Mining"
        return body if ok and body["execution"]["memoryBytes"] else None

    running = wait_for(analysing, timeout=20, message="first step reported")
    assert running["progress"]["percentage"] == 20  # 40% of the first of two steps
    assert running["execution"]["executionNode"] and running["metrics"]["totalRecords"] == 60
    done = wait_job(tenant, job_id, {"Completed", "Failed"})
    assert done["status"] == "Completed" and done["progress"]["percentage"] == 100
    assert done["metrics"]["recordsProcessed"] == 90  # both steps' counters
    results = tenant.get(f"/execution/job/{job_id}/results").json()
    assert results["summary"]["outputsGenerated"] == 2
    assert results["results"]["primaryOutput"]["path"] == "step-1/map.html"
    (data,) = results["results"]["additionalOutputs"]
    assert data["path"] == "step-2/data.csv"
    assert tenant.client.get(data["downloadUrl"]).text == "a,b\n"
    assert results["executionMetrics"]["peakMemoryBytes"] > 20_000_000
    package = tenant.get(f"/execution/job/{job_id}/results", params={"format": "download"})
    archive = zipfile.ZipFile(io.BytesIO(package.content))
    assert archive.read("step-1/artifacts/map.html") == b"<html>map</html>\n"
    assert archive.read("step-1/stdout.log") == b"analysed\n"
    assert "step-2/artifacts/data.csv" in archive.namelist()
