"""Execution analytics: counts, failure rate and duration percentiles of the
executions that ended in a window, per action and/or per time bucket.

Durations are kept as log-scale histograms: bin i holds durations in
(GAMMA^(i-1), GAMMA^i] milliseconds, so a percentile read from a histogram is within
1 % of the true value, and histograms of hours, actions and statuses add up. That is
what makes hourly rollups mergeable into any window (store/analytics.py).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import add

from execd.domain.states import Status

FAILURES = frozenset({Status.FAILED, Status.TIMEOUT, Status.ABANDONED})
BUCKETS = {"hour": 3600, "day": 86400}
PERCENTILES = (0.5, 0.95, 0.99)
MAX_BUCKETS = 10_000
ROLLUP_SECONDS = 3600  # rollups are per hour
ACCURACY = 0.01
GAMMA = (1 + ACCURACY) / (1 - ACCURACY)
_LOG_GAMMA = math.log(GAMMA)


def bin_of(seconds: float) -> int:
    """The histogram bin of a duration (bin 0: a millisecond or less)."""
    ms = seconds * 1000
    return 0 if ms <= 1 else math.ceil(math.log(ms) / _LOG_GAMMA)


def value_of(bin_index: int) -> float:
    """The duration (seconds) a bin stands for: within 1 % of any it holds."""
    if bin_index <= 0:
        return 0.001
    return 2 * GAMMA**bin_index / (GAMMA + 1) / 1000


def packed(histogram: Mapping[int, int]) -> list[int]:
    """A histogram as the rollups store it: its lowest bin, then the count of every bin
    from there to its highest ([] when empty). One flat list of small numbers is quick
    to read back, and adds up in slices (`merge`)."""
    if not histogram:
        return []
    low = min(histogram)
    found = [0] * (max(histogram) - low + 2)
    found[0] = low
    for bin_index, count in histogram.items():
        found[bin_index - low + 1] = count
    return found


def merge(into: list[int], more: Mapping[int, int] | Sequence[int]) -> None:
    """Add a histogram (a mapping, or packed) into a dense one: the count of bin i at
    index i."""
    if isinstance(more, Mapping):
        if more:
            _grow(into, max(more) + 1)
            for bin_index, count in more.items():
                into[bin_index] += count
    elif more:
        low, high = more[0], more[0] + len(more) - 1
        _grow(into, high)
        into[low:high] = map(add, into[low:high], more[1:])


def _grow(dense: list[int], size: int) -> None:
    if len(dense) < size:
        dense.extend([0] * (size - len(dense)))


def percentiles(
    histogram: Mapping[int, int], ps: Sequence[float] = PERCENTILES
) -> list[float | None]:
    """Nearest rank: for each p, the bin holding the ceil(p x n)-th smallest duration
    (one walk through the bins for all of them)."""
    total = sum(histogram.values())
    if not total:
        return [None] * len(ps)
    ranks = [max(1, math.ceil(p * total - 1e-9)) for p in ps]
    found: list[float | None] = [None] * len(ps)
    seen, todo = 0, sorted(range(len(ps)), key=lambda i: ranks[i])
    for bin_index in sorted(histogram):
        seen += histogram[bin_index]
        while todo and seen >= ranks[todo[0]]:
            found[todo.pop(0)] = value_of(bin_index)
        if not todo:
            break
    return found


@dataclass
class Aggregate:
    """What ended in one group (an action, a bucket, or both)."""

    action_ref: str | None
    bucket: float | None  # the bucket's start (seconds since the epoch)
    by_status: dict[Status, int] = field(default_factory=dict)
    # Run times (started to ended) of those that ran: the count of bin i at index i.
    durations: list[int] = field(default_factory=list)

    def add(self, status: Status, count: int, durations: Mapping[int, int] | Sequence[int]) -> None:
        self.by_status[status] = self.by_status.get(status, 0) + count
        merge(self.durations, durations)

    def add_one(self, status: Status, seconds: float | None) -> None:
        """One that ended, and how long it ran (None: it never started): what `add`
        does with a histogram of one, without making one for each."""
        self.by_status[status] = self.by_status.get(status, 0) + 1
        if seconds is not None:
            bin_index = bin_of(max(seconds, 0.0))
            dense = self.durations
            if len(dense) <= bin_index:
                dense.extend([0] * (bin_index + 1 - len(dense)))
            dense[bin_index] += 1

    @property
    def ended(self) -> int:
        return sum(self.by_status.values())

    @property
    def failures(self) -> int:
        return sum(n for s, n in self.by_status.items() if s in FAILURES)

    @property
    def failure_rate(self) -> float | None:
        """Failed, timed out or abandoned, over all that ended (cancelled included)."""
        return round(self.failures / self.ended, 4) if self.ended else None

    def percentiles(self) -> list[float | None]:
        return percentiles({i: n for i, n in enumerate(self.durations) if n})

    def packed(self) -> list[int]:
        """Its run times as the rollups store them."""
        dense = self.durations
        low = next((i for i, n in enumerate(dense) if n), None)
        if low is None:
            return []
        high = max(i for i, n in enumerate(dense) if n)
        return [low, *dense[low : high + 1]]


def histogram(durations: Iterable[float]) -> dict[int, int]:
    found: dict[int, int] = {}
    for seconds in durations:
        b = bin_of(max(seconds, 0.0))
        found[b] = found.get(b, 0) + 1
    return found
