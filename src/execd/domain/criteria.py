"""Rule criteria: a tree of and/or/not over comparisons of the event's fields, checked
when a rule is saved and matched against each event its trigger fires for."""

from __future__ import annotations

from typing import Any

from execd.domain import templates
from execd.domain.patterns import Budget, PatternError, PatternTimeout, compile_pattern
from execd.domain.rules import RuleError

MAX_CRITERIA_NODES = 100
MAX_CRITERIA_DEPTH = 16
COMPARISONS = ("equals", "not_equals", "contains", "regex", "gt", "gte", "lt", "lte", "exists")


def check_criteria(criteria: Any) -> None:
    """Refuse criteria that are not a tree of and/or/not over comparisons."""
    if criteria is None:
        return
    count = 0

    def visit(node: Any, depth: int) -> None:
        nonlocal count
        count += 1
        if count > MAX_CRITERIA_NODES or depth > MAX_CRITERIA_DEPTH:
            raise RuleError(
                f"Criteria have at most {MAX_CRITERIA_NODES} conditions, "
                f"nested at most {MAX_CRITERIA_DEPTH} deep"
            )
        if not isinstance(node, dict):
            raise RuleError("A criterion is an object: {field, op, value} or {and|or: [...]}")
        if set(node) in ({"and"}, {"or"}):
            parts = next(iter(node.values()))
            if not isinstance(parts, list) or not parts:
                raise RuleError("'and' and 'or' take a non-empty list of criteria")
            for part in parts:
                visit(part, depth + 1)
            return
        if set(node) == {"not"}:
            visit(node["not"], depth + 1)
            return
        extra = set(node) - {"field", "op", "value"}
        if extra or "field" not in node or "op" not in node:
            raise RuleError("A comparison is {field, op, value}; combine them with and/or/not")
        path, op = node["field"], node["op"]
        if not isinstance(path, str) or not path or len(path) > 500:
            raise RuleError("field is a dotted path into the event, such as payload.severity")
        if op not in COMPARISONS:
            raise RuleError(f"Unknown op {op!r}; use one of {', '.join(COMPARISONS)}")
        value = node.get("value")
        if op == "exists":
            if not isinstance(value, bool | None):
                raise RuleError("exists takes value true (the default) or false")
        elif "value" not in node:
            raise RuleError(f"{op} needs a value")
        if op == "regex":
            if not isinstance(value, str):
                raise RuleError("regex takes a pattern (text)")
            try:
                compile_pattern(value)
            except PatternError as exc:
                raise RuleError(str(exc)) from None
        if op in ("gt", "gte", "lt", "lte") and not _orderable(value):
            raise RuleError(f"{op} compares with a number or a string")

    visit(criteria, 1)


def matches(criteria: dict[str, Any] | None, context: dict[str, Any]) -> bool:
    """Whether the event (`context`: payload, trigger) meets the criteria. The rule's
    regexes share one time budget; one that does not finish within it counts as no
    match."""
    if criteria is None:
        return True
    return _matches(criteria, context, Budget())


def _matches(criteria: dict[str, Any], context: dict[str, Any], budget: Budget) -> bool:
    if "and" in criteria:
        return all(_matches(part, context, budget) for part in criteria["and"])
    if "or" in criteria:
        return any(_matches(part, context, budget) for part in criteria["or"])
    if "not" in criteria:
        return not _matches(criteria["not"], context, budget)
    op: str = criteria["op"]
    expected: Any = criteria.get("value")
    found = templates.find(criteria["field"], context)
    present = found is not templates.MISSING
    if op == "exists":
        return present == (expected is not False)
    if not present:
        return op == "not_equals"
    if op == "equals":
        return _same(found, expected)
    if op == "not_equals":
        return not _same(found, expected)
    if op == "contains":
        if isinstance(found, str):
            return isinstance(expected, str) and expected in found
        if isinstance(found, list):
            return any(_same(item, expected) for item in found)
        if isinstance(found, dict):
            return isinstance(expected, str) and expected in found
        return False
    if op == "regex":
        if not isinstance(found, str) or not isinstance(expected, str):
            return False
        try:
            return budget.search(expected, found)
        except (PatternTimeout, PatternError):
            return False
    return _compare(op, found, expected)


def _same(a: Any, b: Any) -> bool:
    # JSON semantics: 1 == 1.0, but true is not 1.
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    return bool(a == b)


def _orderable(value: Any) -> bool:
    return isinstance(value, int | float | str) and not isinstance(value, bool)


def _compare(op: str, found: Any, expected: Any) -> bool:
    if not (_orderable(found) and _orderable(expected)):
        return False
    if isinstance(found, str) != isinstance(expected, str):
        return False
    if op == "gt":
        return bool(found > expected)
    if op == "gte":
        return bool(found >= expected)
    if op == "lt":
        return bool(found < expected)
    return bool(found <= expected)
