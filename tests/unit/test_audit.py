"""What an audit entry keeps of what a write returned: ids, never values."""

from __future__ import annotations

from dataclasses import dataclass

from execd.domain.audit import MAX_OBJECTS, made_ids


@dataclass
class Made:
    id: int
    ref: str
    secret: str


def test_only_ids_of_returned_objects_are_kept() -> None:
    made = Made(7, "ops.greet", "hunter2")
    assert made_ids(made) == [7, "ops.greet"]
    # A token's value beside its record, a dict of results, a list: ids only.
    assert made_ids((made, "execd_the-token-value")) == [7, "ops.greet"]
    assert made_ids({"a": made, "b": "hunter2", "c": 3}) == [7, "ops.greet"]
    assert made_ids("execd_the-token-value") == [] and made_ids(None) == []


def test_a_batch_keeps_its_first_ids() -> None:
    many = [Made(i, f"r{i}", "s") for i in range(1000)]
    kept = made_ids(many)
    assert len(kept) == MAX_OBJECTS and kept[:4] == [0, "r0", 1, "r1"]


@dataclass
class Wrapper:
    made: Made
    replayed: bool


def test_a_wrapper_without_ids_gives_the_ids_of_what_it_holds() -> None:
    assert made_ids([Wrapper(Made(3, "x", "s"), False)]) == [3, "x"]
