"""Rows of triggers, rules and enforcements as domain records."""

from __future__ import annotations

from dataclasses import fields
from typing import Any, TypeVar

from execd.domain.rules import Enforcement, Rule, Trigger

R = TypeVar("R")


def _record(kind: type[R], row: Any, **given: Any) -> R:
    """A dataclass from the row's columns of the same names; `given` wins."""
    names = {f.name for f in fields(kind)}  # type: ignore[arg-type]
    return kind(**({k: v for k, v in dict(row).items() if k in names} | given))


def to_trigger(row: Any, has_secret: bool) -> Trigger:
    return _record(Trigger, row, has_secret=has_secret)


def to_rule(row: Any, trigger_ref: str) -> Rule:
    return _record(Rule, row, trigger_ref=trigger_ref)


def to_enforcement(row: Any) -> Enforcement:
    return _record(Enforcement, row, execution_ids=list(row["execution_ids"] or []))
