"""Parameter schemas validate at a bounded cost (issue 12): the keywords jsonschema
implements in quadratic time are linear here and agree with it, a validation has a
budget of steps, references that loop are refused, and nothing raises past
`ParameterValidator` but a ValueError a user can read."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from execd.domain.actions import ActionSpec, ParameterValidator, validate_spec
from execd.domain.schemas import MAX_STEPS, MAX_SUBSCHEMAS


def one_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A parameters schema with one parameter, `x`, of this schema."""
    return {"type": "object", "properties": {"x": schema}}


def one(schema: dict[str, Any]) -> ParameterValidator:
    return ParameterValidator(one_schema(schema))


def test_unique_items_checks_8000_objects_and_finds_the_repeat() -> None:
    check = one({"type": "array", "uniqueItems": True})
    items = [{"a": i} for i in range(8000)]
    assert check({"x": items}) == {"x": items}
    with pytest.raises(ValueError) as refused:
        check({"x": [*items, {"a": 5}]})
    assert str(refused.value) == (
        "Invalid parameter 'x': has non-unique elements: items 5 and 8000 are equal"
    )


EQUALITY_CASES = [
    [1, 1.0],
    [True, 1],
    [False, 0],
    [None, False],
    ["1", 1],
    [{}, []],
    [[[]], [[]]],
    [[1, 2], [2, 1]],
    [{"a": 1, "b": [1, 2]}, {"b": [1, 2], "a": 1}],
    [{"a": 1}, {"a": 1.0}],
    [{"a": True}, {"a": 1}],
    [{"a": {"b": [None]}}, {"a": {"b": [None]}}],
    [2**53 + 1, float(2**53)],
]


@pytest.mark.parametrize("items", EQUALITY_CASES)
def test_unique_items_agrees_with_jsonschema(items: list[Any]) -> None:
    expected = jsonschema.Draft202012Validator({"uniqueItems": True}).is_valid(items)
    check = one({"uniqueItems": True})
    if expected:
        assert check({"x": items}) == {"x": items}
    else:
        with pytest.raises(ValueError, match="has non-unique elements: items 0 and 1"):
            check({"x": items})


@pytest.mark.parametrize("items", EQUALITY_CASES)
def test_enum_and_const_agree_with_jsonschema(items: list[Any]) -> None:
    allowed, candidate = items
    for keyword, value in [("enum", ["other", allowed]), ("const", allowed)]:
        expected = jsonschema.Draft202012Validator({keyword: value}).is_valid(candidate)
        check = one({keyword: value})
        if expected:
            assert check({"x": candidate}) == {"x": candidate}
        else:
            with pytest.raises(ValueError, match="parameter 'x'"):
                check({"x": candidate})


def test_enum_of_many_values_checks_many_items() -> None:
    check = one({"type": "array", "items": {"enum": list(range(5000))}})
    assert check({"x": [4999] * 5000}) == {"x": [4999] * 5000}
    with pytest.raises(ValueError, match=r"parameter 'x\.4': 5000 is not one of \[0, 1"):
        check({"x": [1, 2, 3, 4, 5000]})


def test_unevaluated_items_and_properties_still_apply() -> None:
    items = one({"type": "array", "prefixItems": [{"type": "integer"}], "unevaluatedItems": False})
    assert items({"x": [1]}) == {"x": [1]}
    with pytest.raises(ValueError, match=r"Unevaluated items are not allowed \('b' was"):
        items({"x": [1, "b"]})
    many = one({"type": "array", "items": {"type": "integer"}, "unevaluatedItems": False})
    assert many({"x": list(range(5000))}) == {"x": list(range(5000))}

    props = one({"type": "object", "properties": {"a": {}}, "unevaluatedProperties": False})
    assert props({"x": {"a": 1}}) == {"x": {"a": 1}}
    with pytest.raises(ValueError, match=r"Unevaluated properties are not allowed \('b' was"):
        props({"x": {"a": 1, "b": 2}})
    typed = one({"type": "object", "unevaluatedProperties": {"type": "integer"}})
    wide = {str(i): i for i in range(5000)}
    assert typed({"x": wide}) == {"x": wide}
    with pytest.raises(ValueError, match=r"\('7' was unevaluated and invalid\)"):
        typed({"x": {**wide, "7": "seven"}})


def chain_of_halves(depth: int) -> dict[str, Any]:
    """Each level applies the next one twice: 2**depth applications of the last."""
    defs = {
        f"d{i}": {"allOf": [{"$ref": f"#/$defs/d{i + 1}"}, {"$ref": f"#/$defs/d{i + 1}"}]}
        for i in range(depth)
    }
    defs[f"d{depth}"] = {"type": "string"}
    return {"type": "object", "$defs": defs, "properties": {"x": {"$ref": "#/$defs/d0"}}}


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"c": value}
    return value


TOO_COSTLY = f"takes more than the {MAX_STEPS:,} steps one validation may take"


@pytest.mark.parametrize(
    ("schema", "parameters"),
    [
        (chain_of_halves(40), {"x": "text"}),
        (
            {
                "type": "object",
                "$defs": {
                    "n": {
                        "type": "object",
                        "properties": {"c": {"oneOf": [{"$ref": "#/$defs/n"}] * 2}},
                    }
                },
                "properties": {"x": {"$ref": "#/$defs/n"}},
            },
            {"x": nested(30)},
        ),
        (
            {
                "type": "object",
                "$defs": {
                    "n": {
                        "allOf": [{"properties": {"c": {"$ref": "#/$defs/n"}}}],
                        "unevaluatedProperties": False,
                    }
                },
                "properties": {"x": {"$ref": "#/$defs/n"}},
            },
            {"x": nested(30)},
        ),
        (
            one_schema({"items": {"allOf": [{"type": "string"}] * 900}}),
            {"x": [list(range(100))] * 100},
        ),
        (one_schema({"items": {}}), {"x": [0] * 100_000}),
    ],
    ids=["doubling references", "oneOf in oneOf", "unevaluated at each level", "many", "long"],
)
def test_validation_that_would_take_minutes_stops_at_its_budget(
    schema: dict[str, Any], parameters: dict[str, Any]
) -> None:
    validate_spec(
        ActionSpec(ref="my.action", runner="shell", entry_point="true", parameters=schema)
    )
    with pytest.raises(ValueError) as refused:
        ParameterValidator(schema)(parameters)
    assert str(refused.value).startswith("Invalid parameters: checking them against the ")
    assert TOO_COSTLY in str(refused.value)


def test_a_schema_too_large_to_check_quickly_is_refused_when_defined() -> None:
    schema = one_schema({"anyOf": [{"type": "string"}] * MAX_SUBSCHEMAS})
    spec = ActionSpec(ref="my.action", runner="shell", entry_point="true", parameters=schema)
    with pytest.raises(ValueError) as refused:
        validate_spec(spec)
    assert str(refused.value) == (
        f"The parameters schema is too large: {MAX_SUBSCHEMAS + 2} objects that may be "
        f"schemas, at most {MAX_SUBSCHEMAS}"
    )
    fits = one_schema({"anyOf": [{"type": "string"}] * (MAX_SUBSCHEMAS - 2)})
    validate_spec(ActionSpec(ref="my.action", runner="shell", entry_point="true", parameters=fits))


def test_large_parameters_within_the_budget_are_accepted() -> None:
    check = one({"type": "array", "items": {"type": "object", "properties": {"a": {}}}})
    items = [{"a": i} for i in range(8000)]
    assert check({"x": items}) == {"x": items}
    recursive = {
        "type": "object",
        "$defs": {"n": {"type": "object", "properties": {"c": {"$ref": "#/$defs/n"}}}},
        "properties": {"x": {"$ref": "#/$defs/n"}},
    }
    assert ParameterValidator(recursive)({"x": nested(100)}) == {"x": nested(100)}


@pytest.mark.parametrize(
    "schema",
    [
        {"$defs": {"a": {"$ref": "#/$defs/a"}}, "properties": {"x": {"$ref": "#/$defs/a"}}},
        {"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"allOf": [{"$ref": "#/$defs/a"}]}}},
        {"allOf": [{"$ref": "#"}]},
        {"properties": {"x": {"anyOf": [{"type": "string"}, {"$ref": "#/properties/x"}]}}},
        {"properties": {"x": {"not": {"$ref": "#/properties/x"}}}},
        {"properties": {"x": {"if": {"type": "string"}, "else": {"$ref": "#/properties/x"}}}},
        {"dependentSchemas": {"a": {"$ref": "#"}}},
        {"$defs": {"a": {"$id": "urn:a", "oneOf": [{"$ref": "#/oneOf/0"}]}}},
        # Found from x's reference, the loop closes through `allOf`, not a reference.
        {
            "$defs": {"b": {"allOf": [{"$ref": "#/$defs/b"}]}},
            "properties": {"x": {"$ref": "#/$defs/b/allOf/0"}},
        },
    ],
)
def test_references_that_loop_are_refused_when_defined(schema: dict[str, Any]) -> None:
    schema = {"type": "object", **schema}
    spec = ActionSpec(ref="my.action", runner="shell", entry_point="true", parameters=schema)
    with pytest.raises(ValueError) as refused:
        validate_spec(spec)
    assert str(refused.value).startswith("Invalid parameters schema: $ref '#")
    assert "loops" in str(refused.value) and "never end" in str(refused.value)
    # Stored before this check: refused when used, never raised.
    with pytest.raises(ValueError, match=r"parameters schema cannot be used: .* loops"):
        ParameterValidator(schema)


def test_references_through_properties_and_items_recurse() -> None:
    tree = {
        "type": "object",
        "$defs": {
            "node": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "children": {"type": "array", "items": {"$ref": "#/$defs/node"}},
                },
            }
        },
        "properties": {"root": {"$ref": "#/$defs/node"}},
    }
    validate_spec(ActionSpec(ref="my.tree", runner="shell", entry_point="true", parameters=tree))
    leaf = {"name": "leaf", "children": []}
    check = ParameterValidator(tree)
    assert check({"root": {"name": "top", "children": [leaf, leaf]}})
    with pytest.raises(ValueError, match=r"parameter 'root\.children\.1\.name': 3 is not of"):
        check({"root": {"name": "top", "children": [leaf, {"name": 3}]}})


def test_a_chain_of_references_too_long_to_follow_is_refused_not_raised() -> None:
    defs = {f"d{i}": {"$ref": f"#/$defs/d{i + 1}"} for i in range(3000)}
    defs["d3000"] = {"type": "string"}
    schema = {"type": "object", "$defs": defs, "properties": {"x": {"$ref": "#/$defs/d0"}}}
    with pytest.raises(ValueError, match="Invalid parameters: nested too deeply to be checked"):
        ParameterValidator(schema)({"x": "text"})


def test_a_number_beyond_a_double_is_refused_not_raised() -> None:
    with pytest.raises(ValueError, match="a number is beyond what the action's schema can check"):
        one({"multipleOf": 0.1})({"x": float("inf")})


@pytest.mark.parametrize(
    "draft",
    ["http://json-schema.org/draft-07/schema#", "https://json-schema.org/draft/2020-12/schema"],
)
def test_a_schema_naming_a_draft_is_still_validated_with_the_bounds(draft: str) -> None:
    # jsonschema validates a subschema naming a draft with that draft's own class:
    # `re` for patterns and its quadratic uniqueItems, whose message differs.
    check = one({"$schema": draft, "uniqueItems": True, "items": {"pattern": "^(a|aa)+$"}})
    with pytest.raises(ValueError, match="has non-unique elements: items 0 and 1 are equal"):
        check({"x": [{"a": 1}, {"a": 1}]})
    with pytest.raises(ValueError, match=r"parameter 'x': matching the pattern .* took longer"):
        check({"x": ["a" * 40 + "!"]})


def test_errors_quote_a_large_value_briefly() -> None:
    with pytest.raises(ValueError) as refused:
        one({"type": "string"})({"x": [list(range(1000))] * 100})
    message = str(refused.value)
    assert message.startswith("Invalid parameter 'x': [[0, 1, 2, 3, 4, 5, ...], ")
    assert message.endswith("...] is not of type 'string'") and len(message) < 400
    with pytest.raises(ValueError) as refused:
        one({"maxLength": 5})({"x": "a" * 100_000})
    assert "..." in str(refused.value) and len(str(refused.value)) < 200


def test_an_id_that_is_not_a_uri_is_refused_when_defined() -> None:
    schema = one_schema({"$id": "http://[bad", "type": "string"})
    spec = ActionSpec(ref="my.action", runner="shell", entry_point="true", parameters=schema)
    with pytest.raises(ValueError, match=r"^Invalid parameters schema: Invalid IPv6 URL$"):
        validate_spec(spec)
