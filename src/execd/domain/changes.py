"""A requested change of one execution: what workers, the reaper, cancellation and
the flow engine hand to the queue's single compare-and-set write path."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from execd.domain.states import Status

NOW = object()  # placeholder for the transaction's database time in Change.values


@dataclass(frozen=True)
class Change:
    """One requested change of one execution.

    `to=None` changes fields only (progress) and records no event. `fence` is the
    token of the worker making the change; None for changes not made by a worker.
    `settle` maps a run's outcome onto the row's state (a cancelling run ends cancelled).
    """

    execution_id: int
    to: Status | None = None
    fence: int | None = None
    when: frozenset[Status] | None = None
    values: Mapping[str, Any] = field(default_factory=dict)
    message: str | None = None
    settle: bool = False
