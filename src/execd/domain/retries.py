"""What happens after a run fails or its worker disappears."""

from __future__ import annotations

from dataclasses import replace

from execd.domain.actions import RetryPolicy
from execd.domain.executions import Execution, NewExecution, new_execution, run_of
from execd.domain.states import TERMINAL, Status

# Outcome -> the retry cause that names it in a policy's retry_on.
CAUSES = {Status.FAILED: "failed", Status.TIMEOUT: "timeout"}


def policy_of(execution: Execution) -> RetryPolicy:
    return RetryPolicy.from_json(execution.retry_policy)


def next_attempt(execution: Execution, outcome: Status) -> NewExecution | None:
    """A new execution retrying `execution`, if its policy asks for one after `outcome`."""
    cause = CAUSES.get(outcome)
    policy = policy_of(execution)
    if cause is None or not policy.allows(cause, execution.attempt):
        return None
    attempt = execution.attempt + 1
    return retry_of(execution, delay=policy.delay_before(attempt), attempt=attempt)


def retryable(execution: Execution, allowed: frozenset[Status]) -> bool:
    """Whether `execution` may be retried by hand: it has ended, with a status among
    `allowed` (each API says which ends it retries)."""
    return execution.status in allowed & TERMINAL


def retry_of(
    execution: Execution,
    *,
    delay: float = 0.0,
    attempt: int | None = None,
    parameters: dict[str, object] | None = None,
    submitted_by: str | None = None,
) -> NewExecution:
    new = new_execution(
        execution.tenant_id,
        execution.project_id,
        run_of(execution),
        priority=execution.priority,
        submitted_by=execution.submitted_by,
        attempt=attempt if attempt is not None else 1,
        parent_id=execution.parent_id,
        root_id=execution.root_id,
        enforcement_id=execution.enforcement_id,
        rule_id=execution.rule_id,
        retry_of=execution.id,
        delay=delay,
        device_id=execution.device_id,
        sequence=execution.sequence,
        job_type=execution.job_type,
        job=execution.job,
    )
    if parameters is not None:
        new = replace(new, parameters=parameters)
    if submitted_by is not None:
        new = replace(new, submitted_by=submitted_by)
    return new


def lost_lease_status(execution: Execution) -> tuple[Status, str]:
    """Where an execution goes when its worker's lease ran out."""
    if execution.status is Status.CANCELING:
        return Status.CANCELLED, "worker lost while cancelling; cancelled"
    worker = f"worker {execution.worker_id}" if execution.worker_id else "its worker"
    if policy_of(execution).allows("lost", execution.attempt):
        return (
            Status.SCHEDULING,
            f"lease expired on {worker}; requeued as attempt "
            f"{execution.attempt + 1} of {execution.max_attempts}",
        )
    return (
        Status.ABANDONED,
        f"lease expired on {worker} and no attempts are left "
        f"({execution.attempt} of {execution.max_attempts}); abandoned",
    )
