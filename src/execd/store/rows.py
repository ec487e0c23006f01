"""Rows to domain objects."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import RowMapping

from execd.domain.actions import Action, RetryPolicy
from execd.domain.executions import Execution
from execd.domain.sandbox import SandboxOptions
from execd.domain.states import Priority, Status

STATUS = {s.value: s for s in Status}
_PRIORITY = {int(p): p for p in Priority}


def to_execution(row: Mapping[Any, Any]) -> Execution:
    data = dict(row)
    data["status"] = STATUS[data["status"]]
    data["priority"] = _PRIORITY[data["priority"]]
    return Execution(**data)


def to_action(row: RowMapping) -> Action:
    data: dict[str, Any] = dict(row)
    data.pop("pack", None)
    data["retry"] = RetryPolicy.from_json(data.get("retry"))
    data["sandbox"] = SandboxOptions.from_json(data.get("sandbox"))
    return Action(**data)
