"""What follows a status change, decided from the states it left: which ended runs
their retry policy may run again, which flows move on, whether a device came free,
which jobs owe a notification. The queue (store/queue/followers.py) carries these out
in the transaction of the change."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from execd.domain.flows import FLOW_RUNNER
from execd.domain.retries import CAUSES
from execd.domain.states import TERMINAL, Status

RETRIED_BY_POLICY = frozenset(CAUSES)  # outcomes a retry policy may run again


class State(Protocol):
    """An execution's state after the change (the queue's row state)."""

    @property
    def id(self) -> int: ...
    @property
    def status(self) -> Status: ...
    @property
    def runner(self) -> str: ...
    @property
    def parent_id(self) -> int | None: ...
    @property
    def device_id(self) -> str | None: ...
    @property
    def job_type(self) -> str | None: ...


@dataclass(frozen=True)
class FollowUps:
    flows: set[int]  # flows to move on: one started, is being cancelled, or a step ended
    device_freed: bool  # a top-level execution holding a device ended: wake its waiters
    ended_jobs: list[int]  # jobs (the tenant API's) that ended: their notifications


def retry_candidates(settled: Iterable[State | None]) -> list[int]:
    """Of the states runs' outcomes settled into, those a retry policy may retry."""
    return [s.id for s in settled if s is not None and s.status in RETRIED_BY_POLICY]


def follow_ups(moved: Sequence[State], ended: Sequence[State], retried: set[int]) -> FollowUps:
    """`moved`: the executions whose status changed; `ended`: those that reached a
    final status; `retried`: those a new attempt follows (their flow waits for it)."""
    flows = {
        s.id
        for s in moved
        if s.runner == FLOW_RUNNER and s.status in (Status.RUNNING, Status.CANCELING)
    } | {
        s.parent_id
        for s in moved
        if s.parent_id is not None and s.status in TERMINAL and s.id not in retried
    }
    return FollowUps(
        flows=flows,
        device_freed=any(s.device_id is not None and s.parent_id is None for s in ended),
        ended_jobs=[s.id for s in ended if s.job_type is not None],
    )
