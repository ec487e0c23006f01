from __future__ import annotations

import pytest

from execd.domain.executions import Execution
from execd.domain.retries import retryable
from execd.domain.states import TERMINAL, Status
from execd.engine.jobs import RETRYABLE
from tests.records import an_execution


def _execution(status: Status) -> Execution:
    return an_execution(status=status)


@pytest.mark.parametrize("status", list(Status))
def test_any_end_is_retryable_where_every_end_is_allowed(status: Status) -> None:
    assert retryable(_execution(status), TERMINAL) == (status in TERMINAL)


@pytest.mark.parametrize("status", list(Status))
def test_a_job_is_retryable_unless_it_completed_or_has_not_ended(status: Status) -> None:
    expected = status in TERMINAL and status is not Status.COMPLETED
    assert retryable(_execution(status), RETRYABLE) == expected


@pytest.mark.parametrize("status", sorted(set(Status) - TERMINAL, key=lambda s: s.value))
def test_what_has_not_ended_is_never_retryable(status: Status) -> None:
    assert not retryable(_execution(status), frozenset(Status))
