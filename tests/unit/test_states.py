from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from execd.domain.states import (
    LEASED,
    PENDING,
    TERMINAL,
    TRANSITIONS,
    Priority,
    Status,
    can_transition,
    parse_status,
    settle,
    sources_of,
)


def test_ten_states_with_terminal_ones_final() -> None:
    assert len(Status) == 10
    assert set(TRANSITIONS) == set(Status)
    for status in TERMINAL:
        assert TRANSITIONS[status] == frozenset()
    assert set(Status) - set() == PENDING | LEASED | TERMINAL  # every state is classified
    assert not PENDING & TERMINAL and not LEASED & TERMINAL


def test_every_live_state_can_be_cancelled() -> None:
    for status in set(Status) - TERMINAL:
        reachable = TRANSITIONS[status]
        assert Status.CANCELLED in reachable or Status.CANCELING in reachable, status


def test_sources_of_is_the_inverse_of_the_table() -> None:
    for target in Status:
        for source in Status:
            assert (source in sources_of(target)) == can_transition(source, target)


@given(st.lists(st.sampled_from(list(Status)), max_size=30))
def test_no_walk_leaves_a_terminal_state(steps: list[Status]) -> None:
    current = Status.REQUESTED
    for step in steps:
        if can_transition(current, step):
            assert current not in TERMINAL
            current = step
    if current in TERMINAL:
        assert all(not can_transition(current, s) for s in Status)


def test_a_run_being_cancelled_settles_as_cancelled() -> None:
    assert settle(Status.CANCELING, Status.COMPLETED) is Status.CANCELLED
    assert settle(Status.RUNNING, Status.FAILED) is Status.FAILED


def test_parse_status() -> None:
    assert parse_status("running") is Status.RUNNING
    with pytest.raises(ValueError, match="Invalid execution status: Running"):
        parse_status("Running")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("low", Priority.LOW),
        ("Critical", Priority.CRITICAL),
        (2, Priority.HIGH),
        (None, Priority.NORMAL),
    ],
)
def test_priority_parse(value: str | int | None, expected: Priority) -> None:
    assert Priority.parse(value) is expected


@pytest.mark.parametrize("value", ["urgent", 7, True, ""])
def test_priority_parse_rejects(value: str | int) -> None:
    with pytest.raises(ValueError):
        Priority.parse(value)
