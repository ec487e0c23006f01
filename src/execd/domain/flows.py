"""Flows: ordered steps, each running an action or a sub-flow.

A flow definition is edited freely; an execution of it runs a *plan*, compiled at
submission: every step's action resolved, its parameters rendered from the flow's
parameters and validated, sub-flows expanded. Editing or deleting a flow later does not
change what an accepted execution runs.

Plan (stored with the PARENT or SUBFLOW execution, JSON):

    {"flowId": ..., "name": ..., "parameters": {...},
     "steps": [{"sequence": 1, "name": ..., "continueOnFailure": false,
                "action": "pack.name", "run": {<what the step execution runs>}},
               {"sequence": 2, "name": ..., "continueOnFailure": false,
                "flow": {<the sub-flow's plan>}}]}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from execd.domain import templates
from execd.domain.actions import MAX_SECONDS
from execd.domain.executions import Execution

FLOW_RUNNER = "flow"
FLOW_ACTION_REF = "core.flow"
MAX_STEPS = 200
MAX_DEPTH = 16
# A plan expands every sub-flow call in full; these bound what one execution may be.
MAX_PLAN_STEPS = 2000
MAX_PLAN_BYTES = 4 * 1024 * 1024
MAX_NAME = 200


@dataclass(frozen=True)
class FlowStep:
    """Runs `action` (an action ref) or `flow` (a flow id): exactly one of them."""

    action: str | None = None
    flow: str | None = None
    name: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    timeout: float | None = None
    continue_on_failure: bool = False

    @property
    def label(self) -> str:
        return self.name or self.action or f"flow {self.flow}"


@dataclass(frozen=True)
class FlowSpec:
    name: str
    steps: list[FlowStep]
    description: str = ""
    # Default values of the flow's parameters; an execution's parameters override them.
    parameters: dict[str, Any] = field(default_factory=dict)

    @property
    def calls(self) -> list[str]:
        """The flows its steps call, each once."""
        return sorted({s.flow for s in self.steps if s.flow is not None})


@dataclass(frozen=True)
class Flow(FlowSpec):
    id: str = ""
    tenant_id: str = ""
    project_id: str = ""
    created: float = 0.0
    updated: float = 0.0
    created_by: str | None = None


def validate_flow(spec: FlowSpec) -> None:
    """Raise ValueError with a user-facing reason when a definition cannot work."""
    if not spec.name.strip() or len(spec.name) > MAX_NAME:
        raise ValueError(f"A flow needs a name of 1 to {MAX_NAME} characters")
    if not spec.steps:
        raise ValueError("A flow needs at least one step")
    if len(spec.steps) > MAX_STEPS:
        raise ValueError(f"A flow has at most {MAX_STEPS} steps")
    for number, step in enumerate(spec.steps, start=1):
        where = f"step {number}"
        if (step.action is None) == (step.flow is None):
            raise ValueError(f"{where} needs exactly one of 'action' (a ref) or 'flowId'")
        if step.name is not None and len(step.name) > MAX_NAME:
            raise ValueError(f"{where}: a name has at most {MAX_NAME} characters")
        if step.timeout is not None and not 0 < step.timeout <= MAX_SECONDS:
            raise ValueError(f"{where}: timeout must be between 0 and {MAX_SECONDS:.0f} seconds")
        if step.flow is not None and step.timeout is not None:
            raise ValueError(f"{where}: a sub-flow step has no timeout of its own")
        try:
            templates.check(step.parameters)
        except templates.TemplateError as exc:
            raise ValueError(f"{where}: {exc}") from None


def find_cycle(start: str, calls_of: dict[str, list[str]]) -> list[str] | None:
    """A path start -> ... -> start through `calls_of`, if there is one."""
    path: list[str] = [start]
    on_path = {start}
    done: set[str] = set()

    def visit(flow_id: str) -> list[str] | None:
        for callee in calls_of.get(flow_id, []):
            if callee == start:
                return [*path, start]
            if callee in on_path or callee in done:
                continue
            path.append(callee)
            on_path.add(callee)
            if found := visit(callee):
                return found
            on_path.discard(path.pop())
            done.add(callee)
        return None

    return visit(start)


# -- reading a plan -----------------------------------------------------------------


def plan_steps(plan: dict[str, Any] | None) -> list[dict[str, Any]]:
    steps = (plan or {}).get("steps")
    return steps if isinstance(steps, list) else []


def numbered_steps(plan: dict[str, Any] | None) -> list[tuple[int, dict[str, Any]]]:
    """A compiled flow's steps with their sequence numbers (from 1)."""
    return [(int(s.get("sequence", i)), s) for i, s in enumerate(plan_steps(plan), start=1)]


def latest_attempts(steps: list[Execution]) -> dict[int, Execution]:
    """The latest attempt of each step, by sequence (a retried step has several)."""
    latest: dict[int, Execution] = {}
    for s in sorted(steps, key=lambda x: x.id):
        if s.sequence is not None:
            latest[s.sequence] = s
    return latest


def step_name(step: dict[str, Any]) -> str:
    name = step.get("name")
    if isinstance(name, str) and name:
        return name
    if step.get("action"):
        return str(step["action"])
    return str((step.get("flow") or {}).get("name", "sub-flow"))


def flow_run(flow_id: str, plan: dict[str, Any]) -> dict[str, Any]:
    """What the execution of a flow runs (a flow started, or a sub-flow step): its
    compiled plan."""
    return {
        "action_id": None,
        "action_ref": FLOW_ACTION_REF,
        "pack": "core",
        "runner": FLOW_RUNNER,
        "entry_point": flow_id,
        "parameters": plan.get("parameters", {}),
        "flow_id": flow_id,
        "plan": plan,
        "secrets": plan.get("secrets") or None,
    }
