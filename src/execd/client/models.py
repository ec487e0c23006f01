"""Typed views of what the server answers.

Models accept fields they do not know (a newer server may add some) and keep them:
`model.model_extra` has them, `model.model_dump()` gives everything back.
Times are timezone-aware datetimes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")

#: The statuses an execution can end in, and what `execd run --wait` exits with.
TERMINAL = ("completed", "failed", "timeout", "cancelled", "abandoned")


class Model(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class Me(Model):
    tenant_id: str
    project_id: str
    role: str
    scope: str | None = None  # project, tenant or system
    token_name: str | None = None


class Tenant(Model):
    id: str
    name: str
    created: datetime


class Project(Model):
    id: str
    tenant_id: str
    name: str
    created: datetime


class Token(Model):
    """An API token as listed: never its value."""

    id: int
    name: str
    role: str
    scope: str = "project"
    startup: bool = False
    tenant_id: str
    project_id: str
    created: datetime
    expires: datetime | None = None
    last_used: datetime | None = None
    revoked: datetime | None = None


class NewToken(Token):
    """The answer that made a token: the only place its value appears."""

    token: str


class Progress(Model):
    percent: float | None = None
    stage: str | None = None
    eta: float | None = None
    processed: int | None = None
    total: int | None = None
    errors: int | None = None
    warnings: int | None = None


class ExecutionSummary(Model):
    id: int
    action_ref: str
    status: str
    parent: int | None = None
    enforcement: int | None = None
    created: datetime
    updated: datetime

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL


class Execution(ExecutionSummary):
    uuid: str
    action: int | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    executor: int | None = None
    result: Any = None
    root: int | None = None
    rule: int | None = None
    priority: str = "normal"
    attempt: int = 1
    max_attempts: int = 1
    retry_of: int | None = None
    not_before: datetime | None = None
    timeout: float | None = None
    started: datetime | None = None
    ended_at: datetime | None = Field(default=None, alias="ended")
    duration_ms: int | None = None
    progress: Progress | None = None
    usage: dict[str, Any] | None = None
    error: str | None = None
    exit_code: int | None = None
    submitted_by: str | None = None
    idempotency_key: str | None = None


class BatchItem(Model):
    """How one execution of a batch went: `status` 201 (created), 200 (its idempotency
    key replayed an execution) or the error status of a refused one, with `error`."""

    index: int
    status: int
    execution: Execution | None = None
    error: str | None = None

    @property
    def stored(self) -> bool:
        return self.execution is not None


class Batch(Model):
    """What `execute_batch` answers: an item per execution sent, in order, and counts
    (`total`, `created`, `replayed`, `refused`)."""

    items: list[BatchItem] = Field(alias="data")
    summary: dict[str, int]


class StatusChange(Model):
    from_status: str | None = None
    to_status: str
    at: datetime
    attempt: int | None = None
    executor: int | None = None
    message: str | None = None


class Action(Model):
    id: int | None = None
    uuid: str | None = None
    ref: str
    pack: str
    name: str
    runner: str
    entry_point: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    timeout: float | None = None
    retry: dict[str, Any] | None = None
    enabled: bool = True
    description: str | None = None
    network: bool = True
    limits: dict[str, Any] = Field(default_factory=dict)
    builtin: bool = False


class Pagination(Model):
    page: int | None = None
    page_size: int | None = None
    total_items: int | None = None
    total_pages: int | None = None
    next_cursor: str | None = None


class Page(Model, Generic[T]):
    """One page of a list, as the server cut it."""

    items: list[T]
    pagination: Pagination


class Stats(Model):
    total: int
    completed: int
    failed: int
    running: int
    pending: int
    cancelled: int
    timeout: int
    abandoned: int
    window: dict[str, Any] | None = None
    groups: list[dict[str, Any]] | None = None


class Worker(Model):
    id: int
    name: str
    host: str | None = None
    labels: list[str] = Field(default_factory=list)
    devices: list[str] = Field(default_factory=list)
    capacity: int
    active: int
    state: str
    cpu_percent: float | None = None
    memory_percent: float | None = None
    sandbox: str | None = None
    started: datetime | None = None
    last_heartbeat: datetime | None = None


class Trigger(Model):
    id: int
    ref: str
    type: str
    description: str | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    enabled: bool = True
    next_fire: datetime | None = None
    has_secret: bool = False
    webhook_url: str | None = None
    secret: str | None = None


class Rule(Model):
    id: int
    ref: str
    description: str | None = None
    trigger: str
    criteria: Any = None
    action_ref: str
    parameters: dict[str, Any] = Field(default_factory=dict)
    enabled: bool = True


class Enforcement(Model):
    id: int
    rule: int | None = None
    rule_ref: str | None = None
    trigger_ref: str | None = None
    trigger_type: str | None = None
    payload: Any = None
    status: str
    error: str | None = None
    executions: list[int] = Field(default_factory=list)
    created: datetime


class Flow(Model):
    id: str
    name: str
    description: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    steps: list[dict[str, Any]] = Field(default_factory=list)


class FlowExecution(Model):
    """A flow run as the flow dialect shows it (`status` in its spelling: PASSED...)."""

    id: str
    flow_id: str | None = Field(default=None, alias="flowId")
    status: str
    step_summary: dict[str, Any] | None = Field(default=None, alias="stepSummary")
    steps: list[dict[str, Any]] = Field(default_factory=list)


class Job(Model):
    """A job as the tenant dialect shows it (`status` in its spelling: Running...)."""

    job_id: str = Field(alias="jobId")
    status: str
    job_name: str | None = Field(default=None, alias="jobName")
    priority: str | None = None


class Queue(Model):
    queued_jobs: list[dict[str, Any]] = Field(alias="queuedJobs")
    total_queued: int = Field(alias="totalQueued")
    capacity: dict[str, Any]


class Event(Model):
    """One execution event of the live stream: `kind` is created, status or progress."""

    id: str
    kind: str
    execution: int
    action_ref: str | None = None
    status: str
    from_status: str | None = None
    at: datetime | None = None
    progress: Progress | None = None


class Applied(Model):
    """What `apply_pack` did to one definition: created, updated or unchanged."""

    kind: str
    ref: str
    outcome: str
    #: A webhook trigger's HMAC secret, when it was created just now (shown once).
    secret: str | None = None
