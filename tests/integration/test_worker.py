"""A worker inside one process, against a real database: the cases no HTTP test can
stage precisely, such as its own lease running out under a job it still runs."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError

from execd.config import Settings
from execd.domain.executions import Execution, NewExecution
from execd.domain.workers import OFFLINE
from execd.runtime import Runtime
from execd.store.clock import now_of
from execd.store.queue import Submitted
from execd.store.schema import executions, workers
from tests.support import process_gone


def _run(
    database_url: str,
    tmp_path: Path,
    scenario: Callable[[Runtime], Awaitable[Any]],
    **overrides: Any,
) -> Any:
    options: dict[str, Any] = dict(
        database_url=database_url,
        data_dir=tmp_path / "data",
        admin_token="worker-test-token",
        # Leases last long and are renewed rarely: the test decides when one runs out.
        lease_seconds=60,
        heartbeat_seconds=30,
        reaper_seconds=3600,
        poll_seconds=0.1,
        kill_grace_seconds=1,
        worker_concurrency=4,
    )
    settings = Settings(**{**options, **overrides})

    async def main() -> Any:
        runtime = Runtime(settings)
        await runtime.start(workers=1)
        try:
            return await scenario(runtime)
        finally:
            await runtime.stop()

    return asyncio.run(main())


async def _until(check: Callable[[], Awaitable[Any]], timeout: float = 15.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await check()
        if value:
            return value
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


async def _submit_sleeper(runtime: Runtime) -> tuple[Any, int]:
    project, _ = await runtime.accounts.bootstrap(
        runtime.settings.data_dir, runtime.settings.admin_token
    )
    item = NewExecution(
        tenant_id=project.tenant_id,
        project_id=project.id,
        action_id=None,
        action_ref="test.sleeper",
        pack="test",
        runner="shell",
        entry_point="sleep 300",
        parameters={},
        max_attempts=3,
        retry_policy={"max_attempts": 3, "retry_on": ["lost"]},
    )
    (submitted,) = await runtime.queue.submit([item])
    assert isinstance(submitted, Submitted)
    return project, submitted.execution.id


async def _row(runtime: Runtime, execution_id: int) -> Any:
    query = select(executions).where(executions.c.id == execution_id)
    return await runtime.db.read(lambda conn: conn.execute(query).mappings().one())


def test_a_worker_that_claims_its_own_job_again_stops_the_old_run_first(
    database_url: str, tmp_path: Path
) -> None:
    async def scenario(runtime: Runtime) -> None:
        project, execution_id = await _submit_sleeper(runtime)

        async def running_pid(attempt: int) -> int | None:
            row = await _row(runtime, execution_id)
            ok = row["status"] == "running" and row["attempt"] == attempt and row["pid"]
            return int(row["pid"]) if ok else None

        first_pid = await _until(lambda: running_pid(1))
        # The lease runs out (as if the worker had lost the database for a while) and
        # the reaper queues the job again; the same worker is the one to claim it.
        expire = update(executions).where(executions.c.id == execution_id)
        await runtime.db.write(lambda conn: conn.execute(expire.values(lease_expires=0)))
        requeued: list[Execution] = await runtime.queue.reap_expired()
        assert [e.id for e in requeued] == [execution_id]

        second_pid = await _until(lambda: running_pid(2))
        assert second_pid != first_pid
        assert await _until(lambda: _async(process_gone(first_pid)))
        (worker,) = runtime.workers
        assert worker.running[execution_id].execution.attempt == 2
        # The new run is the one the worker looks after: cancelling it ends it.
        await runtime.queue.cancel(project.id, execution_id)
        await _until(lambda: _status_is(runtime, execution_id, "cancelled"))
        assert await _until(lambda: _async(process_gone(second_pid)))
        await _until(lambda: _async(execution_id not in worker.running))

    _run(database_url, tmp_path, scenario)


async def _async(value: Any) -> Any:
    return value


async def _status_is(runtime: Runtime, execution_id: int, status: str) -> bool:
    return bool((await _row(runtime, execution_id))["status"] == status)


def test_a_worker_that_cannot_renew_its_leases_stops_its_runs(
    database_url: str, tmp_path: Path
) -> None:
    """Past a whole lease without a renewal, the job may be running elsewhere already."""

    async def scenario(runtime: Runtime) -> None:
        _, execution_id = await _submit_sleeper(runtime)

        async def pid() -> int | None:
            row = await _row(runtime, execution_id)
            return int(row["pid"]) if row["status"] == "running" and row["pid"] else None

        running_pid = await _until(pid)
        (worker,) = runtime.workers

        async def unreachable(*args: Any, **kwargs: Any) -> Any:
            raise OperationalError("renew", {}, ConnectionError("database unreachable"))

        runtime.queue.renew_leases = unreachable  # type: ignore[method-assign]
        assert await _until(lambda: _async(process_gone(running_pid)))
        await _until(lambda: _async(execution_id not in worker.running))
        # The worker wrote nothing: the reaper decides once the lease has run out.
        assert (await _row(runtime, execution_id))["status"] == "running"

    _run(database_url, tmp_path, scenario, lease_seconds=2, heartbeat_seconds=0.3)


async def _age(runtime: Runtime, name: str, seconds: float) -> None:
    """Make worker `name` last heard of `seconds` ago."""
    row = update(workers).where(workers.c.name == name)
    await runtime.db.write(
        lambda conn: conn.execute(row.values(last_heartbeat=now_of(conn) - seconds))
    )


async def _names(runtime: Runtime) -> list[str]:
    return [n.name for n in await runtime.registry.nodes()]


def test_offline_workers_are_listed_for_the_retention_then_no_more(
    database_url: str, tmp_path: Path
) -> None:
    """A worker that stopped, or went silent, is listed as offline for the retention
    period after its last heartbeat, and then no more; a live one always is. Its row
    stays: who ran an execution long ago is still known."""

    async def scenario(runtime: Runtime) -> None:
        (live,) = runtime.workers
        registry, reaper = runtime.registry, runtime.reaper
        assert reaper is not None
        for name in ("stopped", "silent", "recent"):
            node = await registry.register(name, "elsewhere", 1, [], 2, "0")
            if name != "silent":
                await registry.set_state(node.id, OFFLINE)
        await _age(runtime, "stopped", 7200)
        await _age(runtime, "silent", 7200)  # still says it is active: no reaper yet
        await _age(runtime, "recent", 60)
        assert await _names(runtime) == [live.config.name, "silent", "recent"]
        await reaper.tick()  # marks "silent" offline: unheard of for too long, not listed
        assert await _names(runtime) == [live.config.name, "recent"]
        await _age(runtime, "recent", 3601)
        assert await _names(runtime) == [live.config.name]
        everyone = [n.name for n in await registry.nodes(retired=True)]
        assert everyone == [live.config.name, "stopped", "silent", "recent"]
        assert [n.name for n in await registry.nodes(include_offline=False)] == [live.config.name]

    _run(database_url, tmp_path, scenario, worker_retention_seconds=3600)
