"""The audit log: who changed what, when, from where, and how it ended.

Every state-changing request (POST, PUT, PATCH, DELETE) of a caller that presented
credentials leaves one entry. A change that was made is written in the transaction
that made it (so an entry exists exactly when the change does); a request that changed
nothing (refused, failed) is written after its answer. What a request sent is never
kept: the ids in its path and of what it made, never a body, a parameter or a token.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any

MAX_OBJECTS = 100  # ids kept per entry (a batch of 1,000 submissions keeps the first)
# Attributes that name what a write made or changed (an execution, an action, a token).
_NAMING = ("id", "uuid", "ref")


@dataclass
class AuditEntry:
    at: float
    method: str
    path: str
    address: str | None
    route: str = ""
    # Who: the token's id, name and role, and where it belongs (None: refused before
    # the token was known, e.g. a failed authentication).
    token_id: int | None = None
    token_name: str | None = None
    role: str | None = None
    tenant_id: str | None = None
    project_id: str | None = None
    # What: the route's path parameters and the ids of what the change made.
    objects: dict[str, Any] = field(default_factory=dict)
    status: int = 0
    outcome: str = ""  # "done" (the change was made) or "refused" (it was not)
    error: str | None = None
    id: int = 0  # once stored


@dataclass(frozen=True)
class AuditFilter:
    tenant_id: str | None = None  # None: every tenant (a system admin only)
    project_id: str | None = None
    token_id: int | None = None
    method: str | None = None
    route: str | None = None
    outcome: str | None = None
    status: int | None = None
    since: float | None = None
    until: float | None = None
    below_id: int | None = None  # keyset paging: entries older than this one


def made_ids(result: Any, found: list[Any] | None = None) -> list[Any]:
    """The ids (`id`, `uuid`, `ref`) of the objects a write returned, looked for in
    dataclasses (and, in one without ids, in its fields) and in the lists, tuples and
    dicts holding them; never a bare value."""
    found = [] if found is None else found
    if len(found) >= MAX_OBJECTS:
        return found
    if is_dataclass(result) and not isinstance(result, type):
        names = [f.name for f in fields(result)]
        own = [
            value
            for name in _NAMING
            if name in names and isinstance(value := getattr(result, name), int | str)
        ]
        found.extend(own)
        if not own:  # a wrapper (a submission's outcome): what it holds
            for name in names:
                made_ids(getattr(result, name), found)
    elif isinstance(result, list | tuple):
        for item in result[:MAX_OBJECTS]:
            made_ids(item, found)
    elif isinstance(result, dict):
        for item in list(result.values())[:MAX_OBJECTS]:
            made_ids(item, found)
    return list(dict.fromkeys(found))[:MAX_OBJECTS]
