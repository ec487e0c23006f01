"""The engine's use cases called as a dialect calls them, without HTTP: a Runtime over a
fresh database of each backend, its workers (when a test wants them) in the same event
loop. What a dialect adds (paths, field names, error shapes) is tested elsewhere."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import TypeVar

import pytest

from execd.config import Settings
from execd.domain.access import Principal
from execd.domain.core_pack import CORE_ACTIONS
from execd.domain.errors import Conflict, Forbidden, InvalidInput, NotFound
from execd.domain.executions import Execution, ExecutionFilter, Page
from execd.domain.rules import Enforcement, RuleSpec, TriggerSpec
from execd.domain.states import TERMINAL, Status
from execd.engine.jobs import JobRequest
from execd.runtime import Runtime

T = TypeVar("T")
ADMIN = "execd_engine_test_admin_token_01"
Scenario = Callable[[Runtime, Principal], Awaitable[T]]


@pytest.fixture
def engine(database_url: str, tmp_path: Path) -> Callable[..., object]:
    """`engine(scenario, workers=n)`: the scenario run against a started runtime, as
    the admin of the default project."""

    def run(scenario: Scenario[T], *, workers: int = 0) -> T:
        settings = Settings(
            database_url=database_url,
            data_dir=tmp_path / "data",
            admin_token=ADMIN,
            sandbox="none",
            poll_seconds=0.2,
        )

        async def main() -> T:
            runtime = Runtime(settings)
            await runtime.start(workers=workers)
            try:
                caller = await runtime.accounts.authenticate(f"Bearer {ADMIN}")
                return await scenario(runtime, caller)
            finally:
                await runtime.stop()

        return asyncio.run(main())

    return run


async def _ended(runtime: Runtime, caller: Principal, execution_id: int) -> Execution:
    """The execution once it has ended (bounded: a run of core.echo takes milliseconds)."""
    deadline = time.monotonic() + 30
    while True:
        execution = await runtime.executions.get(caller, execution_id)
        if execution.status in TERMINAL or time.monotonic() > deadline:
            return execution
        await asyncio.sleep(0.02)


def test_a_submission_waits_in_the_queue_with_its_history(engine: Callable[..., object]) -> None:
    async def scenario(runtime: Runtime, caller: Principal) -> None:
        submitted = await runtime.executions.submit(caller, "core.echo", {"message": "hi"})
        execution = await runtime.executions.get(caller, submitted.execution.id)
        assert execution.status == Status.SCHEDULING
        assert execution.parameters == {"message": "hi"}
        assert execution.submitted_by == caller.label
        history = await runtime.executions.history(caller, execution.id)
        assert [e.to_status for e in history] == [Status.REQUESTED, Status.SCHEDULING]
        stats = await runtime.executions.stats(caller)
        assert stats.count(Status.SCHEDULING) == 1
        found, total = await runtime.executions.search(
            caller, ExecutionFilter(action_ref="core.echo"), Page(1, 10)
        )
        assert [e.id for e in found] == [execution.id]
        assert total == 1

    engine(scenario)


def test_a_worker_runs_it_and_its_result_is_kept(engine: Callable[..., object]) -> None:
    async def scenario(runtime: Runtime, caller: Principal) -> None:
        submitted = await runtime.executions.submit(caller, "core.echo", {"message": "ahoy"})
        execution = await _ended(runtime, caller, submitted.execution.id)
        assert execution.status == Status.COMPLETED
        assert execution.result == {"message": "ahoy"}
        history = await runtime.executions.history(caller, execution.id)
        assert [e.to_status for e in history][-2:] == [Status.RUNNING, Status.COMPLETED]

    engine(scenario, workers=1)


def test_parameters_are_validated_before_anything_is_stored(
    engine: Callable[..., object],
) -> None:
    async def scenario(runtime: Runtime, caller: Principal) -> None:
        with pytest.raises(InvalidInput, match="message"):
            await runtime.executions.submit(caller, "core.echo", {"message": 7})
        with pytest.raises(NotFound):
            await runtime.executions.submit(caller, "nowhere.nothing", {})
        assert (await runtime.executions.stats(caller)).total == 0

    engine(scenario)


def test_roles_and_projects_bound_every_use_case(engine: Callable[..., object]) -> None:
    async def scenario(runtime: Runtime, caller: Principal) -> None:
        mine = await runtime.executions.submit(caller, "core.noop")
        viewer = replace(caller, role="viewer")
        with pytest.raises(Forbidden):
            await runtime.executions.submit(viewer, "core.noop")
        with pytest.raises(Forbidden):
            await runtime.executions.cancel(viewer, mine.execution.id)
        assert (await runtime.executions.get(viewer, mine.execution.id)).id == mine.execution.id
        stranger = replace(caller, project_id="00000000-0000-4000-8000-00000000dead")
        with pytest.raises(NotFound):
            await runtime.executions.get(stranger, mine.execution.id)
        with pytest.raises(NotFound):
            await runtime.executions.cancel(stranger, mine.execution.id)
        assert (await runtime.executions.get(caller, mine.execution.id)).status == (
            Status.SCHEDULING
        )

    engine(scenario)


def test_cancel_ends_a_queued_execution_and_a_retry_follows_it(
    engine: Callable[..., object],
) -> None:
    async def scenario(runtime: Runtime, caller: Principal) -> None:
        queued = (await runtime.executions.submit(caller, "core.echo", {"message": "a"})).execution
        with pytest.raises(Conflict, match="only an execution that has ended"):
            await runtime.executions.retry(caller, queued.id)
        cancelled = await runtime.executions.cancel(caller, queued.id, reason="not now")
        assert cancelled.status == Status.CANCELLED
        with pytest.raises(Conflict):
            await runtime.executions.cancel(caller, queued.id)
        again = await runtime.executions.retry(caller, queued.id, {"message": "b"})
        assert again.retry_of == queued.id
        assert again.status == Status.SCHEDULING
        assert again.parameters == {"message": "b"}

    engine(scenario)


def test_a_job_is_retried_once_it_has_failed_or_been_cancelled(
    engine: Callable[..., object],
) -> None:
    async def scenario(runtime: Runtime, caller: Principal) -> None:
        request = JobRequest("nightly", "Analysis", "Action", CORE_ACTIONS["core.noop"].uuid)
        job = await runtime.jobs.submit(caller, request)

        async def retry() -> Execution:
            return await runtime.jobs.retry(
                caller,
                job.uuid,
                reason="again",
                parameters=None,
                priority=None,
                immediately=False,
            )

        with pytest.raises(Conflict, match="Only a failed or cancelled job"):
            await retry()
        await runtime.jobs.cancel(caller, job.uuid, "not today")
        again = await retry()
        assert again.uuid != job.uuid
        assert (again.job or {}).get("retryOf") == job.uuid

    engine(scenario)


def test_a_webhook_fires_its_rule_into_an_execution(engine: Callable[..., object]) -> None:
    async def scenario(runtime: Runtime, caller: Principal) -> None:
        await runtime.rules.create_trigger(caller, TriggerSpec("hooks.push", "webhook"), None)
        await runtime.rules.create_rule(
            caller,
            RuleSpec(
                ref="hooks.echo_push",
                trigger_ref="hooks.push",
                action_ref="core.echo",
                criteria={"field": "payload.branch", "op": "equals", "value": "main"},
                parameters={"message": "{{ payload.branch }}"},
            ),
        )

        async def push(branch: str) -> list[Enforcement]:
            body = json.dumps({"branch": branch}).encode()
            _, fired = await runtime.rules.webhook(
                caller, "hooks.push", body, None, {"branch": branch}
            )
            return fired

        assert await push("dev") == []
        [enforcement] = await push("main")
        assert enforcement.status == "succeeded"
        [execution_id] = enforcement.execution_ids
        execution = await runtime.executions.get(caller, execution_id)
        assert execution.parameters == {"message": "main"}
        assert execution.submitted_by == "rule:hooks.echo_push"
        with pytest.raises(NotFound):
            await runtime.rules.webhook(caller, "hooks.pull", b"{}", None, {})

    engine(scenario)
