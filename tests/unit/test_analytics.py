"""Duration histograms (domain/analytics.py): percentiles within 1 %, and histograms
that add up, which is what lets hourly rollups answer any window."""

from __future__ import annotations

import math
import random

from execd.domain.analytics import Aggregate, histogram, merge, packed, percentiles
from execd.domain.states import TERMINAL, Status
from execd.store.schema import ROLLED_UP, execution_rollups_daily, execution_rollups_hourly


def nearest_rank(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(p * len(ordered))) - 1]


def test_percentiles_are_within_one_percent() -> None:
    rng = random.Random(3)
    for spread in ((0.002, 0.01), (0.1, 60.0), (5.0, 86_400.0)):
        values = [rng.uniform(*spread) for _ in range(5_000)]
        h = histogram(values)
        for p in (0.5, 0.95, 0.99):
            exact = nearest_rank(values, p)
            [found] = percentiles(h, [p])
            assert found is not None
            assert abs(found - exact) <= exact * 0.01 + 1e-9, (spread, p, found, exact)


def test_histograms_add_up() -> None:
    rng = random.Random(5)
    first = [rng.expovariate(1.0) for _ in range(1_000)]
    second = [rng.expovariate(0.1) for _ in range(3_000)]
    third = [rng.uniform(100, 200) for _ in range(10)]  # bins beyond the others'
    merged: list[int] = []
    merge(merged, histogram(first))
    merge(merged, packed(histogram(second)))  # as rollups store it
    merge(merged, packed(histogram(third)))
    merge(merged, packed({}))
    assert {i: n for i, n in enumerate(merged) if n} == histogram(first + second + third)
    group = Aggregate(action_ref=None, bucket=None)
    group.add(Status.COMPLETED, 3, packed(histogram(third[:3])))
    assert group.packed() == packed(histogram(third[:3]))
    assert Aggregate(action_ref=None, bucket=None).packed() == []


def test_a_packed_histogram_is_its_lowest_bin_then_every_count() -> None:
    assert packed({7: 2, 9: 1}) == [7, 2, 0, 1]
    assert packed({0: 4}) == [0, 4]


def test_an_aggregate_counts_statuses_and_failures() -> None:
    group = Aggregate(action_ref="a", bucket=None)
    group.add(Status.COMPLETED, 7, histogram([1.0] * 7))
    group.add(Status.FAILED, 2, histogram([2.0, 3.0]))
    group.add(Status.CANCELLED, 1, {})  # never ran: no duration
    assert group.ended == 10 and group.failures == 2 and group.failure_rate == 0.2
    p50, p95, p99 = group.percentiles()
    assert p50 is not None and abs(p50 - 1.0) <= 0.01
    assert p95 == p99 and p99 is not None and abs(p99 - 3.0) <= 0.03
    assert Aggregate(action_ref=None, bucket=None).percentiles() == [None, None, None]
    assert percentiles({0: 3}, [0.5]) == [0.001]  # a millisecond or less


def test_the_rollups_have_a_count_column_for_every_final_status() -> None:
    assert set(ROLLED_UP) == {s.value for s in TERMINAL}
    for rollups in (execution_rollups_hourly, execution_rollups_daily):
        # store/analytics.py reads them by place: right after the row's key.
        assert tuple(c.name for c in rollups.columns)[3:8] == ROLLED_UP
