"""Executions: one record per run of an action, whatever dialect it came through."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from execd.domain.actions import mask_secrets
from execd.domain.states import Priority, Status

# Ids are signed 64-bit integers in both databases; a larger number names nothing.
MAX_ID = 2**63 - 1


@dataclass(frozen=True, slots=True)
class Execution:
    id: int
    uuid: str
    tenant_id: str
    project_id: str
    action_id: int | None
    action_ref: str
    pack: str
    runner: str
    entry_point: str
    parameters: dict[str, Any]
    status: Status
    priority: Priority
    attempt: int
    max_attempts: int
    retry_policy: dict[str, Any] | None
    fence: int
    created: float
    updated: float
    parent_id: int | None = None
    root_id: int | None = None
    enforcement_id: int | None = None
    rule_id: int | None = None
    retry_of: int | None = None
    worker_id: int | None = None
    not_before: float | None = None
    timeout: float | None = None
    idempotency_key: str | None = None
    submitted_by: str | None = None
    secrets: list[str] | None = None
    progress: dict[str, Any] | None = None
    usage: dict[str, Any] | None = None
    result: Any = None
    error: str | None = None
    exit_code: int | None = None
    pid: int | None = None
    lease_expires: float | None = None
    started: float | None = None
    ended: float | None = None
    device_id: str | None = None
    flow_id: str | None = None
    sequence: int | None = None
    plan: dict[str, Any] | None = None
    job_type: str | None = None
    job: dict[str, Any] | None = None
    cancel_request: dict[str, Any] | None = None
    sandbox: dict[str, Any] | None = None

    @property
    def is_flow(self) -> bool:
        """A PARENT (top-level) or SUBFLOW execution of a flow; its steps are children."""
        return self.flow_id is not None

    @property
    def visible_parameters(self) -> dict[str, Any]:
        """The parameters with secret values masked: what every API answer shows."""
        return mask_secrets(self.parameters, frozenset(self.secrets or ()))

    @property
    def duration(self) -> float | None:
        if self.started is None:
            return None
        end = self.ended if self.ended is not None else self.updated
        return max(0.0, end - self.started)

    def elapsed(self, now: float) -> float | None:
        """Seconds since it started: until it ended, or until `now`."""
        if self.started is None:
            return None
        return max(0.0, (self.ended if self.ended is not None else now) - self.started)

    def estimated_end(self, now: float) -> float | None:
        """When it ended, or when it should: from the ETA it reported last, else from
        its percent done so far (None before it starts or reports any)."""
        if self.ended is not None:
            return self.ended
        progress = self.progress or {}
        if self.started is None:
            return None
        if progress.get("eta") is not None:
            return float(progress.get("at") or now) + float(progress["eta"])
        percent = progress.get("percent")
        elapsed = self.elapsed(now)
        if percent and elapsed is not None and percent > 0:
            return self.started + elapsed * 100 / float(percent)
        return None


@dataclass(frozen=True)
class NewExecution:
    """A validated submission, ready to be stored."""

    tenant_id: str
    project_id: str
    action_id: int | None
    action_ref: str
    pack: str
    runner: str
    entry_point: str
    parameters: dict[str, Any]
    priority: Priority = Priority.NORMAL
    timeout: float | None = None
    not_before: float | None = None
    delay: float = 0.0
    idempotency_key: str | None = None
    submitted_by: str | None = None
    max_attempts: int = 1
    retry_policy: dict[str, Any] | None = None
    secrets: list[str] | None = None
    attempt: int = 1
    parent_id: int | None = None
    root_id: int | None = None
    enforcement_id: int | None = None
    rule_id: int | None = None
    retry_of: int | None = None
    device_id: str | None = None
    flow_id: str | None = None
    sequence: int | None = None
    plan: dict[str, Any] | None = None
    job_type: str | None = None
    job: dict[str, Any] | None = None
    sandbox: dict[str, Any] | None = None


# What an execution runs, copied when it is accepted (from its action by
# `ActionService.prepare`, from a flow's compiled plan, from the execution it retries),
# so that editing the action or the flow later changes nothing accepted.
RUN_FIELDS = frozenset(
    {
        "action_id", "action_ref", "pack", "runner", "entry_point", "parameters", "timeout",
        "max_attempts", "retry_policy", "secrets", "sandbox", "flow_id", "plan",
    }
)  # fmt: skip


def new_execution(
    tenant_id: str, project_id: str, run: Mapping[str, Any], **where: Any
) -> NewExecution:
    """The one constructor of a new execution: what it runs (`run`, of RUN_FIELDS) in a
    tenant's project, and where it stands (`where`: who submitted it, its priority,
    parent, rule, retry, device, ...)."""
    unknown = set(run) - RUN_FIELDS
    if unknown:
        raise ValueError(f"not what an execution runs: {sorted(unknown)}")
    return NewExecution(tenant_id=tenant_id, project_id=project_id, **run, **where)


def run_of(execution: Execution) -> dict[str, Any]:
    """What `execution` runs, to run it again."""
    return {name: getattr(execution, name) for name in RUN_FIELDS}


class Brief(NamedTuple):
    """What a long history shows of an execution (the tenant API's action history):
    read without the rest of the row, which a thousand items would pay for."""

    uuid: str
    status: Status
    created: float
    started: float | None
    ended: float | None
    error: str | None


STREAMS = ("stdout", "stderr")  # what a run writes, kept as its output


class Kind(enum.StrEnum):
    """Which executions a list is of, beyond every one of the project."""

    JOBS = "jobs"  # the tenant API's jobs
    FLOW_RUNS = "flow runs"  # flows and their sub-flows (the flow history)


@dataclass(frozen=True)
class ExecutionFilter:
    """The filters of every execution list of every dialect, all applied in the database
    (one WHERE builder: store/filters.py). Unset fields do not filter."""

    only: Kind | None = None
    statuses: frozenset[Status] | None = None
    action_ref: str | None = None
    pack: str | None = None
    result_contains: str | None = None
    enforcement_id: int | None = None
    parent_id: int | None = None
    top_level: bool | None = None  # True: no parent; False: a sub-execution (a sub-flow)
    action_id: int | None = None
    job_type: str | None = None
    priority: Priority | None = None
    submitted_by: str | None = None
    flow_id: str | None = None
    device_id: str | None = None
    created_after: float | None = None  # from this time on
    created_before: float | None = None  # before this time
    created_until: float | None = None  # up to this time, included
    updated_after: float | None = None
    updated_before: float | None = None
    below_id: int | None = None  # keyset paging: only executions older than this id
    lowest_id: int | None = None  # only this id and newer ones (a bounded scan)


@dataclass(frozen=True)
class Page:
    """Offset pagination: `number` counts from 1."""

    number: int = 1
    size: int = 20
    start: int | None = None  # an offset of its own, for APIs that page by offset

    @property
    def offset(self) -> int:
        return self.start if self.start is not None else (self.number - 1) * self.size


@dataclass(frozen=True)
class Outcome:
    """How a run ended, as a runner reports it to the worker."""

    status: Status
    result: Any = None
    error: str | None = None
    exit_code: int | None = None
    usage: dict[str, Any] | None = None
    progress: dict[str, Any] | None = None


@dataclass(frozen=True)
class StatusEvent:
    execution_id: int
    from_status: Status | None
    to_status: Status
    at: float
    attempt: int
    worker_id: int | None = None
    message: str | None = None


@dataclass
class ExecutionStats:
    total: int = 0
    by_status: dict[Status, int] = field(default_factory=dict)

    def count(self, *statuses: Status) -> int:
        return sum(self.by_status.get(s, 0) for s in statuses)
