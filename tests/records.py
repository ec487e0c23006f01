"""Domain records for tests that need one without a database."""

from __future__ import annotations

from typing import Any

from execd.domain.executions import Execution
from execd.domain.states import Priority, Status


def an_execution(**fields: Any) -> Execution:
    """An execution of `core.noop`, queued, first attempt; `fields` change any of it."""
    values: dict[str, Any] = {
        "id": 1,
        "uuid": "00000000-0000-4000-8000-000000000001",
        "tenant_id": "t",
        "project_id": "p",
        "action_id": None,
        "action_ref": "core.noop",
        "pack": "core",
        "runner": "local",
        "entry_point": "noop",
        "parameters": {},
        "status": Status.SCHEDULING,
        "priority": Priority.NORMAL,
        "attempt": 1,
        "max_attempts": 1,
        "retry_policy": None,
        "fence": 1,
        "created": 0.0,
        "updated": 0.0,
    }
    return Execution(**{**values, **fields})
