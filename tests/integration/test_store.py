"""The store's contract, the same on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import re
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, Executable, create_engine, func, select, text

from execd.domain.changes import NOW, Change
from execd.domain.errors import Conflict
from execd.domain.executions import Execution, ExecutionFilter, NewExecution, Page
from execd.domain.states import Priority, Status
from execd.engine.accounts import AccountService
from execd.store import executions as executions_module
from execd.store.accounts import Accounts
from execd.store.clock import now_of
from execd.store.database import Database, sync_url
from execd.store.executions import ExecutionQueries
from execd.store.queue import (
    EXPIRED,
    HELD_BY,
    READY,
    Inline,
    Queue,
    Submitted,
    device_ready_query,
)
from execd.store.queue import cancel as cancel_module
from execd.store.queue import claim as claim_module
from execd.store.queue import submit as submit_module
from execd.store.schema import execution_events, executions, metadata

Run = Callable[[Callable[[Database], Awaitable[Any]]], Any]


async def _project(db: Database) -> tuple[str, str]:
    project, _ = await AccountService(Accounts(db)).bootstrap(
        Path(tempfile.gettempdir()), "execd_store_test_token"
    )
    return project.tenant_id, project.id


def _new(tenant: str, project: str, **kw: Any) -> NewExecution:
    values: dict[str, Any] = {
        "tenant_id": tenant,
        "project_id": project,
        "action_id": None,
        "action_ref": "core.noop",
        "pack": "core",
        "runner": "local",
        "entry_point": "noop",
        "parameters": {},
        "max_attempts": 2,
        "retry_policy": {"max_attempts": 2, "retry_on": ["lost"]},
    }
    values.update(kw)
    return NewExecution(**values)


async def _submit(queue: Queue, items: list[NewExecution]) -> list[Execution]:
    results = await queue.submit(items)
    assert all(isinstance(r, Submitted) for r in results)
    return [r.execution for r in results]  # type: ignore[union-attr]


def test_migrations_produce_the_declared_schema(database_url: str) -> None:
    engine = create_engine(sync_url(database_url))
    with engine.connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": True}), metadata
        )
    engine.dispose()
    assert diff == []


def test_claim_takes_highest_priority_then_oldest_and_honours_the_limit(with_db: Run) -> None:
    async def scenario(db: Database) -> None:
        tenant, project = await _project(db)
        queue = Queue(db)
        order = [Priority.LOW, Priority.CRITICAL, Priority.NORMAL, Priority.CRITICAL, Priority.HIGH]
        made = await _submit(queue, [_new(tenant, project, priority=p) for p in order])
        first = await queue.claim(worker_id=1, limit=2, lease=30)
        assert [e.id for e in first] == [made[1].id, made[3].id]
        assert all(e.status is Status.SCHEDULED and e.fence == 1 for e in first)
        second = await queue.claim(worker_id=1, limit=10, lease=30)
        assert [e.id for e in second] == [made[4].id, made[2].id, made[0].id]
        assert await queue.claim(worker_id=1, limit=10, lease=30) == []

    with_db(scenario)


def _inline(settle: Callable[[Execution], list[Change]] | None = None, limit: int = 2) -> Inline:
    """Built-ins (runner `local`) run in the claim, as a worker has them."""

    def started_and_ended(e: Execution) -> list[Change]:
        return [
            Change(e.id, Status.RUNNING, fence=e.fence, values={"started": NOW}),
            Change(e.id, Status.COMPLETED, fence=e.fence, values={"result": e.id}, settle=True),
        ]

    return Inline(frozenset({"local"}), settle or started_and_ended, limit)


async def _history(db: Database, execution_id: int) -> list[tuple[Any, ...]]:
    query = (
        select(
            execution_events.c.from_status,
            execution_events.c.to_status,
            execution_events.c.worker_id,
        )
        .where(execution_events.c.execution_id == execution_id)
        .order_by(execution_events.c.id)
    )
    return await db.read(lambda conn: [tuple(r) for r in conn.execute(query)])


def test_a_claim_runs_and_ends_inline_work_beside_its_free_slots(with_db: Run) -> None:
    async def scenario(db: Database) -> None:
        tenant, project = await _project(db)
        queue = Queue(db)
        shell = {"runner": "command", "entry_point": "true", "action_ref": "t.shell"}
        made = await _submit(
            queue,
            [
                _new(tenant, project, **shell),
                _new(tenant, project),
                _new(tenant, project),
                _new(tenant, project, **shell),
                _new(tenant, project),
            ],
        )
        claimed = await queue.claim(worker_id=7, limit=1, lease=30, inline=_inline())
        # One slot: the oldest shell command; two built-ins run in the claim beside it.
        assert [(e.id, e.status) for e in claimed] == [
            (made[0].id, Status.SCHEDULED),
            (made[1].id, Status.COMPLETED),
            (made[2].id, Status.COMPLETED),
        ]
        rows = await db.read(
            lambda conn: {
                r.id: r
                for r in conn.execute(
                    select(executions).where(executions.c.id.in_([e.id for e in made]))
                )
            }
        )
        ended = rows[made[1].id]
        assert (ended.status, ended.result, ended.worker_id, ended.lease_expires) == (
            "completed",
            made[1].id,
            7,
            None,
        )
        assert ended.started is not None and ended.ended is not None
        assert await _history(db, made[1].id) == [
            (None, "requested", None),
            ("requested", "scheduling", None),
            ("scheduling", "scheduled", 7),
            ("scheduled", "running", 7),
            ("running", "completed", 7),
        ]
        assert [rows[e.id].status for e in made[3:]] == ["scheduling", "scheduling"]
        # No free slot: the built-in is run, the shell command before it waits for one.
        rest = await queue.claim(worker_id=7, limit=0, lease=30, inline=_inline())
        assert [(e.id, e.status) for e in rest] == [(made[4].id, Status.COMPLETED)]
        assert await queue.claim(worker_id=7, limit=0, lease=30, inline=_inline()) == []
        (shell_command,) = await queue.claim(worker_id=7, limit=1, lease=30, inline=_inline())
        assert (shell_command.id, shell_command.status) == (made[3].id, Status.SCHEDULED)

    with_db(scenario)


def test_inline_work_whose_outcome_cannot_be_stored_stays_claimed_for_the_worker(
    with_db: Run,
) -> None:
    async def scenario(db: Database) -> None:
        tenant, project = await _project(db)
        queue = Queue(db)
        made = await _submit(queue, [_new(tenant, project) for _ in range(3)])

        def unstorable(e: Execution) -> list[Change]:
            if e.id == made[1].id:
                raise RuntimeError("the built-in broke")
            return [Change(e.id, Status.COMPLETED, fence=e.fence, values={"result": object()})]

        claimed = await queue.claim(1, 0, 30, inline=_inline(unstorable, limit=3))
        # Nothing of the outcomes is stored; the claim is, and the worker runs them.
        assert [(e.id, e.status) for e in claimed] == [(e.id, Status.SCHEDULED) for e in made]
        for execution in made:
            assert (await _history(db, execution.id))[-1] == ("scheduling", "scheduled", 1)

    with_db(scenario)


def test_concurrent_claimers_never_take_the_same_execution(with_db: Run, database_url: str) -> None:
    async def scenario(db: Database) -> None:
        tenant, project = await _project(db)
        await _submit(Queue(db), [_new(tenant, project) for _ in range(300)])
        # Separate connection pools, as separate worker processes would have.
        others = [Database(database_url) for _ in range(4)]

        async def drain(worker_id: int, other: Database) -> list[int]:
            taken: list[int] = []
            queue = Queue(other)
            while batch := await queue.claim(worker_id, limit=7, lease=30):
                taken.extend(e.id for e in batch)
            return taken

        try:
            results = await asyncio.gather(*(drain(i + 1, d) for i, d in enumerate(others)))
        finally:
            for other in others:
                await other.dispose()
        everything = [i for taken in results for i in taken]
        assert len(everything) == len(set(everything)) == 300

    with_db(scenario)


def test_a_delayed_execution_is_not_claimed_before_it_is_due(with_db: Run) -> None:
    async def scenario(db: Database) -> None:
        tenant, project = await _project(db)
        queue = Queue(db)
        (delayed,) = await _submit(queue, [_new(tenant, project, delay=0.6)])
        assert delayed.status is Status.REQUESTED
        assert await queue.claim(1, 10, 30) == []
        due_in = await queue.next_due()
        assert due_in is not None and 0 < due_in <= 0.6
        await asyncio.sleep(due_in + 0.05)
        claimed = await queue.claim(1, 10, 30)
        assert [e.id for e in claimed] == [delayed.id]
        assert time.time() >= delayed.created + 0.6

    with_db(scenario)


def test_fencing_refuses_a_worker_that_lost_its_lease(with_db: Run) -> None:
    async def scenario(db: Database) -> None:
        tenant, project = await _project(db)
        queue = Queue(db)
        await _submit(queue, [_new(tenant, project)])
        (old,) = await queue.claim(worker_id=1, limit=1, lease=-1)  # expires at once
        (started,) = await queue.apply([Change(old.id, Status.RUNNING, fence=old.fence)])
        assert started is not None
        (requeued,) = await queue.reap_expired()
        assert (requeued.status, requeued.attempt, requeued.worker_id) == (
            Status.SCHEDULING,
            2,
            None,
        )
        (new,) = await queue.claim(worker_id=2, limit=1, lease=30)
        assert new.fence == old.fence + 1
        stale = Change(old.id, Status.FAILED, fence=old.fence, settle=True)
        assert await queue.apply([stale]) == [None]
        assert await queue.apply([Change(new.id, Status.RUNNING, fence=new.fence)]) != [None]
        (done,) = await queue.apply(
            [Change(new.id, Status.COMPLETED, fence=new.fence, values={"result": 1}, settle=True)]
        )
        assert done is Status.COMPLETED
        result = await db.read(
            lambda conn: conn.execute(
                select(executions.c.result).where(executions.c.id == new.id)
            ).scalar_one()
        )
        assert result == 1
        assert await queue.reap_expired() == []

    with_db(scenario)


def test_out_of_attempts_is_abandoned(with_db: Run) -> None:
    async def scenario(db: Database) -> None:
        tenant, project = await _project(db)
        queue = Queue(db)
        await _submit(
            queue, [_new(tenant, project, max_attempts=1, retry_policy={"max_attempts": 1})]
        )
        await queue.claim(1, 1, lease=-1)
        (abandoned,) = await queue.reap_expired()
        assert abandoned.status is Status.ABANDONED
        assert abandoned.ended is not None and "no attempts are left" in (abandoned.error or "")

    with_db(scenario)


def test_terminal_states_are_final_and_every_change_is_an_event(with_db: Run) -> None:
    async def scenario(db: Database) -> None:
        tenant, project = await _project(db)
        queue = Queue(db)
        (execution,) = await _submit(queue, [_new(tenant, project)])
        (claimed,) = await queue.claim(1, 1, 30)
        fence = claimed.fence
        results = await queue.apply(
            [
                Change(execution.id, Status.RUNNING, fence=fence),
                Change(execution.id, Status.COMPLETED, fence=fence, settle=True),
                Change(execution.id, Status.FAILED, fence=fence, settle=True),
                Change(execution.id, Status.SCHEDULING, fence=fence),
                Change(execution.id, values={"progress": {"percent": 5}}),
            ]
        )
        assert results == [
            Status.RUNNING,
            Status.COMPLETED,
            None,
            None,
            None,
        ]

        def read(conn: Connection) -> tuple[Any, list[Any]]:
            row = conn.execute(select(executions).where(executions.c.id == execution.id)).one()
            events = conn.execute(
                select(execution_events.c.from_status, execution_events.c.to_status)
                .where(execution_events.c.execution_id == execution.id)
                .order_by(execution_events.c.id)
            ).all()
            return row, events

        row, events = await db.read(read)
        assert row.status == "completed" and row.progress is None
        assert [tuple(e) for e in events] == [
            (None, "requested"),
            ("requested", "scheduling"),
            ("scheduling", "scheduled"),
            ("scheduled", "running"),
            ("running", "completed"),
        ]
        # The row and its event history never disagree.
        assert events[-1][1] == row.status

    with_db(scenario)


def test_cancel_cascades_to_children(with_db: Run) -> None:
    async def scenario(db: Database) -> None:
        tenant, project = await _project(db)
        queue = Queue(db)
        (parent,) = await _submit(queue, [_new(tenant, project)])
        (child,) = await _submit(queue, [_new(tenant, project, parent_id=parent.id)])
        (grandchild,) = await _submit(queue, [_new(tenant, project, parent_id=child.id)])
        (claimed,) = await queue.claim(1, 1, 30)
        assert claimed.id == parent.id
        await queue.apply([Change(parent.id, Status.RUNNING, fence=claimed.fence)])
        result = await queue.cancel(project, parent.id)
        assert result is not None and result.status is Status.CANCELING
        query = select(executions.c.status).where(executions.c.id.in_([child.id, grandchild.id]))
        statuses = await db.read(lambda conn: set(conn.execute(query).scalars()))
        assert statuses == {"cancelled"}
        assert await queue.cancel("another-project", parent.id) is None

    with_db(scenario)


def test_idempotency_keys_within_one_batch(with_db: Run) -> None:
    async def scenario(db: Database) -> None:
        tenant, project = await _project(db)
        queue = Queue(db)
        results = await queue.submit(
            [
                _new(tenant, project, idempotency_key="a"),
                _new(tenant, project, idempotency_key="a"),
                _new(tenant, project, idempotency_key="a", parameters={"x": 1}),
                _new(tenant, project, idempotency_key="b"),
            ]
        )
        first, again, conflict, other = results
        assert isinstance(first, Submitted) and isinstance(again, Submitted)
        assert again.replayed and again.execution.id == first.execution.id
        assert isinstance(conflict, Exception)
        assert isinstance(other, Submitted) and not other.replayed

    with_db(scenario)


def test_an_idempotency_key_race_between_nodes_answers_with_one_execution(
    with_db: Run, database_url: str
) -> None:
    """Node A has stored key "k" but not committed when node B submits "k": B must wait
    and answer with A's execution (PostgreSQL: unique-index clash, then a rerun; SQLite:
    B waits for the write lock), never fail."""

    async def scenario(db: Database) -> None:
        tenant, project = await _project(db)
        other_node = Database(database_url)
        try:
            first: list[Any] = []
            with db._writer.connect() as conn:  # node A's open transaction
                items = [_new(tenant, project, idempotency_key="k")]
                first = submit_module.submit(db, conn, items, all_or_nothing=False)
                racing = asyncio.ensure_future(
                    Queue(other_node).submit([_new(tenant, project, idempotency_key="k")])
                )
                await asyncio.sleep(0.5)
                assert not racing.done()  # B is held up by A's uncommitted row
                conn.commit()
            (answer,) = await racing
            assert isinstance(answer, Submitted), answer
            assert answer.replayed and answer.execution.id == first[0].execution.id
            count = select(func.count()).select_from(executions)
            assert await db.read(lambda c: c.execute(count).scalar()) == 1
        finally:
            await other_node.dispose()

    with_db(scenario)


@pytest.mark.parametrize(
    ("query", "index"),
    [
        (READY.params(limit=10), "ix_executions_ready"),
        (device_ready_query(["dev-1", "dev-2"]).params(limit=10), "ix_executions_device_ready"),
        # Either partial index over leased rows is small; PostgreSQL may pick either.
        (EXPIRED.params(now=0.0, limit=10), "ix_executions_(worker_)?leased"),
        (HELD_BY.params(worker_id=1), "ix_executions_worker_leased"),
    ],
    ids=["claim", "device-claim", "reaper", "worker-recovery"],
)
def test_queue_queries_read_only_their_partial_index(
    with_db: Run, query: Executable, index: str
) -> None:
    """History must not slow the queue: its queries plan on the small partial indexes."""

    async def scenario(db: Database) -> str:
        tenant, project = await _project(db)
        queue = Queue(db)
        made = await _submit(queue, [_new(tenant, project) for _ in range(2000)])

        def explain(conn: Connection) -> str:
            conn.execute(
                executions.update()
                .where(executions.c.id.in_([e.id for e in made[:1990]]))
                .values(status="completed")
            )
            compiled = query.compile(conn, compile_kwargs={"literal_binds": True})
            if db.is_postgres:
                conn.execute(text("ANALYZE executions"))
                plan = conn.execute(text(f"EXPLAIN {compiled}"))
            else:
                plan = conn.execute(text(f"EXPLAIN QUERY PLAN {compiled}"))
            return "\n".join(str(row) for row in plan)

        return await db.write(explain)

    plan = with_db(scenario)
    assert re.search(index, plan), plan


def test_lease_renewal_reports_what_each_held_execution_became(with_db: Run) -> None:
    async def scenario(db: Database) -> None:
        tenant, project = await _project(db)
        queue = Queue(db)
        await _submit(queue, [_new(tenant, project) for _ in range(4)])
        claimed = await queue.claim(worker_id=1, limit=4, lease=1)
        a, b, c, d = claimed
        await queue.apply([Change(e.id, Status.RUNNING, fence=e.fence) for e in claimed])
        await queue.cancel(project, b.id)
        await queue.apply([Change(c.id, Status.COMPLETED, fence=c.fence, settle=True)])
        held = {e.id: e.fence for e in claimed}
        held[d.id] = d.fence + 7  # a claim this worker no longer holds
        statuses = await queue.renew_leases(worker_id=1, held=held, lease=60)
        assert statuses == {a.id: Status.RUNNING, b.id: Status.CANCELING, c.id: None, d.id: None}
        renewed = await db.read(
            lambda conn: conn.execute(
                select(executions.c.lease_expires).where(executions.c.id == a.id)
            ).scalar_one()
        )
        assert renewed > time.time() + 30
        assert await queue.renew_leases(worker_id=2, held={a.id: a.fence}, lease=60) == {a.id: None}

    with_db(scenario)


def test_a_device_is_held_by_one_top_level_execution_at_a_time(with_db: Run) -> None:
    async def scenario(db: Database) -> None:
        tenant, project = await _project(db)
        queue = Queue(db)
        first, second, free = await _submit(
            queue,
            [
                _new(tenant, project, device_id="dev-1"),
                _new(tenant, project, device_id="dev-1"),
                _new(tenant, project),
            ],
        )
        # A worker serving no device never sees device work.
        assert [e.id for e in await queue.claim(1, 10, 30)] == [free.id]
        # One claim batch takes the device once, not twice.
        (held,) = await queue.claim(2, 10, 30, devices=["dev-1"])
        assert held.id == first.id
        assert await queue.claim(3, 10, 30, devices=["dev-1"]) == []
        # Work below the holder (its steps) still runs on the device.
        (child,) = await _submit(
            queue, [_new(tenant, project, device_id="dev-1", parent_id=first.id)]
        )
        assert [e.id for e in await queue.claim(3, 10, 30, devices=["dev-1"])] == [child.id]
        # The holder ends: the device is free for the next.
        await queue.apply([Change(first.id, Status.RUNNING, fence=held.fence)])
        await queue.apply([Change(first.id, Status.COMPLETED, fence=held.fence, settle=True)])
        assert [e.id for e in await queue.claim(3, 10, 30, devices=["dev-1"])] == [second.id]

    with_db(scenario)


def _flow(tenant: str, project: str, steps: int) -> NewExecution:
    run = {
        "action_id": None,
        "action_ref": "core.noop",
        "pack": "core",
        "runner": "local",
        "entry_point": "noop",
        "parameters": {},
        "max_attempts": 1,
    }
    plan = {
        "flowId": "f-1",
        "name": "f",
        "parameters": {},
        "steps": [
            {
                "sequence": n,
                "name": None,
                "continueOnFailure": False,
                "action": "core.noop",
                "run": run,
            }
            for n in range(1, steps + 1)
        ],
    }
    return _new(tenant, project, action_ref="core.flow", runner="flow", flow_id="f-1", plan=plan)


async def _children(db: Database, parent_id: int) -> list[tuple[int, str]]:
    query = (
        select(executions.c.sequence, executions.c.status)
        .where(executions.c.parent_id == parent_id)
        .order_by(executions.c.id)
    )
    return await db.read(lambda conn: [tuple(r) for r in conn.execute(query)])


def test_a_flow_runs_its_steps_in_order_in_the_steps_transactions(with_db: Run) -> None:
    async def scenario(db: Database) -> None:
        tenant, project = await _project(db)
        queue = Queue(db)
        (flow,) = await _submit(queue, [_flow(tenant, project, 2)])
        (claimed,) = await queue.claim(1, 10, 30)
        await queue.apply([Change(flow.id, Status.RUNNING, fence=claimed.fence)])
        assert await _children(db, flow.id) == [(1, "scheduling")]
        for _ in range(2):
            (step,) = await queue.claim(1, 10, 30)
            await queue.apply([Change(step.id, Status.RUNNING, fence=step.fence)])
            await queue.apply([Change(step.id, Status.COMPLETED, fence=step.fence, settle=True)])
        assert await _children(db, flow.id) == [(1, "completed"), (2, "completed")]
        row = await db.read(
            lambda conn: conn.execute(
                select(executions.c.status, executions.c.result).where(executions.c.id == flow.id)
            ).one()
        )
        assert row.status == "completed"
        assert row.result == {"stepSummary": {"total": 2, "passed": 2, "failed": 0, "skipped": 0}}

    with_db(scenario)


def _ended_while_cancel_reads(
    monkeypatch: pytest.MonkeyPatch, database_url: str, running: Execution
) -> Queue:
    """Have `running` complete, through another connection that commits, while a
    cancel reads the tree below what it cancels (before it locks anything). The other
    queue is returned for the caller to dispose of."""
    other = Queue(Database(database_url))
    finish = [Change(running.id, Status.COMPLETED, fence=running.fence, settle=True)]
    read_tree = cancel_module.descendants

    def descendants_then_race(conn: Connection, root: int) -> list[int]:
        found = read_tree(conn, root)
        with other.db._writer.connect() as race, race.begin():
            other.transitions.apply(race, now_of(race), finish, retries=True)
        return found

    monkeypatch.setattr(cancel_module, "descendants", descendants_then_race)
    return other


def test_a_step_started_while_its_flow_is_being_cancelled_is_cancelled_too(
    with_db: Run, database_url: str, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cancel reads the flow's tree; before it locks anything, another node finishes
    step 1 and so starts step 2. Step 2 must not run: the cancelled flow cancels it."""
    if backend != "postgresql":
        pytest.skip("SQLite's single writer cannot interleave the two transactions")

    async def scenario(db: Database) -> None:
        tenant, project = await _project(db)
        queue = Queue(db)
        (flow,) = await _submit(queue, [_flow(tenant, project, 3)])
        (claimed,) = await queue.claim(1, 10, 30)
        await queue.apply([Change(flow.id, Status.RUNNING, fence=claimed.fence)])
        (step,) = await queue.claim(1, 10, 30)
        await queue.apply([Change(step.id, Status.RUNNING, fence=step.fence)])

        # Step 1's end commits meanwhile.
        other = _ended_while_cancel_reads(monkeypatch, database_url, step)
        try:
            await queue.cancel(project, flow.id)
        finally:
            await other.db.dispose()
        assert await _children(db, flow.id) == [(1, "completed"), (2, "cancelled")]
        status = select(executions.c.status).where(executions.c.id == flow.id)
        assert await db.read(lambda conn: conn.execute(status).scalar()) == "cancelled"

    with_db(scenario)


def test_a_cancel_that_loses_the_race_to_the_end_is_a_conflict(
    with_db: Run, database_url: str, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cancel finds the execution running; before it locks it, the worker's report that
    it completed commits. The cancel must answer that it had ended (409), not return it
    completed as if it had been cancelled (200)."""
    if backend != "postgresql":
        pytest.skip("SQLite's single writer cannot interleave the two transactions")

    async def scenario(db: Database) -> tuple[str, Any]:
        tenant, project = await _project(db)
        queue = Queue(db)
        (made,) = await _submit(queue, [_new(tenant, project)])
        (claimed,) = await queue.claim(1, 10, 30)
        await queue.apply([Change(made.id, Status.RUNNING, fence=claimed.fence)])

        other = _ended_while_cancel_reads(monkeypatch, database_url, claimed)
        try:
            await queue.cancel(project, made.id)
        except Conflict as exc:
            outcome = exc.message
        else:
            outcome = "cancelled"
        finally:
            await other.db.dispose()
        status = select(executions.c.status).where(executions.c.id == made.id)
        return outcome, await db.read(lambda conn: conn.execute(status).scalar())

    outcome, status = with_db(scenario)
    assert outcome.endswith("is already completed") and status == "completed"


def test_a_claim_is_stamped_after_what_it_claims_was_submitted(
    with_db: Run, database_url: str, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A submission commits after the claim has read the clock but before it looks for
    work: the claim takes it, and its history must still read requested, then
    scheduled (and its lease run from the claim, not from before it)."""
    if backend != "postgresql":
        pytest.skip("SQLite's single writer cannot interleave the two transactions")

    async def scenario(db: Database) -> list[tuple[str, float]]:
        tenant, project = await _project(db)
        queue = Queue(db)
        other = Queue(Database(database_url))
        promote = claim_module.promote_due
        late: list[int] = []

        def submitted_meanwhile(t: Any, conn: Connection, now: float) -> int:
            time.sleep(0.02)  # the clock moves on between the two transactions' reads
            with other.db._writer.connect() as race, race.begin():
                [item] = submit_module.submit(other.db, race, [_new(tenant, project)], False)
                assert isinstance(item, Submitted)
                late.append(item.execution.id)
            return promote(t, conn, now)

        monkeypatch.setattr(claim_module, "promote_due", submitted_meanwhile)
        try:
            (claimed,) = await queue.claim(1, 10, 30)
        finally:
            await other.db.dispose()
        assert claimed.id == late[0]
        history = select(execution_events.c.to_status, execution_events.c.at).where(
            execution_events.c.execution_id == claimed.id
        )
        ordered = history.order_by(execution_events.c.id)
        rows = await db.read(lambda conn: conn.execute(ordered).all())
        return [(status, at) for status, at in rows]

    history = with_db(scenario)
    statuses = [status for status, _ in history]
    assert statuses[0] == "requested" and statuses[-1] == "scheduled", history
    times = [at for _, at in history]
    assert times == sorted(times), history


@pytest.mark.parametrize("merged_up_to", [2000, 5])
def test_a_list_of_several_statuses_pages_newest_first_as_one_query_would(
    with_db: Run, monkeypatch: pytest.MonkeyPatch, merged_up_to: int
) -> None:
    """Near the top, a status-filtered page is merged from one index range per status;
    deeper, it is one query. Either way: the same rows, in the same order."""
    monkeypatch.setattr(executions_module, "MERGED_UP_TO", merged_up_to)
    cycle = ["completed", "failed", "running", "cancelled", "failed", "completed", "timeout"]

    async def scenario(db: Database) -> list[tuple[list[int], list[int]]]:
        tenant, project = await _project(db)
        made = await _submit(Queue(db), [_new(tenant, project) for _ in range(40)])
        statuses = {e.id: cycle[i % len(cycle)] for i, e in enumerate(made)}

        def mark(conn: Connection) -> None:
            for status in set(cycle):
                ids = [i for i, s in statuses.items() if s == status]
                conn.execute(
                    executions.update().where(executions.c.id.in_(ids)).values(status=status)
                )

        await db.write(mark)
        queries = ExecutionQueries(db)
        wanted = frozenset({Status.FAILED, Status.RUNNING, Status.TIMEOUT})
        expected = sorted((i for i, s in statuses.items() if s in wanted), reverse=True)
        pages = []
        for number in range(1, 6):
            f = ExecutionFilter(statuses=wanted)
            found, _ = await queries.search(project, f, Page(number, 4), with_total=False)
            pages.append(([e.id for e in found], expected[(number - 1) * 4 : number * 4]))
        below = expected[5]
        f = ExecutionFilter(statuses=wanted, below_id=below)
        found, _ = await queries.search(project, f, Page(1, 3), with_total=False)
        pages.append(([e.id for e in found], [i for i in expected if i < below][:3]))
        return pages

    for got, expected in with_db(scenario):
        assert got == expected and expected


def test_counts_without_run_times_match_the_full_aggregates(with_db: Run) -> None:
    """The counts-only aggregate (added up in the database) gives the same counts as the
    one that also merges run-time histograms, over sealed hours and the hour still open."""

    async def scenario(db: Database) -> list[tuple[Any, Any]]:
        tenant, project = await _project(db)
        now = time.time()
        made = await _submit(
            Queue(db),
            [_new(tenant, project, action_ref=f"core.a{i % 3}") for i in range(60)],
        )

        def end(conn: Connection) -> None:
            for i, e in enumerate(made):
                ended = now - 86400 * 2 + i * 2900  # two days ago up to now
                status = ["completed", "failed", "timeout", "cancelled"][i % 4]
                conn.execute(
                    executions.update()
                    .where(executions.c.id == e.id)
                    .values(status=status, started=ended - 3, ended=ended)
                )

        await db.write(end)
        queries = ExecutionQueries(db)
        await queries.rebuild_rollups()
        pairs = []
        for by_action in (False, True):
            for bucket in (None, 3600, 86400):
                args = (project, now - 3 * 86400, now + 1)
                full = await queries.analytics(*args, by_action=by_action, bucket_seconds=bucket)
                counts = await queries.analytics(
                    *args, by_action=by_action, bucket_seconds=bucket, durations=False
                )
                pairs.append(
                    (
                        [(g.action_ref, g.bucket, g.by_status) for g in full],
                        [(g.action_ref, g.bucket, g.by_status) for g in counts],
                    )
                )
                assert all(not g.durations for g in counts)
        return pairs

    for full, counts in with_db(scenario):
        assert full == counts and full


def test_daily_and_hourly_rollups_answer_as_the_executions_do(with_db: Run) -> None:
    """Windows read from the daily rollups (whole days), the hourly ones (the hours at
    the edges) and the executions (the rest) give the same counts and run-time
    histograms as the executions alone, for every grouping."""

    async def scenario(db: Database) -> tuple[list[Any], list[Any], int]:
        tenant, project = await _project(db)
        now = time.time()
        made = await _submit(
            Queue(db),
            [_new(tenant, project, action_ref=f"core.a{i % 4}") for i in range(300)],
        )

        def end(conn: Connection) -> None:
            for i, e in enumerate(made):
                ended = now - 5 * 86400 + i * 1423  # five days ago up to now
                status = ["completed", "failed", "timeout", "cancelled", "abandoned"][i % 5]
                started = None if status == "cancelled" else ended - (i % 37) * 1.7
                conn.execute(
                    executions.update()
                    .where(executions.c.id == e.id)
                    .values(status=status, started=started, ended=ended)
                )

        await db.write(end)
        queries = ExecutionQueries(db)
        day = now - now % 86400
        windows = [
            (now - 6 * 86400, now + 1),  # all of it
            (day - 3 * 86400, day),  # whole days only
            (now - 4 * 86400 + 1234.5, now - 3600 * 7.5),  # ragged at both ends
            (day - 86400 + 3600, day + 3600),  # less than a day across midnight
        ]

        async def answers() -> list[Any]:
            found = []
            for since, until in windows:
                for by_action in (False, True):
                    for bucket in (None, 3600, 86400):
                        groups = await queries.analytics(
                            project, since, until, by_action=by_action, bucket_seconds=bucket
                        )
                        found.append(
                            [(g.action_ref, g.bucket, g.by_status, g.packed()) for g in groups]
                        )
            return found

        raw = await answers()  # nothing rolled up yet: from the executions
        while await queries.seal_rollups():
            pass
        rolled = await answers()
        days = await db.read(
            lambda conn: conn.execute(text("SELECT count(*) FROM execution_rollups_daily")).scalar()
        )
        return raw, rolled, days

    raw, rolled, days = with_db(scenario)
    assert days >= 4 * 4  # four whole days at least, four actions each
    assert rolled == raw and all(raw)
