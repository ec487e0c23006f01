"""What one worker process has run since it started, for metrics: executions started
by action, and two histograms, the wait from submission to start and the run time.

A worker counts in memory and its heartbeat writes the counts to its row in the
database, so any API node's /metrics shows every worker's, on whatever machine and in
whatever process it runs, one series per worker name (a worker restarted under its
name starts again from zero, which Prometheus reads as a counter reset). Figures lag
by at most one heartbeat.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any

# Upper bounds in seconds (the last bucket, +Inf, is implied).
WAIT_BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
               300.0, 900.0, 3600.0)  # fmt: skip
RUN_BOUNDS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
              3600.0, 14400.0)  # fmt: skip


@dataclass
class Histogram:
    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)  # per bucket, the last one +Inf
    total: float = 0.0

    def __post_init__(self) -> None:
        if len(self.counts) != len(self.bounds) + 1:
            self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, seconds: float) -> None:
        seconds = max(seconds, 0.0)
        self.counts[bisect.bisect_left(self.bounds, seconds)] += 1
        self.total += seconds

    def cumulative(self) -> list[tuple[str, int]]:
        """Prometheus' buckets: (upper bound, observations at or under it)."""
        found, running = [], 0
        for bound, count in zip([*map(repr, self.bounds), "+Inf"], self.counts, strict=True):
            running += count
            found.append((bound, running))
        return found

    def to_json(self) -> dict[str, Any]:
        counts = list(self.counts)  # a copy: inline runs count from the database's thread
        return {"bounds": list(self.bounds), "counts": counts, "sum": round(self.total, 6)}

    @classmethod
    def from_json(cls, data: Any, bounds: tuple[float, ...]) -> Histogram:
        """What a heartbeat wrote; empty where it was written with other bounds (an older
        version of the worker) or not at all."""
        if not isinstance(data, dict) or tuple(data.get("bounds") or ()) != bounds:
            return cls(bounds)
        return cls(bounds, [int(c) for c in data.get("counts") or []], float(data.get("sum", 0)))


@dataclass
class RunFigures:
    started: dict[str, int] = field(default_factory=dict)  # by action
    wait: Histogram = field(default_factory=lambda: Histogram(WAIT_BOUNDS))
    run: Histogram = field(default_factory=lambda: Histogram(RUN_BOUNDS))

    def began(self, action: str, waited: float) -> None:
        self.started[action] = self.started.get(action, 0) + 1
        self.wait.observe(waited)

    def ran(self, seconds: float) -> None:
        self.run.observe(seconds)

    def to_json(self) -> dict[str, Any]:
        started = dict(self.started)  # a copy, taken at once (see Histogram.to_json)
        return {"started": started, "wait": self.wait.to_json(), "run": self.run.to_json()}

    @classmethod
    def from_json(cls, data: Any) -> RunFigures:
        if not isinstance(data, dict):
            return cls()
        started = data.get("started")
        return cls(
            started={str(k): int(v) for k, v in started.items()}
            if isinstance(started, dict)
            else {},
            wait=Histogram.from_json(data.get("wait"), WAIT_BOUNDS),
            run=Histogram.from_json(data.get("run"), RUN_BOUNDS),
        )
