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
        {"retry_on": [{}]},  # not text: refused, not a TypeError
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


# -- patterns and secrets in parameter errors ------------------------------------------

SECRET = "S3c-val"  # 7 characters: too short for the schemas below


def test_patterns_validate_and_reject_as_before() -> None:
    validate = ParameterValidator(
        {
            "type": "object",
            "properties": {
                "code": {"type": "string", "pattern": r"\d{3}"},
                "name": {"type": "string", "pattern": "^[a-z]+$"},
            },
            "patternProperties": {"^x_": {"type": "integer"}},
            "additionalProperties": False,
        }
    )
    assert validate({"code": "a123", "name": "ann", "x_one": 1}) == {
        "code": "a123",
        "name": "ann",
        "x_one": 1,
    }
    with pytest.raises(ValueError, match=r"parameter 'code': '12' does not match '\\\\d\{3\}'"):
        validate({"code": "12"})
    with pytest.raises(ValueError, match="parameter 'name': 'Ann' does not match"):
        validate({"name": "Ann"})
    with pytest.raises(ValueError, match="parameter 'x_one': 'one' is not of type 'integer'"):
        validate({"x_one": "one"})
    with pytest.raises(ValueError, match=r"\('y' was unexpected\)"):
        validate({"y": 1})


def test_a_catastrophic_pattern_is_answered_not_waited_for() -> None:
    validate = ParameterValidator(
        {
            "type": "object",
            "properties": {
                "quick": {"type": "string", "pattern": "^(a+)+$"},
                "slow": {"type": "string", "pattern": "^(a|aa)+$"},
            },
            "patternProperties": {"^(b|bb)+$": {"type": "integer"}},
        }
    )
    with pytest.raises(ValueError, match=r"parameter 'quick': 'a+!' does not match"):
        validate({"quick": "a" * 29 + "!"})
    with pytest.raises(ValueError, match="parameter 'slow': matching the pattern '\\^\\(a\\|aa"):
        validate({"slow": "a" * 40 + "!"})
    # A property name matched against patternProperties is bounded as well.
    with pytest.raises(ValueError, match=r"parameter 'b+!': matching the pattern"):
        validate({"b" * 40 + "!": 1})
    assert validate({"slow": "aaaa", "bb": 1}) == {"slow": "aaaa", "bb": 1}


@pytest.mark.parametrize(
    ("schema", "reason"),
    [
        (
            {"properties": {"x": {"type": "string", "pattern": "((((a{100}){100}){100}){100})"}}},
            "counted repeats",
        ),
        ({"$defs": {"x": {"pattern": "(?x) a"}}}, "Verbose mode"),
        ({"patternProperties": {"(?#c)": {}}}, "Comments"),
        (
            {"patternProperties": {"^a": {}}, "unevaluatedProperties": False},
            "cannot be combined with unevaluatedProperties",
        ),
    ],
)
def test_patterns_are_checked_when_an_action_is_defined(
    schema: dict[str, object], reason: str
) -> None:
    spec = ActionSpec(ref="my.action", runner="shell", entry_point="true", parameters=schema)
    with pytest.raises(ValueError, match=reason):
        validate_spec(spec)
    # A schema stored before these checks is refused when used, not compiled.
    with pytest.raises(ValueError, match="parameters schema cannot be used"):
        ParameterValidator(schema)


def test_patterns_in_data_are_not_patterns() -> None:
    schema = {
        "type": "object",
        "properties": {"pattern": {"type": "string", "default": "(", "examples": ["(?x)"]}},
        "const": {"pattern": "("},
    }
    validate_spec(
        ActionSpec(ref="my.action", runner="shell", entry_point="true", parameters=schema)
    )


SECRET_SCHEMA = {
    "type": "object",
    "properties": {"api_key": {"type": "string", "secret": True}, "region": {"type": "string"}},
}


@pytest.mark.parametrize(
    ("constraint", "value", "said"),
    [
        ({"minLength": 8}, SECRET, "is too short: at least 8 characters"),
        ({"maxLength": 3}, SECRET, "is too long: at most 3 characters"),
        ({"pattern": "^[a-z]+$"}, SECRET, "does not match the pattern '^[a-z]+$'"),
        ({"enum": ["one", "two"]}, SECRET, "is not one of the allowed values"),
        ({"const": "one"}, SECRET, "is not the expected value"),
        ({"type": "integer"}, SECRET, "is not of type 'integer'"),
        ({"not": {"type": "string"}}, SECRET, "does not satisfy the schema's 'not'"),
        ({"type": "array", "uniqueItems": True}, [SECRET, SECRET], "has repeated items"),
        ({"type": "array", "items": {"maxLength": 1}}, [SECRET], "is too long: at most 1"),
    ],
)
def test_errors_about_a_secret_name_it_and_never_show_it(
    constraint: dict[str, object], value: object, said: str
) -> None:
    schema = {
        "type": "object",
        "properties": {"api_key": {"secret": True, **constraint}},
    }
    with pytest.raises(ValueError) as refused:
        ParameterValidator(schema)({"api_key": value})
    message = str(refused.value)
    assert message.startswith("Invalid parameter 'api_key") and "(secret)" in message
    assert said in message
    assert SECRET not in message


@pytest.mark.parametrize(
    ("constraint", "said"),
    [
        ({"oneOf": [{"required": ["a"]}, {"required": ["b"]}]}, "the schema's 'oneOf'"),
        ({"not": {"required": ["region"]}}, "the schema's 'not'"),
        ({"minProperties": 3}, "has too few properties: at least 3"),
        ({"maxProperties": 1}, "has too many properties: at most 1"),
        ({"additionalProperties": False}, "('extra' was unexpected)"),
        ({"required": ["zone"]}, "'zone' is a required property"),
        ({"if": {"required": ["region"]}, "then": {"required": ["zone"]}}, "'zone' is a required"),
        ({"dependentSchemas": {"region": {"minProperties": 9}}}, "at least 9"),
    ],
)
def test_errors_about_the_object_holding_a_secret_never_show_it(
    constraint: dict[str, object], said: str
) -> None:
    validate = ParameterValidator({**SECRET_SCHEMA, **constraint})
    parameters = {"api_key": SECRET, "region": "eu"}
    if constraint.get("additionalProperties") is False:
        parameters["extra"] = "x"
    with pytest.raises(ValueError) as refused:
        validate(parameters)
    message = str(refused.value)
    assert message.startswith("Invalid parameters: ") and said in message
    assert SECRET not in message


def test_errors_about_other_parameters_still_quote_their_value() -> None:
    schema = {**SECRET_SCHEMA, "properties": {**SECRET_SCHEMA["properties"], "n": {"maximum": 3}}}
    with pytest.raises(ValueError, match="parameter 'n': 5 is greater than the maximum of 3"):
        ParameterValidator(schema)({"api_key": SECRET, "n": 5})
    # Without a secret in the object, a whole-object error reads as jsonschema says.
    with pytest.raises(ValueError, match="'region': 'eu'} does not have enough properties"):
        ParameterValidator({**SECRET_SCHEMA, "minProperties": 2})({"region": "eu"})


def test_a_secret_that_takes_too_long_to_match_is_named_not_shown() -> None:
    validate = ParameterValidator(
        {"type": "object", "properties": {"api_key": {"secret": True, "pattern": "^(a|aa)+$"}}}
    )
    secret = "a" * 40 + "!"
    with pytest.raises(ValueError) as refused:
        validate({"api_key": secret})
    message = str(refused.value)
    assert message.startswith("Invalid parameter 'api_key' (secret): matching the pattern")
    assert secret not in message
