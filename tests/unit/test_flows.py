from __future__ import annotations

import pytest

from execd.api.dialects.flows import params
from execd.api.dialects.flows.wire import format_duration
from execd.domain.core_pack import CORE_ACTIONS
from execd.domain.errors import InvalidInput
from execd.domain.flows import FlowSpec, FlowStep, find_cycle, validate_flow
from execd.domain.templates import TemplateError, check, render, render_parameters


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


def test_a_shell_script_gets_its_values_through_its_environment() -> None:
    shell = CORE_ACTIONS["core.shell"]
    x = "hi; touch pwned"
    context = {"parameters": {"x": x, "n": 3, "a-b": None}}
    template = {
        "cmd": 'echo {{ parameters.x }} "<{{parameters.x}}>" '
        '"{{ parameters.n }}" {{ parameters.a-b }}',
        "args": ["{{ parameters.x }}"],
        "env": {"TEMPLATE_PARAMETERS_N": "taken", "OTHER": "{{ parameters.x }}"},
    }
    assert render_parameters(template, context, shell) == {
        "cmd": 'echo "$TEMPLATE_PARAMETERS_X" "<${TEMPLATE_PARAMETERS_X}>" '
        '"${TEMPLATE_PARAMETERS_N_2}" "$TEMPLATE_PARAMETERS_A_B"',
        "args": [x],
        "env": {
            "TEMPLATE_PARAMETERS_N": "taken",
            "OTHER": x,
            "TEMPLATE_PARAMETERS_X": x,
            "TEMPLATE_PARAMETERS_N_2": "3",
            "TEMPLATE_PARAMETERS_A_B": "",
        },
    }
    # Where the value could be read as code, the script is refused, naming the place.
    refused = {
        "{{ parameters.x }}": "as the program to run",
        "echo '{{ parameters.x }}'": "inside single quotes",
        "bash -c 'echo {{ parameters.x }}'": "inside single quotes",
        'sh -c "echo {{ parameters.x }}"': "in the script sh runs",
        "eval echo {{ parameters.x }}": "in the arguments of eval",
        "echo {{ parameters.x }} | sh": "in a command whose output is piped to a program",
    }
    for cmd, where in refused.items():
        with pytest.raises(TemplateError, match=f"^cmd: {{{{ parameters.x }}}} {where}"):
            render_parameters({"cmd": cmd}, context, shell)
    # Nothing changes for a script without placeholders, other actions or a sub-flow.
    assert render_parameters({"cmd": "ls"}, context, shell) == {"cmd": "ls"}
    for action in (CORE_ACTIONS["core.echo"], None):
        assert render_parameters({"cmd": "{{ parameters.x }}!", "n": "{{ parameters.n }}"},
                                 context, action) == {"cmd": f"{x}!", "n": 3}  # fmt: skip
    with pytest.raises(TemplateError, match=r"cmd: \{\{ parameters.n \}\} in arithmetic"):
        render_parameters({"cmd": "echo $(( {{ parameters.n }} ))"}, context, shell)
    with pytest.raises(TemplateError, match="env must be an object"):
        render_parameters(
            {"cmd": "{{ parameters.x }}", "env": "{{ parameters.n }}"}, context, shell
        )
    with pytest.raises(TemplateError, match=r"parameters\.missing"):
        render_parameters({"cmd": "echo {{ parameters.missing }}"}, context, shell)


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
    # The last day there is: its end is past what a datetime holds, but not a time's.
    last = params.date("9999-12-31", "endDate", end_of_day=True)
    assert last is not None and last > params.date("9999-12-31T23:59:59Z", "endDate")
    assert params.date("1970-01-01t00:00:10z", "startDate") == 10.0  # RFC 3339 allows it
    with pytest.raises(InvalidInput):
        params.date("1970-13-01", "startDate")
