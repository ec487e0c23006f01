"""The execution lifecycle: the ten canonical states and the one transition table.

Every status write in the store re-checks the expected current state in the UPDATE
itself (compare-and-set), using this table to decide what is allowed.
"""

from __future__ import annotations

import enum


class Status(enum.StrEnum):
    REQUESTED = "requested"
    SCHEDULING = "scheduling"
    SCHEDULED = "scheduled"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELING = "canceling"
    CANCELLED = "cancelled"
    TIMEOUT = "timeout"
    ABANDONED = "abandoned"


TERMINAL: frozenset[Status] = frozenset(
    {Status.COMPLETED, Status.FAILED, Status.CANCELLED, Status.TIMEOUT, Status.ABANDONED}
)
# Accepted but not yet started: "pending" in the v1 stats.
PENDING: frozenset[Status] = frozenset({Status.REQUESTED, Status.SCHEDULING, Status.SCHEDULED})
# Held by a worker under a lease.
LEASED: frozenset[Status] = frozenset({Status.SCHEDULED, Status.RUNNING, Status.CANCELING})
# Not yet handed to any worker: cancelling these needs no worker.
UNCLAIMED: frozenset[Status] = frozenset({Status.REQUESTED, Status.SCHEDULING})

# requested  = accepted and stored, waiting until its not-before time
# scheduling = due, in the ready queue, waiting for a worker
# scheduled  = claimed by a worker under a lease, not started yet
# running    = the runner has started
TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.REQUESTED: frozenset({Status.SCHEDULING, Status.CANCELLED}),
    Status.SCHEDULING: frozenset({Status.SCHEDULED, Status.CANCELLED}),
    Status.SCHEDULED: frozenset(
        {
            Status.RUNNING,
            Status.FAILED,  # the worker could not start it (bad entry point, ...)
            Status.TIMEOUT,
            Status.CANCELLED,  # cancelled before it started: nothing to stop
            Status.ABANDONED,
            Status.SCHEDULING,  # lease lost or worker shut down: back to the queue
        }
    ),
    Status.RUNNING: frozenset(
        {
            Status.COMPLETED,
            Status.FAILED,
            Status.TIMEOUT,
            Status.CANCELING,
            Status.ABANDONED,
            Status.SCHEDULING,
        }
    ),
    Status.CANCELING: frozenset({Status.CANCELLED}),
    Status.COMPLETED: frozenset(),
    Status.FAILED: frozenset(),
    Status.CANCELLED: frozenset(),
    Status.TIMEOUT: frozenset(),
    Status.ABANDONED: frozenset(),
}


def can_transition(current: Status, target: Status) -> bool:
    return target in TRANSITIONS[current]


def sources_of(target: Status) -> frozenset[Status]:
    """Every state from which `target` may be reached: the WHERE clause of a CAS update."""
    return frozenset(s for s, targets in TRANSITIONS.items() if target in targets)


def parse_status(value: str) -> Status:
    """Canonical (v1) spelling only; dialects translate their own spelling first."""
    try:
        return Status(value)
    except ValueError:
        raise ValueError(f"Invalid execution status: {value}") from None


class Priority(enum.IntEnum):
    LOW = 0
    NORMAL = 1
    HIGH = 2
    CRITICAL = 3

    @property
    def label(self) -> str:
        return self.name.capitalize()

    @classmethod
    def parse(cls, value: str | int | None) -> Priority:
        if value is None:
            return cls.NORMAL
        if isinstance(value, bool):
            raise ValueError(f"Invalid priority: {value!r}")
        if isinstance(value, int):
            try:
                return cls(value)
            except ValueError:
                raise ValueError(f"Invalid priority: {value}") from None
        try:
            return cls[value.strip().upper()]
        except KeyError:
            raise ValueError(
                f"Invalid priority: {value!r} (expected Low, Normal, High or Critical)"
            ) from None


def settle(current: Status, outcome: Status) -> Status:
    """The status a finished run ends in: a run that was being cancelled ends cancelled,
    whatever its process did in the meantime."""
    if current is Status.CANCELING:
        return Status.CANCELLED
    return outcome
