from __future__ import annotations

import pytest

from execd.domain.patterns import (
    MAX_PATTERN,
    Budget,
    PatternError,
    PatternTimeout,
    compile_pattern,
)

# Backtracks for ever on the `regex` engine too (`^(a+)+$` it answers at once).
CATASTROPHIC = "^(a|aa)+$"


@pytest.mark.parametrize(
    "pattern",
    [
        "^[a-z]+$",
        r"\d{3}",
        r"^.{1,255}$",
        r"^[(]?\d{3}[)]?[ -]?\d{4}$",
        r"\({100}",
        "[]()]{5}",
        "[[:alpha:]]+",
        r"\p{L}+",
        "(?i)abc",
        r"^(\w{1,100}\.){0,98}$",
        "((((a{10}){10}){10}){10})",
        "(ab){100}" * 10,
    ],
)
def test_usual_patterns_are_accepted(pattern: str) -> None:
    assert compile_pattern(pattern).pattern == pattern


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("a" * (MAX_PATTERN + 1), "at most 1000 characters"),
        ("(" * 11 + "a" + ")" * 11, "nests groups"),
        ("(?:a{1000}){1000}", "counted repeats"),
        # Once took 3 seconds and all the memory `regex` could get to compile.
        ("((((a{100}){100}){100}){100})", "counted repeats"),
        # A `)` in a class does not end the group: the repeats still multiply.
        ("((?:ab[)]){100}){100}", "counted repeats"),
        # Nor does an escaped one.
        (r"((?:ab\)){100}){100}", "counted repeats"),
        ("(?#a comment)x", "Comments"),
        ("(?x) a b", "Verbose mode"),
        ("(?V1)[[a-z]--[aeiou]]", "version 1"),
        ("(unclosed", "Invalid pattern"),
    ],
)
def test_patterns_that_could_stall_or_fail_are_refused(pattern: str, reason: str) -> None:
    with pytest.raises(PatternError, match=reason):
        compile_pattern(pattern)


def test_a_group_in_a_class_is_no_group() -> None:
    compile_pattern("[(]" * 20 + "a")  # twenty '(' characters, no nesting at all


@pytest.mark.alone
def test_matching_answers_or_runs_out_of_its_budget() -> None:
    budget = Budget()
    assert budget.search("^[a-z]+$", "abc")
    assert not budget.search("^(a+)+$", "a" * 29 + "!")
    text = "a" * 40 + "!"
    with pytest.raises(PatternTimeout) as stopped:
        budget.search(CATASTROPHIC, text)
    assert stopped.value.pattern == CATASTROPHIC and stopped.value.text is text
    # The budget is spent for the whole piece of work, not per pattern.
    with pytest.raises(PatternTimeout):
        budget.search("^[a-z]+$", "abc")
