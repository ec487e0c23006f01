"""The Python SDK (execd.client) against a real server, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from execd.client import (
    AsyncClient,
    BadRequest,
    Client,
    Conflict,
    ConnectionFailed,
    Execution,
    Forbidden,
    NotFound,
    Unauthorized,
    WaitTimeout,
)
from tests.support import Server, new_project

PROGRESS = (
    "for p in 20 40 60 80; do "
    'echo "{\\"percent\\": $p, \\"stage\\": \\"at $p\\"}" >> "$EXECD_CONTROL_FILE"; '
    "echo step $p; sleep 0.3; done"
)


@pytest.fixture
def sdk(shared_server: Server, admin: httpx.Client) -> Iterator[Client]:
    _, _, token = new_project(admin)
    with Client(shared_server.url, token) as client:
        yield client


def test_submit_wait_with_progress_and_read_everything_back(sdk: Client, tmp_path: Path) -> None:
    run = sdk.execute("core.shell", {"cmd": PROGRESS}, priority="high", idempotency_key="k-1")
    assert run.status in ("requested", "scheduling", "scheduled", "running")
    assert sdk.execute("core.shell", {"cmd": PROGRESS}, idempotency_key="k-1").id == run.id

    seen: list[Execution] = []
    done = sdk.wait(run.id, on_progress=seen.append, interval=0.1)
    assert done.status == "completed" and done.priority == "high"
    percents = [e.progress.percent for e in seen if e.progress and e.progress.percent is not None]
    assert percents == sorted(percents) and len(set(percents)) >= 2, percents
    assert seen[-1].status == "completed"

    assert sdk.output(run.id) == "step 20\nstep 40\nstep 60\nstep 80\n"
    assert [c.to_status for c in sdk.history(run.id)][-1] == "completed"
    path = sdk.download_package(run.id, tmp_path, on_progress=lambda done, total: None)
    with zipfile.ZipFile(path) as package:
        assert "step 80" in package.read("stdout.log").decode()

    again = sdk.retry(run.id, {"cmd": "echo again"})
    assert again.retry_of == run.id
    assert sdk.wait(again.id).result["stdout"] == "again\n"
    assert sdk.stats().completed == 2
    grouped = sdk.stats(group_by="action")
    assert grouped.groups is not None and grouped.groups[0]["ended"] == 2


def test_pages_and_filters(sdk: Client) -> None:
    made = [sdk.execute("core.noop").id for _ in range(25)]
    for execution_id in made:
        sdk.wait(execution_id)
    everything = [e.id for e in sdk.iter_executions(page_size=10)]
    assert everything == sorted(made, reverse=True)
    assert [e.id for e in sdk.iter_executions(page_size=10, limit=12)] == everything[:12]
    page = sdk.list_executions(page=2, per_page=10, status=["completed", "failed"])
    assert [e.id for e in page.items] == everything[10:20]
    assert page.pagination.total_items == 25 and page.pagination.total_pages == 3
    lines = list(sdk.export(format="csv", action_ref="core.noop"))
    assert len(lines) == 26 and lines[0].startswith("id,")


def test_errors_carry_the_server_answer(sdk: Client, shared_server: Server) -> None:
    with pytest.raises(NotFound) as missing:
        sdk.get_execution(987654)
    assert missing.value.status == 404
    assert missing.value.body == {"error": "Execution with ID 987654 not found", "status": 404}
    with pytest.raises(BadRequest, match="seconds"):
        sdk.execute("core.sleep", {"seconds": "lots"})
    done = sdk.wait(sdk.execute("core.noop").id)
    with pytest.raises(Conflict):
        sdk.cancel(done.id)
    # the flow dialect's error shape gives its long message
    with pytest.raises(NotFound, match="no flow with id or name 'nope'"):
        sdk.run_flow("nope")
    with Client(shared_server.url, "execd_wrong") as stranger, pytest.raises(Unauthorized):
        stranger.me()
    with (
        Client("http://127.0.0.1:9") as nobody,
        pytest.raises(ConnectionFailed, match=r"127\.0\.0\.1:9"),
    ):
        nobody.health()
    with pytest.raises(WaitTimeout):
        sdk.wait(sdk.execute("core.sleep", {"seconds": 30}).id, timeout=0.3)


def test_configured_by_environment(
    shared_server: Server, admin: httpx.Client, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _, _, token = new_project(admin, role="viewer")
    monkeypatch.setenv("EXECD_CONFIG", str(tmp_path / "none.json"))
    monkeypatch.setenv("EXECD_URL", shared_server.url + "/")
    monkeypatch.setenv("EXECD_TOKEN", token)
    with Client() as client:
        assert client.url == shared_server.url
        assert client.me().role == "viewer"
        with pytest.raises(Forbidden):
            client.execute("core.noop")


def test_definitions_flows_rules_and_packs(sdk: Client) -> None:
    pack = {
        "actions": [
            {"ref": "sdk.hello", "runner": "shell", "entry_point": "echo hello $PARAM_WHO"}
        ],
        "flows": [
            {"name": "inner", "steps": [{"action": "sdk.hello", "parameters": {"who": "flow"}}]},
            {"name": "outer", "steps": [{"flow": "inner"}, {"action": "core.noop"}]},
        ],
        "triggers": [{"ref": "hook", "type": "webhook"}],
        "rules": [{"ref": "hello-on-hook", "trigger": "hook", "action_ref": "sdk.hello",
                   "parameters": {"who": "{{ payload.who }}"}}],
    }  # fmt: skip
    assert {a.outcome for a in sdk.apply_pack(pack)} == {"created"}
    assert {a.outcome for a in sdk.apply_pack(pack)} == {"unchanged"}
    assert sdk.get_action("sdk.hello").runner == "shell"

    run = sdk.run_flow("outer")
    ended = sdk.wait_flow(run.id, interval=0.1)
    assert ended.status == "PASSED" and ended.step_summary == {
        "total": 2, "passed": 2, "failed": 0, "skipped": 0,
    }  # fmt: skip

    fired = sdk.fire_webhook("hook", {"who": "webhook"})
    execution_id = fired["enforcements"][0]["executions"][0]
    assert sdk.wait(execution_id).result["stdout"] == "hello webhook\n"
    firings = sdk.list_enforcements(rule="hello-on-hook")
    assert [e.executions for e in firings.items] == [[execution_id]]
    assert sdk.enable_rule("hello-on-hook", False).enabled is False
    assert [r.ref for r in sdk.list_rules(enabled=False)] == ["hello-on-hook"]

    job = sdk.submit_job(
        {"jobName": "nightly", "jobType": "Analysis",
         "resource": {"resourceType": "Action", "resourceId": sdk.get_action("sdk.hello").uuid},
         "parameters": {"who": "job"}}
    )  # fmt: skip
    assert sdk.get_job(job.job_id).job_name == "nightly"
    assert sdk.list_jobs()["jobs"][0]["jobId"] == job.job_id
    assert sdk.queue().capacity["workers"] >= 1
    assert sdk.system_status()["systemStatus"] in ("Healthy", "Idle", "Busy")


def test_async_client_streams_events_and_output(shared_server: Server, admin: httpx.Client) -> None:
    _, _, token = new_project(admin)

    async def scenario() -> None:
        async with AsyncClient(shared_server.url, token) as client:
            run = await client.execute("core.shell", {"cmd": PROGRESS})
            chunks, events = [], []

            async def read_output() -> None:
                async for chunk in client.follow_output(run.id):
                    chunks.append(chunk)

            async def read_events() -> None:
                stream = client.events(execution=run.id, last_event_id="0-0", until_ended=True)
                async for event in stream:
                    events.append(event)

            await asyncio.wait_for(asyncio.gather(read_output(), read_events()), timeout=60)
            assert "".join(chunks) == "step 20\nstep 40\nstep 60\nstep 80\n"
            kinds = [(e.kind, e.status) for e in events]
            assert kinds[0] == ("created", "requested") and kinds[-1] == ("status", "completed")
            assert any(e.kind == "progress" and e.progress and e.progress.percent for e in events)

            # Resume after the third event: exactly the rest, nothing twice.
            resumed = [
                e.id
                async for e in client.events(
                    execution=run.id, last_event_id=events[2].id, until_ended=True
                )
            ]
            assert resumed == [e.id for e in events[3:]]
            assert (await client.wait(run.id)).status == "completed"
            assert [e.id async for e in client.iter_executions()] == [run.id]

    asyncio.run(scenario())


def test_batches_of_executions_in_one_request(sdk: Client, shared_server: Server) -> None:
    echo = {"action_ref": "core.echo", "parameters": {"message": "one"}, "idempotency_key": "b-1"}
    later = datetime.now(UTC) + timedelta(hours=1)
    batch = sdk.execute_batch([echo, {"action_ref": "core.noop", "not_before": later}])
    assert [(i.index, i.status, i.stored) for i in batch.items] == [(0, 201, True), (1, 201, True)]
    assert batch.summary == {"total": 2, "created": 2, "replayed": 0, "refused": 0}
    first, delayed = (i.execution for i in batch.items)
    assert first is not None and delayed is not None
    assert delayed.status == "requested" and delayed.not_before is not None
    assert abs((delayed.not_before - later).total_seconds()) < 0.01
    assert sdk.wait(first.id, interval=0.1).result == {"message": "one"}
    again = sdk.execute_batch([echo])
    assert again.items[0].status == 200 and again.items[0].execution == sdk.get_execution(first.id)

    with pytest.raises(NotFound) as refused:
        sdk.execute_batch([{"action_ref": "core.noop"}, {"action_ref": "no.such"}])
    assert refused.value.body["errors"] == [
        {"index": 1, "status": 404, "error": "Action no.such not found"}
    ]
    mixed = sdk.execute_batch(
        [{"action_ref": "core.noop"}, {"action_ref": "core.echo", "timeout": -1}], atomic=False
    )
    assert [i.stored for i in mixed.items] == [True, False]
    assert mixed.items[1].error == (
        "Invalid execution: field 'timeout': Input should be greater than 0"
    )

    async def from_async() -> list[int]:
        async with AsyncClient(shared_server.url, sdk.token) as client:
            made = await client.execute_batch([{"action_ref": "core.noop"}] * 3)
            return [i.execution.id for i in made.items if i.execution]

    ids = asyncio.run(from_async())
    assert len(ids) == 3 and ids == sorted(ids)
    assert sdk.stats().total == 2 + 1 + 3
