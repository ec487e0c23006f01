from __future__ import annotations

import pytest

from execd.api.dialects.flows import params
from execd.api.dialects.flows.wire import format_duration
from execd.domain.flows import FlowSpec, FlowStep, find_cycle, validate_flow
from execd.domain.templates import TemplateError, check, render
from execd.errors import InvalidInput


def test_render_keeps_types_for_whole_placeholders_and_text_inside_strings() -> None:
    context = {"parameters": {"n": 3, "tags": ["a"], "who": "ann"}, "deviceId": "d1"}
    template = {
        "count": "{{ parameters.n }}",
        "tags": "{{parameters.tags}}",
        "text": "{{ parameters.who }} has {{ parameters.n }} on {{ deviceId }}",
        "list": ["{{ parameters.who }}", 7],
        "plain": "no {braces} here",
    }
    assert render(template, context) == {
        "count": 3,
        "tags": ["a"],
        "text": "ann has 3 on d1",
        "list": ["ann", 7],
        "plain": "no {braces} here",
    }
    with pytest.raises(TemplateError, match=r"parameters\.missing"):
        render("{{ parameters.missing }}", context)


def test_text_that_opens_a_placeholder_must_be_one() -> None:
    check({"a": "{{ parameters.n }} and {{deviceId}}", "b": ["{single}", 1, None]})
    # Braces that do not open with a name are text: Go templates, for one.
    check({"format": "docker ps --format '{{.Names}}'", "other": "{{ 7*7 }} {{}}"})
    for bad in ("{{ x | upper }}", "{{ x", "ok {{ x }} then {{y", "{{x.}}", "{{ a b }}"):
        with pytest.raises(TemplateError, match="Not a placeholder"):
            check({"deep": [{"text": bad}]})


def test_find_cycle() -> None:
    graph = {"a": ["b"], "b": ["c"], "c": ["a"], "d": ["b"]}
    assert find_cycle("a", graph) == ["a", "b", "c", "a"]
    assert find_cycle("d", graph) is None
    assert find_cycle("x", {"x": ["x"]}) == ["x", "x"]


def test_validate_flow() -> None:
    validate_flow(FlowSpec(name="ok", steps=[FlowStep(action="core.noop")]))
    with pytest.raises(ValueError, match="exactly one"):
        validate_flow(FlowSpec(name="x", steps=[FlowStep(action="a.b", flow="f")]))
    with pytest.raises(ValueError, match="no timeout"):
        validate_flow(FlowSpec(name="x", steps=[FlowStep(flow="f", timeout=3)]))
    bad_template = FlowStep(action="a.b", parameters={"x": "{{ parameters.y | int }}"})
    with pytest.raises(ValueError, match="step 1: Not a placeholder"):
        validate_flow(FlowSpec(name="x", steps=[bad_template]))


@pytest.mark.parametrize(
    ("ms", "text"),
    [(15000, "15.00s"), (0, "0.00s"), (125_000, "2m 5.00s"), (3_725_500, "1h 2m 5.50s")],
)
def test_durations_read_as_seconds_minutes_and_hours(ms: int, text: str) -> None:
    assert format_duration(ms) == text


def test_dates() -> None:
    assert params.date("1970-01-01T00:00:10Z", "startDate") == 10.0
    assert params.date("1970-01-01T01:00:10+01:00", "startDate") == 10.0
    assert params.date("1970-01-01T00:00:10", "startDate") == 10.0  # no zone: UTC
    end = params.date("1970-01-01", "endDate", end_of_day=True)
    assert end is not None and 86399.9 < end < 86400
    with pytest.raises(InvalidInput):
        params.date("9999-12-31", "endDate", end_of_day=True)
