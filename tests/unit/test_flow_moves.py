"""The decisions that follow a status change, without a database: what a flow does
next (domain/flow_moves.py) and what else a change sets going (domain/follow_ups.py)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from execd.domain.executions import Execution
from execd.domain.flow_moves import CancelSteps, Settle, StartStep, StepState, next_move
from execd.domain.flows import FLOW_RUNNER
from execd.domain.follow_ups import follow_ups, retry_candidates
from execd.domain.states import Priority, Status
from tests.records import an_execution


def _run(action: str, **extra: Any) -> dict[str, Any]:
    run = {"action_ref": action, "pack": "ops", "runner": "shell", "entry_point": "true"}
    return {"action": action, "run": {**run, "parameters": {}}, **extra}


STEPS = [
    {"sequence": 1, **_run("ops.build")},
    {"sequence": 2, **_run("ops.test", continueOnFailure=True)},
    {"sequence": 3, **_run("ops.ship", name="ship it")},
]


def _flow(status: Status = Status.RUNNING) -> Execution:
    return an_execution(
        id=10,
        action_ref="core.flow",
        runner=FLOW_RUNNER,
        entry_point="f1",
        status=status,
        priority=Priority.HIGH,
        flow_id="f1",
        plan={"steps": STEPS},
        device_id="press-1",
    )


def _steps(*statuses: Status, error: str | None = None) -> dict[int, StepState]:
    return {n: StepState(100 + n, n, s, error) for n, s in enumerate(statuses, start=1)}


def test_a_flow_that_started_queues_its_first_step_as_its_child() -> None:
    move = next_move(_flow(), {})
    assert isinstance(move, StartStep)
    step = move.step
    assert (step.action_ref, step.sequence, step.parent_id, step.root_id) == (
        "ops.build",
        1,
        10,
        10,
    )
    assert (step.priority, step.device_id, step.project_id) == (Priority.HIGH, "press-1", "p")


def test_a_step_on_its_way_holds_the_flow() -> None:
    assert next_move(_flow(), _steps(Status.RUNNING)) is None
    assert next_move(_flow(), _steps(Status.COMPLETED, Status.SCHEDULING)) is None


def test_a_failed_step_fails_the_flow_unless_it_may_fail() -> None:
    move = next_move(_flow(), _steps(Status.FAILED, error="exit 2"))
    assert move == Settle(
        Status.FAILED,
        {"total": 3, "passed": 0, "failed": 1, "skipped": 2},
        "step 1 (ops.build) ended failed: exit 2",
    )
    moved_on = next_move(_flow(), _steps(Status.COMPLETED, Status.FAILED))
    assert isinstance(moved_on, StartStep) and moved_on.step.action_ref == "ops.ship"


def test_the_last_step_done_completes_the_flow_with_its_summary() -> None:
    move = next_move(_flow(), _steps(Status.COMPLETED, Status.TIMEOUT, Status.COMPLETED))
    assert move == Settle(Status.COMPLETED, {"total": 3, "passed": 2, "failed": 1, "skipped": 0})


def test_a_cancelled_flow_stops_its_active_steps_then_settles() -> None:
    cancelling = _flow(Status.CANCELING)
    assert next_move(cancelling, _steps(Status.COMPLETED, Status.RUNNING)) == CancelSteps([102])
    assert next_move(cancelling, _steps(Status.COMPLETED, Status.CANCELLED)) == Settle(
        Status.CANCELLED, {"total": 3, "passed": 1, "failed": 1, "skipped": 1}, "cancelled"
    )


def test_a_flow_that_has_ended_does_not_move() -> None:
    assert next_move(_flow(Status.COMPLETED), {}) is None
    assert next_move(replace(_flow(), flow_id=None), {}) is None


@dataclass(frozen=True)
class State:
    id: int
    status: Status
    runner: str = "shell"
    parent_id: int | None = None
    device_id: str | None = None
    job_type: str | None = None


def test_what_a_change_sets_going() -> None:
    started = State(10, Status.RUNNING, runner=FLOW_RUNNER)
    step_done = State(11, Status.COMPLETED, parent_id=20)
    step_retried = State(12, Status.FAILED, parent_id=30)
    held_device = State(13, Status.CANCELLED, device_id="press-1")
    job = State(14, Status.TIMEOUT, job_type="Analysis")
    moved = [started, step_done, step_retried, held_device, job]
    ended = moved[1:]
    after = follow_ups(moved, ended, retried={12})
    assert after.flows == {10, 20}  # flow 30 waits for its step's retry
    assert after.device_freed
    assert after.ended_jobs == [14]
    assert not follow_ups([step_done], [step_done], set()).device_freed
    assert retry_candidates([None, step_done, step_retried, held_device, job]) == [12, 14]
