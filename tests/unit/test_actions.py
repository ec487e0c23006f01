from __future__ import annotations

import pytest

from execd.domain.actions import (
    ActionSpec,
    ParameterValidator,
    RetryPolicy,
    mask_secrets,
    secret_names,
    split_ref,
    validate_spec,
)
from execd.domain.core_pack import CORE_ACTIONS, CORE_BY_UUID


def test_split_ref() -> None:
    assert split_ref("core.shell") == ("core", "shell")
    assert split_ref("aws.ec2.start_instance") == ("aws", "ec2.start_instance")
    for bad in ["shell", ".x", "a.", "a b.c", "", "core.shell\n"]:
        with pytest.raises(ValueError):
            split_ref(bad)


def test_retry_policy_delays_grow_and_are_capped() -> None:
    policy = RetryPolicy(max_attempts=6, delay=1, backoff=3, max_delay=20)
    assert [policy.delay_before(n) for n in range(2, 6)] == [1, 3, 9, 20]
    assert policy.allows("lost", 1) and not policy.allows("failed", 1)
    assert not policy.allows("lost", 6)


def test_retry_policy_round_trips_and_validates() -> None:
    policy = RetryPolicy.from_json({"max_attempts": 4, "retry_on": ["failed", "lost"]})
    assert RetryPolicy.from_json(policy.to_json()) == policy
    for bad in [
        {"max_attempts": 0},
        {"retry_on": ["sometimes"]},
        {"delay": -1},
        {"x": 1},
        {"max_attempts": 1.5},
    ]:
        with pytest.raises(ValueError):
            RetryPolicy.from_json(bad)


def test_parameters_get_defaults_and_clear_errors() -> None:
    schema = {
        "type": "object",
        "properties": {
            "count": {"type": "integer", "minimum": 1},
            "mode": {"type": "string", "default": "fast"},
        },
        "required": ["count"],
    }
    validate = ParameterValidator(schema)
    assert validate({"count": 2}) == {"count": 2, "mode": "fast"}
    with pytest.raises(ValueError, match="'count' is a required property"):
        validate({})
    with pytest.raises(ValueError, match="parameter 'count'"):
        validate({"count": 0})


def test_secrets_are_masked() -> None:
    schema = {"type": "object", "properties": {"token": {"type": "string", "secret": True}}}
    assert secret_names(schema) == {"token"}
    assert mask_secrets({"token": "s3cret", "x": 1}, secret_names(schema)) == {
        "token": "********",
        "x": 1,
    }


def test_core_pack() -> None:
    assert set(CORE_ACTIONS) == {
        "core.noop",
        "core.echo",
        "core.sleep",
        "core.shell",
        "core.python",
        "core.http",
    }
    assert all(CORE_BY_UUID[a.uuid] is a for a in CORE_ACTIONS.values())
    for action in CORE_ACTIONS.values():
        ParameterValidator(action.parameters)  # every built-in schema compiles


@pytest.mark.parametrize(
    ("runner", "entry_point", "message"),
    [
        ("local", "noop", "Unknown runner"),
        ("python", "mod.func", "module:function"),
        ("command", '"ls"', "JSON array"),
        ("shell", "  ", "needs an entry_point"),
    ],
)
def test_invalid_specs(runner: str, entry_point: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate_spec(ActionSpec(ref="my.action", runner=runner, entry_point=entry_point))
