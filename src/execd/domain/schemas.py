"""JSON Schema (draft 2020-12) as action parameters use it, at a bounded cost.

A schema is written by one operator and its parameters are sent by anyone allowed to
run the action; validation runs in the server, beside every other tenant's requests.
So no schema may make one validation cost more than a bounded amount:

* patterns run on the bounded engine (`execd.domain.patterns`), within one time budget;
* the keywords that jsonschema implements in quadratic time (`uniqueItems` on
  objects or arrays, `enum` and `const` against large values, `unevaluatedItems`,
  `unevaluatedProperties`) are implemented here in linear time;
* every keyword applied counts against a budget of steps (see `MAX_STEPS`), which
  also stops schemas whose applicators multiply the work (`oneOf` in `oneOf`, or
  `unevaluatedProperties` at every level of a recursive schema);
* a schema whose references loop back to the same value (`{"$ref": "#"}` inside
  `allOf`) never ends: it is refused (`schema_checks.check_loops`).

`$schema` is ignored: jsonschema would switch a subschema naming a draft to its own
validator class, without these bounds, so the validating copy has it removed.

What is refused when an action is defined is in `domain/schema_checks.py`; how errors
quote the failing value, in `domain/schema_messages.py`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Hashable, Iterator
from contextvars import ContextVar
from typing import Any

import jsonschema
import jsonschema.exceptions
import jsonschema.validators
import referencing
from jsonschema._utils import (
    extras_msg,
    find_evaluated_item_indexes_by_schema,
    find_evaluated_property_keys_by_schema,
)
from referencing._core import Resolver
from referencing.jsonschema import DRAFT202012

from execd.domain.patterns import Budget

# Schemas are resolved in a registry of their own, which never fetches anything remote.
SCHEMA_URI = "urn:execd:parameters"
# What one validation may cost, in steps of about a microsecond (see `_cost`): the
# finding's 8,000 objects under `uniqueItems` take 80,000 steps.
MAX_STEPS = 300_000
ELEMENT = 8
# Objects in a parameters schema. Checking a schema against the draft's meta-schema
# costs about half a millisecond for each.
MAX_SUBSCHEMAS = 1000

Error = jsonschema.exceptions.ValidationError


class TooCostly(Exception):
    """A validation ran out of steps."""


class Run:
    """One validation: what it may still spend, and the canonical forms of the
    schema's `enum` and `const` values, computed once per schema (by id)."""

    def __init__(self, known: dict[tuple[str, int], Any], steps: int = MAX_STEPS) -> None:
        self.patterns = Budget()
        self.steps = steps
        self.known = known

    def spend(self, steps: int) -> None:
        self.steps -= steps
        if self.steps < 0:
            raise TooCostly


# The validation running in this context: its keywords and its messages spend from it.
RUN: ContextVar[Run] = ContextVar("schema_run")


def canonical(value: Any, run: Run) -> Hashable:
    """A hashable form of a JSON value, equal to another's exactly when JSON Schema
    calls the values equal: 1 and 1.0 are, true and 1 are not, objects are whatever
    the order of their keys, arrays are in order."""
    run.spend(1)
    if isinstance(value, bool):
        return ("boolean", value)
    if isinstance(value, int | float):
        return ("number", value)  # Python compares int and float exactly, as JSON does
    if isinstance(value, str):
        return ("string", value)
    if isinstance(value, list):
        return ("array", tuple(canonical(item, run) for item in value))
    if isinstance(value, dict):
        return ("object", frozenset((key, canonical(v, run)) for key, v in value.items()))
    return ("null", None)


def registry(schema: dict[str, Any]) -> referencing.Registry[Any]:
    resource = referencing.Resource.from_contents(schema, default_specification=DRAFT202012)
    found: referencing.Registry[Any] = referencing.Registry().with_resource(SCHEMA_URI, resource)
    return found


def for_validation(schema: dict[str, Any]) -> dict[str, Any]:
    """A copy of the schema to validate with: without `$schema`, so that every
    subschema is validated by this module's validator (see the module's doc)."""
    copied = copy.deepcopy(schema)
    for node, _ in walk(copied):
        node.pop("$schema", None)
    return copied


def known_values(schema: dict[str, Any]) -> dict[tuple[str, int], Any]:
    """The canonical forms of the schema's `const` values and `enum` sets, by keyword
    and id (the schema keeps the values, so their ids stay theirs)."""
    run = Run({}, steps=2**62)
    known: dict[tuple[str, int], Any] = {}
    for node, _ in walk(schema):
        if "const" in node:
            known["const", id(node["const"])] = canonical(node["const"], run)
        if isinstance(node.get("enum"), list):
            known["enum", id(node["enum"])] = frozenset(canonical(e, run) for e in node["enum"])
    return known


# -- the objects of a schema -----------------------------------------------------------

# Keywords whose value maps names to subschemas, and keywords holding data, not schemas.
_SCHEMA_MAPS = frozenset({"properties", "patternProperties", "dependentSchemas", "$defs"})
_DATA = frozenset({"const", "enum", "default", "examples"})


def walk(schema: dict[str, Any]) -> Iterator[tuple[dict[str, Any], Resolver[Any]]]:
    """Every object of the schema that may be used as a schema (a $ref may point into
    an unknown keyword, so those are walked too), with the resolver its references
    are resolved by."""
    root = registry(schema).resolver(SCHEMA_URI)
    stack: list[tuple[Any, Resolver[Any]]] = [(schema, root)]
    while stack:
        node, resolver = stack.pop()
        if isinstance(node, list):
            stack.extend((child, resolver) for child in node)
        if not isinstance(node, dict):
            continue
        if node is not schema and isinstance(node.get("$id"), str):
            resolver = resolver.in_subresource(DRAFT202012.create_resource(node))
        yield node, resolver
        for key, value in node.items():
            if key in _SCHEMA_MAPS and isinstance(value, dict):
                stack.extend((child, resolver) for child in value.values())
            elif key not in _DATA:
                stack.append((value, resolver))


def refs(schema: dict[str, Any]) -> Iterator[tuple[str, Resolver[Any]]]:
    """Every reference of the schema, with the resolver that resolves it."""
    for node, resolver in walk(schema):
        for key in ("$ref", "$dynamicRef"):
            if isinstance(node.get(key), str):
                yield node[key], resolver


# -- keywords ---------------------------------------------------------------------------


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[Error]:
    if validator.is_type(instance, "string") and not RUN.get().patterns.search(pattern, instance):
        yield Error(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(
    validator: Any, patterns: dict[str, Any], instance: Any, schema: Any
) -> Iterator[Error]:
    if not validator.is_type(instance, "object"):
        return
    budget = RUN.get().patterns
    for pattern, subschema in patterns.items():
        for name, value in instance.items():
            if budget.search(pattern, name):
                yield from validator.descend(value, subschema, path=name, schema_path=pattern)


def _additional_properties(
    validator: Any, additional: Any, instance: Any, schema: dict[str, Any]
) -> Iterator[Error]:
    if not validator.is_type(instance, "object"):
        return
    budget = RUN.get().patterns
    declared = schema.get("properties", {})
    patterns = schema.get("patternProperties", {})
    extras = [
        name
        for name in instance
        if name not in declared and not any(budget.search(p, name) for p in patterns)
    ]
    if validator.is_type(additional, "object"):
        for name in extras:
            yield from validator.descend(instance[name], additional, path=name)
    elif additional is False and extras:
        listed = ", ".join(repr(name) for name in sorted(extras))
        verb = "was" if len(extras) == 1 else "were"
        yield Error(f"Additional properties are not allowed ({listed} {verb} unexpected)")


def _unique_items(validator: Any, unique: Any, instance: Any, schema: Any) -> Iterator[Error]:
    if not unique or not validator.is_type(instance, "array"):
        return
    run = RUN.get()
    first: dict[Hashable, int] = {}
    for index, item in enumerate(instance):
        seen = first.setdefault(canonical(item, run), index)
        if seen != index:
            yield Error(f"has non-unique elements: items {seen} and {index} are equal")
            return


def _enum(validator: Any, enums: list[Any], instance: Any, schema: Any) -> Iterator[Error]:
    run = RUN.get()
    allowed = run.known.get(("enum", id(enums)))
    if allowed is None:
        allowed = frozenset(canonical(e, run) for e in enums)
    if canonical(instance, run) not in allowed:
        yield Error(f"{instance!r} is not one of {enums!r}")


def _const(validator: Any, const: Any, instance: Any, schema: Any) -> Iterator[Error]:
    run = RUN.get()
    expected = run.known.get(("const", id(const)))
    if expected is None:
        expected = canonical(const, run)
    if canonical(instance, run) != expected:
        yield Error(f"{const!r} was expected")


def _unevaluated_items(
    validator: Any, unevaluated: Any, instance: Any, schema: Any
) -> Iterator[Error]:
    if not validator.is_type(instance, "array"):
        return
    evaluated = set(find_evaluated_item_indexes_by_schema(validator, instance, schema))
    extras = [item for index, item in enumerate(instance) if index not in evaluated]
    if extras:
        listed, verb = extras_msg(extras)
        yield Error(f"Unevaluated items are not allowed ({listed} {verb} unexpected)")


def _unevaluated_properties(
    validator: Any, unevaluated: Any, instance: Any, schema: Any
) -> Iterator[Error]:
    if not validator.is_type(instance, "object"):
        return
    evaluated = set(find_evaluated_property_keys_by_schema(validator, instance, schema))
    invalid = [
        name
        for name in instance
        if name not in evaluated
        and next(validator.descend(instance[name], unevaluated, path=name), None) is not None
    ]
    if not invalid:
        return
    listed, verb = extras_msg(sorted(invalid, key=str))
    if unevaluated is False:
        yield Error(f"Unevaluated properties are not allowed ({listed} {verb} unexpected)")
    else:
        yield Error(
            "Unevaluated properties are not valid under the given schema "
            f"({listed} {verb} unevaluated and invalid)"
        )


Keyword = Callable[[Any, Any, Any, Any], Any]
# How many subschemas a keyword applies: one per item or property of the value, one
# per subschema it lists, or one or two.
_PER_ELEMENT = frozenset(
    {
        "items",
        "contains",
        "additionalProperties",
        "patternProperties",
        "propertyNames",
        "unevaluatedItems",
        "unevaluatedProperties",
    }
)
_PER_SUBSCHEMA = frozenset({"allOf", "anyOf", "oneOf", "dependentSchemas", "prefixItems"})
_TWO = frozenset({"$ref", "$dynamicRef", "if"})  # a lookup or a condition, then a schema
_HASHED = frozenset({"enum", "const"})  # compared by canonical forms, which count themselves


def _cost(keyword: str, value: Any, instance: Any) -> int:
    """Steps of about a microsecond: a plain keyword is one, plus one per item or
    property it looks at; applying a subschema costs about ELEMENT steps."""
    if keyword in _PER_ELEMENT:
        return 1 + _size(value) + ELEMENT * _size(instance)
    if keyword in _PER_SUBSCHEMA:
        return 1 + ELEMENT * _size(value)
    if keyword == "properties":
        return 1 + _size(value) + ELEMENT * min(_size(value), _size(instance))
    if keyword in _TWO:
        return 1 + 2 * ELEMENT
    if keyword == "not":
        return 1 + ELEMENT
    if keyword in _HASHED:
        return 1
    if keyword == "dependentRequired" and isinstance(value, dict):
        return 1 + sum(1 + _size(names) for names in value.values())
    return 1 + _size(value) + _size(instance)


def _counted(keyword: str, check: Keyword) -> Keyword:
    def counted(validator: Any, value: Any, instance: Any, schema: Any) -> Any:
        RUN.get().spend(_cost(keyword, value, instance))
        return check(validator, value, instance, schema)

    return counted


def _size(value: Any) -> int:
    return len(value) if isinstance(value, list | dict) else 0


_KEYWORDS: dict[str, Keyword] = {
    **jsonschema.Draft202012Validator.VALIDATORS,
    "pattern": _pattern,
    "patternProperties": _pattern_properties,
    "additionalProperties": _additional_properties,
    "uniqueItems": _unique_items,
    "enum": _enum,
    "const": _const,
    "unevaluatedItems": _unevaluated_items,
    "unevaluatedProperties": _unevaluated_properties,
}
Validator: type[jsonschema.protocols.Validator] = jsonschema.validators.extend(  # type: ignore[no-untyped-call]
    jsonschema.Draft202012Validator,
    {name: _counted(name, check) for name, check in _KEYWORDS.items()},
)


def first_error(
    validator: jsonschema.protocols.Validator, instance: Any, known: dict[tuple[str, int], Any]
) -> Error | None:
    """The error that best says why `instance` is invalid, or None if it is valid.

    Raises TooCostly past MAX_STEPS, PatternTimeout past the patterns' budget, and
    whatever jsonschema raises (an unresolvable reference, RecursionError)."""
    token = RUN.set(Run(known))
    try:
        best: Error | None = jsonschema.exceptions.best_match(validator.iter_errors(instance))
        return best
    finally:
        RUN.reset(token)
