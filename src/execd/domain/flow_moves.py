"""What a flow does next, decided from the states of its steps. The flow engine
(store/queue/flow_engine.py) reads the steps in the transaction that moved one of
them, asks `next_move`, and carries the move out in that transaction."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from execd.domain.executions import Execution, NewExecution, new_execution
from execd.domain.flows import flow_run, plan_steps, step_name
from execd.domain.states import TERMINAL, Status

MAX_REASON = 2000


@dataclass(frozen=True)
class StepState:
    """The latest attempt of one step (a retried step has several executions)."""

    id: int
    sequence: int
    status: Status
    error: str | None = None


@dataclass(frozen=True)
class CancelSteps:
    """The flow is being cancelled: these steps are still active and go too."""

    ids: list[int]


@dataclass(frozen=True)
class Settle:
    """The flow ends, with the summary of its steps as its result."""

    status: Status
    summary: dict[str, int]
    error: str | None = None


@dataclass(frozen=True)
class StartStep:
    step: NewExecution


# None: a step is still on its way, and its end moves the flow on.
FlowMove = CancelSteps | Settle | StartStep | None


def next_move(flow: Execution, latest: dict[int, StepState]) -> FlowMove:
    """The move of a running or cancelling flow whose steps' latest attempts, by
    sequence, are `latest`; None for a flow in any other status."""
    if not flow.is_flow or flow.status not in (Status.RUNNING, Status.CANCELING):
        return None
    active = [s.id for s in latest.values() if s.status not in TERMINAL]
    steps = plan_steps(flow.plan)
    if flow.status is Status.CANCELING:
        # Whatever is still active goes too, including a step that started after the
        # cancellation read the tree; once the last one has stopped, the flow settles.
        if active:
            return CancelSteps(active)
        return Settle(Status.CANCELLED, summary(steps, latest), "cancelled")
    if active:
        return None
    done = max(latest, default=0)
    if done:
        last, step = latest[done], steps[done - 1]
        if last.status is not Status.COMPLETED and not step.get("continueOnFailure"):
            reason = f"step {done} ({step_name(step)}) ended {last.status}"
            if last.error:
                reason += f": {last.error}"
            return Settle(Status.FAILED, summary(steps, latest), reason[:MAX_REASON])
    if done >= len(steps):
        return Settle(Status.COMPLETED, summary(steps, latest))
    return StartStep(step_execution(flow, steps[done]))


def summary(steps: list[dict[str, Any]], latest: dict[int, StepState]) -> dict[str, int]:
    passed = sum(1 for s in latest.values() if s.status is Status.COMPLETED)
    failed = sum(1 for s in latest.values() if s.status in TERMINAL) - passed
    return {
        "total": len(steps),
        "passed": passed,
        "failed": failed,
        "skipped": len(steps) - len(latest),
    }


def step_execution(flow: Execution, step: dict[str, Any]) -> NewExecution:
    """The execution of one step of `flow`: an action's run, or a sub-flow."""
    sub = step.get("flow")
    return new_execution(
        flow.tenant_id,
        flow.project_id,
        # A plan stored by an older version may name no action id.
        {"action_id": None, **step["run"]} if sub is None else flow_run(sub["flowId"], sub),
        priority=flow.priority,
        submitted_by=flow.submitted_by,
        parent_id=flow.id,
        root_id=flow.root_id or flow.id,
        device_id=flow.device_id,
        sequence=step["sequence"],
    )
