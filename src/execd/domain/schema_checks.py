"""What is refused in a parameters schema when an action is defined: patterns the
bounded engine does not accept, and references that loop back to the value they are
applied to (validating would never end)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import referencing.exceptions
from referencing._core import Resolver
from referencing.jsonschema import DRAFT202012

from execd.domain.patterns import PatternError, compile_pattern
from execd.domain.schemas import walk


def check_patterns(schema: dict[str, Any]) -> None:
    """Raise PatternError unless every pattern of the schema (`pattern`, the keys of
    `patternProperties`) is accepted by the bounded engine."""
    keywords: set[str] = set()
    for node, _ in walk(schema):
        keywords |= node.keys()
        named = node.get("patternProperties")
        for pattern in [node.get("pattern"), *(named if isinstance(named, dict) else ())]:
            if isinstance(pattern, str):
                compile_pattern(pattern)
    # jsonschema matches patternProperties for unevaluatedProperties with `re`, which
    # cannot be bounded: the pair is refused rather than left unbounded.
    if {"patternProperties", "unevaluatedProperties"} <= keywords:
        raise PatternError(
            "patternProperties cannot be combined with unevaluatedProperties; "
            "use additionalProperties"
        )


def check_loops(schema: dict[str, Any]) -> None:
    """Raise ValueError if a reference leads back to a schema that is being applied
    to the same value: validating anything against it would never end. A reference
    back through `properties`, `items` and the like is fine: it goes one level down
    the value each time."""
    done: set[int] = set()
    for start, resolver in walk(schema):
        if id(start) in done:
            continue
        # The schemas being followed, each with how it was reached, and their places.
        path = [(start, _in_place(start, resolver), "")]
        on_path = {id(start): 0}
        while path:
            node, applied, _ = path[-1]
            for how, child, child_resolver in applied:
                if id(child) in on_path:
                    loop = [h for _, _, h in path[on_path[id(child)] + 1 :]] + [how]
                    # Keywords only go down the schema: a loop has a reference in it.
                    ref = next(h for h in loop if h.startswith("$"))
                    raise ValueError(
                        f"{ref} loops: it leads back to a schema that applies it to the "
                        "same value, so validating would never end (a reference back "
                        "must go through a property or an item)"
                    )
                if id(child) not in done:
                    on_path[id(child)] = len(path)
                    path.append((child, _in_place(child, child_resolver), how))
                    break
            else:
                done.add(id(node))
                del on_path[id(node)]
                path.pop()


def _in_place(
    node: dict[str, Any], resolver: Resolver[Any]
) -> Iterator[tuple[str, dict[str, Any], Resolver[Any]]]:
    """The schemas that `node` applies to the very value it is applied to."""
    for key in ("$ref", "$dynamicRef"):
        ref = node.get(key)
        if isinstance(ref, str):
            try:
                resolved = resolver.lookup(ref)
            except referencing.exceptions.Unresolvable:
                continue
            if isinstance(resolved.contents, dict):
                yield f"{key} {ref!r}", resolved.contents, resolved.resolver
    children: list[tuple[str, Any]] = []
    for key in ("allOf", "anyOf", "oneOf"):
        if isinstance(node.get(key), list):
            children += [(key, child) for child in node[key]]
    for key in ("not", "if", *(("then", "else") if "if" in node else ())):
        children.append((key, node.get(key)))
    if isinstance(node.get("dependentSchemas"), dict):
        children += [("dependentSchemas", child) for child in node["dependentSchemas"].values()]
    for key, child in children:
        if isinstance(child, dict) and isinstance(child.get("$id"), str):
            yield key, child, resolver.in_subresource(DRAFT202012.create_resource(child))
        elif isinstance(child, dict):
            yield key, child, resolver
