"""Advancing flows, inside the transaction that changed one of their steps.

A flow execution (PARENT or SUBFLOW) holds no worker while it runs: a worker only
starts it (and, with a device, acquires the device for it). From then on the flow
moves when its steps do. Whenever a step ends, or a flow starts or is being
cancelled, the followers of that change (followers.py) call `advance` in the same
transaction, which starts the next step or settles the flow. A crash can therefore
never leave a flow between two steps with nobody to move it on.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, select

from execd.domain.executions import Execution, NewExecution
from execd.domain.flows import FLOW_ACTION_REF, FLOW_RUNNER, plan_steps, step_name
from execd.domain.states import TERMINAL, Status
from execd.store.changes import Change
from execd.store.queue.cancel import cancel_all
from execd.store.queue.submit import insert_executions
from execd.store.queue.transitions import Transitions
from execd.store.rows import to_execution
from execd.store.schema import executions as ex

_CHILDREN = select(ex.c.id, ex.c.sequence, ex.c.status, ex.c.error).order_by(ex.c.id)


class FlowEngine:
    def __init__(self, transitions: Transitions) -> None:
        self.t = transitions

    def advance(self, conn: Connection, now: float, flow_ids: Iterable[int]) -> None:
        # Newest first, like every lock the queue takes (see transitions.LOCK_STATES).
        for flow_id in sorted(flow_ids, reverse=True):
            query = select(ex).where(ex.c.id == flow_id).with_for_update()
            row = conn.execute(query).mappings().first()
            if row is not None:
                self._advance(conn, now, to_execution(row))

    def _advance(self, conn: Connection, now: float, flow: Execution) -> None:
        if not flow.is_flow or flow.status not in (Status.RUNNING, Status.CANCELING):
            return
        # The latest attempt of each step (a retried step has several executions).
        latest: dict[int, Any] = {}
        for child in conn.execute(_CHILDREN.where(ex.c.parent_id == flow.id)):
            if child.sequence is not None:
                latest[child.sequence] = child
        active = [c.id for c in latest.values() if Status(c.status) not in TERMINAL]
        if flow.status is Status.CANCELING:
            # Whatever is still active goes too, including a step that started after
            # the cancellation read the tree. Once the last one has stopped (now, or when
            # its worker reports), the flow settles: that end calls advance again.
            if active:
                cancel_all(self.t, conn, now, active)
            else:
                steps = plan_steps(flow.plan)
                self._settle(
                    conn, now, flow, Status.CANCELLED, _summary(steps, latest), "cancelled"
                )
            return
        if active:
            return  # a step is still on its way; its end moves the flow on
        steps = plan_steps(flow.plan)
        summary = _summary(steps, latest)
        done = max(latest, default=0)
        if done:
            last = latest[done]
            step = steps[done - 1]
            if last.status != Status.COMPLETED and not step.get("continueOnFailure"):
                reason = f"step {done} ({step_name(step)}) ended {last.status}"
                if last.error:
                    reason += f": {last.error}"
                self._settle(conn, now, flow, Status.FAILED, summary, reason[:2000])
                return
        if done >= len(steps):
            self._settle(conn, now, flow, Status.COMPLETED, summary, None)
            return
        insert_executions(conn, now, [_step_execution(flow, steps[done])])
        self.t.db.notify_jobs(conn)

    def _settle(
        self,
        conn: Connection,
        now: float,
        flow: Execution,
        status: Status,
        summary: dict[str, int],
        error: str | None,
    ) -> None:
        change = Change(
            flow.id,
            status,
            values={"result": {"stepSummary": summary}, "error": error},
            message=error,
        )
        self.t.apply(conn, now, [change])


def _summary(steps: list[dict[str, Any]], latest: dict[int, Any]) -> dict[str, int]:
    passed = sum(1 for c in latest.values() if c.status == Status.COMPLETED)
    failed = sum(1 for c in latest.values() if Status(c.status) in TERMINAL) - passed
    return {
        "total": len(steps),
        "passed": passed,
        "failed": failed,
        "skipped": len(steps) - len(latest),
    }


def _step_execution(flow: Execution, step: dict[str, Any]) -> NewExecution:
    common: dict[str, Any] = {
        "tenant_id": flow.tenant_id,
        "project_id": flow.project_id,
        "priority": flow.priority,
        "submitted_by": flow.submitted_by,
        "parent_id": flow.id,
        "root_id": flow.root_id or flow.id,
        "device_id": flow.device_id,
        "sequence": step["sequence"],
    }
    sub = step.get("flow")
    if sub is not None:
        return NewExecution(
            action_id=None,
            action_ref=FLOW_ACTION_REF,
            pack="core",
            runner=FLOW_RUNNER,
            entry_point=sub["flowId"],
            parameters=sub.get("parameters", {}),
            flow_id=sub["flowId"],
            plan=sub,
            secrets=sub.get("secrets") or None,
            **common,
        )
    run = step["run"]
    return NewExecution(
        action_id=run.get("action_id"),
        action_ref=run["action_ref"],
        pack=run["pack"],
        runner=run["runner"],
        entry_point=run["entry_point"],
        parameters=run["parameters"],
        timeout=run.get("timeout"),
        max_attempts=run.get("max_attempts", 1),
        retry_policy=run.get("retry_policy"),
        secrets=run.get("secrets"),
        sandbox=run.get("sandbox"),
        **common,
    )
